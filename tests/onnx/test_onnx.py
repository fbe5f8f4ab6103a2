"""ONNX in and out against the real tools: torch.onnx.export (Debian python3-torch) for the
import, ONNX Runtime (npm onnxruntime-node) for the export. Run by meson (suite onnx) with
MPQ_LIBRARY, MPQ_TOOL, MPQ_SOURCE_ROOT, MPQ_ONNX_MODELS (a cache directory for the exported
models) and MPQ_ORT_DIR (a directory whose node_modules holds onnxruntime-node; .ci/run installs
it with `npm install --ignore-scripts onnxruntime-node`)."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(os.environ.get("MPQ_SOURCE_ROOT", pathlib.Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(ROOT / "bindings/python"))
sys.path.insert(0, str(ROOT / "tests/onnx"))
import make_models  # noqa: E402
import mpq  # noqa: E402

TOOL = os.environ.get("MPQ_TOOL")
MODELS = pathlib.Path(os.environ.get("MPQ_ONNX_MODELS", "onnx-models"))
# .ci/run and README install onnxruntime-node into ~/.cache/mpq/ort unless MPQ_ORT_DIR says else.
ORT_DIR = os.environ.get("MPQ_ORT_DIR") or os.path.expanduser("~/.cache/mpq/ort")
FASHION = make_models.FASHION


def model_path(name):
    """Exports the model once per cache directory (make_models.py, deterministic)."""
    path = MODELS / (name + ".onnx")
    if not path.exists():
        MODELS.mkdir(parents=True, exist_ok=True)
        only = ["fashion_cnn"] if name.startswith("fashion_cnn") else [name.replace("_96", "")]
        subprocess.run([sys.executable, str(ROOT / "tests/onnx/make_models.py"), str(MODELS),
                        "--only"] + only, check=True)
    return str(path)


def run_tool(*args):
    r = subprocess.run([TOOL] + list(args), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("onnx_name,zoo", [("resnet18", "resnet18"),
                                           ("mobilenet_v2", "mobilenetv2")])
def test_cost_equals_zoo(onnx_name, zoo):
    """Every layer's shape, bits, latency, energy and size as the zoo's (names differ)."""
    a = run_tool("cost", "-M", model_path(onnx_name), "--csv").splitlines()
    b = run_tool("cost", "-M", zoo, "--csv").splitlines()
    assert len(a) == len(b) > 10
    strip = lambda line: line.split(",", 2)[0::2]  # noqa: E731  (index, everything after name)
    for x, y in zip(a, b):
        assert strip(x) == strip(y), (x, y)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2_96", "fashion_cnn",
                                  "fashion_cnn_view"])
def test_float_logits_equal_torch(name):
    path = model_path(name)
    x = np.load(path + ".input.npy")
    ref = np.load(path + ".logits.npy")
    net = mpq.Net.load_onnx(path)
    out = net.forward(x, ref.shape[1])
    diff = float(np.abs(out - ref).max())
    scale = float(np.abs(ref).max())
    print("%s: max |logit - torch| = %.3g (largest |logit| %.3g)" % (name, diff, scale))
    assert scale > 0.1  # logits that compare meaningfully
    assert diff <= 1e-4 * max(1.0, scale)


def test_fashion_cnn_layers_as_builtin():
    onnx_model = mpq.Model.load_onnx(model_path("fashion_cnn"))
    builtin = mpq.Net.named("fashion-cnn").to_model()
    assert len(onnx_model) == len(builtin) == 10
    for i in range(len(builtin)):
        a, b = onnx_model.layer(i), builtin.layer(i)
        for key in ("kind", "in_channels", "out_channels", "kernel_h", "stride_h", "pad_h",
                    "groups", "in_h", "in_w", "out_h", "out_w"):
            assert a[key] == b[key], (i, key, a[key], b[key])


def mixed_policy(model):
    """Per-kernel weight bits cycling through 3..8, activation bits 8, 6, 5, 4 by layer."""
    kernels = model.kernel_counts()
    bits = [np.array([3 + (k + i) % 6 for k in range(n)], dtype=np.uint8)
            for i, n in enumerate(kernels)]
    acts = np.array([(8, 6, 5, 4)[i % 4] for i in range(len(kernels))], dtype=np.uint8)
    return mpq.Policy.from_arrays(model, bits, acts)


def ort_available():
    return (shutil.which("node") and ORT_DIR and
            (pathlib.Path(ORT_DIR) / "node_modules/onnxruntime-node").is_dir())


@pytest.mark.parametrize("policy", ["uniform:8,8", "uniform:4,4", "mixed"])
def test_onnx_runtime_agrees_with_mpq_eval(policy, tmp_path):
    if not ort_available():
        pytest.skip("node and onnxruntime-node (MPQ_ORT_DIR) are needed; see .ci/run")
    path = model_path("fashion_cnn")
    spec = policy
    net = mpq.Net.load_onnx(path)
    model = net.to_model()
    if policy == "mixed":
        spec = str(tmp_path / "mixed.json")
        mixed_policy(model).save(spec)
    out = str(tmp_path / "qdq.onnx")
    run_tool("export", "-M", path, "-p", spec, "-o", out)
    images = os.path.join(FASHION, "t10k-images-idx3-ubyte.gz")
    logits_file = str(tmp_path / "ort.f32")
    env = dict(os.environ, NODE_PATH=str(pathlib.Path(ORT_DIR) / "node_modules"))
    r = subprocess.run(["node", str(ROOT / "tests/onnx/run_ort.js"), out, images, "0",
                        logits_file], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    ort = np.fromfile(logits_file, dtype=np.float32).reshape(-1, 10)

    # libmpq's fake-quant path, calibrated as the evaluator (and mpq export) calibrate.
    ds = mpq.Dataset(FASHION)
    net["batch_size"] = 128
    net.calibrate(ds, 4, "minmax")
    net.set_policy(mpq.Policy.from_spec(model, spec))
    x, y = make_models.fashion("test")
    mine = np.concatenate([net.forward(x[i:i + 500, None].astype(np.float32) / 255.0, 10)
                           for i in range(0, len(x), 500)])
    agree = float(np.mean(mine.argmax(1) == ort.argmax(1)))
    diff = float(np.abs(mine - ort).max())
    acc = float(np.mean(mine.argmax(1) == y))
    ev = json.loads(run_tool("eval", "-M", path, "-p", spec, "-s", "test", "--json"))
    print("%s: ONNX Runtime vs libmpq top-1 agreement %.4f over %d images, max |logit diff| "
          "%.3g, libmpq accuracy %.4f, mpq eval %.4f, ORT accuracy %.4f"
          % (policy, agree, len(x), diff, acc, ev["accuracy"], float(np.mean(ort.argmax(1) == y))))
    assert ev["images"] == len(x) == len(ort)
    assert abs(ev["accuracy"] - acc) < 1e-9
    assert agree >= 0.999
