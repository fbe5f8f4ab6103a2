"""The built-in oneDNN runtime: dataset, network, and its evaluator driving a search in C."""

import gc
import os

import pytest

import mpq
from conftest import requires

pytestmark = requires("mpq_evaluator_create", "mpq_search_run")
if not os.path.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"):
    pytest.skip("dataset-fashion-mnist is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def trained():
    ds = mpq.Dataset()
    net = mpq.Net.named("fashion-tiny", seed=1, epochs=1, max_batches=20)
    net.train(ds)
    return ds, net


def test_dataset_and_net(trained):
    ds, net = trained
    assert ds.shape == (1, 28, 28, 10)
    assert ds.count("train") + ds.count("val") == 60000 and ds.count("test") == 10000
    with pytest.raises(mpq.InvalidArgumentError):
        ds.count("holdout")
    acc = net.evaluate(ds, "val", limit=500)
    assert 0.3 < acc <= 1.0  # 20 batches already beat chance (0.1) by far
    with net.to_model() as m:
        assert len(m) == 5 and m.has_weights


def test_builtin_evaluator_in_search(trained):
    ds, net = trained
    ev = mpq.BuiltinEvaluator(net, ds, seed=0, limit=300)
    model = ev.model
    p8 = mpq.Policy.uniform(model, 8, 8)
    assert ev(p8) == ev(p8) and ev.cache_stats["hits"] >= 1
    s = mpq.Search(model, mpq.Hardware("bismo-edge"), ev, method="random", episodes=4,
                   budget="latency:0.6", first_last="free")
    del ev, model
    gc.collect()  # the search keeps the evaluator (and its model) alive
    best = s.run()
    assert len(s) == 4 and best is not None
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in s.history)
