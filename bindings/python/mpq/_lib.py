"""Loading of libmpq.so.0.2, the C structures, the prototype table and error translation.

Every C function the package calls is declared exactly once, in ``_PROTOTYPES`` below. Functions
of modules missing from the loaded library (a development build with ``-Dmodules=...``) are
replaced by stubs that raise :class:`UnsupportedError` when called, so that the rest of the
package keeps working.
"""

import ctypes
import ctypes.util
import os
import pathlib

from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_double, c_float, c_int, c_int32,
                    c_int64, c_size_t, c_uint, c_uint8, c_uint64, c_void_p)

#: Version of the Python package; the library must have the same major and minor number
#: (libmpq's ABI rule while the major number is 0).
__version__ = "0.2.0"

# --------------------------------------------------------------------------------------------
# Errors

# Status codes: the names come from the loaded library (mpq_status_string, walked at import
# until it answers "MPQ_ERR_UNKNOWN"); each error class is bound to its C *name*, so no number
# is copied from the headers. Filled in by _bind_statuses() once the library is loaded.
_STATUS_NAMES = {}  # type: dict
OK = 0  # MPQ_OK is 0 by the C convention every caller relies on (`if (st)`)
ERR_INVALID_ARGUMENT = ERR_CALLBACK = ERR_CANCELLED = -1  # bound from C below


class Error(Exception):
    """Base class of every libmpq error.

    Attributes:
        status: the ``mpq_status`` code (int).
        status_name: its C name, e.g. ``"MPQ_ERR_INVALID_ARGUMENT"``.
        message: the detailed text of ``mpq_last_error()`` (or of the Python-side check).
    """

    status = -1
    c_name = ""

    def __init__(self, message, status=None):
        if status is not None:
            self.status = status
        self.message = message
        self.status_name = _STATUS_NAMES.get(self.status, self.c_name or
                                             "status %d" % self.status)
        super().__init__("%s: %s" % (self.status_name, message))


class InvalidArgumentError(Error, ValueError):
    """An argument is out of range, of the wrong type or inconsistent."""
    c_name = "MPQ_ERR_INVALID_ARGUMENT"


class DTypeError(InvalidArgumentError, TypeError):
    """A numpy array has the wrong dtype or is not C-contiguous (raised before calling C)."""


class OutOfMemoryError(Error, MemoryError):
    """An allocation failed."""
    c_name = "MPQ_ERR_OUT_OF_MEMORY"


class IOFailure(Error):
    """The operating system refused a file operation (MPQ_ERR_IO)."""
    c_name = "MPQ_ERR_IO"


class FormatError(Error):
    """A file or buffer is damaged, truncated or of another kind."""
    c_name = "MPQ_ERR_FORMAT"


class UnsupportedError(Error):
    """Valid request this build or target cannot serve (also: function absent from the library)."""
    c_name = "MPQ_ERR_UNSUPPORTED"


class NotFoundError(Error, LookupError):
    """A named item (layer, target, parameter) is absent."""
    c_name = "MPQ_ERR_NOT_FOUND"


class CallbackError(Error):
    """A user callback reported failure."""
    c_name = "MPQ_ERR_CALLBACK"


class CancelledError(Error):
    """A callback or the wall-clock budget stopped the run."""
    c_name = "MPQ_ERR_CANCELLED"


class InfeasibleError(Error):
    """A constraint (budget) cannot be met by any policy."""
    c_name = "MPQ_ERR_INFEASIBLE"


class StateError(Error):
    """The call is not valid in the handle's current state."""
    c_name = "MPQ_ERR_STATE"


class NumericError(Error, ArithmeticError):
    """A computation produced NaN or infinity."""
    c_name = "MPQ_ERR_NUMERIC"


class VersionError(Error):
    """A file or library of an incompatible version."""
    c_name = "MPQ_ERR_VERSION"


class MismatchError(Error):
    """Two objects do not belong together (a policy for another model)."""
    c_name = "MPQ_ERR_MISMATCH"


class InternalError(Error):
    """A dependency (oneDNN, OpenBLAS, zlib) failed unexpectedly."""
    c_name = "MPQ_ERR_INTERNAL"


class ArgumentTypeError(InvalidArgumentError, TypeError):
    """An argument of the wrong Python type (e.g. a callback that is not callable), refused
    before any C call."""


_ERROR_TYPES = (InvalidArgumentError, OutOfMemoryError, IOFailure, FormatError, UnsupportedError,
                NotFoundError, CallbackError, CancelledError, InfeasibleError, StateError,
                NumericError, VersionError, MismatchError, InternalError)
_ERROR_CLASSES = {}  # type: dict  # status number -> class, bound from C names at import

for _cls in _ERROR_TYPES + (Error, DTypeError, ArgumentTypeError):
    _cls.__module__ = "mpq"


def error_for(status, message=None):
    """The exception object for a status, with ``mpq_last_error()`` as message by default."""
    if message is None:
        raw = lib.mpq_last_error()
        message = raw.decode("utf-8", "replace") if raw else ""
    cls = _ERROR_CLASSES.get(status, Error)
    return cls(message, status) if cls is Error else cls(message)


def check(status):
    """Raises the matching :class:`Error` subclass unless ``status`` is ``MPQ_OK``."""
    if status != OK:
        raise error_for(status)


def _errcheck(result, func, args):
    if result != OK:
        raise error_for(result)
    return result


# --------------------------------------------------------------------------------------------
# Structures (mirrors of the public headers; each starts with size_t size)


class SizedStructure(Structure):
    """A plain-data structure whose ``size`` field is preset to ``sizeof``."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.size = ctypes.sizeof(self)

    def as_dict(self):
        return {name: getattr(self, name) for name, _ in self._fields_ if name != "size"}


class ParamInfo(SizedStructure):
    _fields_ = [("size", c_size_t), ("name", c_char_p), ("description", c_char_p),
                ("min_value", c_double), ("max_value", c_double),
                ("default_value", c_double), ("is_integer", c_int)]


class LayerShape(SizedStructure):
    _fields_ = [("size", c_size_t), ("kind", c_int)] + [(n, c_int32) for n in (
        "in_channels", "out_channels", "kernel_h", "kernel_w", "stride_h", "stride_w", "pad_h",
        "pad_w", "dilation_h", "dilation_w", "groups", "in_h", "in_w", "out_h", "out_w", "batch",
        "has_bias", "has_batchnorm")]


class PolicyFigures(SizedStructure):
    _fields_ = [("size", c_size_t), ("accuracy", c_double), ("latency", c_double),
                ("energy", c_double), ("area", c_double), ("size_bytes", c_double)]


HW_COST_FIELDS = ("latency_s", "energy_j", "cycles", "lut", "bram36", "dsp", "area_mm2",
                  "size_bytes", "dram_bytes", "binops")


class HwCost(SizedStructure):
    _fields_ = [("size", c_size_t)] + [(n, c_double) for n in HW_COST_FIELDS]


class FqConfig(SizedStructure):
    _fields_ = [("size", c_size_t), ("mode", c_int), ("is_signed", c_int), ("rounding", c_int),
                ("calib", c_int), ("percentile", c_double), ("hist_bins", c_int),
                ("mse_steps", c_int), ("threads", c_int), ("isa", c_int),
                ("check_finite", c_int)]


class FqLayout(SizedStructure):
    _fields_ = [("size", c_size_t), ("outer", c_size_t), ("channels", c_size_t),
                ("inner", c_size_t)]


class FqKmeansConfig(SizedStructure):
    _fields_ = [("size", c_size_t), ("method", c_int), ("max_iter", c_int), ("tol", c_double),
                ("threads", c_int)]


class QuantError(SizedStructure):
    _fields_ = [("size", c_size_t), ("count", c_int64), ("signal_energy", c_double),
                ("error_energy", c_double), ("mse", c_double), ("sqnr_db", c_double)]


class DdpgInfo(SizedStructure):
    _fields_ = [("size", c_size_t), ("episode", c_int64), ("steps", c_int64),
                ("updates", c_int64), ("replay_size", c_int64), ("baseline", c_double),
                ("critic_loss", c_double), ("actor_loss", c_double), ("sigma", c_double)]


SEARCH_RECORD_FIELDS = [
    ("episode", c_int64), ("reward", c_double), ("accuracy", c_double),
    ("latency_s", c_double), ("energy_j", c_double), ("area", c_double),
    ("size_bytes", c_double), ("latency_ratio", c_double), ("energy_ratio", c_double),
    ("area_ratio", c_double), ("size_ratio", c_double), ("avg_weight_bits", c_double),
    ("avg_act_bits", c_double), ("policy_hash", c_uint64), ("cached", c_int),
    ("feasible", c_int), ("bits_lowered", c_int64), ("best_reward", c_double),
    ("elapsed_s", c_double), ("evaluations", c_int64), ("fill_share", c_double)]


class Int8Report(SizedStructure):
    """Mirror of ``mpq_int8_report`` (real int8 inference against the fake-quant path)."""
    _fields_ = [("size", c_size_t), ("images", c_int64), ("accuracy", c_double),
                ("fakequant_accuracy", c_double), ("agreement", c_double),
                ("int8_images_per_second", c_double),
                ("fakequant_images_per_second", c_double), ("int8_layers", c_int32),
                ("split_layers", c_int32)]


class NetLayer(SizedStructure):
    """Mirror of ``mpq_net_layer`` (one layer of a runtime network, for mpq_net_add)."""
    _fields_ = [("size", c_size_t), ("op", c_int)] + [(n, c_int32) for n in (
        "input", "input2", "out_channels", "kernel", "stride", "pad", "groups", "bias")]


class SearchRecord(SizedStructure):
    _fields_ = [("size", c_size_t)] + SEARCH_RECORD_FIELDS


class SearchProgress(SizedStructure):
    _fields_ = [("size", c_size_t), ("episode", c_int64), ("episodes", c_int64),
                ("record", POINTER(SearchRecord)), ("best_reward", c_double),
                ("best_accuracy", c_double), ("elapsed_s", c_double), ("eta_s", c_double)]


# Callback types. Callbacks return int (mpq_status); pointers to handles arrive as void*.
EVALUATOR_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, POINTER(c_double))
PROGRESS_FN = CFUNCTYPE(c_int, c_void_p, POINTER(SearchProgress))
LOG_FN = CFUNCTYPE(None, c_void_p, c_int, c_char_p)
# mpq_search_batch_fn: (user, policies, count, accuracy, failed)
BATCH_FN = CFUNCTYPE(c_int, c_void_p, POINTER(c_void_p), c_int64, POINTER(c_double),
                     POINTER(c_int64))
HW_LAYER_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t, c_int, c_int, POINTER(HwCost))

# --------------------------------------------------------------------------------------------
# The prototype table: name -> (restype, argtypes). ``S`` marks functions returning mpq_status
# (checked automatically: a failure raises the Error subclass).

S = "status"
P = POINTER
vp = c_void_p
_PROTOTYPES = {
    # core
    "mpq_status_string": (c_char_p, [c_int]),
    "mpq_last_error": (c_char_p, []),
    "mpq_last_status": (c_int, []),
    "mpq_clear_error": (None, []),
    "mpq_version_number": (c_uint, []),
    "mpq_version_string": (c_char_p, []),
    "mpq_free": (None, [vp]),
    "mpq_rng_create": (S, [P(vp), c_uint64]),
    "mpq_rng_destroy": (None, [vp]),
    "mpq_rng_seed": (S, [vp, c_uint64]),
    "mpq_rng_next_u64": (S, [vp, P(c_uint64)]),
    "mpq_rng_uniform": (S, [vp, P(c_double)]),
    # model
    "mpq_layer_shape_set_conv": (S, [P(LayerShape), c_int32, c_int32, c_int32, c_int32, c_int32,
                                 c_int32, c_int32, c_int32]),
    "mpq_layer_shape_set_fc": (S, [P(LayerShape), c_int32, c_int32]),
    "mpq_model_create": (S, [P(vp), c_char_p]),
    "mpq_model_destroy": (None, [vp]),
    "mpq_model_clone": (S, [P(vp), vp]),
    "mpq_model_zoo": (S, [P(vp), c_char_p]),
    "mpq_model_zoo_count": (c_size_t, []),
    "mpq_model_zoo_name": (c_char_p, [c_size_t]),
    "mpq_model_add_layer": (S, [vp, c_char_p, P(LayerShape)]),
    "mpq_model_set_batch": (S, [vp, c_int32]),
    "mpq_model_get_name": (c_char_p, [vp]),
    "mpq_model_get_layer_count": (c_size_t, [vp]),
    "mpq_model_get_layer_shape": (S, [vp, c_size_t, P(LayerShape)]),
    "mpq_model_get_layer_name": (c_char_p, [vp, c_size_t]),
    "mpq_model_find_layer": (S, [vp, c_char_p, P(c_size_t)]),
    "mpq_model_get_layer_macs": (c_int64, [vp, c_size_t]),
    "mpq_model_get_layer_weight_count": (c_int64, [vp, c_size_t]),
    "mpq_model_get_layer_kernel_count": (c_int64, [vp, c_size_t]),
    "mpq_model_get_totals": (S, [vp, P(c_int64), P(c_int64), P(c_int64), P(c_int64)]),
    "mpq_model_get_param_count": (S, [vp, P(c_int64)]),
    "mpq_model_set_weights": (S, [vp, c_size_t, vp, c_int64, vp, c_int64]),
    "mpq_model_get_weights": (S, [vp, c_size_t, P(P(c_float)), P(c_int64), P(P(c_float)),
                              P(c_int64)]),
    "mpq_model_has_weights": (c_int, [vp]),
    "mpq_model_save": (S, [vp, c_char_p]),
    "mpq_model_load": (S, [P(vp), c_char_p]),
    "mpq_model_load_onnx": (S, [P(vp), c_char_p]),
    "mpq_policy_create_uniform": (S, [P(vp), vp, c_int, c_int]),
    "mpq_policy_create_layerwise": (S, [P(vp), vp, vp, vp]),
    "mpq_policy_create_kernelwise": (S, [P(vp), vp, vp, c_int64, vp]),
    "mpq_policy_clone": (S, [P(vp), vp]),
    "mpq_policy_destroy": (None, [vp]),
    "mpq_policy_get_layer_count": (c_size_t, [vp]),
    "mpq_policy_get_kernel_count": (c_int64, [vp]),
    "mpq_policy_check_model": (S, [vp, vp]),
    "mpq_policy_get_act_bits": (S, [vp, c_size_t, P(c_int)]),
    "mpq_policy_set_act_bits": (S, [vp, c_size_t, c_int]),
    "mpq_policy_get_weight_bits": (S, [vp, c_size_t, P(P(c_uint8)), P(c_int64)]),
    "mpq_policy_set_layer_weight_bits": (S, [vp, c_size_t, c_int]),
    "mpq_policy_set_kernel_bits": (S, [vp, c_size_t, c_int64, c_int]),
    "mpq_policy_set_kernel_bits_array": (S, [vp, c_size_t, vp, c_int64]),
    "mpq_policy_equal": (c_int, [vp, vp]),
    "mpq_policy_hash": (c_uint64, [vp]),
    "mpq_policy_get_layer_avg_weight_bits": (S, [vp, c_size_t, P(c_double)]),
    "mpq_policy_get_avg_weight_bits": (S, [vp, vp, P(c_double)]),
    "mpq_policy_set_figures": (S, [vp, P(PolicyFigures)]),
    "mpq_policy_get_figures": (S, [vp, P(PolicyFigures)]),
    "mpq_policy_to_json": (S, [vp, vp, P(vp)]),
    "mpq_policy_from_json": (S, [P(vp), vp, c_char_p]),
    "mpq_policy_save": (S, [vp, vp, c_char_p]),
    "mpq_policy_load": (S, [P(vp), vp, c_char_p]),
    "mpq_policy_from_spec": (S, [P(vp), vp, c_char_p]),
    # hwmodel
    "mpq_hw_create": (S, [P(vp), c_char_p]),
    "mpq_hw_target_count": (c_size_t, []),
    "mpq_hw_target_name": (c_char_p, [c_size_t]),
    "mpq_hw_create_table": (S, [P(vp), c_char_p]),
    "mpq_hw_create_table_from_memory": (S, [P(vp), c_char_p, c_size_t]),
    "mpq_hw_create_callback": (S, [P(vp), HW_LAYER_FN, vp]),
    "mpq_hw_destroy": (None, [vp]),
    "mpq_hw_clone": (S, [P(vp), vp]),
    "mpq_hw_get_name": (c_char_p, [vp]),
    "mpq_hw_get_kind": (S, [vp, P(c_int)]),
    "mpq_hw_clear_cache": (S, [vp]),
    "mpq_hw_param_info": (S, [vp, c_int, P(ParamInfo)]),
    "mpq_hw_param_find": (S, [c_char_p, P(c_int)]),
    "mpq_hw_set_param": (S, [vp, c_int, c_double]),
    "mpq_hw_set_param_by_name": (S, [vp, c_char_p, c_double]),
    "mpq_hw_get_param": (S, [vp, c_int, P(c_double)]),
    "mpq_hw_layer_cost": (S, [vp, vp, c_size_t, vp, c_int64, c_int, P(HwCost)]),
    "mpq_hw_cost_total": (S, [vp, vp, vp, P(HwCost)]),
    "mpq_hw_reference_total": (S, [vp, vp, P(HwCost)]),
    "mpq_hw_result_create": (S, [P(vp)]),
    "mpq_hw_result_destroy": (None, [vp]),
    "mpq_hw_evaluate": (S, [vp, vp, vp, vp]),
    "mpq_hw_result_get_layer_count": (c_size_t, [vp]),
    "mpq_hw_result_get_layer": (S, [vp, c_size_t, P(HwCost)]),
    "mpq_hw_result_get_reference_layer": (S, [vp, c_size_t, P(HwCost)]),
    "mpq_hw_result_get_total": (S, [vp, P(HwCost)]),
    "mpq_hw_result_get_reference_total": (S, [vp, P(HwCost)]),
    "mpq_hw_result_get_ratio": (S, [vp, P(HwCost)]),
    # fakequant
    "mpq_fq_config_defaults": (S, [P(FqConfig)]),
    "mpq_fq_param_info": (S, [c_int, P(ParamInfo)]),
    "mpq_fq_param_find": (S, [c_char_p, P(c_int)]),
    "mpq_fq_config_set_param": (S, [P(FqConfig), c_int, c_double]),
    "mpq_fq_isa_supported": (c_int, [c_int]),
    "mpq_fq_isa_best": (c_int, []),
    "mpq_fq_code_range": (S, [c_int, P(FqConfig), P(c_int32), P(c_int32)]),
    "mpq_fq_params_from_range": (S, [c_float, c_float, c_int, P(FqConfig), P(c_float),
                                     P(c_int32)]),
    "mpq_fq_apply": (S, [vp, vp, c_size_t, c_int, c_float, c_int32, P(FqConfig), vp]),
    "mpq_fq_tensor": (S, [vp, vp, c_size_t, c_int, P(FqConfig), vp, P(c_float), P(c_int32)]),
    "mpq_fq_apply_kernels": (S, [vp, vp, P(FqLayout), vp, vp, vp, P(FqConfig), vp]),
    "mpq_fq_kernels": (S, [vp, vp, P(FqLayout), vp, P(FqConfig), vp, vp, vp]),
    "mpq_fq_quantize": (S, [vp, c_size_t, c_int, c_float, c_int32, P(FqConfig), vp, c_int, vp]),
    "mpq_fq_dequantize": (S, [vp, c_int, c_size_t, c_float, c_int32, vp]),
    "mpq_fq_calibrate": (S, [vp, c_size_t, c_int, P(FqConfig), P(c_float), P(c_float)]),
    "mpq_fq_calibrate_kernels": (S, [vp, P(FqLayout), vp, P(FqConfig), vp, vp]),
    "mpq_fq_kmeans_config_defaults": (S, [P(FqKmeansConfig)]),
    "mpq_fq_kmeans": (S, [vp, c_size_t, c_int, P(FqKmeansConfig), vp, vp, vp, vp, P(c_double)]),
    # quantizer
    "mpq_quantizer_create": (S, [P(vp), vp]),
    "mpq_quantizer_destroy": (None, [vp]),
    "mpq_quantizer_param_info": (S, [c_int, P(ParamInfo)]),
    "mpq_quantizer_param_find": (S, [c_char_p, P(c_int)]),
    "mpq_quantizer_set_param": (S, [vp, c_int, c_double]),
    "mpq_quantizer_get_param": (S, [vp, c_int, P(c_double)]),
    "mpq_quantizer_apply": (S, [vp, vp, vp]),
    "mpq_quantizer_apply_layer": (S, [vp, vp, vp, c_size_t, vp]),
    "mpq_quantizer_get_weights": (S, [vp, c_size_t, P(P(c_float)), P(c_int64)]),
    "mpq_quantizer_get_scales": (S, [vp, c_size_t, P(P(c_float)), P(P(c_int32))]),
    "mpq_quantizer_get_error": (S, [vp, vp, c_size_t, P(QuantError)]),
    # agent (DDPG)
    "mpq_ddpg_create": (S, [P(vp), c_int64, c_int64, c_int64, c_uint64]),
    "mpq_ddpg_destroy": (None, [vp]),
    "mpq_ddpg_set_param": (S, [vp, c_int, c_double]),
    "mpq_ddpg_get_param": (S, [vp, c_int, P(c_double)]),
    "mpq_ddpg_param_info": (S, [c_int, P(ParamInfo)]),
    "mpq_ddpg_param_find": (S, [c_char_p, P(c_int)]),
    "mpq_ddpg_act": (S, [vp, vp, vp, c_int64, c_int, vp]),
    "mpq_ddpg_observe": (S, [vp, vp, vp, vp, c_double, vp, c_int]),
    "mpq_ddpg_end_episode": (S, [vp, c_double]),
    "mpq_ddpg_update": (S, [vp, P(c_double), P(c_double)]),
    "mpq_ddpg_q_value": (S, [vp, vp, vp, vp, c_int64, vp]),
    "mpq_ddpg_get_info": (S, [vp, P(DdpgInfo)]),
    "mpq_ddpg_save": (S, [vp, c_char_p]),
    "mpq_ddpg_load": (S, [P(vp), c_char_p]),
    # runtime
    "mpq_dataset_load": (S, [P(vp), c_char_p]),
    "mpq_dataset_destroy": (None, [vp]),
    "mpq_dataset_get_count": (S, [vp, c_int, P(c_int64)]),
    "mpq_dataset_get_shape": (S, [vp, P(c_int32), P(c_int32), P(c_int32), P(c_int32)]),
    "mpq_dataset_sample": (S, [vp, c_int, c_int64, P(P(c_uint8)), P(c_int)]),
    "mpq_dataset_create_memory": (S, [P(vp), vp, vp, c_int64, c_int64, c_int32, c_int32,
                                      c_int32, c_int64]),
    "mpq_net_create": (S, [P(vp), c_int32, c_int32, c_int32, c_int32, c_uint64]),
    "mpq_net_layer_defaults": (S, [P(NetLayer), c_int]),
    "mpq_net_add": (S, [vp, c_char_p, P(NetLayer), P(c_int32)]),
    "mpq_net_get_layer_count": (c_size_t, [vp]),
    "mpq_net_forward": (S, [vp, vp, c_int32, vp]),
    "mpq_net_param_info": (S, [c_int, P(ParamInfo)]),
    "mpq_net_create_named": (S, [P(vp), c_char_p, c_uint64]),
    "mpq_net_destroy": (None, [vp]),
    "mpq_net_load": (S, [P(vp), c_char_p, c_uint64]),
    "mpq_net_load_onnx": (S, [P(vp), c_char_p, c_uint64]),
    "mpq_net_save": (S, [vp, c_char_p]),
    "mpq_net_get_name": (c_char_p, [vp]),
    "mpq_net_to_model": (S, [vp, P(vp)]),
    "mpq_net_param_find": (S, [c_char_p, P(c_int)]),
    "mpq_net_set_param": (S, [vp, c_int, c_double]),
    "mpq_net_get_param": (S, [vp, c_int, P(c_double)]),
    "mpq_net_train": (S, [vp, vp, c_int, P(c_double)]),
    "mpq_net_evaluate": (S, [vp, vp, c_int, c_int64, P(c_double)]),
    "mpq_net_evaluate_int8": (S, [vp, vp, c_int, c_int64, P(Int8Report)]),
    "mpq_net_calibrate": (S, [vp, vp, c_int32, c_int]),
    "mpq_net_set_policy": (S, [vp, vp]),
    "mpq_evaluator_create": (S, [P(vp), vp, vp, c_uint64]),
    "mpq_evaluator_destroy": (None, [vp]),
    "mpq_evaluator_set_param": (S, [vp, c_int, c_double]),
    "mpq_evaluator_get_param": (S, [vp, c_int, P(c_double)]),
    "mpq_evaluator_param_find": (S, [c_char_p, P(c_int)]),
    "mpq_evaluator_param_info": (S, [c_int, P(ParamInfo)]),
    "mpq_evaluator_get_model": (vp, [vp]),
    "mpq_evaluator_evaluate": (S, [vp, vp, P(c_double)]),
    "mpq_evaluator_evaluate_int8": (S, [vp, vp, c_int, c_int64, P(Int8Report)]),
    "mpq_evaluator_callback": (S, [vp, vp, P(c_double)]),
    "mpq_evaluator_get_cache_stats": (S, [vp, P(c_int64), P(c_int64)]),
    # search
    "mpq_search_method_name": (c_char_p, [c_int]),
    "mpq_search_method_from_name": (S, [c_char_p, P(c_int)]),
    "mpq_search_resource_name": (c_char_p, [c_int]),
    "mpq_search_resource_from_name": (S, [c_char_p, P(c_int)]),
    "mpq_search_parse_budget": (S, [c_char_p, P(c_int), P(c_double)]),
    "mpq_search_create": (S, [P(vp), c_int, vp, vp, EVALUATOR_FN, vp]),
    "mpq_search_destroy": (None, [vp]),
    "mpq_search_get_method": (S, [vp, P(c_int)]),
    "mpq_search_param_info": (S, [c_int, c_int, P(ParamInfo)]),
    "mpq_search_param_find": (S, [c_char_p, P(c_int)]),
    "mpq_search_set_param": (S, [vp, c_int, c_double]),
    "mpq_search_set_param_by_name": (S, [vp, c_char_p, c_double]),
    "mpq_search_get_param": (S, [vp, c_int, P(c_double)]),
    "mpq_search_set_budget": (S, [vp, c_int, c_double]),
    "mpq_search_set_progress": (S, [vp, PROGRESS_FN, vp]),
    "mpq_search_set_log": (S, [vp, LOG_FN, vp]),
    "mpq_search_set_checkpoint": (S, [vp, c_char_p]),
    "mpq_search_set_batch_evaluator": (S, [vp, BATCH_FN, vp, c_int64]),
    "mpq_search_prepare": (S, [vp]),
    "mpq_search_step": (S, [vp]),
    "mpq_search_run": (S, [vp]),
    "mpq_search_is_finished": (c_int, [vp]),
    "mpq_search_get_history_count": (c_int64, [vp]),
    "mpq_search_get_record": (S, [vp, c_int64, P(SearchRecord)]),
    "mpq_search_get_best": (S, [vp, P(vp), P(SearchRecord)]),
    "mpq_search_get_top": (S, [vp, c_int64, P(vp), P(SearchRecord)]),
    "mpq_search_get_top_count": (c_int64, [vp]),
    "mpq_search_get_reference_cost": (S, [vp, P(HwCost)]),
    "mpq_search_get_reference_accuracy": (c_double, [vp]),
    "mpq_search_history_csv": (S, [vp, P(vp)]),
    "mpq_search_save_history": (S, [vp, c_char_p]),
    "mpq_search_get_pareto": (S, [vp, c_int, P(P(c_int64)), P(c_int64)]),
    "mpq_search_pareto_csv": (S, [vp, P(vp)]),
    "mpq_search_save_checkpoint": (S, [vp, c_char_p]),
    "mpq_search_resume": (S, [vp, c_char_p]),
}

# mpq_set_error is variadic: only the fixed part is declared; callers pass "%s" and one string.
_VARIADIC = {"mpq_set_error": (c_int, [c_int, c_char_p])}

# --------------------------------------------------------------------------------------------
# Loading


def _installed_library():
    """The library installed together with this package by ``meson install`` (recorded in the
    generated ``_install.py``), else the one the dynamic loader finds (``ld.so.cache``,
    ``LD_LIBRARY_PATH``): what a ``pip install`` of the package next to an installed libmpq
    uses."""
    out = []
    try:
        from . import _install  # written by meson install only
        out.append(os.path.join(_install.LIBDIR, "libmpq.so.0.2"))
    except ImportError:
        pass
    out.append(ctypes.util.find_library("mpq") or "libmpq.so.0.2")
    return out


def _source_build_libraries():
    """``build*/libmpq.so.0.2`` of the source tree this package sits in, newest first."""
    here = pathlib.Path(__file__).resolve().parent
    root = here.parent.parent.parent  # bindings/python/mpq -> source root
    if not (root / "meson.build").exists() or not (root / "lib" / "libmpq.map").exists():
        return []
    found = [str(b / "libmpq.so.0.2") for b in root.glob("build*") if (b / "libmpq.so.0.2").exists()]
    # Newest build first: the one a developer just compiled.
    found.sort(key=lambda p: os.path.getmtime(p), reverse=True)
    return found


def _candidates():
    """Where the library is looked for, in order: ``MPQ_LIBRARY`` (only there when set), the
    installed library, a source tree's build directory."""
    env = os.environ.get("MPQ_LIBRARY")
    if env:
        return [env], True
    return _installed_library() + _source_build_libraries(), False


def _loaded_path(cdll, name):
    """The file the loader actually mapped for ``name`` (a bare soname becomes a path)."""
    if os.sep in name:
        return name
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rstrip("\n").split(None, 5)[-1]
                if os.path.basename(path).startswith("libmpq.so"):
                    return path
    except OSError:
        pass
    return name


def _library_version(cdll):
    fn = cdll.mpq_version_number
    fn.restype, fn.argtypes = c_uint, []
    return fn()


def _load():
    names, explicit = _candidates()
    errors = []
    want = [int(x) for x in __version__.split(".")]
    for name in names:
        try:
            cdll = ctypes.CDLL(name)
        except OSError as exc:
            errors.append("%s: %s" % (name, exc))
            if explicit:
                break
            continue
        number = _library_version(cdll)
        major, minor = number // 10000, number // 100 % 100
        if (major, minor) != (want[0], want[1]) and not explicit:
            # An older installed library must not hide a matching one further down the list.
            errors.append("%s: version %d.%d.%d, the package needs %d.%d.x"
                          % (name, major, minor, number % 100, want[0], want[1]))
            continue
        return cdll, _loaded_path(cdll, name)
    raise ImportError("mpq: cannot load libmpq.so.0.2 (set MPQ_LIBRARY to its path); tried:\n  "
                      + "\n  ".join(errors))


class _Missing:
    """Stands in for a function the loaded library does not export."""

    def __init__(self, name):
        self.__name__ = name

    def __call__(self, *args):
        raise UnsupportedError("%s is not exported by %s (module not built?)"
                               % (self.__name__, library_path))


class _Lib:
    """Namespace of the declared C functions."""


def _wrap(fn, name):
    """Turns ctypes' ArgumentError (a closed handle, a wrong Python type) into mpq errors."""

    def call(*args):
        try:
            return fn(*args)
        except ctypes.ArgumentError as exc:
            for a in args:
                if getattr(a, "_ptr", 0) is None and hasattr(a, "closed"):
                    raise StateError("%s: %s is closed" % (name, type(a).__name__)) from None
            raise InvalidArgumentError("%s: %s" % (name, exc)) from None

    call.__name__ = name
    call.c_function = fn
    return call


lib = _Lib()
_cdll, library_path = _load()
missing = []
for _name, (_restype, _argtypes) in list(_PROTOTYPES.items()) + list(_VARIADIC.items()):
    try:
        _fn = getattr(_cdll, _name)
    except AttributeError:
        setattr(lib, _name, _Missing(_name))
        missing.append(_name)
        continue
    _fn.argtypes = _argtypes
    if _restype == S:
        _fn.restype = c_int
        _fn.errcheck = _errcheck
    else:
        _fn.restype = _restype
    setattr(lib, _name, _wrap(_fn, _name))


def has(name):
    """True when the loaded library exports C function ``name``."""
    return name not in missing


def version():
    """Version string of the loaded library."""
    return lib.mpq_version_string().decode()


def _check_version():
    number = lib.mpq_version_number()
    major, minor = number // 10000, number // 100 % 100
    want = [int(x) for x in __version__.split(".")]
    if (major, minor) != (want[0], want[1]):
        raise ImportError("mpq: library %s at %s is version %d.%d.%d, the Python package is %s "
                          "(major and minor must match)"
                          % (version(), library_path, major, minor, number % 100, __version__))


_check_version()


def _bind_statuses():
    """Status names from mpq_status_string() until it answers "MPQ_ERR_UNKNOWN"; each error
    class gets the number C gives its name."""
    global ERR_INVALID_ARGUMENT, ERR_CALLBACK, ERR_CANCELLED
    i = 0
    while True:
        raw = lib.mpq_status_string(i)
        text = raw.decode() if raw else "MPQ_ERR_UNKNOWN"
        if text == "MPQ_ERR_UNKNOWN" or i > 4096:
            break
        _STATUS_NAMES[i] = text
        i += 1
    by_name = {v: k for k, v in _STATUS_NAMES.items()}
    for cls in _ERROR_TYPES:
        if cls.c_name in by_name:
            cls.status = by_name[cls.c_name]
            _ERROR_CLASSES[cls.status] = cls
    ERR_INVALID_ARGUMENT = InvalidArgumentError.status
    ERR_CALLBACK = CallbackError.status
    ERR_CANCELLED = CancelledError.status


_bind_statuses()


def status_names():
    """{number: C name} of every mpq_status the loaded library knows."""
    return dict(_STATUS_NAMES)


PARAM_EXTENSION_BASE = 1000  # MPQ_PARAM_EXTENSION_BASE: a numbering rule, not a count


def walk_param_ids(fn, *lead):
    """Every (id, ``mpq_param_info``) a ``*_param_info(…, id, info)`` function gives: ids from 0
    until it refuses with MPQ_ERR_INVALID_ARGUMENT, then the same from
    MPQ_PARAM_EXTENSION_BASE, where modules that keep libmpq's own parameters apart from the
    papers' number them. The counts are the library's, never copied. Ids it answers
    MPQ_ERR_UNSUPPORTED for (a parameter another hardware target has) give None."""
    out = []
    for start in (0, PARAM_EXTENSION_BASE):
        i = start
        while i < start + 100000:
            info = ParamInfo()
            try:
                fn(*lead, i, ctypes.byref(info))
            except InvalidArgumentError:
                break
            except UnsupportedError:
                out.append((i, None))
            else:
                out.append((i, info))
            i += 1
    return out


def walk_param_info(fn, *lead):
    """The infos of :func:`walk_param_ids`, in id order."""
    return [info for _, info in walk_param_ids(fn, *lead)]


def set_callback_error(status, message):
    """Records an error for the calling thread from inside a callback (mpq_set_error)."""
    text = message.encode("utf-8", "replace")[:600]
    return lib.mpq_set_error(status, b"%s", text)


def param_info_dict(info):
    return {"name": info.name.decode(), "description": info.description.decode(),
            "min": info.min_value, "max": info.max_value, "default": info.default_value,
            "is_integer": bool(info.is_integer)}


def take_string(ptr):
    """Copies and frees a char* allocated by the library (mpq_free)."""
    try:
        return ctypes.string_at(ptr.value).decode("utf-8")
    finally:
        lib.mpq_free(ptr)
