"""Hardware cost models: latency, energy, area and size of a policy."""

from __future__ import annotations

import os
import traceback
import weakref
from ctypes import byref, c_double, c_int, c_void_p
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Union

import numpy as np

from . import _lib
from ._handle import Handle, as_u8, ptr
from ._lib import HW_COST_FIELDS, HwCost, lib

if TYPE_CHECKING:  # annotations only
    from .model import Model, Policy

_LAYER_DTYPE = np.dtype([("layer", np.int64), ("name", "U64"), ("weight_bits_min", np.int32),
                         ("weight_bits_max", np.int32), ("avg_weight_bits", np.float64),
                         ("act_bits", np.int32)]
                        + [(f, np.float64) for f in HW_COST_FIELDS]
                        + [("ref_" + f, np.float64) for f in HW_COST_FIELDS])

PathLike = Union[str, "os.PathLike[str]"]


def targets() -> List[str]:
    """Names of the built-in targets."""
    return [lib.mpq_hw_target_name(i).decode() for i in range(lib.mpq_hw_target_count())]


def _cost_dict(c):
    return {f: getattr(c, f) for f in HW_COST_FIELDS}


class Hardware(Handle):
    """A hardware cost model: ``Hardware("bismo-edge")``, ``Hardware.table(csv_path)`` or
    ``Hardware.callback(fn)``; parameters by name as keyword arguments (``batch=16``)."""

    def __init__(self, name=None, _ptr=None, _keep=(), **params):
        if _ptr is None:
            out = c_void_p()
            lib.mpq_hw_create(byref(out), str(name).encode())
            _ptr = out
        self._own(_ptr, lib.mpq_hw_destroy, keep=_keep)
        out = c_void_p()
        lib.mpq_hw_result_create(byref(out))
        self._result = out
        self._result_finalizer = weakref.finalize(self, lib.mpq_hw_result_destroy, out)
        for key, value in params.items():
            self[key] = value

    def close(self):
        if getattr(self, "_result_finalizer", None) is not None:
            self._result_finalizer()
            self._result_finalizer = None
        super().close()

    @classmethod
    def table(cls, path_or_text: Union[str, PathLike], **params: float) -> "Hardware":
        """A lookup table in HAQ's CSV layout (a file path, or CSV text containing newlines)."""
        out = c_void_p()
        if isinstance(path_or_text, str) and "\n" in path_or_text:
            data = path_or_text.encode()
            lib.mpq_hw_create_table_from_memory(byref(out), data, len(data))
        else:
            lib.mpq_hw_create_table(byref(out), os.fsencode(path_or_text))
        return cls(_ptr=out, **params)

    @classmethod
    def callback(cls, fn: Callable[[int, int, int], Any], **params: float) -> "Hardware":
        """A target backed by ``fn(layer_index, weight_bits, act_bits) -> dict`` with at least
        "latency_s" (and optionally "energy_j", ...). Exceptions become MPQ_ERR_CALLBACK
        errors carrying the Python traceback text."""
        if not callable(fn):
            raise _lib.ArgumentTypeError("Hardware.callback: expected a callable (layer, "
                                         "weight_bits, act_bits) -> dict, got %s"
                                         % type(fn).__name__)

        def trampoline(user, model, layer, w, a, cost):
            try:
                figures = fn(layer, w, a)
                if not isinstance(figures, dict):
                    figures = {"latency_s": float(figures)}
                for key, value in figures.items():
                    setattr(cost.contents, key, float(value))
                return _lib.OK
            except BaseException as exc:  # noqa: B902 - must not unwind through C
                _lib.set_callback_error(_lib.ERR_CALLBACK, "".join(
                    traceback.format_exception_only(type(exc), exc)).strip())
                return _lib.ERR_CALLBACK

        cfn = _lib.HW_LAYER_FN(trampoline)
        out = c_void_p()
        lib.mpq_hw_create_callback(byref(out), cfn, None)
        return cls(_ptr=out, _keep=(cfn,), **params)

    def clone(self) -> "Hardware":
        out = c_void_p()
        lib.mpq_hw_clone(byref(out), self)
        return Hardware(_ptr=out, _keep=self._keep)

    @property
    def name(self) -> str:
        return lib.mpq_hw_get_name(self).decode()

    # -- parameters -----------------------------------------------------------------------
    def __setitem__(self, name, value):
        lib.mpq_hw_set_param_by_name(self, name.encode(), float(value))

    def __getitem__(self, name):
        pid, v = c_int(), c_double()
        lib.mpq_hw_param_find(name.encode(), byref(pid))
        lib.mpq_hw_get_param(self, pid.value, byref(v))
        return v.value

    def set_params(self, **params: float) -> None:
        for key, value in params.items():
            self[key] = value

    def params(self) -> Dict[str, Dict[str, Any]]:
        """{name: info dict with value, min, max, default, description} for this target."""
        out = {}
        for i, info in _lib.walk_param_ids(lib.mpq_hw_param_info, self):
            if info is None:  # a parameter of another target
                continue
            d = _lib.param_info_dict(info)
            v = c_double()
            lib.mpq_hw_get_param(self, i, byref(v))
            d["value"] = v.value
            out[d.pop("name")] = d
        return out

    # -- costs ----------------------------------------------------------------------------
    def cost(self, model: Model, policy: Optional[Policy] = None) -> Dict[str, float]:
        """Network totals of ``policy`` (all 8-bit when None) as a dict of the cost fields."""
        c = HwCost()
        if policy is None:
            lib.mpq_hw_reference_total(self, model, byref(c))
        else:
            lib.mpq_hw_cost_total(self, model, policy, byref(c))
        return _cost_dict(c)

    def reference(self, model: Model) -> Dict[str, float]:
        """Totals of the reference policy (all 8-bit by default)."""
        return self.cost(model, None)

    def layer_cost(self, model: Model, layer: Union[int, str], kernel_bits: Any,
                   act_bits: int) -> Dict[str, float]:
        """Costs of one layer for explicit per-kernel bits (int or array)."""
        i = model._index(layer)
        k = lib.mpq_model_get_layer_kernel_count(model, i)
        if np.ndim(kernel_bits) == 0:
            kernel_bits = np.full(k, int(kernel_bits))
        bits = as_u8(kernel_bits, "kernel_bits", k)
        c = HwCost()
        lib.mpq_hw_layer_cost(self, model, i, ptr(bits), bits.size, int(act_bits), byref(c))
        return _cost_dict(c)

    def evaluate(self, model: Model, policy: Policy) -> Dict[str, Any]:
        """Full evaluation: dict with "total", "reference", "ratio" (dicts) and "layers"."""
        lib.mpq_hw_evaluate(self, model, policy, self._result)
        t, r, q = HwCost(), HwCost(), HwCost()
        lib.mpq_hw_result_get_total(self._result, byref(t))
        lib.mpq_hw_result_get_reference_total(self._result, byref(r))
        lib.mpq_hw_result_get_ratio(self._result, byref(q))
        return {"total": _cost_dict(t), "reference": _cost_dict(r), "ratio": _cost_dict(q),
                "layers": self._layer_rows(model, policy)}

    def _layer_rows(self, model, policy):
        rows = []
        names = model.layer_names()
        act = policy.act_bits
        c, r = HwCost(), HwCost()
        for i in range(lib.mpq_hw_result_get_layer_count(self._result)):
            lib.mpq_hw_result_get_layer(self._result, i, byref(c))
            lib.mpq_hw_result_get_reference_layer(self._result, i, byref(r))
            kb = policy.layer_kernel_bits(i)
            row = {"layer": i, "name": names[i], "weight_bits_min": int(kb.min()),
                   "weight_bits_max": int(kb.max()),
                   "avg_weight_bits": float(kb.astype(np.float64).mean()),
                   "act_bits": int(act[i])}
            row.update(_cost_dict(c))
            row.update({"ref_" + f: getattr(r, f) for f in HW_COST_FIELDS})
            rows.append(row)
        return rows

    def layer_table(self, model: Model, policy: Policy, as_array: bool = False) -> Any:
        """Per-layer costs of ``policy`` and of the reference policy: a list of dicts, or with
        ``as_array=True`` a numpy structured array (fields layer, name, weight_bits_min/max,
        avg_weight_bits, act_bits, every cost field and ref_<cost field>)."""
        lib.mpq_hw_evaluate(self, model, policy, self._result)
        rows = self._layer_rows(model, policy)
        if not as_array:
            return rows
        return np.array([tuple(r[n] for n in _LAYER_DTYPE.names) for r in rows],
                        dtype=_LAYER_DTYPE)

    def __repr__(self):
        return "<mpq.Hardware %s>" % ("closed" if self.closed else repr(self.name))


def policy_cost_summary(hw, model, policy):
    """Convenience: totals and ratios to all-8-bit of ``policy`` as one flat dict."""
    ev = hw.evaluate(model, policy)
    d = dict(ev["total"])
    d.update({k + "_ratio": v for k, v in ev["ratio"].items()})
    return d

