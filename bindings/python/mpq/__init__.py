"""libmpq for Python: a thin ctypes layer over libmpq.so.0.2 (no compiled extension).

    import mpq
    model = mpq.Model.zoo("mobilenetv2")
    hw = mpq.Hardware("bismo-edge")
    policy = mpq.Policy.uniform(model, 4, 4)
    print(hw.cost(model, policy)["latency_s"])

The library is found through the ``MPQ_LIBRARY`` environment variable (a path, and only
there when set), then the installed library (the one ``meson install`` installed with this
package, else the dynamic loader's ``libmpq.so.0.2``), then the newest ``build*/libmpq.so.0.2`` of
the source tree the package sits in. ``mpq.library_path`` tells which file was loaded.

``mpq.torch`` (imported separately: ``import mpq.torch``) applies policies to PyTorch models.
"""

from ._lib import (ArgumentTypeError, CallbackError, CancelledError, DTypeError, Error, FormatError,
                   InfeasibleError, InternalError, InvalidArgumentError, IOFailure,
                   MismatchError, NotFoundError, NumericError, OutOfMemoryError, StateError,
                   UnsupportedError, VersionError, __version__, has, library_path, status_names,
                   version)
from .model import Model, Policy, Quantizer, zoo_names
from .hardware import Hardware, targets
from .fakequant import (Rng, calibrate, calibrate_kernels, code_range, dequantize, fake_quant,
                        fake_quant_kernels, fake_quant_tensor, params_from_range, quantize)
from .agent import Agent, ddpg_params
from .search import ProgressLine, Search, methods, resources, search_params
from .runtime import BuiltinEvaluator, Dataset, Net
from . import fakequant

from ._lib import lib as _c


def last_error():
    """Text of mpq_last_error(): the last failure of the calling thread."""
    return (_c.mpq_last_error() or b"").decode("utf-8", "replace")


__all__ = [
    "Error", "ArgumentTypeError", "InvalidArgumentError", "DTypeError", "OutOfMemoryError",
    "IOFailure",
    "FormatError", "UnsupportedError", "NotFoundError", "CallbackError", "CancelledError",
    "InfeasibleError", "StateError", "NumericError", "VersionError", "MismatchError",
    "InternalError", "Model", "Policy", "Quantizer", "Hardware", "Agent", "Search", "Rng",
    "Dataset", "Net", "BuiltinEvaluator",
    "fake_quant", "fake_quant_tensor", "fake_quant_kernels", "calibrate", "calibrate_kernels",
    "code_range", "params_from_range", "quantize", "dequantize", "zoo_names", "targets",
    "methods", "search_params", "ddpg_params", "version", "library_path", "has", "last_error",
    "fakequant", "__version__", "ProgressLine", "resources", "status_names",
]
