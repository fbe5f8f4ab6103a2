#!/usr/bin/env python3
"""Speedup of `mpq search --workers mpi` (issue 18) with a sleep-padded evaluator.

Every evaluation of the zoo model's closed-form proxy is padded with --eval-delay MS of sleep,
which emulates a slow evaluation without using a core (the machine has 2): the ranks then
compete only for the agent's and the messages' CPU time, as on a cluster whose workers have
their own cores. Baseline, measured in the same run: the one-process search (no MPI) with the
same delay; each line prints the search's time (the history's elapsed seconds; mpirun's
start-up and the ranks' set-up apart), the speedup against it, the model's prediction
(docs/scaling.md) and the messages per episode rank 0 counted.

usage: bench_mpi.py MPQ_TOOL [DELAY_MS [EPISODES]]     (defaults 50 and 40)
Ranks 1, 2, 3, 4 (4 oversubscribed): 1 is the one-process run; N > 1 is rank 0 + N-1 workers."""
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

MPQ = sys.argv[1]
DELAY = int(sys.argv[2]) if len(sys.argv) > 2 else 50
EPISODES = int(sys.argv[3]) if len(sys.argv) > 3 else 40
MPIRUN = shutil.which("mpirun")
ENV = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", OMP_WAIT_POLICY="passive")

CASES = [  # label, arguments, proposals per round (None: all independent evaluations)
    ("haq P=1", ["-m", "haq", "--set", "parallel_proposals=1"], 1),
    ("haq P=4", ["-m", "haq", "--set", "parallel_proposals=4"], 4),
    ("random", ["-m", "random"], None),
]


def run(args, np, out):
    cmd = [MPQ, "search"]
    if np > 1:
        cmd = [MPIRUN, "--allow-run-as-root", "--oversubscribe", "-np", str(np), MPQ, "search",
               "--workers", "mpi"]
    t0 = time.monotonic()
    r = subprocess.run(cmd + ["-M", "resnet18", "-e", str(EPISODES), "-q", "-o", out,
                              "--checkpoint-every", "0", "--eval-delay", str(DELAY)] + args,
                       capture_output=True, text=True, env=ENV)
    wall = time.monotonic() - t0
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd + args)}\n{r.stderr[-800:]}")
    # the search's own time (the last record's elapsed_s, in ms): mpirun's start-up and the
    # ranks' set-up apart
    with open(out + "/history.csv") as f:
        last = f.read().splitlines()[-1]
    search_s = float(last.rsplit(",", 1)[1])
    m = re.search(r"MPI: (\d+) evaluations on \d+ workers in (\d+) batches, (\d+) messages "
                  r"\((\d+) bytes\), ([\d.]+) messages per episode", r.stderr)
    with open(out + "/history.csv") as f:
        rows = f.read().splitlines()[1:]
    evals = int(rows[-1].split(",")[18]) if rows else 0  # the record's evaluations column
    return search_s, wall - search_s, m, evals


def main():
    if not MPIRUN:
        print("SKIP: mpirun not found (apt-get install openmpi-bin)")
        return 77
    print(f"resnet18 proxy + {DELAY} ms sleep per evaluation, {EPISODES} episodes; "
          f"baseline: the one-process run")
    print(f"{'case':10} {'ranks':>5} {'search s':>8} {'start s':>7} {'speedup':>8} {'model':>6} "
          f"{'evals':>6} {'msgs/ep':>8} {'bytes/job':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for label, args, P in CASES:
            base = None
            for np in (1, 2, 3, 4):
                wall, start, m, evals = run(args, np, f"{tmp}/{label.replace(' ', '_')}-{np}")
                if np == 1:
                    base = wall
                    # agent + bookkeeping per episode: what the delay does not explain
                    t_a = max(wall - evals * DELAY / 1000.0, 0.0) / EPISODES
                    t_e = evals * DELAY / 1000.0 / EPISODES  # evaluation per episode
                W = np - 1
                if np == 1:
                    pred = 1.0
                else:
                    p = P if P else EPISODES
                    # per episode: agent + makespan of p evaluations on W workers, per episode
                    pred = (t_a + t_e) / (t_a + t_e * math.ceil(p / W) / p)
                msgs = float(m.group(5)) if m else 0.0
                bpj = int(m.group(4)) / max(int(m.group(3)), 1) if m else 0
                print(f"{label:10} {np:5d} {wall:8.2f} {start:7.2f} {base / wall:8.2f} {pred:6.2f} "
                      f"{evals:6d} {msgs:8.2f} {bpj:9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
