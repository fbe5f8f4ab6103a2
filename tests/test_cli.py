#!/usr/bin/env python3
"""Command-line contract of `mpq`: help, version, and exit code 2 for usage errors."""
import subprocess
import sys

mpq = sys.argv[1]
failures = []


def run(*args):
    return subprocess.run([mpq, *args], capture_output=True, text=True)


def expect(cond, what):
    if not cond:
        failures.append(what)


r = run("--help")
expect(r.returncode == 0 and "Commands:" in r.stdout and "version" in r.stdout, "--help")
r = run("version")
expect(r.returncode == 0 and r.stdout.startswith("mpq 0."), f"version: {r.stdout!r}")
r = run("--version")
expect(r.returncode == 0 and "library" in r.stdout, "--version")
r = run("frobnicate")
expect(r.returncode == 2 and "unknown command 'frobnicate'" in r.stderr, f"unknown: {r.stderr!r}")
r = run("--bogus")
expect(r.returncode == 2 and "unknown option" in r.stderr, "unknown option")
r = run()
expect(r.returncode == 2, "no command")
r = run("help", "version")
expect(r.returncode == 0 and "Usage: mpq version" in r.stdout, "help version")
r = run("version", "extra")
expect(r.returncode == 2, "version extra")
for line in run("--help").stdout.splitlines():
    parts = line.split()
    if line.startswith("  ") and parts and parts[0].isalpha() and parts[0] not in ("help",):
        if not parts[0].startswith("-"):
            h = run(parts[0], "--help")
            expect(h.returncode == 0 and "Usage: mpq " + parts[0] in h.stdout,
                   f"{parts[0]} --help")
for f in failures:
    print("FAIL:", f)
print(f"{0 if failures else 1} passed, {1 if failures else 0} failed")
sys.exit(1 if failures else 0)
