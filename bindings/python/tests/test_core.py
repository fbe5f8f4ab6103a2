"""Loading, version check, the prototype table, errors and handle lifetimes."""

import gc
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import mpq
from mpq import _lib
from conftest import tiny_model


def test_version_matches_package():
    number = _lib.lib.mpq_version_number()
    assert mpq.version() == "%d.%d.%d" % (number // 10000, number // 100 % 100, number % 100)
    assert mpq.version().split(".")[:2] == mpq.__version__.split(".")[:2]


def test_every_declared_function_is_exported():
    # A full build exports every prototype of the table; a partial one reports the others as
    # missing and the stubs raise UnsupportedError.
    for name in _lib.missing:
        with pytest.raises(mpq.UnsupportedError, match=name):
            getattr(_lib.lib, name)()
    assert mpq.has("mpq_model_zoo")


def _header_declarations():
    """{name: parameter count} of every MPQ_API function in include/mpq/*.h."""
    import re
    headers = pathlib.Path(__file__).resolve().parents[3] / "include" / "mpq"
    if not headers.exists():
        pytest.skip("headers not found next to the bindings")
    decls = {}
    for h in headers.glob("*.h"):
        text = re.sub(r"/\*.*?\*/", " ", h.read_text(), flags=re.S)
        for m in re.finditer(r"MPQ_API[^;{]*?\b(mpq_\w+)\s*\(", text):
            depth, i, params = 1, m.end(), []
            start = i
            while depth:
                c = text[i]
                if c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                elif c == "," and depth == 1:
                    params.append(text[start:i])
                    start = i + 1
                i += 1
            params.append(text[start:i - 1])
            params = [p.strip() for p in params if p.strip() not in ("", "void")]
            decls[m.group(1)] = (len(params), "..." in params)
    return decls


def test_prototypes_declared_once_and_match_headers():
    decls = _header_declarations()
    table = dict(_lib._PROTOTYPES)
    table.update(_lib._VARIADIC)
    unknown = sorted(set(table) - set(decls))
    assert not unknown, unknown
    for name, (_restype, argtypes) in table.items():
        count, variadic = decls[name]
        assert len(argtypes) == count - (1 if variadic else 0), name


def test_library_selected_by_environment(tmp_path):
    code = "import mpq; print(mpq.library_path)"
    env = dict(__import__("os").environ, MPQ_LIBRARY=str(tmp_path / "nonexistent.so"))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       cwd=str(_lib.pathlib.Path(mpq.__file__).parent.parent))
    assert r.returncode != 0
    assert "MPQ_LIBRARY" in r.stderr and "nonexistent.so" in r.stderr


def test_error_carries_status_and_last_error():
    with pytest.raises(mpq.NotFoundError) as info:
        mpq.Model.zoo("resnet9000")
    err = info.value
    assert err.status == 6 and err.status_name == "MPQ_ERR_NOT_FOUND"
    assert "resnet9000" in err.message and "mobilenetv2" in err.message
    assert err.message == mpq.last_error()
    assert isinstance(err, mpq.Error) and isinstance(err, LookupError)


def test_invalid_argument_is_value_error():
    m = mpq.Model("m")
    with pytest.raises(mpq.InvalidArgumentError) as info:
        m.add_conv("bad", 3, 16, 3, groups=2, in_hw=(8, 8))
    assert isinstance(info.value, ValueError)
    assert info.value.status == 1
    assert "groups" in info.value.message


def test_mismatch_error(tiny):
    other = mpq.Model.zoo("resnet18")
    p = mpq.Policy.uniform(other, 4, 4)
    with pytest.raises(mpq.MismatchError):
        mpq.Hardware("bismo-edge").cost(tiny, p)


def test_close_and_context_manager():
    with mpq.Model.zoo("resnet18") as m:
        assert len(m) == 21
    assert m.closed
    with pytest.raises(mpq.StateError, match="Model is closed"):
        len(m)
    m.close()  # idempotent


def test_garbage_collection_frees_handles():
    destroyed = []
    real = _lib.lib.mpq_model_destroy

    class Spy:
        def __call__(self, ptr):
            destroyed.append(ptr.value)
            real(ptr)

    m = tiny_model()
    addr = m._ptr.value
    m._finalizer.detach()
    import weakref
    m._finalizer = weakref.finalize(m, Spy(), _lib.ctypes.c_void_p(addr))
    del m
    gc.collect()
    assert destroyed == [addr]


def test_model_layers_and_weights(tiny, tmp_path):
    assert tiny.layer_names() == ["c1", "c2", "fc"]
    c2 = tiny.layer("c2")
    assert (c2["kind"], c2["out_h"], c2["macs"]) == ("conv", 16, 16 * 32 * 9 * 16 * 16)
    assert list(tiny.kernel_counts()) == [16, 32, 10]
    rng = np.random.default_rng(0)
    w = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    tiny.set_weights("c2", w)
    got, bias = tiny.weights(1)
    assert np.array_equal(got, w) and bias is None
    path = tmp_path / "tiny.mpqm"
    tiny.save(path)
    with mpq.Model.load(path) as again:
        assert np.array_equal(again.weights("c2")[0], w)
        assert again.layers == tiny.layers


STRUCTS = {
    "mpq_param_info": _lib.ParamInfo, "mpq_layer_shape": _lib.LayerShape,
    "mpq_policy_figures": _lib.PolicyFigures, "mpq_hw_cost": _lib.HwCost,
    "mpq_fq_config": _lib.FqConfig, "mpq_fq_layout": _lib.FqLayout,
    "mpq_fq_kmeans_config": _lib.FqKmeansConfig, "mpq_quant_error": _lib.QuantError,
    "mpq_ddpg_info": _lib.DdpgInfo, "mpq_search_record": _lib.SearchRecord,
    "mpq_search_progress": _lib.SearchProgress,
}


@pytest.mark.parametrize("c_name", sorted(STRUCTS))
def test_struct_mirrors_match_headers(c_name):
    """The ctypes structures list the header's fields in the header's order (an inserted or
    reordered field would silently shift every later one)."""
    import re
    headers = pathlib.Path(__file__).resolve().parents[3] / "include" / "mpq"
    if not headers.exists():
        pytest.skip("headers not found next to the bindings")
    text = "\n".join(re.sub(r"/\*.*?\*/", " ", h.read_text(), flags=re.S)
                     for h in headers.glob("*.h"))
    m = re.search(r"typedef struct %s \{(.*?)\} %s;" % (c_name, c_name), text, re.S)
    if m is None:
        pytest.skip("%s not in this checkout's headers" % c_name)
    fields = [re.search(r"(\w+)\s*(\[[^\]]*\])?$", decl.strip()).group(1)
              for decl in m.group(1).split(";") if decl.strip()]
    assert [name for name, _ in STRUCTS[c_name]._fields_] == fields
