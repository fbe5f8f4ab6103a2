"""Installing the package: pip into a fresh venv (offline, Debian's pip and setuptools) and
meson install; the installed package finds the installed library without MPQ_LIBRARY."""

import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import mpq

PKG = pathlib.Path(__file__).resolve().parent.parent  # bindings/python
BUILD_ROOT = os.environ.get("MPQ_BUILD_ROOT")


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("MPQ_LIBRARY", "PYTHONPATH", "LD_LIBRARY_PATH")}
    env.update(extra)
    return env


def _library_file():
    """The built library itself (not a symlink), standing in for an installed copy."""
    return pathlib.Path(mpq.library_path).resolve()


PROBE = ("import mpq, sys; print(mpq.__file__); print(mpq.library_path); "
         "print(len(mpq.search_params()))")


def test_pip_install_into_fresh_venv_finds_installed_library(tmp_path):
    missing = [m for m in ("pip", "setuptools", "venv") if importlib.util.find_spec(m) is None]
    if missing:  # found, not imported: setuptools' distutils hook must stay out of pytest
        pytest.skip("needs %s (apt-get install python3-pip python3-setuptools python3-venv)"
                    % ", ".join(missing))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True)
    src = tmp_path / "src"  # pip builds in place: keep the checkout clean
    shutil.copytree(PKG, src, ignore=shutil.ignore_patterns("tests", "__pycache__", "build",
                                                            "*.egg-info"))
    py = venv / "bin" / "python"
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-build-isolation",
                        "--no-index", str(src)], capture_output=True, text=True,
                       env=_clean_env(), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    libdir = tmp_path / "lib"  # an installed libmpq, on the loader's path
    libdir.mkdir()
    shutil.copy(_library_file(), libdir / "libmpq.so.0.2")
    r = subprocess.run([str(py), "-c", PROBE], capture_output=True, text=True, cwd=tmp_path,
                       env=_clean_env(LD_LIBRARY_PATH=str(libdir)))
    assert r.returncode == 0, r.stderr
    module_file, lib_path, count = r.stdout.split()
    assert module_file.startswith(str(venv)), module_file
    assert pathlib.Path(lib_path).resolve() == (libdir / "libmpq.so.0.2").resolve()
    assert int(count) == len(mpq.search_params())
    site = next((venv / "lib").glob("python3*/site-packages/mpq"))
    assert (site / "py.typed").exists() and (site / "torch.py").exists()
    assert not (site / "_install.py").exists()
    # Without any library the import fails and says how to fix it.
    r = subprocess.run([str(py), "-c", "import mpq"], capture_output=True, text=True,
                       cwd=tmp_path, env=_clean_env())
    assert r.returncode != 0 and "MPQ_LIBRARY" in r.stderr


@pytest.mark.skipif(not BUILD_ROOT or not shutil.which("meson"),
                    reason="needs meson and MPQ_BUILD_ROOT (set by meson test)")
def test_meson_install_puts_package_next_to_library(tmp_path):
    dest = tmp_path / "dest"
    r = subprocess.run(["meson", "install", "-C", BUILD_ROOT, "--no-rebuild", "--quiet",
                        "--destdir", str(dest)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    inits = list(dest.rglob("mpq/__init__.py"))
    assert len(inits) == 1, inits
    pkg = inits[0].parent
    assert (pkg / "py.typed").exists() and (pkg / "torch.py").exists()
    ns = {}
    exec((pkg / "_install.py").read_text(), ns)
    libdir = pathlib.Path(ns["LIBDIR"])
    staged = dest / libdir.relative_to("/")
    assert (staged / "libmpq.so.0.2").exists()
    # The site directory is on the interpreter's sys.path for that prefix.
    site = pathlib.Path("/") / pkg.parent.relative_to(dest)
    r = subprocess.run(["/usr/bin/python3", "-c", "import sys; print('\\n'.join(sys.path))"],
                       capture_output=True, text=True)
    if str(site).startswith("/usr/local/") or str(site).startswith("/usr/lib/"):
        assert str(site) in r.stdout.split(), site
    # Staged, _install.py is redirected to the staged library (what DESTDIR strips).
    (pkg / "_install.py").write_text("LIBDIR = %r\n" % str(staged))
    r = subprocess.run(["/usr/bin/python3", "-c", PROBE], capture_output=True, text=True,
                       cwd=tmp_path, env=_clean_env(PYTHONPATH=str(pkg.parent)))
    assert r.returncode == 0, r.stderr
    module_file, lib_path, _ = r.stdout.split()
    assert module_file == str(pkg / "__init__.py")
    assert pathlib.Path(lib_path).resolve() == (staged / "libmpq.so.0.2").resolve()
