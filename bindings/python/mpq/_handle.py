"""Ownership of C handles: freed by close(), by ``with`` blocks, or when garbage-collected."""

import ctypes
import weakref

import numpy as np

from ._lib import DTypeError, InvalidArgumentError


class Handle:
    """Base of every class that owns (or borrows) a libmpq handle.

    The handle is released exactly once: by :meth:`close`, at the end of a ``with`` block, or
    when the object is garbage-collected (``weakref.finalize``, which also runs at interpreter
    exit). Passing a closed object to a C function raises :class:`mpq.StateError`.
    """

    _ptr = None
    _finalizer = None

    def _own(self, ptr, destroy, keep=()):
        """Takes ownership of ``ptr`` (a c_void_p or int); ``keep`` are objects the C handle
        borrows from and that must outlive it."""
        value = ptr.value if isinstance(ptr, ctypes.c_void_p) else ptr
        if not value:
            raise InvalidArgumentError("internal: NULL handle")
        self._ptr = ctypes.c_void_p(value)
        self._keep = tuple(keep)
        self._finalizer = weakref.finalize(self, destroy, ctypes.c_void_p(value))

    def _borrow(self, ptr, owner):
        value = ptr.value if isinstance(ptr, ctypes.c_void_p) else ptr
        self._ptr = ctypes.c_void_p(value)
        self._keep = (owner,)

    @property
    def _as_parameter_(self):
        if self._ptr is None:
            raise ValueError("%s is closed" % type(self).__name__)
        return self._ptr

    @property
    def closed(self):
        return self._ptr is None

    def close(self):
        """Frees the C handle now (idempotent)."""
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        self._ptr = None
        self._keep = ()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def as_f32(x, name, writable=False):
    """Checks that ``x`` is a C-contiguous float32 numpy array (no copy is ever made)."""
    if not isinstance(x, np.ndarray):
        raise DTypeError("%s: expected a numpy float32 array, got %s (use np.asarray(%s, "
                         "dtype=np.float32))" % (name, type(x).__name__, name))
    if x.dtype != np.float32:
        raise DTypeError("%s: dtype is %s, expected float32 (convert with %s.astype(np.float32))"
                         % (name, x.dtype, name))
    if not x.flags.c_contiguous:
        raise DTypeError("%s: array is not C-contiguous (strides %s); the kernels work in place "
                         "without copying, pass np.ascontiguousarray(%s)"
                         % (name, x.strides, name))
    if writable and not x.flags.writeable:
        raise DTypeError("%s: array is read-only" % name)
    if x.size == 0:
        raise InvalidArgumentError("%s: array is empty" % name)
    return x


def as_u8(x, name, count=None):
    """Bit widths as a contiguous uint8 array (a copy when needed: these arrays are small)."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise DTypeError("%s: expected integer bit widths, got dtype %s" % (name, arr.dtype))
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise InvalidArgumentError("%s: bit widths must be in 1..16 or 32" % name)
    arr = np.ascontiguousarray(arr.reshape(-1), dtype=np.uint8)
    if count is not None and arr.size != count:
        raise InvalidArgumentError("%s: %d entries, expected %d" % (name, arr.size, count))
    return arr


def ptr(arr):
    """Address of a numpy array's data as c_void_p (None for None)."""
    return None if arr is None else ctypes.c_void_p(arr.ctypes.data)
