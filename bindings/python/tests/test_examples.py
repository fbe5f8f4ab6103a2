"""The PyTorch example and the notebook, in their quick modes (skipped without python3-torch)."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import SOURCE_ROOT, requires

pytestmark = requires("mpq_quantizer_apply", "mpq_search_run", "mpq_fq_tensor")

EXAMPLES = SOURCE_ROOT / "examples" / "python"
DATA = "/usr/share/datasets/fashion-mnist"

pytest.importorskip("torch", reason="python3-torch is not installed")
if not os.path.exists(os.path.join(DATA, "train-images-idx3-ubyte.gz")):
    pytest.skip("dataset-fashion-mnist is not installed", allow_module_level=True)


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE_ROOT / "bindings" / "python"),
                                                    e.get("PYTHONPATH")]))
    e["PYTHONDONTWRITEBYTECODE"] = "1"
    return e


def test_torch_fashion_quick(tmp_path):
    out = tmp_path / "policy.json"
    r = subprocess.run([sys.executable, str(EXAMPLES / "torch_fashion.py"), "--quick",
                        "--out", str(out)], env=env(), cwd=str(tmp_path),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "test accuracy:" in r.stdout and "latency" in r.stdout
    doc = json.loads(out.read_text())
    assert doc["format"] == "mpq-policy" and doc["model"] == "fashion_cnn"
    assert [layer["name"] for layer in doc["layers"]] == ["conv1", "conv2", "fc1", "fc2"]
    assert 0.5 < doc["figures"]["accuracy"] <= 1.0


def notebook_script():
    nb = json.loads((EXAMPLES / "notebook.ipynb").read_text())
    lines = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        for line in "".join(cell["source"]).splitlines():
            # IPython magics and shell escapes have no meaning in a plain script.
            lines.append("pass" if line.lstrip().startswith(("%", "!")) else line)
        lines.append("")
    return "\n".join(lines)


def test_notebook_runs(tmp_path):
    e = env()
    e.update(MPQ_NOTEBOOK_QUICK="1", MPQ_NOTEBOOK_DIR=str(EXAMPLES),
             MPQ_NOTEBOOK_OUT=str(tmp_path / "nb_policy.json"), MPLBACKEND="Agg")
    nbconvert = shutil.which("jupyter-nbconvert")
    if nbconvert:
        cmd = [nbconvert, "--to", "notebook", "--execute", "--output-dir", str(tmp_path),
               str(EXAMPLES / "notebook.ipynb")]
    else:
        script = tmp_path / "notebook_cells.py"
        script.write_text(notebook_script())
        cmd = [sys.executable, str(script)]
    r = subprocess.run(cmd, env=e, cwd=str(tmp_path), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "nb_policy.json").exists()
    if not nbconvert:
        assert "test accuracy" in r.stdout and "Pareto" not in r.stderr


def test_torch_search_quick(tmp_path):
    """examples/python/torch_search.py: the mpq.torch flow (describe, evaluator, HAQ and
    AutoQ, quantized) in under 80 lines."""
    script = EXAMPLES / "torch_search.py"
    assert len(script.read_text().splitlines()) < 80
    r = subprocess.run([sys.executable, str(script), "--quick"], env=env(), cwd=str(tmp_path),
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    for method in ("haq", "autoq"):
        line = next(l for l in r.stdout.splitlines() if l.startswith(method + ":"))
        ratio = float(line.split(" at ")[1].split(" x ")[0])
        assert ratio <= 0.5 + 1e-9, line  # within the latency budget
    assert "autoq policy, test top-1" in r.stdout and "float model, test top-1" in r.stdout
    assert "episode 4/4" in r.stderr  # progress=True
