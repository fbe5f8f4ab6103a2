"""Searches driven from Python: evaluator and progress callbacks, exceptions, cancellation."""

import os
import signal
import traceback

import numpy as np
import pytest

import mpq
from conftest import requires, tiny_model

pytestmark = requires("mpq_search_run", "mpq_ddpg_create")


def synthetic_accuracy(policy):
    """A smooth stand-in for a network: more bits, more accuracy (in [0,1])."""
    return min(1.0, 0.40 + 0.07 * policy.avg_weight_bits + 0.01 * policy.act_bits.mean())


def make(method="haq", evaluator=synthetic_accuracy, **kw):
    m = tiny_model()
    hw = mpq.Hardware("bismo-edge")
    kw.setdefault("episodes", 12)
    kw.setdefault("seed", 3)
    kw.setdefault("first_last", "free")
    kw.setdefault("budget", ("latency", 0.6))
    return mpq.Search(m, hw, evaluator, method=method, **kw)


@pytest.mark.parametrize("method", ["haq", "random", "uniform", "greedy", "ilp"])
def test_run_history_best_and_pareto(method):
    seen = []
    s = make(method, progress=lambda info: seen.append(info["episode"]))
    best = s.run()
    n = len(s)
    assert 1 <= n <= 12 and seen == list(range(n))
    rows = s.history
    arr = s.history_array()
    assert len(rows) == len(arr) == n
    assert [r["episode"] for r in rows] == list(range(n))
    assert np.array_equal(arr["accuracy"], [r["accuracy"] for r in rows])
    for r in rows:
        assert 0.0 <= r["accuracy"] <= 1.0 and r["latency_ratio"] > 0
    assert best is not None and isinstance(best, mpq.Policy)
    record = s.best_record
    assert record["feasible"] and record["latency_ratio"] <= 0.6 + 1e-12
    assert record["accuracy"] == pytest.approx(synthetic_accuracy(best), abs=1e-12)
    assert max(r["reward"] for r in rows if r["feasible"]) == record["reward"]
    front = s.pareto("latency")
    costs = [r["latency_s"] for r in front]
    assert costs == sorted(costs)
    for r in front:  # nobody in the history dominates a front point
        assert not any(o["latency_s"] <= r["latency_s"] and o["accuracy"] > r["accuracy"]
                       for o in rows)
    assert s.history_csv().splitlines()[0].startswith("episode,")
    assert s.reference_cost["latency_s"] > 0


def test_same_seed_same_history():
    a, b = make(seed=11), make(seed=11)
    a.run()
    b.run()
    strip = [[{k: v for k, v in r.items() if k != "elapsed_s"} for r in s.history]
             for s in (a, b)]
    assert strip[0] == strip[1]


def test_step_interactive_and_params():
    s = make(episodes=3)
    assert s["episodes"] == 3 and s.method == "haq"
    assert s.params()["seed"] == 3
    rows = [s.step() for _ in range(5)]
    assert [r["episode"] for r in rows[:3]] == [0, 1, 2]
    assert rows[3] is None and rows[4] is None and s.finished
    with pytest.raises(mpq.StateError):
        s["seed"] = 4  # fixed once episodes ran
    with pytest.raises(mpq.NotFoundError):
        s["no_such_param"] = 1


def test_budget_fill_and_greedy_rule_parameters():
    info = mpq.search_params("haq")
    assert info["budget_fill"]["default"] == 2 and info["greedy_lazy"]["default"] == 1
    used = {}
    for fill in (0, 2):
        s = make("random", budget_fill=fill, episodes=8)
        assert s["budget_fill"] == fill
        s.run()
        used[fill] = max(r["latency_ratio"] for r in s.history)
        assert used[fill] <= 0.6 + 1e-12
    assert used[2] > used[0]  # the fill spends budget the wall left over
    g = make("greedy", greedy_lazy=0, episodes=5)
    assert g["greedy_lazy"] == 0


def test_issue14_methods_and_parameters():
    assert mpq.methods() == ["haq", "autoq", "uniform", "random", "greedy", "ilp"]
    info = mpq.search_params("autoq")
    assert info["duplicates"]["default"] == 1 and info["duplicate_penalty"]["default"] == 1
    assert info["autoq_llc"]["default"] == 0 and info["autoq_llc_sensitivity"]["default"] == 1
    assert info["warm_start"]["default"] == 0
    # ilp: every probe and the solution are episodes; records count distinct evaluations
    s = make("ilp", episodes=200)
    s.run()
    rows = s.history
    assert s.finished and rows[-1]["feasible"]
    distinct = 1 + sum(not r["cached"] for r in rows)  # + the reference measurement
    assert rows[-1]["evaluations"] == distinct
    assert all(0.0 <= r["fill_share"] <= 1.0 for r in rows)
    a = make("autoq", episodes=3, autoq_llc=1)
    a.run()
    assert len(a) == 3 and a["autoq_llc"] == 1
    with pytest.raises(mpq.InvalidArgumentError):
        make("haq", duplicates=3)


def test_top_policies_ranked_and_distinct():
    s = make("random", episodes=12, keep_top=3)
    assert s.top == []
    s.run()
    top = s.top
    assert 1 <= len(top) <= 3
    rewards = [r["reward"] for _, r in top]
    assert rewards == sorted(rewards, reverse=True)
    assert len({r["policy_hash"] for _, r in top}) == len(top)
    assert all(r["feasible"] for _, r in top)
    assert top[0][1] == s.best_record
    assert top[0][0].avg_weight_bits == s.best_policy.avg_weight_bits


def test_evaluator_exception_is_reraised_with_traceback():
    def evaluator(policy):
        if evaluator.calls == 4:
            raise ZeroDivisionError("division inside the evaluator")
        evaluator.calls += 1
        return synthetic_accuracy(policy)

    evaluator.calls = 0
    s = make(evaluator=evaluator, episodes=20)
    with pytest.raises(ZeroDivisionError, match="inside the evaluator") as info:
        s.run()
    frames = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
    assert frames[0] == "test_evaluator_exception_is_reraised_with_traceback"
    assert frames[-1] == "evaluator"  # the raising line of the user's function
    # The run stopped cleanly: the history holds the episodes before the failure.
    assert 1 <= len(s) < 20
    assert all(0 <= r["accuracy"] <= 1 for r in s.history)


def test_progress_exception_and_stop():
    def progress(info):
        if info["episode"] == 2:
            raise KeyError("from progress")

    s = make(progress=progress, episodes=10)
    with pytest.raises(KeyError, match="from progress"):
        s.run()
    assert len(s) == 3

    s = make(progress=lambda info: info["episode"] < 4, episodes=10)
    best = s.run()
    assert len(s) == 5 and s.stopped_early and best is not None


def test_keyboard_interrupt_cancels_and_keeps_history():
    def evaluator(policy):
        evaluator.calls += 1
        if evaluator.calls == 6:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does
        return synthetic_accuracy(policy)

    evaluator.calls = 0
    s = make(evaluator=evaluator, episodes=30)
    with pytest.raises(KeyboardInterrupt):
        s.run()
    kept = len(s)
    assert 3 <= kept < 30
    assert s.best_policy is not None
    # The search can go on afterwards.
    row = s.step()
    assert row["episode"] == kept and len(s) == kept + 1


def test_bad_accuracy_and_configuration_errors():
    s = make(evaluator=lambda p: 1.5)
    with pytest.raises(mpq.NumericError, match="1.5"):
        s.run()
    s = make(budget=("latency", 0.01))
    with pytest.raises(mpq.InfeasibleError, match="minimum reachable"):
        s.prepare()
    with pytest.raises(mpq.Error):
        make(method="annealing")


def test_search_keeps_model_and_hardware_alive():
    import gc
    s = make(episodes=2)
    gc.collect()  # model and hardware are only referenced by the search
    s.run()
    assert len(s) == 2
    s.close()
    assert s.closed


def test_time_limit_stops_early_and_log_callback(tmp_path):
    import time

    def slow(policy):
        time.sleep(0.05)
        return synthetic_accuracy(policy)

    s = make(evaluator=slow, episodes=1000, time_limit=0.3)
    best = s.run()
    assert s.stopped_early and 1 <= len(s) < 1000 and best is not None

    messages = []
    s = make(episodes=3, checkpoint_every=1, log=lambda level, msg: messages.append(msg))
    s.set_checkpoint(tmp_path / "search.ckpt")
    s.run()
    assert (tmp_path / "search.ckpt").exists()
    if not messages:
        pytest.skip("this search build logs nothing for checkpoints")

    def bad_log(level, msg):
        raise RuntimeError("log failed")

    s = make(episodes=3, checkpoint_every=1, log=bad_log)
    s.set_checkpoint(tmp_path / "search2.ckpt")
    with pytest.raises(RuntimeError, match="log failed"):
        s.run()


@pytest.mark.parametrize("method,params", [("haq", {"parallel_proposals": 3}), ("random", {}),
                                           ("ilp", {})])
def test_batch_evaluator_in_threads_keeps_the_history(method, params):
    """A batch evaluator (here a thread pool) gets each round's independent evaluations; the
    history is the one-by-one run's with the same seed and parallel_proposals (issue 18)."""
    from concurrent.futures import ThreadPoolExecutor

    plain = make(method, episodes=12, **params)
    plain.run()
    sizes = []

    def batch(policies):
        sizes.append(len(policies))
        with ThreadPoolExecutor(max_workers=3) as pool:
            return list(pool.map(synthetic_accuracy, policies))

    s = make(method, episodes=12, **params)
    s.set_batch_evaluator(batch)
    s.run()
    def strip(search):  # repr: NaN (no feasible episode yet) compares equal as text
        return repr([{k: v for k, v in r.items() if k != "elapsed_s"} for r in search.history])

    assert strip(s) == strip(plain)
    assert max(sizes) > 1  # rounds really held several policies
    assert s.evaluations == plain.evaluations


def test_batch_evaluator_exception_is_reraised():
    def batch(policies):
        raise ZeroDivisionError("inside the batch")

    s = make("random", episodes=6)
    s.set_batch_evaluator(batch, width=2)
    with pytest.raises(ZeroDivisionError, match="inside the batch"):
        s.run()
