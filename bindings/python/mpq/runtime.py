"""The built-in oneDNN runtime: IDX datasets, small CNNs, and the built-in evaluator.

Everything here needs a library built with the runtime module; otherwise the calls raise
:class:`mpq.UnsupportedError`.
"""

import ctypes
import os
from ctypes import POINTER, byref, c_double, c_float, c_int, c_int32, c_int64, c_void_p

import numpy as np

from . import _lib
from ._handle import Handle
from ._lib import Int8Report, InvalidArgumentError, lib
from .model import Model


SPLITS = {"train": 0, "val": 1, "test": 2}
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

    def __init__(self, directory=None):
        out = c_void_p()
        lib.mpq_dataset_load(byref(out), None if directory is None else os.fsencode(directory))
        self._own(out, lib.mpq_dataset_destroy)

    def count(self, split="train"):
        n = c_int64()
        lib.mpq_dataset_count(self, _split(split), byref(n))
        return n.value

    @property
    def shape(self):
        """(channels, height, width, classes)."""
        v = [c_int32() for _ in range(4)]
        lib.mpq_dataset_shape(self, *[byref(x) for x in v])
        return tuple(x.value for x in v)


class Net(Handle):
    """A small CNN of the oneDNN runtime: ``Net.named("fashion-tiny", seed)`` or
    ``Net.load(path)``; hyper-parameters by name (``net["epochs"] = 2``)."""

    def __init__(self, _ptr):
        self._own(_ptr, lib.mpq_net_destroy)

    @classmethod
    def named(cls, name="fashion-cnn", seed=0, **params):
        out = c_void_p()
        lib.mpq_net_create_named(byref(out), name.encode(), int(seed))
        net = cls(out)
        for key, value in params.items():
            net[key] = value
        return net

    @classmethod
    def load(cls, path, seed=0):
        out = c_void_p()
        lib.mpq_net_load(byref(out), os.fsencode(path), int(seed))
        return cls(out)

    @classmethod
    def load_onnx(cls, path, seed=0):
        """A trained network from an ONNX file (see mpq_net_load_onnx())."""
        out = c_void_p()
        lib.mpq_net_load_onnx(byref(out), os.fsencode(path), int(seed))
        return cls(out)

    def forward(self, images, classes):
        """Inference logits of a float32 batch N x C x H x W (pixels in [0, 1]) as an
        N x classes float32 array; the installed policy, if any, applies."""
        x = np.ascontiguousarray(images, dtype=np.float32)
        if x.ndim != 4 or x.shape[0] < 1:
            raise InvalidArgumentError("forward: images must be N x C x H x W with N >= 1, got "
                                       "shape %s" % (x.shape,))
        # The C side writes N x (the network's classes) floats: classes must be that count.
        out = np.empty((x.shape[0], int(classes)), dtype=np.float32)
        lib.mpq_net_forward(self, x.ctypes.data_as(POINTER(c_float)), int(x.shape[0]),
                            out.ctypes.data_as(POINTER(c_float)))
        return out

    def save(self, path):
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
    def name(self):
        return lib.mpq_net_name(self).decode()

    def to_model(self):
        """The quantizable layers as a new :class:`mpq.Model` (with the current weights)."""
        out = c_void_p()
        lib.mpq_net_to_model(self, byref(out))
        return Model(_ptr=out)

    def train(self, dataset, split="train"):
        """Trains for the ``epochs`` parameter; returns the last epoch's mean loss."""
        loss = c_double()
        lib.mpq_net_train(self, dataset, _split(split), byref(loss))
        return loss.value

    def evaluate(self, dataset, split="val", limit=0):
        """Top-1 accuracy on a split (the installed policy, if any, applies)."""
        acc = c_double()
        lib.mpq_net_evaluate(self, dataset, _split(split), int(limit), byref(acc))
        return acc.value

    def evaluate_int8(self, dataset, split="val", limit=0):
        """Runs the installed policy (every bit width <= 8) as real int8 inference and compares
        it with the fake-quant path on the same images. Returns a dict: ``images``,
        ``accuracy`` (int8 top-1), ``fakequant_accuracy``, ``agreement`` (fraction of identical
        predictions), ``int8_images_per_second``, ``fakequant_images_per_second``,
        ``int8_layers``, ``split_layers``."""
        r = Int8Report()
        lib.mpq_net_evaluate_int8(self, dataset, _split(split), int(limit), byref(r))
        return r.as_dict()

    def calibrate(self, dataset, batches=8, method="minmax"):
        lib.mpq_net_calibrate(self, dataset, int(batches), CALIB_METHODS.get(method, method))

    def set_policy(self, policy):
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
        model_ptr = lib.mpq_evaluator_model(self)
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

    def evaluate_int8(self, policy, split="val", limit=0):
        """Real int8 inference of ``policy`` (every bit width <= 8) after the configured short
        fine-tune, compared with the fake-quant path: a dict as :meth:`Net.evaluate_int8`."""
        r = Int8Report()
        lib.mpq_evaluator_evaluate_int8(self, policy, _split(split), int(limit), byref(r))
        return r.as_dict()

    @property
    def cache_stats(self):
        hits, misses = c_int64(), c_int64()
        lib.mpq_evaluator_cache_stats(self, byref(hits), byref(misses))
        return {"hits": hits.value, "misses": misses.value}

    def c_callback(self):
        """(mpq_evaluator_fn, user pointer) for mpq_search_create."""
        addr = ctypes.cast(_lib._cdll.mpq_evaluator_callback, c_void_p).value
        return _lib.EVALUATOR_FN(addr), self._as_parameter_
