"""Counts and names come from the library (never copied), callbacks are type-checked when a
search is built, progress=True, plot_pareto and Dataset.numpy."""

import importlib.util
import io
import subprocess

import numpy as np
import pytest

import mpq
from mpq import _lib
from conftest import requires, tool_path


def _cli_params():
    """(name, haq default, autoq default) of `mpq search --list-params`."""
    out = subprocess.run([tool_path(), "search", "--list-params"], check=True,
                         capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 4 and parts[2] == "/":
            rows.append((parts[0], float(parts[1]), float(parts[3])))
    return rows


@requires("mpq_search_param_info")
def test_search_params_equal_the_command_line_list():
    if not tool_path():
        pytest.skip("mpq command not built")
    rows = _cli_params()
    haq, autoq = mpq.search_params("haq"), mpq.search_params("autoq")
    assert [r[0] for r in rows] == list(haq) == list(autoq)
    assert "keep_top" in haq  # the 41st parameter the copied count of 40 missed
    for name, h, a in rows:
        assert haq[name]["default"] == pytest.approx(h, rel=1e-4, abs=1e-12), name
        assert autoq[name]["default"] == pytest.approx(a, rel=1e-4, abs=1e-12), name
    with mpq.Search(mpq.Model.zoo("resnet18"), mpq.Hardware("bismo-edge"), lambda p: 0.5,
                    method="autoq") as s:
        assert list(s.params()) == [r[0] for r in rows]
        assert s.params()["keep_top"] == haq["keep_top"]["default"]


def test_walk_stops_where_c_refuses():
    infos = _lib.walk_param_info(_lib.lib.mpq_ddpg_param_info)
    assert len(infos) == len(mpq.ddpg_params())
    with pytest.raises(mpq.InvalidArgumentError):
        _lib.lib.mpq_ddpg_param_info(len(infos), _lib.ctypes.byref(_lib.ParamInfo()))
    _lib.lib.mpq_ddpg_param_info(len(infos) - 1, _lib.ctypes.byref(_lib.ParamInfo()))


def test_status_method_and_resource_names_from_c():
    names = mpq.status_names()
    assert names[0] == "MPQ_OK"
    for number, name in names.items():
        assert _lib.lib.mpq_status_string(number).decode() == name
    assert _lib.lib.mpq_status_string(len(names)).decode() == "MPQ_ERR_UNKNOWN"
    for cls in (mpq.InvalidArgumentError, mpq.NotFoundError, mpq.CancelledError,
                mpq.InternalError):
        assert names[cls.status] == cls.c_name
    assert mpq.methods() == ["haq", "autoq", "uniform", "random", "greedy", "ilp"]
    assert mpq.resources() == ["latency", "energy", "area", "size"]
    for m in mpq.methods():
        mpq.search_params(m)


def test_wrong_callback_types_refused_at_construction(tiny, edge):
    cases = [dict(evaluator=0.5), dict(progress="yes"), dict(progress=print, log=3),
             dict(evaluator=lambda: 0.5), dict(evaluator=lambda a, b: 0.5),
             dict(log=lambda msg: None)]
    for kw in cases:
        args = dict(evaluator=lambda p: 0.5)
        args.update(kw)
        with pytest.raises(mpq.ArgumentTypeError) as info:
            mpq.Search(tiny, edge, args.pop("evaluator"), episodes=2, **args)
        assert isinstance(info.value, TypeError)
    with pytest.raises(mpq.ArgumentTypeError):
        mpq.Hardware.callback({"latency_s": 1.0})
    # Accepted: progress as bool or callable, a log with (level, message), *args callables.
    mpq.Search(tiny, edge, lambda *a: 0.5, progress=False, log=lambda lvl, msg: None).close()


def test_progress_true_one_live_line(tiny, edge, capsys):
    with mpq.Search(tiny, edge, lambda p: 0.4 + 0.05 * p.avg_weight_bits, method="haq",
                    budget="latency:0.6", episodes=5, warmup=2, first_last="free",
                    progress=True) as s:
        s.run()
    err = capsys.readouterr().err
    assert err.endswith("\n") and err.count("\n") == 1  # one line, redrawn with \r
    last = err.rstrip("\n").split("\r")[-1]
    assert last.startswith("episode 5/5 | best acc 0.") and "ETA 0s" in last
    assert "reward" in last and "elapsed" in last
    line = mpq.ProgressLine(stream=io.StringIO(), min_interval=0)
    line({"episode": 0, "episodes": 10, "best_reward": float("nan"),
          "best_accuracy": float("nan"), "elapsed_s": 1.0, "eta_s": 95.0, "record": None})
    assert line.text == "episode 1/10 | best acc - | reward - | elapsed 1s | ETA 1m35s"


class _Ax:
    """Records matplotlib axes calls."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *a, **k: self.calls.append((name, a, k))


def test_plot_pareto_draws_front_and_best(tiny, edge):
    with mpq.Search(tiny, edge, lambda p: 0.4 + 0.05 * p.avg_weight_bits, method="random",
                    budget="latency:0.6", episodes=12, seed=3, first_last="free") as s:
        s.run()
        ax = _Ax()
        assert s.plot_pareto("latency", ax=ax) is ax
        names = [c[0] for c in ax.calls]
        assert "step" in names and "set_xlabel" in names and "legend" in names
        step = next(c for c in ax.calls if c[0] == "step")
        front = s.pareto("latency")
        assert list(step[1][0]) == [r["latency_ratio"] for r in front]
        assert list(step[1][1]) == [r["accuracy"] for r in front]
        best = [c for c in ax.calls if c[0] == "scatter" and c[2].get("marker") == "*"]
        assert best[0][1][1] == [s.best_record["accuracy"]]
        if importlib.util.find_spec("matplotlib") is None:
            with pytest.raises(ImportError, match="python3-matplotlib"):
                s.plot_pareto()


@requires("mpq_dataset_create_memory", "mpq_dataset_sample")
def test_dataset_numpy_round_trip():
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(30, 2, 3, 4)).astype(np.uint8)
    labels = rng.integers(0, 7, size=30)
    ds = mpq.Dataset.from_arrays(images, labels, test_count=10, val_count=5)
    assert (ds.count("train"), ds.count("val"), ds.count("test")) == (15, 5, 10)
    for split, sl in (("train", slice(0, 15)), ("val", slice(15, 20)), ("test", slice(20, 30))):
        x, y = ds.numpy(split)
        assert x.dtype == np.uint8 and x.shape == (sl.stop - sl.start, 2, 3, 4)
        assert np.array_equal(x, images[sl]) and np.array_equal(y, labels[sl])


def test_infeasible_budget_names_first_last(tiny, edge):
    with mpq.Search(tiny, edge, lambda p: 0.5, method="haq", budget="latency:0.5",
                    episodes=2) as s:
        with pytest.raises(mpq.InfeasibleError, match=r"first_last=haq \(1\).*first_last=free"):
            s.run()
