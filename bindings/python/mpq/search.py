"""Policy search (HAQ, AutoQ, ilp, baselines) with a Python evaluator and progress callback."""

import ctypes
import os
import weakref
from ctypes import byref, c_double, c_int, c_int64, c_void_p

import numpy as np

from . import _lib
from ._handle import Handle
from ._lib import (SEARCH_RECORD_FIELDS, CancelledError, Error, HwCost, InvalidArgumentError,
                   ParamInfo, SearchRecord, StateError, lib)
from .model import Policy

PARAM_COUNT = 47  # MPQ_SEARCH_PARAM_COUNT
METHOD_COUNT = 6  # MPQ_SEARCH_METHOD_COUNT: haq, autoq, uniform, random, greedy, ilp
OBJECTIVES = {"resource": 0, "accuracy": 1}
DUPLICATES = {"report": 0, "penalise": 1, "explore": 2}
AUTOQ_LLC = {"agent": 0, "allocator": 1}
FIRST_LAST = {"free": 0, "haq": 1, "pinned": 2}
RESOURCES = ("latency", "energy", "area", "size")

_NP_TYPES = {ctypes.c_int64: np.int64, ctypes.c_double: np.float64, ctypes.c_uint64: np.uint64,
             ctypes.c_int: np.int32}
HISTORY_DTYPE = np.dtype([(n, _NP_TYPES[t]) for n, t in SEARCH_RECORD_FIELDS])


def _record_dict(rec):
    d = {n: getattr(rec, n) for n, _ in SEARCH_RECORD_FIELDS}
    d["cached"] = bool(d["cached"])
    d["feasible"] = bool(d["feasible"])
    return d


def methods():
    """Names of the search methods."""
    return [lib.mpq_search_method_name(i).decode() for i in range(METHOD_COUNT)]


def _resource(value):
    if isinstance(value, str):
        r = c_int()
        lib.mpq_search_resource_from_name(value.encode(), byref(r))
        return r.value
    return int(value)


def search_params(method="haq"):
    """{name: info} of every search parameter with the method's defaults."""
    m = c_int()
    lib.mpq_search_method_from_name(method.encode(), byref(m))
    out = {}
    for i in range(PARAM_COUNT):
        info = ParamInfo()
        lib.mpq_search_param_info(m.value, i, byref(info))
        d = _lib.param_info_dict(info)
        out[d.pop("name")] = d
    return out


def _make_evaluator(ref):
    def trampoline(user, policy_ptr, accuracy):
        try:
            self = ref()
            if self is None:
                raise RuntimeError("mpq.Search was garbage-collected during a run")
            out = c_void_p()
            lib.mpq_policy_clone(c_void_p(policy_ptr), byref(out))
            policy = Policy(self.model, out)
            try:
                acc = float(self._evaluator(policy))
            finally:
                policy.close()
            accuracy[0] = acc
            self.evaluations += 1
            return _lib.OK
        except BaseException as exc:  # noqa: B902 - nothing may unwind through C frames
            return _stash(ref, exc, "evaluator")
    return _lib.EVALUATOR_FN(trampoline)


def _make_progress(ref):
    def trampoline(user, progress):
        try:
            self = ref()
            if self is None or self._progress is None:
                return _lib.OK
            p = progress.contents
            info = {"episode": p.episode, "episodes": p.episodes,
                    "best_reward": p.best_reward, "best_accuracy": p.best_accuracy,
                    "elapsed_s": p.elapsed_s, "eta_s": p.eta_s,
                    "record": _record_dict(p.record.contents) if p.record else None}
            if self._progress(info) is False:
                self._stop_requested = True
                _lib.set_callback_error(_lib.ERR_CANCELLED, "progress callback returned False")
                return _lib.ERR_CANCELLED
            return _lib.OK
        except BaseException as exc:  # noqa: B902
            return _stash(ref, exc, "progress callback")
    return _lib.PROGRESS_FN(trampoline)


def _make_log(ref):
    def trampoline(user, level, message):
        try:
            self = ref()
            if self is not None and self._log is not None:
                self._log(level, message.decode("utf-8", "replace"))
        except BaseException as exc:  # noqa: B902 - a log callback cannot fail in C: the
            self = ref()                  # exception is re-raised when run()/step() return
            if self is not None and self._pending is None:
                self._pending = exc
    return _lib.LOG_FN(trampoline)


def _stash(ref, exc, where):
    """Keeps the first exception (with its traceback) for run()/step() to re-raise, and tells
    the library to stop."""
    self = ref()
    if self is not None and self._pending is None:
        self._pending = exc
    if isinstance(exc, KeyboardInterrupt):
        _lib.set_callback_error(_lib.ERR_CANCELLED, "%s: KeyboardInterrupt" % where)
        return _lib.ERR_CANCELLED
    _lib.set_callback_error(_lib.ERR_CALLBACK, "%s raised %s: %s"
                            % (where, type(exc).__name__, exc))
    return _lib.ERR_CALLBACK


class Search(Handle):
    """A quantization-policy search.

    ``Search(model, hardware, evaluator, method="haq", objective="resource",
    budget=("latency", 0.5), progress=None, log=None, **params)``

    * ``evaluator(policy) -> accuracy in [0,1]``, called with an :class:`mpq.Policy`.
    * ``progress(info) -> None | False``, after every episode; return False to stop.
    * ``budget``: a fraction of the all-8-bit cost (resource from ``budget_resource``), a
      ``(resource, fraction)`` pair or a string like ``"latency:0.5"``.
    * ``params``: any search parameter by name (``episodes=50``, ``seed=1``, ``w_max_bits=8``;
      ``first_last`` and ``budget_resource`` also accept names).

    An exception raised by a callback stops the search cleanly and is re-raised by
    :meth:`run` / :meth:`step` with its original traceback; a KeyboardInterrupt cancels the
    search (the history so far is kept) and is re-raised likewise.
    """

    def __init__(self, model, hardware, evaluator, method="haq", objective=None, budget=None,
                 progress=None, log=None, **params):
        if not callable(evaluator):
            raise InvalidArgumentError("evaluator: expected a callable policy -> accuracy")
        builtin = hasattr(evaluator, "c_callback")
        m = c_int()
        lib.mpq_search_method_from_name(str(method).encode(), byref(m))
        self.model = model
        self.hardware = hardware
        self._evaluator = evaluator
        self._progress = progress
        self._log = log
        self._pending = None
        self._stop_requested = False
        self.evaluations = 0
        self.stopped_early = False
        ref = weakref.ref(self)
        self._cfn_eval = _make_evaluator(ref)
        self._cfn_progress = _make_progress(ref)
        self._cfn_log = _make_log(ref)
        out = c_void_p()
        if builtin:  # the runtime's evaluator runs in C, without a Python round trip
            cfn, user = evaluator.c_callback()
            lib.mpq_search_create(byref(out), m.value, model, hardware, cfn, user)
            keep = (model, hardware, evaluator, cfn, self._cfn_progress, self._cfn_log)
        else:
            lib.mpq_search_create(byref(out), m.value, model, hardware, self._cfn_eval, None)
            keep = (model, hardware, self._cfn_eval, self._cfn_progress, self._cfn_log)
        self._own(out, lib.mpq_search_destroy, keep=keep)
        # Always installed so that Python gets control (and sees Ctrl-C) after every episode.
        lib.mpq_search_set_progress(self, self._cfn_progress, None)
        if log is not None:
            lib.mpq_search_set_log(self, self._cfn_log, None)
        if objective is not None:
            self["objective"] = objective
        for key, value in params.items():
            self[key] = value
        if budget is not None:
            self.set_budget(budget)

    # -- parameters -----------------------------------------------------------------------
    @property
    def method(self):
        return lib.mpq_search_method_name(lib.mpq_search_get_method(self)).decode()

    def __setitem__(self, name, value):
        if name == "objective" and isinstance(value, str):
            value = OBJECTIVES.get(value, value)
        elif name == "first_last" and isinstance(value, str):
            value = FIRST_LAST.get(value, value)
        elif name == "budget_resource":
            value = _resource(value)
        if isinstance(value, str):
            raise InvalidArgumentError("%s: unknown value '%s'" % (name, value))
        lib.mpq_search_set_param_by_name(self, name.encode(), float(value))

    def __getitem__(self, name):
        pid, v = c_int(), c_double()
        lib.mpq_search_param_find(name.encode(), byref(pid))
        lib.mpq_search_get_param(self, pid.value, byref(v))
        return v.value

    def set_params(self, **params):
        for key, value in params.items():
            self[key] = value

    def params(self):
        """{name: current value} of every parameter."""
        out = {}
        v = c_double()
        for i in range(PARAM_COUNT):
            info = ParamInfo()
            lib.mpq_search_param_info(lib.mpq_search_get_method(self), i, byref(info))
            lib.mpq_search_get_param(self, i, byref(v))
            out[info.name.decode()] = v.value
        return out

    def set_budget(self, budget, resource=None):
        """Resource-constrained objective: ``resource <= fraction x all-8-bit``."""
        if isinstance(budget, str):
            r, f = c_int(), c_double()
            lib.mpq_search_parse_budget(budget.encode(), byref(r), byref(f))
            resource, fraction = r.value, f.value
        elif isinstance(budget, (tuple, list)):
            resource, fraction = budget
        else:
            fraction = budget
            if resource is None:
                resource = int(self["budget_resource"])
        lib.mpq_search_set_budget(self, _resource(resource), float(fraction))

    def set_checkpoint(self, path):
        lib.mpq_search_set_checkpoint(self, None if path is None else os.fsencode(path))

    # -- running --------------------------------------------------------------------------
    def _call(self, fn):
        self._pending = None
        self._stop_requested = False
        failure = None
        try:
            fn(self)
        except Error as err:
            failure = err
        pending, self._pending = self._pending, None
        if pending is not None:  # a callback raised: re-raise its exception, traceback and all
            if failure is not None:
                self.stopped_early = True
                if hasattr(pending, "add_note"):
                    pending.add_note("(stopped the libmpq search: %s)" % failure)
            raise pending
        if failure is None:
            return True
        if isinstance(failure, CancelledError):  # progress returned False, or the time limit
            self.stopped_early = True
            return False
        raise failure

    def prepare(self):
        """Checks the configuration and computes the reference costs (and accuracy)."""
        self._call(lib.mpq_search_prepare)

    def run(self, episodes=None):
        """Plays the episodes; returns the best policy (None if no feasible episode).

        A progress callback returning False or the ``time_limit`` stops early (then
        ``stopped_early`` is True). Callback exceptions are re-raised here."""
        if episodes is not None:
            self["episodes"] = episodes
        self.stopped_early = False
        self._call(lib.mpq_search_run)
        return self.best_policy

    def step(self):
        """Plays one episode and returns its history row, or None when all were played."""
        if lib.mpq_search_finished(self):
            return None
        before = len(self)
        if not self._call(lib.mpq_search_step):
            return None
        return self.history_row(len(self) - 1) if len(self) > before else None

    @property
    def finished(self):
        return bool(lib.mpq_search_finished(self))

    # -- results --------------------------------------------------------------------------
    def __len__(self):
        return lib.mpq_search_history_count(self)

    def history_row(self, index):
        rec = SearchRecord()
        lib.mpq_search_history_get(self, int(index), byref(rec))
        return _record_dict(rec)

    @property
    def history(self):
        """Every episode as a dict (see ``mpq_search_record``)."""
        return [self.history_row(i) for i in range(len(self))]

    def history_array(self):
        """The history as a numpy structured array (one field per record field)."""
        rows = self.history
        return np.array([tuple(r[n] for n in HISTORY_DTYPE.names) for r in rows],
                        dtype=HISTORY_DTYPE)

    def history_csv(self):
        out = c_void_p()
        lib.mpq_search_history_csv(self, byref(out))
        return _lib.take_string(out)

    def save_history(self, path):
        lib.mpq_search_save_history(self, os.fsencode(path))

    @property
    def best(self):
        """(policy, record) of the best feasible episode, or None before there is one."""
        pol, rec = c_void_p(), SearchRecord()
        try:
            lib.mpq_search_best(self, byref(pol), byref(rec))
        except StateError:
            return None
        out = c_void_p()
        lib.mpq_policy_clone(pol, byref(out))
        return Policy(self.model, out), _record_dict(rec)

    @property
    def top(self):
        """[(policy, record)] of the best distinct feasible policies by reward (at most
        ``keep_top``), best first: candidates to re-evaluate on more data."""
        out = []
        for rank in range(lib.mpq_search_top_count(self)):
            pol, rec = c_void_p(), SearchRecord()
            lib.mpq_search_top(self, rank, byref(pol), byref(rec))
            copy = c_void_p()
            lib.mpq_policy_clone(pol, byref(copy))
            out.append((Policy(self.model, copy), _record_dict(rec)))
        return out

    @property
    def best_policy(self):
        b = self.best
        return None if b is None else b[0]

    @property
    def best_record(self):
        b = self.best
        return None if b is None else b[1]

    def pareto(self, resource="latency"):
        """History rows on the accuracy / ``resource`` Pareto front, by increasing cost."""
        idx, n = ctypes.POINTER(c_int64)(), c_int64()
        lib.mpq_search_pareto(self, _resource(resource), byref(idx), byref(n))
        try:
            indices = [idx[i] for i in range(n.value)]
        finally:
            if n.value:
                lib.mpq_free(ctypes.cast(idx, c_void_p))
        return [self.history_row(i) for i in indices]

    def pareto_csv(self):
        out = c_void_p()
        lib.mpq_search_pareto_csv(self, byref(out))
        return _lib.take_string(out)

    @property
    def reference_cost(self):
        c = HwCost()
        lib.mpq_search_reference_cost(self, byref(c))
        return {f: getattr(c, f) for f in _lib.HW_COST_FIELDS}

    @property
    def reference_accuracy(self):
        return lib.mpq_search_reference_accuracy(self)

    # -- checkpoints ----------------------------------------------------------------------
    def save_checkpoint(self, path):
        lib.mpq_search_save_checkpoint(self, os.fsencode(path))

    def resume(self, path):
        lib.mpq_search_resume(self, os.fsencode(path))

    def __repr__(self):
        if self.closed:
            return "<mpq.Search closed>"
        return "<mpq.Search %s on %r / %s: %d episodes played>" % (
            self.method, self.model.name, self.hardware.name, len(self))
