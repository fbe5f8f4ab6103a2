"""The built-in oneDNN runtime: IDX datasets, small CNNs, and the built-in evaluator.

Everything here needs a library built with the runtime module; otherwise the calls raise
:class:`mpq.UnsupportedError`.
"""

from __future__ import annotations

import ctypes
import os
from ctypes import POINTER, byref, c_double, c_float, c_int, c_int32, c_int64, c_uint8, c_void_p
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from . import _lib
from ._handle import Handle, ptr
from ._lib import Int8Report, InvalidArgumentError, NetLayer, lib
from .model import Model, Policy

PathLike = Union[str, "os.PathLike[str]"]
Split = Union[str, int]


SPLITS = {"train": 0, "val": 1, "test": 2}
#: Layer kinds of :meth:`Net.add` (values of ``mpq_net_op``).
NET_OPS = {"conv": 1, "batchnorm": 2, "relu": 3, "relu6": 4, "maxpool": 5, "avgpool": 6,
           "global_avgpool": 7, "fc": 8, "add": 9, "flatten": 10}
CALIB_METHODS = {"minmax": 0, "mean_max": 1}


def _split(split):
    if isinstance(split, str):
        if split not in SPLITS:
            raise InvalidArgumentError("split: '%s' (valid: train, val, test)" % split)
        return SPLITS[split]
    return int(split)


class Dataset(Handle):
    """A labelled image dataset of the MNIST family (IDX files, gzipped or not):
    ``Dataset()`` loads Fashion-MNIST from the default directory, ``Dataset(dir)`` another."""

    def __init__(self, directory=None, _ptr=None):
        if _ptr is None:
            out = c_void_p()
            lib.mpq_dataset_load(byref(out),
                                 None if directory is None else os.fsencode(directory))
            _ptr = out
        self._own(_ptr, lib.mpq_dataset_destroy)

    @classmethod
    def from_arrays(cls, images: np.ndarray, labels: np.ndarray, test_count: int = 0,
                    val_count: int = 0) -> "Dataset":
        """A dataset from memory (copied): ``images`` uint8 [n, C, H, W] (training images
        first, then ``test_count`` test images), ``labels`` [n] in 0..254; the last
        ``val_count`` training images form the validation split."""
        img = np.ascontiguousarray(images, dtype=np.uint8)
        if img.ndim == 3:
            img = img[:, None]
        if img.ndim != 4:
            raise InvalidArgumentError("images: expected [n, C, H, W], got shape %s"
                                       % (img.shape,))
        lab = np.ascontiguousarray(labels, dtype=np.uint8).reshape(-1)
        if lab.size != img.shape[0]:
            raise InvalidArgumentError("labels: %d entries for %d images"
                                       % (lab.size, img.shape[0]))
        n, c, h, w = img.shape
        out = c_void_p()
        lib.mpq_dataset_create_memory(byref(out), ptr(img), ptr(lab), n - int(test_count),
                                      int(test_count), c, h, w, int(val_count))
        return cls(_ptr=out)

    def numpy(self, split="train") -> Tuple[np.ndarray, np.ndarray]:
        """(images, labels) of a split as numpy arrays: uint8 [n, C, H, W] pixels (divide by
        255 for the [0, 1] floats the runtime feeds its networks) and int64 labels [n]."""
        sp = _split(split)
        n = self.count(split)
        c, h, w, _ = self.shape
        images = np.empty((n, c, h, w), dtype=np.uint8)
        labels = np.empty(n, dtype=np.int64)
        if n == 0:
            return images, labels
        px, label = ctypes.POINTER(c_uint8)(), c_int()
        # Samples of a split are contiguous in the library's storage: read the first pointer and
        # check that the last sample sits where contiguity puts it before one bulk copy.
        lib.mpq_dataset_sample(self, sp, 0, byref(px), byref(label))
        first = ctypes.addressof(px.contents)
        lib.mpq_dataset_sample(self, sp, n - 1, byref(px), byref(label))
        per = c * h * w
        if ctypes.addressof(px.contents) == first + (n - 1) * per:
            images.reshape(-1)[:] = np.ctypeslib.as_array(
                ctypes.cast(first, ctypes.POINTER(c_uint8)), shape=(n * per,))
            for i in range(n):
                lib.mpq_dataset_sample(self, sp, i, byref(px), byref(label))
                labels[i] = label.value
        else:
            for i in range(n):
                lib.mpq_dataset_sample(self, sp, i, byref(px), byref(label))
                images[i].reshape(-1)[:] = np.ctypeslib.as_array(px, shape=(per,))
                labels[i] = label.value
        return images, labels

    def count(self, split: Split = "train") -> int:
        n = c_int64()
        lib.mpq_dataset_get_count(self, _split(split), byref(n))
        return n.value

    @property
    def shape(self) -> Tuple[int, int, int, int]:
        """(channels, height, width, classes)."""
        v = [c_int32() for _ in range(4)]
        lib.mpq_dataset_get_shape(self, *[byref(x) for x in v])
        return tuple(x.value for x in v)


class Net(Handle):
    """A small CNN of the oneDNN runtime: ``Net.named("fashion-tiny", seed)`` or
    ``Net.load(path)``; hyper-parameters by name (``net["epochs"] = 2``)."""

    def __init__(self, _ptr):
        self._own(_ptr, lib.mpq_net_destroy)

    @classmethod
    def named(cls, name: str = "fashion-cnn", seed: int = 0, **params: float) -> "Net":
        out = c_void_p()
        lib.mpq_net_create_named(byref(out), name.encode(), int(seed))
        net = cls(out)
        for key, value in params.items():
            net[key] = value
        return net

    @classmethod
    def load(cls, path: PathLike, seed: int = 0) -> "Net":
        out = c_void_p()
        lib.mpq_net_load(byref(out), os.fsencode(path), int(seed))
        return cls(out)

    @classmethod
    def load_onnx(cls, path: PathLike, seed: int = 0) -> "Net":
        """A trained network from an ONNX file (see mpq_net_load_onnx())."""
        out = c_void_p()
        lib.mpq_net_load_onnx(byref(out), os.fsencode(path), int(seed))
        return cls(out)

    @classmethod
    def create(cls, channels: int, height: int, width: int, classes: int,
               seed: int = 0) -> "Net":
        """An empty network for C x H x W inputs; add layers with :meth:`add`."""
        out = c_void_p()
        lib.mpq_net_create(byref(out), int(channels), int(height), int(width), int(classes),
                           int(seed))
        return cls(out)

    def add(self, name: str, op: str, input: Optional[int] = None, **fields) -> int:
        """Appends a layer: ``op`` one of :data:`NET_OPS` ("conv", "fc", "batchnorm", "relu",
        ...), fields of ``mpq_net_layer`` (out_channels, kernel, stride, pad, groups, bias,
        input2) over mpq_net_layer_defaults()'s defaults; returns its index."""
        if op not in NET_OPS:
            raise InvalidArgumentError("op: '%s' (valid: %s)" % (op, ", ".join(NET_OPS)))
        layer = NetLayer()
        lib.mpq_net_layer_defaults(byref(layer), NET_OPS[op])
        if input is not None:
            layer.input = int(input)
        for key, value in fields.items():
            if key in ("size", "op") or not hasattr(layer, key):
                raise InvalidArgumentError("add: unknown field '%s'" % key)
            setattr(layer, key, int(value))
        index = c_int32()
        lib.mpq_net_add(self, name.encode(), byref(layer), byref(index))
        return index.value

    def forward(self, x: np.ndarray, classes: Optional[int] = None) -> np.ndarray:
        """Inference logits [n, classes] of float32 inputs [n, C, H, W] (already scaled; the
        installed policy applies). ``classes`` is checked against the network's when given."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 4 or x.shape[0] < 1:
            raise InvalidArgumentError("forward: images must be N x C x H x W with N >= 1, got "
                                       "shape %s" % (x.shape,))
        n = x.shape[0]
        model = self.to_model()
        try:
            own = model.layer(len(model) - 1)["out_channels"]
        finally:
            model.close()
        if classes is not None and int(classes) != own:
            raise InvalidArgumentError("forward: the network has %d classes, not %d"
                                       % (own, int(classes)))
        classes = own
        out = np.empty((n, classes), dtype=np.float32)
        lib.mpq_net_forward(self, ptr(x), n, ptr(out))
        return out

    def save(self, path: PathLike) -> None:
        lib.mpq_net_save(self, os.fsencode(path))

    def __setitem__(self, name, value):
        pid = c_int()
        lib.mpq_net_param_find(name.encode(), byref(pid))
        lib.mpq_net_set_param(self, pid.value, float(value))

    def __getitem__(self, name):
        pid, v = c_int(), c_double()
        lib.mpq_net_param_find(name.encode(), byref(pid))
        lib.mpq_net_get_param(self, pid.value, byref(v))
        return v.value

    @property
    def name(self) -> str:
        return lib.mpq_net_get_name(self).decode()

    def to_model(self) -> Model:
        """The quantizable layers as a new :class:`mpq.Model` (with the current weights)."""
        out = c_void_p()
        lib.mpq_net_to_model(self, byref(out))
        return Model(_ptr=out)

    def train(self, dataset: Dataset, split: Split = "train") -> float:
        """Trains for the ``epochs`` parameter; returns the last epoch's mean loss."""
        loss = c_double()
        lib.mpq_net_train(self, dataset, _split(split), byref(loss))
        return loss.value

    def evaluate(self, dataset: Dataset, split: Split = "val", limit: int = 0) -> float:
        """Top-1 accuracy on a split (the installed policy, if any, applies)."""
        acc = c_double()
        lib.mpq_net_evaluate(self, dataset, _split(split), int(limit), byref(acc))
        return acc.value

    def evaluate_int8(self, dataset: Dataset, split: Split = "val",
                      limit: int = 0) -> Dict[str, Any]:
        """Runs the installed policy (every bit width <= 8) as real int8 inference and compares
        it with the fake-quant path on the same images. Returns a dict: ``images``,
        ``accuracy`` (int8 top-1), ``fakequant_accuracy``, ``agreement`` (fraction of identical
        predictions), ``int8_images_per_second``, ``fakequant_images_per_second``,
        ``int8_layers``, ``split_layers``."""
        r = Int8Report()
        lib.mpq_net_evaluate_int8(self, dataset, _split(split), int(limit), byref(r))
        return r.as_dict()

    def calibrate(self, dataset: Dataset, batches: int = 8,
                  method: Union[str, int] = "minmax") -> None:
        lib.mpq_net_calibrate(self, dataset, int(batches), CALIB_METHODS.get(method, method))

    def set_policy(self, policy: Optional[Policy]) -> None:
        """Installs a policy (None returns to float)."""
        lib.mpq_net_set_policy(self, policy)


class BuiltinEvaluator(Handle):
    """The runtime's evaluator (a private copy of a trained net, a dataset, a cache). Pass it as
    the ``evaluator`` of :class:`mpq.Search`: the search then calls it directly in C. Its
    :attr:`model` is the model policies must be made for."""

    def __init__(self, net, dataset, seed=0, **params):
        out = c_void_p()
        lib.mpq_evaluator_create(byref(out), net, dataset, int(seed))
        self._own(out, lib.mpq_evaluator_destroy, keep=(dataset,))
        for key, value in params.items():
            self[key] = value
        model_ptr = lib.mpq_evaluator_get_model(self)
        self.model = Model.__new__(Model)
        self.model._borrow(model_ptr, self)

    def __setitem__(self, name, value):
        if name == "calib_method" and isinstance(value, str):
            value = CALIB_METHODS[value]
        pid = c_int()
        lib.mpq_evaluator_param_find(name.encode(), byref(pid))
        lib.mpq_evaluator_set_param(self, pid.value, float(value))

    def __getitem__(self, name):
        pid, v = c_int(), c_double()
        lib.mpq_evaluator_param_find(name.encode(), byref(pid))
        lib.mpq_evaluator_get_param(self, pid.value, byref(v))
        return v.value

    def __call__(self, policy=None):
        """Validation accuracy of ``policy`` (None: float)."""
        acc = c_double()
        lib.mpq_evaluator_evaluate(self, policy, byref(acc))
        return acc.value

    evaluate = __call__

    def evaluate_int8(self, policy: Policy, split: Split = "val",
                      limit: int = 0) -> Dict[str, Any]:
        """Real int8 inference of ``policy`` (every bit width <= 8) after the configured short
        fine-tune, compared with the fake-quant path: a dict as :meth:`Net.evaluate_int8`."""
        r = Int8Report()
        lib.mpq_evaluator_evaluate_int8(self, policy, _split(split), int(limit), byref(r))
        return r.as_dict()

    @property
    def cache_stats(self) -> Dict[str, int]:
        hits, misses = c_int64(), c_int64()
        lib.mpq_evaluator_get_cache_stats(self, byref(hits), byref(misses))
        return {"hits": hits.value, "misses": misses.value}

    def c_callback(self):
        """(mpq_evaluator_fn, user pointer) for mpq_search_create."""
        addr = ctypes.cast(_lib._cdll.mpq_evaluator_callback, c_void_p).value
        return _lib.EVALUATOR_FN(addr), self._as_parameter_
