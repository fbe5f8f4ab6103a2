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
commands = run("--help").stdout

# The manual is generated from this text; a subcommand that runs instead of printing its help
# (getopt state leaking between subcommands) would hang the build, hence the timeout.
r = subprocess.run([mpq, "help", "--all"], capture_output=True, text=True, timeout=60)
listed = [l.split()[0] for l in commands.splitlines()
          if l.startswith("  ") and l.split() and not l.split()[0].startswith("-")]
for name in listed:
    if name != "help":
        expect(f"Usage: mpq {name}" in r.stdout, f"help --all lacks {name}")

if "  cost " in commands:
    # Numbers pinned from the BISMO cloud model; HAQ's own table gives 0.3966 for the same policy.
    r = run("cost", "--model", "mobilenetv2", "--hw", "bismo-cloud", "--policy", "uniform:4,4", "--csv")
    lines = r.stdout.strip().splitlines()
    expect(r.returncode == 0 and lines[0].startswith("layer,name,shape"), f"cost csv: {r.stderr!r}")
    rows = [l for l in lines[1:] if l[:1].isdigit()]
    expect(len(rows) == 53, f"cost csv rows: {len(rows)}")
    total = [l for l in lines if l.startswith("total,")]
    expect(total and abs(float(total[0].split(",")[-1]) - 0.4029) < 1e-3, f"cost ratio: {total}")
    r = run("cost", "--model", "mobilenetv2", "--hw", "tpu", "--policy", "uniform:4,4")
    expect(r.returncode == 1 and "bismo-cloud" in r.stderr, f"cost unknown hw: {r.stderr!r}")
    r = run("cost", "--model", "mobilenetv2", "--hw", "bismo-cloud", "--policy", "uniform:0,4")
    expect(r.returncode == 1, "cost bits 0")
    r = run("cost", "--model", "mobilenetv2", "--hw", "bismo-cloud", "--batch", "0")
    expect(r.returncode == 2, "cost batch 0")

if "  search " in commands:
    import csv
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        # An impossible budget is refused before any episode: the minimum reachable value, and
        # no (empty) list of history files.
        r = run("search", "-M", "resnet18", "-b", "latency:0.05", "-q", "-o", tmp + "/x")
        expect(r.returncode == 1 and "minimum reachable" in r.stderr
               and "history so far" not in r.stderr, f"search impossible budget: {r.stderr!r}")

        # -e on --resume raises the episode target of a finished run; the extended history equals
        # an uninterrupted run of the same seed (HAQ's 20 episodes are its warm-up, uniform and
        # random do not depend on the episode count).
        def history(d):
            with open(d + "/history.csv") as f:
                return [{k: v for k, v in row.items() if k != "elapsed_s"}
                        for row in csv.DictReader(f)]

        for method in ("haq", "random", "uniform"):
            base = ["search", "-M", "resnet18", "-m", method, "-q", "--set", "warmup=20"]
            a, b = f"{tmp}/{method}-a", f"{tmp}/{method}-b"
            r1 = run(*base, "-e", "10", "-o", a)
            r2 = run(*base, "-e", "20", "-o", a, "--resume")
            r3 = run(*base, "-e", "20", "-o", b)
            ok = r1.returncode == r2.returncode == r3.returncode == 0
            expect(ok and "episode target 20" in r2.stderr, f"search resume -e {method}: "
                   f"{r1.stderr!r} {r2.stderr!r} {r3.stderr!r}")
            if ok:
                ha, hb = history(a), history(b)
                expect(len(ha) == len(hb) == 20 and ha == hb, f"search resume -e {method}: "
                       f"{len(ha)} vs {len(hb)} episodes, equal: {ha == hb}")

if "  train " in commands and "  eval " in commands:
    import json
    import os
    import tempfile

    data = "/usr/share/datasets/fashion-mnist"
    if os.path.exists(data + "/train-images-idx3-ubyte.gz"):
        with tempfile.TemporaryDirectory() as tmp:
            net = tmp + "/tiny.mpqnet"
            r = run("train", "-n", "fashion-tiny", "-e", "1", "-q", "-o", net)
            expect(r.returncode == 0 and os.path.exists(net), f"train tiny: {r.stderr!r}")
            # int8 inference differs from fake-quant only in rounding: the same predictions.
            r = run("eval", net, "-p", "uniform:8,8", "--int8", "--json")
            ok = r.returncode == 0
            expect(ok, f"eval --int8: {r.stderr!r}")
            if ok:
                res = json.loads(r.stdout)
                expect(res["images"] == 5000 and res["int8"]["agreement"] >= 0.99
                       and abs(res["int8"]["accuracy"] - res["accuracy"]) <= 0.01,
                       f"eval --int8 figures: {res}")
            # Refused before any evaluation runs, naming the layer and kernel.
            r = run("eval", net, "-p", "uniform:16,8", "--int8")
            expect(r.returncode == 1 and "kernel 0 has 16 weight bits" in r.stderr,
                   f"eval --int8 16 bits: {r.stderr!r}")

for f in failures:
    print("FAIL:", f)
print(f"{len(failures)} failed")
sys.exit(1 if failures else 0)
