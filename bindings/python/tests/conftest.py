"""Shared fixtures. The package is imported from the source tree; libmpq.so.0.2 comes from
MPQ_LIBRARY (set by meson test), else an installed libmpq, else the newest build*/ directory of
the checkout."""

import os
import pathlib
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
SOURCE_ROOT = pathlib.Path(os.environ.get("MPQ_SOURCE_ROOT", HERE.parent.parent.parent))

import mpq  # noqa: E402


def tool_path():
    """The `mpq` command of the same build as the library."""
    env = os.environ.get("MPQ_TOOL")
    if env:
        return env
    cand = pathlib.Path(mpq.library_path).resolve().parent / "tools" / "mpq"
    return str(cand) if cand.exists() else None


def tiny_model(name="tiny"):
    """A three-layer CNN for 32x32 inputs: small enough for fast searches."""
    m = mpq.Model(name)
    m.add_conv("c1", 3, 16, 3, pad=1, in_hw=(32, 32))
    m.add_conv("c2", 16, 32, 3, stride=2, pad=1, in_hw=(32, 32))
    m.add_fc("fc", 32 * 16 * 16, 10)
    return m


@pytest.fixture
def tiny():
    with tiny_model() as m:
        yield m


@pytest.fixture
def edge():
    with mpq.Hardware("bismo-edge") as hw:
        yield hw


def requires(*functions):
    """Skips a test (or, as ``pytestmark``, a module) on a partial build (-Dmodules=...) whose
    library lacks one of the C functions."""
    absent = [f for f in functions if not mpq.has(f)]
    return pytest.mark.skipif(bool(absent), reason="library built without %s"
                              % ", ".join(absent))
