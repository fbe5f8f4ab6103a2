#!/usr/bin/env python3
"""ABI gate: the version script, the MPQ_API declarations and libmpq.so's dynamic symbols must be
the same set, every export must carry the mpq_ prefix and have a user in examples/, docs/, tools/
or the Python package, and the soname must be the expected one."""
import pathlib
import re
import subprocess
import sys


def main():
    if len(sys.argv) != 5:
        print("usage: check_symbols.py MAP INCLUDE_DIR LIBRARY EXPECTED_SONAME")
        return 2
    map_path, include_dir, library, soname = sys.argv[1:]
    map_text = re.sub(r"/\*.*?\*/", "", pathlib.Path(map_path).read_text(), flags=re.S)
    in_map = set(re.findall(r"^\s*(mpq_\w+)\s*;", map_text, flags=re.M))
    declared = set()
    for header in sorted(pathlib.Path(include_dir).glob("*.h")):
        text = re.sub(r"/\*.*?\*/", "", header.read_text(), flags=re.S)
        text = re.sub(r"//[^\n]*", "", text)
        for decl in re.findall(r"\bMPQ_API\b([^;{]*?)\(", text):
            name = re.findall(r"(\w+)\s*$", decl)
            if name and name[0] not in ("__attribute__", "__declspec"):
                declared.add(name[0])
    nm = subprocess.run(["nm", "-D", "--defined-only", library], capture_output=True, text=True,
                        check=True).stdout
    exported = set()
    for line in nm.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in "TDBRVW":
            exported.add(parts[2].split("@")[0])
    exported = {s for s in exported if not re.fullmatch(r"MPQ_\d+\.\d+", s)}
    failures = []
    for label, a, b in (("in the map but not declared MPQ_API", in_map, declared),
                        ("declared MPQ_API but not in the map", declared, in_map),
                        ("exported but not in the map", exported, in_map),
                        ("in the map but not exported", in_map, exported)):
        diff = sorted(a - b)
        if diff:
            failures.append(f"{label}: {', '.join(diff)}")
    bad_prefix = sorted(s for s in exported if not s.startswith("mpq_"))
    if bad_prefix:
        failures.append("exported without the mpq_ prefix: " + ", ".join(bad_prefix))
    # Every export is public API with a user a reader can find (issue 17): an example program,
    # the docs, the mpq tool or the Python package names it.
    root = pathlib.Path(map_path).resolve().parent.parent
    users = [p for pattern in ("examples/*.c", "docs/*.md", "README.md", "tools/*.c",
                               "bindings/python/mpq/*.py") for p in root.glob(pattern)]
    text = "\n".join(p.read_text(errors="replace") for p in users)
    unused = sorted(s for s in in_map if not re.search(r"\b" + s + r"\b", text))
    if unused:
        failures.append("exported but used in no example, doc, tool or Python module: " +
                        ", ".join(unused))
    dyn = subprocess.run(["readelf", "-d", library], capture_output=True, text=True,
                         check=True).stdout
    found = re.findall(r"\(SONAME\).*\[(.*)\]", dyn)
    if found != [soname]:
        failures.append(f"soname is {found}, expected {soname}: bump deliberately or fix")
    for f in failures:
        print("FAIL:", f)
    print(f"{len(in_map)} symbols in map, {len(declared)} declared, {len(exported)} exported")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
