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


@requires("mpq_evaluator_evaluate_int8")
def test_int8_inference_agrees_with_fake_quant(trained):
    ds, net = trained
    ev = mpq.BuiltinEvaluator(net, ds, seed=0, limit=300)
    p8 = mpq.Policy.uniform(ev.model, 8, 8)
    r = ev.evaluate_int8(p8, "val", limit=300)
    assert r["images"] == 300 and r["int8_layers"] == 5 and r["split_layers"] == 5
    assert r["fakequant_accuracy"] == ev(p8)  # the same fake-quant path as the evaluator
    assert r["agreement"] >= 0.99  # the paths differ only in float rounding
    assert abs(r["accuracy"] - r["fakequant_accuracy"]) <= 1.0 - r["agreement"]
    assert r["int8_images_per_second"] > 0 and r["fakequant_images_per_second"] > 0
    with pytest.raises(mpq.InvalidArgumentError, match="'stem' has 16-bit activations"):
        ev.evaluate_int8(mpq.Policy.uniform(ev.model, 8, 16))
    # the same on the network itself, at 6 bits (one int8 convolution per layer)
    net.calibrate(ds, batches=2)
    with net.to_model() as m:
        net.set_policy(mpq.Policy.uniform(m, 6, 6))
    try:
        r6 = net.evaluate_int8(ds, "val", limit=200)
        assert r6["images"] == 200 and r6["split_layers"] == 0 and r6["agreement"] >= 0.99
        assert r6["fakequant_accuracy"] == net.evaluate(ds, "val", limit=200)
    finally:
        net.set_policy(None)
