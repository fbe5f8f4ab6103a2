"""Fake quantization and range calibration on numpy float32 arrays, without copies.

Inputs must be C-contiguous ``float32`` arrays: anything else raises :class:`mpq.DTypeError`
(a subclass of both ``mpq.InvalidArgumentError`` and ``TypeError``) instead of being copied
silently. ``out`` may be the input itself for in-place operation.

Settings are keyword arguments: ``mode`` ("symmetric"/"asymmetric"), ``signed`` (bool),
``rounding`` ("nearest"/"stochastic"), ``calib`` ("minmax", "percentile", "mse", "kl", "haq"),
``percentile``, ``hist_bins``, ``mse_steps``, ``threads``, ``isa`` ("auto", "scalar", "avx2",
"avx512"), ``check_finite``; stochastic rounding takes ``seed`` (int) or ``rng`` (:class:`Rng`).

Defaults are HAQ's weight quantizer: ``mode="symmetric"``, ``signed=True``, round half to even,
min-max calibration. On non-negative data (post-ReLU activations, pixels) a signed grid leaves
its negative half unused (a 4-bit grid keeps 8 of its 15 levels): pass ``signed=False`` there,
as ``mpq.torch`` and the built-in runtime do for every range with ``lo >= 0``.
"""

from __future__ import annotations

from ctypes import byref, c_float, c_int32, c_void_p
from typing import Any, Optional, Tuple

import numpy as np

from ._handle import Handle, as_f32, as_u8, ptr
from ._lib import FqConfig, FqLayout, InvalidArgumentError, lib

MODES = {"symmetric": 0, "asymmetric": 1}
ROUNDING = {"nearest": 0, "nearest_even": 0, "stochastic": 1}
CALIB = {"minmax": 0, "percentile": 1, "mse": 2, "kl": 3, "haq": 4}
ISA = {"auto": 0, "scalar": 1, "avx2": 2, "avx512": 3}
_CONFIG_KEYS = ("mode", "signed", "rounding", "calib", "percentile", "hist_bins", "mse_steps",
                "threads", "isa", "check_finite")


class Rng(Handle):
    """libmpq's seeded generator (xoshiro256**), used for stochastic rounding."""

    def __init__(self, seed=0):
        out = c_void_p()
        lib.mpq_rng_create(byref(out), int(seed))
        self._own(out, lib.mpq_rng_destroy)


def _enum(table, value, name):
    if isinstance(value, str):
        try:
            return table[value]
        except KeyError:
            raise InvalidArgumentError("%s: unknown value '%s' (valid: %s)"
                                       % (name, value, ", ".join(table))) from None
    return int(value)


def config(**kw: Any) -> FqConfig:
    """An ``mpq_fq_config`` with the library defaults overridden by keyword arguments."""
    cfg = FqConfig()
    lib.mpq_fq_config_defaults(byref(cfg))
    for key, value in kw.items():
        if key == "mode":
            cfg.mode = _enum(MODES, value, "mode")
        elif key == "signed":
            cfg.is_signed = int(bool(value))
        elif key == "rounding":
            cfg.rounding = _enum(ROUNDING, value, "rounding")
        elif key == "calib":
            cfg.calib = _enum(CALIB, value, "calib")
        elif key == "isa":
            cfg.isa = _enum(ISA, value, "isa")
        elif key == "percentile":
            cfg.percentile = float(value)
        elif key in ("hist_bins", "mse_steps", "threads", "check_finite"):
            setattr(cfg, key, int(value))
        else:
            raise InvalidArgumentError("unknown fake-quant setting '%s' (valid: %s)"
                                       % (key, ", ".join(_CONFIG_KEYS)))
    return cfg


def _split(kw):
    rng = kw.pop("rng", None)
    seed = kw.pop("seed", None)
    cfg = config(**kw)
    if rng is None and cfg.rounding == ROUNDING["stochastic"]:
        rng = Rng(0 if seed is None else seed)
    return cfg, rng


def _out(x, out):
    if out is None:
        return np.empty_like(x)
    as_f32(out, "out", writable=True)
    if out.shape != x.shape:
        raise InvalidArgumentError("out: shape %s differs from x %s" % (out.shape, x.shape))
    return out


def _layout(x, axis):
    if x.ndim == 0:
        raise InvalidArgumentError("x: per-kernel functions need at least one dimension")
    axis = axis % x.ndim
    lay = FqLayout()
    lay.outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    lay.channels = x.shape[axis]
    lay.inner = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    return lay


def _bits(bits, channels):
    if np.ndim(bits) == 0:
        bits = np.full(channels, int(bits))
    return as_u8(bits, "bits", channels)


def code_range(bits: int, **kw: Any) -> Tuple[int, int]:
    """(qmin, qmax) of the integer grid."""
    cfg = config(**kw)
    lo, hi = c_int32(), c_int32()
    lib.mpq_fq_code_range(int(bits), byref(cfg), byref(lo), byref(hi))
    return lo.value, hi.value


def params_from_range(lo: float, hi: float, bits: int, **kw: Any) -> Tuple[float, int]:
    """(scale, zero_point) of the grid covering [lo, hi]."""
    cfg = config(**kw)
    s, z = c_float(), c_int32()
    lib.mpq_fq_params_from_range(float(lo), float(hi), int(bits), byref(cfg), byref(s), byref(z))
    return s.value, z.value


def fake_quant(x: np.ndarray, bits: int, scale: float, zero_point: int = 0,
               out: Optional[np.ndarray] = None, **kw: Any) -> np.ndarray:
    """Per-tensor fake quantization with a given scale and zero point; returns ``out``."""
    as_f32(x, "x")
    y = _out(x, out)
    cfg, rng = _split(kw)
    lib.mpq_fq_apply(ptr(x), ptr(y), x.size, int(bits), float(scale), int(zero_point),
                     byref(cfg), rng)
    return y


def fake_quant_tensor(x: np.ndarray, bits: int, out: Optional[np.ndarray] = None,
                      **kw: Any) -> Tuple[np.ndarray, float, int]:
    """Per-tensor fake quantization with the range chosen by ``calib``.
    Returns (y, scale, zero_point)."""
    as_f32(x, "x")
    y = _out(x, out)
    cfg, rng = _split(kw)
    s, z = c_float(), c_int32()
    lib.mpq_fq_tensor(ptr(x), ptr(y), x.size, int(bits), byref(cfg), rng, byref(s), byref(z))
    return y, s.value, z.value


def fake_quant_kernels(x: np.ndarray, bits: Any, scale: Any = None, zero_point: Any = None,
                       axis: int = 0, out: Optional[np.ndarray] = None, **kw: Any) -> Any:
    """Per-kernel (per output channel along ``axis``) fake quantization with per-kernel ``bits``
    (int or array). With ``scale`` None the ranges are calibrated per kernel (``calib``) and
    (y, scale, zero_point) is returned; with explicit scales only y is returned."""
    as_f32(x, "x")
    y = _out(x, out)
    lay = _layout(x, axis)
    b = _bits(bits, lay.channels)
    cfg, rng = _split(kw)
    if scale is None:
        s = np.empty(lay.channels, dtype=np.float32)
        z = np.empty(lay.channels, dtype=np.int32)
        lib.mpq_fq_kernels(ptr(x), ptr(y), byref(lay), ptr(b), byref(cfg), rng, ptr(s), ptr(z))
        return y, s, z
    s = np.ascontiguousarray(np.broadcast_to(scale, (lay.channels,)), dtype=np.float32)
    z = None if zero_point is None else np.ascontiguousarray(
        np.broadcast_to(zero_point, (lay.channels,)), dtype=np.int32)
    lib.mpq_fq_apply_kernels(ptr(x), ptr(y), byref(lay), ptr(b), ptr(s), ptr(z), byref(cfg), rng)
    return y


def calibrate(x: np.ndarray, bits: int, **kw: Any) -> Tuple[float, float]:
    """Clipping range (lo, hi) of ``x`` by the ``calib`` method."""
    as_f32(x, "x")
    cfg = config(**kw)
    lo, hi = c_float(), c_float()
    lib.mpq_fq_calibrate(ptr(x), x.size, int(bits), byref(cfg), byref(lo), byref(hi))
    return lo.value, hi.value


def calibrate_kernels(x: np.ndarray, bits: Any, axis: int = 0,
                      **kw: Any) -> Tuple[np.ndarray, np.ndarray]:
    """Per-kernel clipping ranges: two float32 arrays (lo, hi)."""
    as_f32(x, "x")
    lay = _layout(x, axis)
    b = _bits(bits, lay.channels)
    cfg = config(**kw)
    lo = np.empty(lay.channels, dtype=np.float32)
    hi = np.empty(lay.channels, dtype=np.float32)
    lib.mpq_fq_calibrate_kernels(ptr(x), byref(lay), ptr(b), byref(cfg), ptr(lo), ptr(hi))
    return lo, hi


_CODE_TYPES = {np.dtype(np.int8): 1, np.dtype(np.uint8): 2, np.dtype(np.int16): 3,
               np.dtype(np.uint16): 4}


def quantize(x: np.ndarray, bits: int, scale: float, zero_point: int = 0,
             dtype: Any = np.int8, **kw: Any) -> np.ndarray:
    """Integer codes of ``x`` (``dtype`` int8/uint8/int16/uint16)."""
    as_f32(x, "x")
    dt = np.dtype(dtype)
    if dt not in _CODE_TYPES:
        raise InvalidArgumentError("dtype: codes are int8, uint8, int16 or uint16, not %s" % dt)
    codes = np.empty(x.shape, dtype=dt)
    cfg, rng = _split(kw)
    lib.mpq_fq_quantize(ptr(x), x.size, int(bits), float(scale), int(zero_point), byref(cfg),
                        rng, _CODE_TYPES[dt], ptr(codes))
    return codes


def dequantize(codes: np.ndarray, scale: float, zero_point: int = 0,
               out: Optional[np.ndarray] = None) -> np.ndarray:
    """Float32 values of integer codes."""
    codes = np.asarray(codes)
    if codes.dtype not in _CODE_TYPES or not codes.flags.c_contiguous:
        raise InvalidArgumentError("codes: expected a C-contiguous int8/uint8/int16/uint16 array")
    y = np.empty(codes.shape, np.float32) if out is None else out
    as_f32(y, "out", writable=True)
    lib.mpq_fq_dequantize(ptr(codes), _CODE_TYPES[codes.dtype], codes.size, float(scale),
                          int(zero_point), ptr(y))
    return y


def best_isa() -> str:
    """Name of the fastest instruction-set path on this CPU."""
    v = lib.mpq_fq_isa_best()
    return {b: a for a, b in ISA.items()}.get(v, str(v))
