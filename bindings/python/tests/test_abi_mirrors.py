"""The ctypes mirrors of the public structs against C: abi/struct-sizes.txt (the committed
sizes on x86_64) and the struct-sizes probe compiled from the headers of this build."""

import ctypes
import os
import pathlib
import platform
import subprocess

import pytest

from mpq import _lib
from conftest import SOURCE_ROOT

MIRRORS = {
    "mpq_param_info": _lib.ParamInfo, "mpq_layer_shape": _lib.LayerShape,
    "mpq_policy_figures": _lib.PolicyFigures, "mpq_hw_cost": _lib.HwCost,
    "mpq_fq_config": _lib.FqConfig, "mpq_fq_layout": _lib.FqLayout,
    "mpq_fq_kmeans_config": _lib.FqKmeansConfig, "mpq_quant_error": _lib.QuantError,
    "mpq_ddpg_info": _lib.DdpgInfo, "mpq_int8_report": _lib.Int8Report,
    "mpq_net_layer": _lib.NetLayer, "mpq_search_record": _lib.SearchRecord,
    "mpq_search_progress": _lib.SearchProgress,
}


def _parse(text):
    out = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, size = line.split()
            out[name] = int(size)
    return out


def test_every_mirror_is_in_the_table():
    # A structure class added to _lib.py without an entry here would go unchecked.
    classes = {v for v in vars(_lib).values()
               if isinstance(v, type) and issubclass(v, _lib.SizedStructure)
               and v is not _lib.SizedStructure}
    assert classes == set(MIRRORS.values())


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                    reason="abi/struct-sizes.txt lists x86_64 sizes")
def test_mirrors_match_committed_sizes():
    sizes = _parse((SOURCE_ROOT / "abi" / "struct-sizes.txt").read_text())
    for name, cls in MIRRORS.items():
        assert name in sizes, name
        assert ctypes.sizeof(cls) == sizes[name], (name, ctypes.sizeof(cls), sizes[name])


def test_mirrors_match_compiled_probe():
    probe = os.environ.get("MPQ_STRUCT_SIZES_PROBE")
    if not probe:
        cand = pathlib.Path(_lib.library_path).resolve().parent / "tests" / "struct-sizes"
        probe = str(cand) if cand.exists() else None
    if not probe:
        pytest.skip("struct-sizes probe not built (MPQ_STRUCT_SIZES_PROBE unset)")
    sizes = _parse(subprocess.run([probe], check=True, capture_output=True,
                                  text=True).stdout)
    for name, cls in MIRRORS.items():
        assert ctypes.sizeof(cls) == sizes[name], (name, ctypes.sizeof(cls), sizes[name])
    if platform.machine() in ("x86_64", "AMD64"):
        assert sizes == _parse((SOURCE_ROOT / "abi" / "struct-sizes.txt").read_text())
