"""Hardware costs equal the `mpq cost --csv` output of the C command."""

import csv
import io
import subprocess

import numpy as np
import pytest

import mpq
from conftest import SOURCE_ROOT, tool_path


def run_cost(*args):
    tool = tool_path()
    if tool is None:
        pytest.skip("the mpq command of this build was not found (set MPQ_TOOL)")
    out = subprocess.run([tool, "cost", "--csv", *args], capture_output=True, text=True,
                         check=True).stdout
    return list(csv.DictReader(io.StringIO(out)))


def close(a, b):
    # The command prints %.9g: compare to that precision.
    return float("%.9g" % a) == pytest.approx(float(b), rel=1e-12, abs=0)


@pytest.mark.parametrize("model_name,target,spec", [
    ("mobilenetv2", "bismo-edge", "uniform:4,4"),
    ("mobilenetv2", "bismo-cloud", "uniform:2,8"),
    ("resnet18", "bitfusion", "uniform:3,5"),
    ("squeezenet1_1", "zynq7020", "uniform:6,3"),
])
def test_uniform_costs_equal_command(model_name, target, spec):
    rows = run_cost("--model", model_name, "--hw", target, "--policy", spec)
    with mpq.Model.zoo(model_name) as m, mpq.Hardware(target) as hw:
        p = mpq.Policy.from_spec(m, spec)
        table = hw.layer_table(m, p)
        layer_rows = [r for r in rows if r["layer"].isdigit()]
        assert len(layer_rows) == len(table) == len(m)
        for got, want in zip(table, layer_rows):
            assert got["name"] == want["name"]
            assert close(got["latency_s"], want["latency_s"])
            assert close(got["energy_j"], want["energy_j"])
            assert round(got["size_bytes"]) == int(want["size_bytes"])
        total = next(r for r in rows if r["layer"] == "total")
        ref = next(r for r in rows if r["layer"] == "reference_8bit")
        cost = hw.cost(m, p)
        assert close(cost["latency_s"], total["latency_s"])
        assert close(cost["energy_j"], total["energy_j"])
        assert round(cost["size_bytes"]) == int(total["size_bytes"])
        assert close(hw.reference(m)["latency_s"], ref["latency_s"])
        ev = hw.evaluate(m, p)
        assert np.array_equal(list(ev["total"].values()), list(cost.values()), equal_nan=True)
        assert ev["ratio"]["latency_s"] == pytest.approx(
            cost["latency_s"] / ev["reference"]["latency_s"], rel=1e-12)


def test_kernelwise_policy_written_by_python_costs_equal_command(tmp_path):
    with mpq.Model.zoo("mobilenetv2") as m, mpq.Hardware("bismo-cloud", batch=4) as hw:
        rng = np.random.default_rng(9)
        p = mpq.Policy.from_arrays(m, rng.integers(2, 9, size=m.totals()["kernels"]),
                                   rng.integers(2, 9, size=len(m)))
        path = tmp_path / "kw.json"
        p.save(path)
        rows = run_cost("--model", "mobilenetv2", "--hw", "bismo-cloud", "--batch", "4",
                        "--policy", str(path))
        arr = hw.layer_table(m, p, as_array=True)
        assert arr.dtype.names[:2] == ("layer", "name")
        want = np.array([float(r["latency_s"]) for r in rows if r["layer"].isdigit()])
        assert np.allclose(arr["latency_s"], want, rtol=1e-8, atol=0)
        total = next(r for r in rows if r["layer"] == "total")
        assert close(hw.cost(m, p)["latency_s"], total["latency_s"])
        assert hw["batch"] == 4


def test_layer_cost_and_params():
    with mpq.Model.zoo("resnet18") as m, mpq.Hardware("bismo-edge") as hw:
        p = mpq.Policy.uniform(m, 5, 6)
        table = hw.layer_table(m, p)
        one = hw.layer_cost(m, 3, 5, 6)
        assert one["latency_s"] == table[3]["latency_s"]
        params = hw.params()
        assert "dm" in params and params["dm"]["value"] == params["dm"]["default"]
        before = hw.cost(m, p)["latency_s"]
        hw["clock_hz"] = params["clock_hz"]["value"] * 2
        assert hw.cost(m, p)["latency_s"] < before
        with pytest.raises(mpq.NotFoundError):
            hw["no_such_param"] = 1
        with pytest.raises(mpq.InvalidArgumentError):
            hw["dm"] = -1


def test_callback_target_and_table():
    with mpq.Model.zoo("squeezenet1_1") as m:
        calls = []

        def fn(layer, w, a):
            calls.append((layer, w, a))
            return {"latency_s": 1e-3 * (layer + 1) * w * a / 64.0, "energy_j": 1e-6 * w}

        with mpq.Hardware.callback(fn) as hw:
            p = mpq.Policy.uniform(m, 4, 8)
            total = hw.cost(m, p)
            assert total["latency_s"] == pytest.approx(
                sum(1e-3 * (i + 1) * 4 * 8 / 64 for i in range(len(m))), rel=1e-12)
            assert (0, 4, 8) in calls

        def broken(layer, w, a):
            raise RuntimeError("board unplugged")

        with mpq.Hardware.callback(broken) as hw:
            with pytest.raises(mpq.CallbackError, match="board unplugged"):
                hw.cost(m, mpq.Policy.uniform(m, 4, 8))


def test_haq_lookup_table():
    path = SOURCE_ROOT / "tests" / "data" / "haq_mobilenetv2_cloud_latency_lut.csv"
    if not path.exists():
        pytest.skip("HAQ table not in the source tree")
    with mpq.Model.zoo("mobilenetv2") as m, mpq.Hardware.table(path) as hw:
        rows = run_cost("--model", "mobilenetv2", "--table", str(path), "--policy",
                        "uniform:4,4")
        total = next(r for r in rows if r["layer"] == "total")
        assert close(hw.cost(m, mpq.Policy.uniform(m, 4, 4))["latency_s"], total["latency_s"])
