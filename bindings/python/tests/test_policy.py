"""Policies: numpy per-kernel bits, and the JSON round trip between C and Python."""

import json

import numpy as np
import pytest

import mpq
from conftest import requires


def rle_decode(runs):
    return np.concatenate([np.full(n, b, dtype=np.uint8) for b, n in runs])


def rle_encode(bits):
    runs = []
    for b in np.asarray(bits).tolist():
        if runs and runs[-1][0] == b:
            runs[-1][1] += 1
        else:
            runs.append([b, 1])
    return runs


@pytest.fixture
def model():
    with mpq.Model.zoo("mobilenetv2") as m:
        yield m


def random_policy(model, seed):
    rng = np.random.default_rng(seed)
    kernels = [rng.integers(1, 9, size=k).astype(np.uint8) for k in model.kernel_counts()]
    acts = rng.integers(2, 9, size=len(model))
    return mpq.Policy.from_arrays(model, kernels, acts), kernels, acts


def test_arrays_in_and_out(model):
    p, kernels, acts = random_policy(model, 1)
    assert p.kernel_count == 18056 and len(p) == 53
    for got, want in zip(p.kernel_bits, kernels):
        assert got.dtype == np.uint8 and np.array_equal(got, want)
    assert np.array_equal(p.act_bits, acts)
    flat = np.concatenate(kernels)
    assert np.array_equal(p.flat_kernel_bits(), flat)
    assert mpq.Policy.from_arrays(model, flat, acts) == p
    # Mean weight bits weighted by weight count, computed in numpy.
    w = np.array([model.layer(i)["weight_count"] / model.layer(i)["kernel_count"]
                  for i in range(len(model))])
    ref = sum((k.astype(float) * w[i]).sum() for i, k in enumerate(kernels)) / \
        model.totals()["weights"]
    assert p.avg_weight_bits == pytest.approx(ref, rel=1e-12)


def test_setters_and_uniform(model):
    p = mpq.Policy.uniform(model, 8, 8)
    p.set_kernel_bits(0, np.arange(32) % 8 + 1)
    p.set_kernel_bits("classifier.1", 3)
    p.set_act_bits(5, 2)
    assert np.array_equal(p.layer_kernel_bits(0), np.arange(32) % 8 + 1)
    assert set(p.layer_kernel_bits(52)) == {3}
    assert p.act_bits[5] == 2
    with pytest.raises(mpq.InvalidArgumentError):
        p.set_kernel_bits(0, np.full(31, 4))
    with pytest.raises(mpq.InvalidArgumentError):
        p.set_act_bits(0, 17)
    lw = mpq.Policy.layerwise(model, [4] * 53, [6] * 53)
    assert lw == mpq.Policy.uniform(model, 4, 6) == mpq.Policy.from_spec(model, "uniform:4,6")


def test_json_from_c_decodes_in_python(model):
    p, kernels, acts = random_policy(model, 2)
    p.set_figures(accuracy=0.71, latency=0.0123)
    doc = json.loads(p.to_json())
    assert doc["format"] == "mpq-policy" and doc["model"] == "mobilenetv2"
    assert [layer["name"] for layer in doc["layers"]] == model.layer_names()
    for i, layer in enumerate(doc["layers"]):
        assert np.array_equal(rle_decode(layer["weight_bits"]), kernels[i])
        assert layer["act_bits"] == acts[i]
    assert p.figures["accuracy"] == 0.71


def test_json_from_python_parses_in_c(model, tmp_path):
    _, kernels, acts = random_policy(model, 3)
    doc = json.loads(mpq.Policy.uniform(model, 8, 8).to_json())
    for i, layer in enumerate(doc["layers"]):
        layer["weight_bits"] = rle_encode(kernels[i])
        layer["act_bits"] = int(acts[i])
    p = mpq.Policy.from_json(model, json.dumps(doc))
    assert all(np.array_equal(a, b) for a, b in zip(p.kernel_bits, kernels))
    assert np.array_equal(p.act_bits, acts)
    # File round trip C -> file -> C, and the text is stable.
    path = tmp_path / "p.json"
    p.save(path)
    q = mpq.Policy.load(model, path)
    assert q == p and q.hash == p.hash and q.to_json() == p.to_json()


def test_json_errors_name_the_problem(model):
    doc = json.loads(mpq.Policy.uniform(model, 8, 8).to_json())
    doc["layers"][3]["weight_bits"] = [[99, 1]] + doc["layers"][3]["weight_bits"]
    with pytest.raises(mpq.Error, match=r"layers\[3\]"):
        mpq.Policy.from_json(model, doc)
    with pytest.raises(mpq.FormatError):
        mpq.Policy.from_json(model, "{ not json")
    with mpq.Model.zoo("resnet18") as other:
        with pytest.raises((mpq.MismatchError, mpq.FormatError), match="resnet18"):
            mpq.Policy.from_json(other, mpq.Policy.uniform(model, 8, 8).to_json())


@requires("mpq_quantizer_apply", "mpq_fq_kernels")
def test_quantizer_matches_fake_quant_kernels():
    m = mpq.Model("q")
    m.add_conv("c", 4, 6, 3, in_hw=(8, 8))
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    m.set_weights(0, w)
    bits = np.array([2, 3, 4, 5, 8, 32], dtype=np.uint8)
    p = mpq.Policy.from_arrays(m, [bits], [8])
    with mpq.Quantizer(m) as q:
        q.apply(p)
        got = q.weights(0)
        ref, s, z = mpq.fake_quant_kernels(w, bits)
        assert np.array_equal(got, ref.reshape(-1))
        assert np.array_equal(q.apply_layer(p, 0), got)
        e = q.error(0)
        diff = w.reshape(-1).astype(np.float64) - got
        assert e["mse"] == pytest.approx(float((diff ** 2).mean()), rel=1e-9)
