"""Policy search (HAQ, AutoQ, ilp, baselines) with a Python evaluator and progress callback."""

from __future__ import annotations

import ctypes
import inspect
import os
import sys
import time
import weakref
from ctypes import byref, c_double, c_int, c_int64, c_void_p
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _lib
from ._handle import Handle
from ._lib import (SEARCH_RECORD_FIELDS, ArgumentTypeError, CancelledError, Error, HwCost,
                   InvalidArgumentError, SearchRecord, StateError, lib)
from .model import Policy

if TYPE_CHECKING:  # annotations only
    from .hardware import Hardware
    from .model import Model

OBJECTIVES = {"resource": 0, "accuracy": 1}
DUPLICATES = {"report": 0, "penalise": 1, "explore": 2}
AUTOQ_LLC = {"agent": 0, "allocator": 1}
FIRST_LAST = {"free": 0, "haq": 1, "pinned": 2}

PathLike = Union[str, "os.PathLike[str]"]
#: a budget string, a (resource, fraction) pair or a bare fraction.
Budget = Union[str, float, Tuple[Union[str, int], float]]


def _walk_names(fn):
    """Names a ``*_name(int)`` function gives from 0 until it answers "" (unknown value)."""
    out = []
    while True:
        raw = fn(len(out))
        if not raw:
            return out
        out.append(raw.decode())


def resources() -> List[str]:
    """Names of the budget resources, from the library."""
    return _walk_names(lib.mpq_search_resource_name)


def _param_infos(method_id):
    return _lib.walk_param_info(lib.mpq_search_param_info, method_id)

_NP_TYPES = {ctypes.c_int64: np.int64, ctypes.c_double: np.float64, ctypes.c_uint64: np.uint64,
             ctypes.c_int: np.int32}
HISTORY_DTYPE = np.dtype([(n, _NP_TYPES[t]) for n, t in SEARCH_RECORD_FIELDS])


def _record_dict(rec):
    d = {n: getattr(rec, n) for n, _ in SEARCH_RECORD_FIELDS}
    d["cached"] = bool(d["cached"])
    d["feasible"] = bool(d["feasible"])
    return d


def methods() -> List[str]:
    """Names of the search methods, from the library."""
    return _walk_names(lib.mpq_search_method_name)


def _resource(value):
    if isinstance(value, str):
        r = c_int()
        lib.mpq_search_resource_from_name(value.encode(), byref(r))
        return r.value
    return int(value)


def search_params(method: str = "haq") -> Dict[str, Dict[str, Any]]:
    """{name: info} of every search parameter with the method's defaults."""
    m = c_int()
    lib.mpq_search_method_from_name(method.encode(), byref(m))
    out = {}
    for info in _param_infos(m.value):
        d = _lib.param_info_dict(info)
        out[d.pop("name")] = d
    return out


def _format_seconds(s: float) -> str:
    if s != s or s < 0:  # NaN before the first episode
        return "?"
    s = int(round(s))
    return "%dh%02dm" % (s // 3600, s // 60 % 60) if s >= 3600 else (
        "%dm%02ds" % (s // 60, s % 60) if s >= 60 else "%ds" % s)


class ProgressLine:
    """The live one-line progress of ``Search(..., progress=True)``: episode, best accuracy and
    reward so far, the episode's cost ratio, elapsed time and ETA, rewritten in place.

    In a terminal the line is redrawn with a carriage return on ``stream`` (stderr); inside a
    Jupyter kernel (IPython's ``display`` with ``display_id``) one output area is updated, so
    the notebook shows a single line instead of one per episode. The line ends with a newline
    when the run ends (``close()``)."""

    def __init__(self, stream=None, min_interval: float = 0.1):
        self.stream = stream if stream is not None else sys.stderr
        self.min_interval = min_interval
        self._last = 0.0
        self._handle = None
        self._open = False
        self.text = ""
        try:  # Jupyter: update one display area in place
            from IPython import get_ipython  # type: ignore
            from IPython.display import display  # type: ignore
            shell = get_ipython()
            if shell is not None and type(shell).__name__ == "ZMQInteractiveShell":
                self._display = display
                self._jupyter = True
            else:
                self._jupyter = False
        except ImportError:
            self._jupyter = False

    @staticmethod
    def format(info: Dict[str, Any]) -> str:
        rec = info.get("record") or {}
        best = info["best_accuracy"]
        parts = ["episode %d/%d" % (info["episode"] + 1, info["episodes"]),
                 "best acc %s" % ("-" if best != best or best < 0 else "%.4f" % best),
                 "reward %s" % ("-" if info["best_reward"] != info["best_reward"]
                                else "%.4g" % info["best_reward"])]
        if rec:
            parts.append("this: acc %.4f lat %.3f%s" % (rec["accuracy"], rec["latency_ratio"],
                                                         "" if rec["feasible"] else " infeasible"))
        parts.append("elapsed %s" % _format_seconds(info["elapsed_s"]))
        parts.append("ETA %s" % _format_seconds(info["eta_s"]))
        return " | ".join(parts)

    def __call__(self, info: Dict[str, Any]) -> None:
        self.text = self.format(info)
        now = time.monotonic()
        last = info["episode"] + 1 >= info["episodes"]
        if not last and now - self._last < self.min_interval:
            return
        self._last = now
        if self._jupyter:
            if self._handle is None:
                self._handle = self._display({"text/plain": self.text}, raw=True,
                                             display_id=True)
            else:
                self._handle.update({"text/plain": self.text}, raw=True)
        else:
            self.stream.write("\r\x1b[K" + self.text if _isatty(self.stream)
                              else "\r" + self.text)
            self.stream.flush()
        self._open = True

    def close(self) -> None:
        if self._open and not self._jupyter:
            self.stream.write("\n")
            self.stream.flush()
        self._open = False


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _check_callable(fn: Any, what: str, nargs: int, allow_none: bool = True) -> None:
    """Refuses a callback of the wrong type when the search is built, not after an episode."""
    if fn is None and allow_none:
        return
    if not callable(fn):
        raise ArgumentTypeError("%s: expected a callable taking %d argument%s, got %s %r"
                                % (what, nargs, "" if nargs == 1 else "s",
                                   type(fn).__name__, fn))
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins and C functions: nothing to check
        return
    try:
        sig.bind(*([None] * nargs))
    except TypeError as exc:
        raise ArgumentTypeError("%s: %r cannot be called with %d argument%s (%s)"
                                % (what, fn, nargs, "" if nargs == 1 else "s", exc)) from None


def _make_evaluator(ref):
    def trampoline(user, policy_ptr, accuracy):
        try:
            self = ref()
            if self is None:
                raise RuntimeError("mpq.Search was garbage-collected during a run")
            out = c_void_p()
            lib.mpq_policy_clone(byref(out), c_void_p(policy_ptr))
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


def _make_batch(ref):
    def trampoline(user, policies, count, accuracy, failed):
        try:
            self = ref()
            if self is None:
                raise RuntimeError("mpq.Search was garbage-collected during a run")
            batch = []
            try:
                for i in range(count):
                    out = c_void_p()
                    lib.mpq_policy_clone(byref(out), c_void_p(policies[i]))
                    batch.append(Policy(self.model, out))
                accs = [float(a) for a in self._batch(batch)]
            finally:
                for p in batch:
                    p.close()
            if len(accs) != count:
                raise ValueError("batch evaluator returned %d accuracies for %d policies"
                                 % (len(accs), count))
            for i, a in enumerate(accs):
                accuracy[i] = a
            self.evaluations += count
            return _lib.OK
        except BaseException as exc:  # noqa: B902
            failed[0] = 0
            return _stash(ref, exc, "batch evaluator")
    return _lib.BATCH_FN(trampoline)


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

    * ``evaluator(policy) -> accuracy in [0,1]``, called with an :class:`mpq.Policy`
      (or an :class:`mpq.BuiltinEvaluator`, or ``mpq.torch.evaluator(...)``). The search caches
      accuracies by policy: an identical policy is evaluated once per search.
    * ``progress``: ``True`` prints a live one-line progress (episode, best accuracy and
      reward, ETA; one updating line in Jupyter too, see :class:`ProgressLine`); or a callable
      ``progress(info) -> None | False`` called after every episode (return False to stop).
    * ``log``: ``log(level, message)`` receives the library's log lines (level 0 error,
      1 warning, 2 info, 3 debug), e.g. ``log=lambda lvl, msg: print(msg)``.
    * Callbacks of the wrong type (not callable, wrong number of arguments) raise
      :class:`mpq.ArgumentTypeError` (a ``TypeError``) here, not after the first episode.
    * ``budget``: a fraction of the all-8-bit cost (resource from ``budget_resource``), a
      ``(resource, fraction)`` pair or a string like ``"latency:0.5"``.
    * ``params``: any search parameter by name (``episodes=50``, ``seed=1``, ``w_max_bits=8``;
      ``first_last`` and ``budget_resource`` also accept names). Defaults are the papers'
      (:func:`mpq.search_params` lists them with sources). Two matter on small runs:
      ``first_last`` ("haq": the first and last layer go to 8/8 when the budget wall lowers a
      policy, which can make a tight budget infeasible on a small network; "free" searches them
      too) and ``warmup`` (HAQ plays 20 random episodes before its agent acts, so a run of 20
      episodes or fewer is random search: lower it with the episode count).

    An exception raised by a callback stops the search cleanly and is re-raised by
    :meth:`run` / :meth:`step` with its original traceback; a KeyboardInterrupt cancels the
    search (the history so far is kept) and is re-raised likewise.
    """

    def __init__(self, model: Model, hardware: Hardware, evaluator: Callable[[Policy], float],
                 method: str = "haq", objective: Union[str, int, None] = None,
                 budget: Optional[Budget] = None,
                 progress: Union[bool, Callable[[Dict[str, Any]], Any], None] = None,
                 log: Optional[Callable[[int, str], Any]] = None, **params: Any):
        builtin = hasattr(evaluator, "c_callback")
        if not builtin:
            _check_callable(evaluator, "evaluator", 1, allow_none=False)
        if progress is True:
            progress = ProgressLine()
        elif progress is False:
            progress = None
        _check_callable(progress, "progress", 1)
        _check_callable(log, "log", 2)
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
    def method(self) -> str:
        return lib.mpq_search_method_name(self._method_id()).decode()

    def _method_id(self) -> int:
        method = c_int()
        lib.mpq_search_get_method(self, byref(method))
        return method.value

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

    def set_params(self, **params: Any) -> None:
        for key, value in params.items():
            self[key] = value

    def params(self) -> Dict[str, float]:
        """{name: current value} of every parameter."""
        out = {}
        v = c_double()
        for i, info in _lib.walk_param_ids(lib.mpq_search_param_info, self._method_id()):
            lib.mpq_search_get_param(self, i, byref(v))
            out[info.name.decode()] = v.value
        return out

    def set_budget(self, budget: Budget, resource: Union[str, int, None] = None) -> None:
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

    def set_checkpoint(self, path: Optional[PathLike]) -> None:
        lib.mpq_search_set_checkpoint(self, None if path is None else os.fsencode(path))

    def set_batch_evaluator(self, fn: Optional[Callable[[List[Policy]], Sequence[float]]],
                            width: int = 0) -> None:
        """``fn(policies) -> accuracies`` receives each round's independent evaluations
        (baselines' at most ``width`` of them, 0 = all; HAQ/AutoQ ``parallel_proposals``) and
        may run them in parallel; the history is the same as with the evaluator
        (mpq_search_set_batch_evaluator). ``None`` removes it."""
        self._batch = fn
        if fn is None:
            lib.mpq_search_set_batch_evaluator(self, _lib.BATCH_FN(), None, 0)
            return
        self._cfn_batch = _make_batch(weakref.ref(self))
        lib.mpq_search_set_batch_evaluator(self, self._cfn_batch, None, int(width))

    # -- running --------------------------------------------------------------------------
    def _call(self, fn):
        self._pending = None
        self._stop_requested = False
        failure = None
        try:
            fn(self)
        except Error as err:
            failure = err
        finally:
            if isinstance(self._progress, ProgressLine) and (
                    fn is not lib.mpq_search_step or lib.mpq_search_is_finished(self)):
                self._progress.close()
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

    def prepare(self) -> None:
        """Checks the configuration and computes the reference costs (and accuracy)."""
        self._call(lib.mpq_search_prepare)

    def run(self, episodes: Optional[int] = None) -> Optional[Policy]:
        """Plays the episodes; returns the best policy (None if no feasible episode).

        A progress callback returning False or the ``time_limit`` stops early (then
        ``stopped_early`` is True). Callback exceptions are re-raised here."""
        if episodes is not None:
            self["episodes"] = episodes
        self.stopped_early = False
        self._call(lib.mpq_search_run)
        return self.best_policy

    def step(self) -> Optional[Dict[str, Any]]:
        """Plays one episode and returns its history row, or None when all were played."""
        if lib.mpq_search_is_finished(self):
            return None
        before = len(self)
        if not self._call(lib.mpq_search_step):
            return None
        return self.history_row(len(self) - 1) if len(self) > before else None

    @property
    def finished(self) -> bool:
        return bool(lib.mpq_search_is_finished(self))

    # -- results --------------------------------------------------------------------------
    def __len__(self):
        return lib.mpq_search_get_history_count(self)

    def history_row(self, index: int) -> Dict[str, Any]:
        rec = SearchRecord()
        lib.mpq_search_get_record(self, int(index), byref(rec))
        return _record_dict(rec)

    @property
    def history(self) -> List[Dict[str, Any]]:
        """Every episode as a dict (see ``mpq_search_record``)."""
        return [self.history_row(i) for i in range(len(self))]

    def history_array(self) -> np.ndarray:
        """The history as a numpy structured array (one field per record field)."""
        rows = self.history
        return np.array([tuple(r[n] for n in HISTORY_DTYPE.names) for r in rows],
                        dtype=HISTORY_DTYPE)

    def history_csv(self) -> str:
        out = c_void_p()
        lib.mpq_search_history_csv(self, byref(out))
        return _lib.take_string(out)

    def save_history(self, path: PathLike) -> None:
        lib.mpq_search_save_history(self, os.fsencode(path))

    @property
    def best(self) -> Optional[Tuple[Policy, Dict[str, Any]]]:
        """(policy, record) of the best feasible episode, or None before there is one."""
        pol, rec = c_void_p(), SearchRecord()
        try:
            lib.mpq_search_get_best(self, byref(pol), byref(rec))
        except StateError:
            return None
        out = c_void_p()
        lib.mpq_policy_clone(byref(out), pol)
        return Policy(self.model, out), _record_dict(rec)

    @property
    def top(self) -> List[Tuple[Policy, Dict[str, Any]]]:
        """[(policy, record)] of the best distinct feasible policies by reward (at most
        ``keep_top``), best first: candidates to re-evaluate on more data."""
        out = []
        for rank in range(lib.mpq_search_get_top_count(self)):
            pol, rec = c_void_p(), SearchRecord()
            lib.mpq_search_get_top(self, rank, byref(pol), byref(rec))
            copy = c_void_p()
            lib.mpq_policy_clone(byref(copy), pol)
            out.append((Policy(self.model, copy), _record_dict(rec)))
        return out

    @property
    def best_policy(self) -> Optional[Policy]:
        b = self.best
        return None if b is None else b[0]

    @property
    def best_record(self) -> Optional[Dict[str, Any]]:
        b = self.best
        return None if b is None else b[1]

    def pareto(self, resource: str = "latency") -> List[Dict[str, Any]]:
        """History rows on the accuracy / ``resource`` Pareto front, by increasing cost."""
        idx, n = ctypes.POINTER(c_int64)(), c_int64()
        lib.mpq_search_get_pareto(self, _resource(resource), byref(idx), byref(n))
        try:
            indices = [idx[i] for i in range(n.value)]
        finally:
            if n.value:
                lib.mpq_free(ctypes.cast(idx, c_void_p))
        return [self.history_row(i) for i in indices]

    def plot_pareto(self, resource: str = "latency", ax: Any = None) -> Any:
        """Scatter of every episode (accuracy against ``resource`` ratio to all-8-bit) with the
        Pareto front as a step line and the best policy marked; returns the matplotlib axes.
        ``ax=None`` draws into a new figure (needs matplotlib: ``apt-get install
        python3-matplotlib``); any object with matplotlib's ``scatter``/``step``/``set_*``
        methods can be passed."""
        if ax is None:
            try:
                import matplotlib.pyplot as plt  # type: ignore
            except ImportError:
                raise ImportError("Search.plot_pareto needs matplotlib (Debian: apt-get install "
                                  "python3-matplotlib), or pass ax=") from None
            _, ax = plt.subplots()
        key = resource + "_ratio"
        rows = self.history
        if rows and key not in rows[0]:
            raise InvalidArgumentError("plot_pareto: unknown resource '%s' (valid: %s)"
                                       % (resource, ", ".join(resources())))
        feas = [r for r in rows if r["feasible"]]
        infeas = [r for r in rows if not r["feasible"]]
        if feas:
            ax.scatter([r[key] for r in feas], [r["accuracy"] for r in feas], s=12,
                       color="tab:blue", alpha=0.5, label="episodes")
        if infeas:
            ax.scatter([r[key] for r in infeas], [r["accuracy"] for r in infeas], s=12,
                       color="tab:gray", marker="x", alpha=0.5, label="over budget")
        front = self.pareto(resource)
        if front:
            ax.step([r[key] for r in front], [r["accuracy"] for r in front], where="post",
                    color="tab:red", label="Pareto front")
        best = self.best_record
        if best is not None:
            ax.scatter([best[key]], [best["accuracy"]], s=80, marker="*", color="tab:orange",
                       label="best (%s)" % self.method, zorder=3)
        ax.set_xlabel("%s / all-8-bit" % resource)
        ax.set_ylabel("accuracy")
        ax.set_title("%s on %s / %s" % (self.method, self.model.name, self.hardware.name))
        ax.legend()
        return ax

    def pareto_csv(self) -> str:
        out = c_void_p()
        lib.mpq_search_pareto_csv(self, byref(out))
        return _lib.take_string(out)

    @property
    def reference_cost(self) -> Dict[str, float]:
        c = HwCost()
        lib.mpq_search_get_reference_cost(self, byref(c))
        return {f: getattr(c, f) for f in _lib.HW_COST_FIELDS}

    @property
    def reference_accuracy(self) -> float:
        return lib.mpq_search_get_reference_accuracy(self)

    # -- checkpoints ----------------------------------------------------------------------
    def save_checkpoint(self, path: PathLike) -> None:
        lib.mpq_search_save_checkpoint(self, os.fsencode(path))

    def resume(self, path: PathLike) -> None:
        lib.mpq_search_resume(self, os.fsencode(path))

    def __repr__(self):
        if self.closed:
            return "<mpq.Search closed>"
        return "<mpq.Search %s on %r / %s: %d episodes played>" % (
            self.method, self.model.name, self.hardware.name, len(self))
