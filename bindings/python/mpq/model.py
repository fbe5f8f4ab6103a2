"""Models (layers, zoo, files), policies (bits per layer and per kernel) and the quantizer."""

from __future__ import annotations

import ctypes
import json
import os
from ctypes import byref, c_double, c_float, c_int, c_int32, c_int64, c_size_t, c_uint8, c_void_p
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

from . import _lib
from ._handle import Handle, as_f32, as_u8, ptr
from ._lib import InvalidArgumentError, LayerShape, PolicyFigures, QuantError, lib

LAYER_KINDS = {1: "conv", 2: "fc"}

PathLike = Union[str, "os.PathLike[str]"]
#: A layer by index or name.
Layer = Union[int, str]


def _s(raw):
    return raw.decode("utf-8") if raw is not None else None


def _path(path):
    return os.fsencode(path)


def zoo_names() -> List[str]:
    """Names of the networks mpq_model_zoo() builds."""
    return [_s(lib.mpq_model_zoo_name(i)) for i in range(lib.mpq_model_zoo_count())]


class Model(Handle):
    """An ordered list of quantizable layers (conv / fully connected), optionally with weights.

    Create one empty (``Model("name")``), from the zoo (``Model.zoo("mobilenetv2")``) or from a
    file (``Model.load(path)``); add layers with :meth:`add_conv` / :meth:`add_fc`.
    """

    def __init__(self, name=None, _ptr=None):
        if _ptr is None:
            if name is None:
                raise InvalidArgumentError("Model: name is required")
            out = c_void_p()
            lib.mpq_model_create(byref(out), name.encode())
            _ptr = out
        self._own(_ptr, lib.mpq_model_destroy)

    @classmethod
    def zoo(cls, name: str) -> "Model":
        """A zoo network with ImageNet shapes: see :func:`zoo_names`."""
        out = c_void_p()
        lib.mpq_model_zoo(byref(out), name.encode())
        return cls(_ptr=out)

    @classmethod
    def load(cls, path: PathLike) -> "Model":
        """Loads a model written by :meth:`save` (shapes and weights)."""
        out = c_void_p()
        lib.mpq_model_load(byref(out), _path(path))
        return cls(_ptr=out)

    @classmethod
    def load_onnx(cls, path: PathLike) -> "Model":
        """The quantizable layers (conv, fully connected) of an ONNX model, with weights."""
        out = c_void_p()
        lib.mpq_model_load_onnx(byref(out), _path(path))
        return cls(_ptr=out)

    def save(self, path: PathLike) -> None:
        lib.mpq_model_save(self, _path(path))

    def clone(self) -> "Model":
        out = c_void_p()
        lib.mpq_model_clone(byref(out), self)
        return Model(_ptr=out)

    # -- building -------------------------------------------------------------------------
    def add_conv(self, name: str, in_channels: int, out_channels: int, kernel: int,
                 stride: int = 1, pad: int = 0, groups: int = 1,
                 in_hw: Tuple[int, int] = (224, 224), bias: bool = False,
                 batchnorm: bool = False) -> int:
        """Appends a 2-D convolution (square kernel) whose input is ``in_hw`` = (h, w)."""
        shape = LayerShape()
        lib.mpq_layer_shape_set_conv(byref(shape), in_channels, out_channels, kernel, stride, pad,
                                 groups, in_hw[0], in_hw[1])
        shape.has_bias = int(bias)
        shape.has_batchnorm = int(batchnorm)
        lib.mpq_model_add_layer(self, name.encode(), byref(shape))
        return len(self) - 1

    def add_fc(self, name: str, in_features: int, out_features: int, bias: bool = True) -> int:
        """Appends a fully connected layer."""
        shape = LayerShape()
        lib.mpq_layer_shape_set_fc(byref(shape), in_features, out_features)
        shape.has_bias = int(bias)
        lib.mpq_model_add_layer(self, name.encode(), byref(shape))
        return len(self) - 1

    def add_layer(self, name: str, **fields: Any) -> int:
        """Appends a layer from explicit ``mpq_layer_shape`` fields (kind="conv"/"fc", ...)."""
        shape = LayerShape()
        kind = fields.pop("kind", "conv")
        shape.kind = {"conv": 1, "fc": 2}.get(kind, kind)
        defaults = dict(kernel_h=1, kernel_w=1, stride_h=1, stride_w=1, dilation_h=1,
                        dilation_w=1, groups=1, in_h=1, in_w=1, batch=1)
        defaults.update(fields)
        for key, value in defaults.items():
            if not hasattr(shape, key) or key == "size":
                raise InvalidArgumentError("add_layer: unknown field '%s'" % key)
            setattr(shape, key, int(value))
        lib.mpq_model_add_layer(self, name.encode(), byref(shape))
        return len(self) - 1

    def set_batch(self, batch: int) -> None:
        lib.mpq_model_set_batch(self, batch)

    # -- queries --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return _s(lib.mpq_model_get_name(self))

    def __len__(self):
        return lib.mpq_model_get_layer_count(self)

    def _index(self, layer):
        if isinstance(layer, str):
            idx = c_size_t()
            lib.mpq_model_find_layer(self, layer.encode(), byref(idx))
            return idx.value
        n = len(self)
        if not -n <= layer < n:
            raise InvalidArgumentError("layer: index %d out of range (model has %d layers)"
                                       % (layer, n))
        return layer % n

    def layer_names(self) -> List[str]:
        return [_s(lib.mpq_model_get_layer_name(self, i)) for i in range(len(self))]

    def layer(self, layer: Layer) -> Dict[str, Any]:
        """Shape and counts of one layer (index or name) as a dict."""
        i = self._index(layer)
        shape = LayerShape()
        lib.mpq_model_get_layer_shape(self, i, byref(shape))
        d = shape.as_dict()
        d["kind"] = LAYER_KINDS.get(d["kind"], d["kind"])
        d["index"] = i
        d["name"] = _s(lib.mpq_model_get_layer_name(self, i))
        d["macs"] = lib.mpq_model_get_layer_macs(self, i)
        d["weight_count"] = lib.mpq_model_get_layer_weight_count(self, i)
        d["kernel_count"] = lib.mpq_model_get_layer_kernel_count(self, i)
        return d

    @property
    def layers(self) -> List[Dict[str, Any]]:
        """Every layer as a dict (see :meth:`layer`)."""
        return [self.layer(i) for i in range(len(self))]

    def kernel_counts(self) -> np.ndarray:
        """Kernels (output channels) of every layer, as an int64 array."""
        return np.array([lib.mpq_model_get_layer_kernel_count(self, i) for i in range(len(self))],
                        dtype=np.int64)

    def totals(self) -> Dict[str, int]:
        """Dict of MACs, weights, kernels, biases (batch 1) and torchvision's parameter count."""
        v = [c_int64() for _ in range(4)]
        lib.mpq_model_get_totals(self, *[byref(x) for x in v])
        params = c_int64()
        lib.mpq_model_get_param_count(self, byref(params))
        return {"macs": v[0].value, "weights": v[1].value, "kernels": v[2].value,
                "biases": v[3].value, "params": params.value}

    # -- weights --------------------------------------------------------------------------
    def set_weights(self, layer: Layer, weights: npt.ArrayLike,
                    bias: Optional[npt.ArrayLike] = None) -> None:
        """Attaches float32 weights (copied; layout [out][in/groups][kh][kw]) and a bias."""
        i = self._index(layer)
        w = np.ascontiguousarray(weights, dtype=np.float32)
        b = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
        lib.mpq_model_set_weights(self, i, ptr(w), w.size, ptr(b), 0 if b is None else b.size)

    def weights(self, layer: Layer) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        """Copies of a layer's weights (shaped like the layer) and bias (or None)."""
        i = self._index(layer)
        w, wn = ctypes.POINTER(c_float)(), c_int64()
        b, bn = ctypes.POINTER(c_float)(), c_int64()
        lib.mpq_model_get_weights(self, i, byref(w), byref(wn), byref(b), byref(bn))
        if not wn.value:
            return None, None
        weights = np.ctypeslib.as_array(w, shape=(wn.value,)).copy()
        d = self.layer(i)
        if d["kind"] == "conv":
            weights = weights.reshape(d["out_channels"], d["in_channels"] // d["groups"],
                                      d["kernel_h"], d["kernel_w"])
        else:
            weights = weights.reshape(d["out_channels"], d["in_channels"])
        bias = np.ctypeslib.as_array(b, shape=(bn.value,)).copy() if bn.value else None
        return weights, bias

    @property
    def has_weights(self) -> bool:
        return bool(lib.mpq_model_has_weights(self))

    def __repr__(self):
        if self.closed:
            return "<mpq.Model closed>"
        return "<mpq.Model %r: %d layers>" % (self.name, len(self))


class Policy(Handle):
    """Activation bits per layer and weight bits per kernel, for one :class:`Model`.

    The policy keeps a reference to its model (needed for JSON and costs).
    """

    def __init__(self, model, _ptr):
        self.model = model
        self._own(_ptr, lib.mpq_policy_destroy)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def uniform(cls, model: Model, weight_bits: int = 8, act_bits: int = 8) -> "Policy":
        out = c_void_p()
        lib.mpq_policy_create_uniform(byref(out), model, weight_bits, act_bits)
        return cls(model, out)

    @classmethod
    def layerwise(cls, model: Model, weight_bits: npt.ArrayLike,
                  act_bits: npt.ArrayLike) -> "Policy":
        """One weight width and one activation width per layer (sequences or arrays)."""
        n = len(model)
        w = as_u8(weight_bits, "weight_bits", n)
        a = as_u8(act_bits, "act_bits", n)
        out = c_void_p()
        lib.mpq_policy_create_layerwise(byref(out), model, ptr(w), ptr(a))
        return cls(model, out)

    @classmethod
    def from_arrays(cls, model: Model, kernel_bits: Any, act_bits: Any) -> "Policy":
        """Kernel-wise policy. ``kernel_bits`` is either one flat array of every kernel (layer 0
        first) or a list with one array per layer; ``act_bits`` one entry per layer (or an int)."""
        n = len(model)
        if isinstance(kernel_bits, (list, tuple)) and len(kernel_bits) == n and n and \
                np.ndim(kernel_bits[0]) >= 1:
            kernel_bits = np.concatenate([as_u8(k, "kernel_bits[%d]" % i)
                                          for i, k in enumerate(kernel_bits)])
        k = as_u8(kernel_bits, "kernel_bits")
        if np.ndim(act_bits) == 0:
            act_bits = np.full(n, int(act_bits))
        a = as_u8(act_bits, "act_bits", n)
        out = c_void_p()
        lib.mpq_policy_create_kernelwise(byref(out), model, ptr(k), k.size, ptr(a))
        return cls(model, out)

    @classmethod
    def from_spec(cls, model: Model, spec: Union[str, PathLike]) -> "Policy":
        """"uniform:W,A" or a path to a policy JSON file (the command line's form)."""
        out = c_void_p()
        lib.mpq_policy_from_spec(byref(out), model, str(spec).encode())
        return cls(model, out)

    @classmethod
    def from_json(cls, model: Model, text: Union[str, bytes, Dict[str, Any]]) -> "Policy":
        """Parses the JSON policy format (a str, bytes or an already decoded dict)."""
        if isinstance(text, dict):
            text = json.dumps(text)
        if isinstance(text, str):
            text = text.encode("utf-8")
        out = c_void_p()
        lib.mpq_policy_from_json(byref(out), model, text)
        return cls(model, out)

    @classmethod
    def load(cls, model: Model, path: PathLike) -> "Policy":
        out = c_void_p()
        lib.mpq_policy_load(byref(out), model, _path(path))
        return cls(model, out)

    def clone(self) -> "Policy":
        out = c_void_p()
        lib.mpq_policy_clone(byref(out), self)
        return Policy(self.model, out)

    # -- serialisation --------------------------------------------------------------------
    def to_json(self) -> str:
        """The JSON text (format "mpq-policy")."""
        out = c_void_p()
        lib.mpq_policy_to_json(self, self.model, byref(out))
        return _lib.take_string(out)

    def to_dict(self) -> Dict[str, Any]:
        return json.loads(self.to_json())

    def save(self, path: PathLike) -> None:
        """Writes the JSON file atomically."""
        lib.mpq_policy_save(self, self.model, _path(path))

    # -- bits -----------------------------------------------------------------------------
    def __len__(self):
        return lib.mpq_policy_get_layer_count(self)

    @property
    def kernel_count(self) -> int:
        return lib.mpq_policy_get_kernel_count(self)

    def _layer(self, layer):
        return self.model._index(layer)

    def layer_kernel_bits(self, layer: Layer) -> np.ndarray:
        """A copy of one layer's per-kernel weight bits (uint8 array)."""
        bits, count = ctypes.POINTER(c_uint8)(), c_int64()
        lib.mpq_policy_get_weight_bits(self, self._layer(layer), byref(bits), byref(count))
        return np.ctypeslib.as_array(bits, shape=(count.value,)).copy()

    @property
    def kernel_bits(self) -> List[np.ndarray]:
        """List with one uint8 array of per-kernel weight bits per layer (copies)."""
        return [self.layer_kernel_bits(i) for i in range(len(self))]

    def flat_kernel_bits(self) -> np.ndarray:
        """Every kernel's bits, layer 0 first, as one uint8 array."""
        return np.concatenate(self.kernel_bits)

    @property
    def act_bits(self) -> np.ndarray:
        """Activation bits per layer (int array, a copy)."""
        out = np.empty(len(self), dtype=np.int32)
        b = c_int()
        for i in range(len(self)):
            lib.mpq_policy_get_act_bits(self, i, byref(b))
            out[i] = b.value
        return out

    def set_act_bits(self, layer: Layer, bits: int) -> None:
        lib.mpq_policy_set_act_bits(self, self._layer(layer), int(bits))

    def set_kernel_bits(self, layer: Layer, bits: Union[int, npt.ArrayLike]) -> None:
        """Sets a layer's kernels: an int (all kernels) or an array of per-kernel widths."""
        i = self._layer(layer)
        if np.ndim(bits) == 0:
            lib.mpq_policy_set_layer_weight_bits(self, i, int(bits))
        else:
            arr = as_u8(bits, "bits")
            lib.mpq_policy_set_kernel_bits_array(self, i, ptr(arr), arr.size)

    def layer_avg_weight_bits(self, layer: Layer) -> float:
        v = c_double()
        lib.mpq_policy_get_layer_avg_weight_bits(self, self._layer(layer), byref(v))
        return v.value

    @property
    def avg_weight_bits(self) -> float:
        """Mean weight bits weighted by weight count."""
        v = c_double()
        lib.mpq_policy_get_avg_weight_bits(self, self.model, byref(v))
        return v.value

    def check_model(self, model: Model) -> None:
        lib.mpq_policy_check_model(self, model)

    @property
    def hash(self) -> int:
        return lib.mpq_policy_hash(self)

    @property
    def figures(self) -> Dict[str, float]:
        f = PolicyFigures()
        lib.mpq_policy_get_figures(self, byref(f))
        return f.as_dict()

    def set_figures(self, **figures: float) -> None:
        """Stores measured accuracy/latency/energy/area/size_bytes (NaN = not measured)."""
        f = PolicyFigures()
        lib.mpq_policy_get_figures(self, byref(f))
        for key, value in figures.items():
            if key not in PolicyFigures.as_dict(f):
                raise InvalidArgumentError("set_figures: unknown figure '%s'" % key)
            setattr(f, key, float(value))
        lib.mpq_policy_set_figures(self, byref(f))

    def __eq__(self, other):
        if not isinstance(other, Policy):
            return NotImplemented
        return bool(lib.mpq_policy_equal(self, other))

    def __hash__(self):
        return hash(self.hash)

    def __repr__(self):
        if self.closed:
            return "<mpq.Policy closed>"
        return "<mpq.Policy for %r: %d layers, %d kernels, avg %.2f weight bits>" % (
            self.model.name, len(self), self.kernel_count, self.avg_weight_bits)


QUANT_METHODS = {"linear": 0, "kmeans_kernel": 1, "kmeans_layer": 2}


class Quantizer(Handle):
    """Applies a policy kernel by kernel to a model's weights (the library's fake-quantizer).

    Parameters by name as keyword arguments (``method="linear"``, ``calib="mse"``, ...).
    """

    def __init__(self, model, **params):
        out = c_void_p()
        lib.mpq_quantizer_create(byref(out), model)
        self._own(out, lib.mpq_quantizer_destroy, keep=(model,))
        self.model = model
        for key, value in params.items():
            self.set_param(key, value)

    def set_param(self, name: str, value: Union[str, float]) -> None:
        from .fakequant import CALIB
        if name == "method" and isinstance(value, str):
            value = QUANT_METHODS[value]
        if name == "calib" and isinstance(value, str):
            value = CALIB[value]
        pid = c_int()
        lib.mpq_quantizer_param_find(name.encode(), byref(pid))
        lib.mpq_quantizer_set_param(self, pid.value, float(value))

    def get_param(self, name: str) -> float:
        pid, v = c_int(), c_double()
        lib.mpq_quantizer_param_find(name.encode(), byref(pid))
        lib.mpq_quantizer_get_param(self, pid.value, byref(v))
        return v.value

    def apply(self, policy: Policy, model: Optional[Model] = None) -> None:
        """Quantizes every layer under ``policy`` into the quantizer's buffers."""
        lib.mpq_quantizer_apply(self, model or self.model, policy)

    def apply_layer(self, policy: Policy, layer: Layer, out: Optional[np.ndarray] = None,
                    model: Optional[Model] = None) -> np.ndarray:
        """Quantizes one layer into ``out`` (a new float32 array when None) and returns it."""
        model = model or self.model
        i = model._index(layer)
        n = lib.mpq_model_get_layer_weight_count(model, i)
        if out is None:
            out = np.empty(n, dtype=np.float32)
        as_f32(out, "out", writable=True)
        if out.size != n:
            raise InvalidArgumentError("out: %d elements, layer %d has %d weights"
                                       % (out.size, i, n))
        lib.mpq_quantizer_apply_layer(self, model, policy, i, ptr(out))
        return out

    def weights(self, layer: Layer) -> np.ndarray:
        """A copy of a layer's quantized weights after :meth:`apply` (flat float32)."""
        w, n = ctypes.POINTER(c_float)(), c_int64()
        lib.mpq_quantizer_get_weights(self, self.model._index(layer), byref(w), byref(n))
        return np.ctypeslib.as_array(w, shape=(n.value,)).copy()

    def scales(self, layer: Layer) -> Tuple[Optional[np.ndarray], np.ndarray]:
        """Per-kernel scales and zero points of a layer after :meth:`apply` (copies)."""
        i = self.model._index(layer)
        k = lib.mpq_model_get_layer_kernel_count(self.model, i)
        s, z = ctypes.POINTER(c_float)(), ctypes.POINTER(c_int32)()
        lib.mpq_quantizer_get_scales(self, i, byref(s), byref(z))
        scale = np.ctypeslib.as_array(s, shape=(k,)).copy() if s else None
        zp = np.ctypeslib.as_array(z, shape=(k,)).copy() if z else np.zeros(k, np.int32)
        return scale, zp

    def error(self, layer: Layer) -> Dict[str, float]:
        """Quantization error of a layer after :meth:`apply` (count, energies, mse, sqnr_db)."""
        e = QuantError()
        lib.mpq_quantizer_get_error(self, self.model, self.model._index(layer), byref(e))
        return e.as_dict()
