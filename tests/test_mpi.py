#!/usr/bin/env python3
"""`mpq search --workers mpi` under mpirun (issue 18): the history equals the single-process run
with the same seed and parallel_proposals; a job killed with SIGKILL resumes from its checkpoint
with another rank count and ends as the uninterrupted run; a worker's evaluator failure stops the
run with the single-process status and message and the history saved; a worker that never answers fails the run after --worker-timeout.

usage: test_mpi.py MPQ_TOOL zoo|fashion   (exit 77 = skipped: no mpirun)
Nothing here depends on timing: the kill only has to land after the first checkpoint and before
the end, which the test checks rather than assumes."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

MPQ = sys.argv[1]
WHICH = sys.argv[2]
MPIRUN = shutil.which("mpirun")
if not MPIRUN:
    print("SKIP: mpirun not found (apt-get install openmpi-bin libopenmpi-dev)")
    sys.exit(77)
MPI = [MPIRUN, "--allow-run-as-root", "--oversubscribe"]
ENV = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", OMP_WAIT_POLICY="passive")
failures = []


def expect(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(args, np=0, timeout=120):
    """Runs mpq (under mpirun -np NP when NP > 0) in its own session; a hang is killed whole."""
    cmd = (MPI + ["-np", str(np), MPQ, "search", "--workers", "mpi"] if np else [MPQ, "search"])
    p = subprocess.Popen(cmd + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=ENV, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        expect(False, f"timed out after {timeout} s: {' '.join(args)}")
    return p.returncode, out, err


def history(d):
    """history.csv without its last column (elapsed seconds, the one wall-clock figure)."""
    with open(os.path.join(d, "history.csv")) as f:
        return [line.rstrip("\n").rsplit(",", 1)[0] for line in f]


def same_history(args, np, tmp, tag, timeout=120):
    rc, _, err = run(args + ["-o", f"{tmp}/{tag}-1"])
    expect(rc == 0, f"{tag} single process: {err[-500:]}")
    rc, _, err = run(args + ["-o", f"{tmp}/{tag}-{np}"], np=np, timeout=timeout)
    expect(rc == 0, f"{tag} -np {np}: {err[-500:]}")
    expect("MPI: rank 0 runs the search, %d worker" % (np - 1) in err, f"{tag}: not farmed out")
    if rc == 0:
        a, b = history(f"{tmp}/{tag}-1"), history(f"{tmp}/{tag}-{np}")
        expect(len(a) > 1 and a == b, f"{tag}: -np {np} history differs from one process")
    return err


def stray(pgid):
    """Processes left in a killed job's process group."""
    out = subprocess.run(["ps", "-eo", "pgid=,pid=,comm="], capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if l.split()[0] == str(pgid)]


def kill_and_resume(tmp):
    base = ["-M", "resnet18", "-m", "haq", "-e", "40", "-q", "--set", "parallel_proposals=4"]
    rc, _, err = run(base + ["-o", f"{tmp}/whole"])
    expect(rc == 0, f"uninterrupted run: {err[-300:]}")
    d = f"{tmp}/killed"
    ckpt = d + "/checkpoint.mpq"
    # 100 ms per evaluation: ~2 s of evaluations after the first checkpoint at episode 4
    p = subprocess.Popen(MPI + ["-np", "3", MPQ, "search", "--workers", "mpi", "-o", d,
                                "--checkpoint-every", "4", "--eval-delay", "100"] + base,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
                         start_new_session=True)
    t0 = time.monotonic()
    while not os.path.exists(ckpt) and p.poll() is None and time.monotonic() - t0 < 60:
        time.sleep(0.02)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    time.sleep(0.5)
    left = stray(p.pid)
    for line in left:  # never leave a rank behind, whatever happened
        os.kill(int(line.split()[1]), signal.SIGKILL)
    expect(not left, f"processes left after kill -9 of the job: {left}")
    expect(os.path.exists(ckpt), "no checkpoint before the kill")
    expect(not os.path.exists(d + "/history.csv"), "the killed run had already finished")
    rc, _, err = run(["-M", "resnet18", "-m", "haq", "-o", d, "--resume", "--checkpoint-every", "4",
                      "-q"], np=2)
    expect(rc == 0 and "resumed haq after episode" in err, f"resume with -np 2: {err[-400:]}")
    if rc == 0:
        expect(history(d) == history(f"{tmp}/whole"),
               "killed + resumed with -np 2 differs from the uninterrupted run")


def worker_failure(tmp):
    args = ["-M", "resnet18", "-m", "uniform", "-q", "--eval-fail", "uniform:4,4"]
    rc1, _, err1 = run(args + ["-o", f"{tmp}/fail-1"])
    rc3, _, err3 = run(args + ["-o", f"{tmp}/fail-3"], np=3)

    def error_line(err):
        return [l for l in err.splitlines() if "evaluator failed at episode" in l]

    expect(rc1 == 1 and rc3 != 0, f"failing evaluator: exit {rc1} / {rc3}")
    e1, e3 = error_line(err1), error_line(err3)
    expect(len(e1) == 1 and "injected failure" in e1[0], f"single-process error: {err1[-300:]}")
    expect(e1 == e3, f"worker error differs from the single-process one: {e1} vs {e3}")
    expect(os.path.exists(f"{tmp}/fail-3/history.csv"), "failed MPI run kept no history")
    if os.path.exists(f"{tmp}/fail-3/history.csv") and os.path.exists(f"{tmp}/fail-1/history.csv"):
        a, b = history(f"{tmp}/fail-1"), history(f"{tmp}/fail-3")
        expect(len(a) > 1 and a == b, "failed run: histories differ")


def worker_timeout(tmp):
    """A worker stuck in an evaluation (4 s) against a 1 s timeout: rank 0 stops with MPQ_ERR_IO,
    writes the history and ends the job instead of waiting for it."""
    t0 = time.monotonic()
    rc, _, err = run(["-M", "resnet18", "-m", "random", "-e", "10", "-q", "-o", f"{tmp}/to",
                      "--eval-delay", "4000", "--worker-timeout", "1"], np=3, timeout=60)
    expect(rc != 0 and "within the 1 s timeout" in err, f"worker timeout: {err[-400:]}")
    expect(os.path.exists(f"{tmp}/to/history.csv"), "timed-out run kept no history")
    expect(time.monotonic() - t0 < 30, "rank 0 waited for the stuck worker")


def time_limit(tmp):
    """--time-limit under MPI: a clean stop after a round, best policy and checkpoint kept."""
    rc, _, err = run(["-M", "resnet18", "-m", "haq", "-e", "400", "-q", "-o", f"{tmp}/tl",
                      "--set", "parallel_proposals=2", "--eval-delay", "20", "--time-limit", "2"],
                     np=3, timeout=60)
    expect(rc == 0 and "wall-clock budget of 2 s reached" in err, f"time limit: {err[-400:]}")
    if rc == 0:
        n = len(history(f"{tmp}/tl")) - 1
        expect(0 < n < 400 and n % 2 == 0, f"time limit: {n} episodes (whole rounds of 2)")
        expect(os.path.exists(f"{tmp}/tl/checkpoint.mpq"), "time limit: no checkpoint")


with tempfile.TemporaryDirectory() as tmp:
    if WHICH == "zoo":
        # HAQ: 4 proposals per agent snapshot; random and ilp: all independent evaluations at once
        err = same_history(["-M", "resnet18", "-m", "haq", "-e", "24", "-q",
                            "--set", "parallel_proposals=4"], 3, tmp, "haq")
        same_history(["-M", "mobilenetv2", "-m", "random", "-e", "30", "-q"], 3, tmp, "random")
        same_history(["-M", "resnet18", "-m", "ilp", "-e", "250", "-q"], 3, tmp, "ilp")
        kill_and_resume(tmp)
        worker_failure(tmp)
        worker_timeout(tmp)
        time_limit(tmp)
    else:
        data = "/usr/share/datasets/fashion-mnist"
        if not os.path.exists(data + "/train-images-idx3-ubyte.gz"):
            print("SKIP: no Fashion-MNIST in " + data + " (apt-get install dataset-fashion-mnist)")
            sys.exit(77)
        net = tmp + "/tiny.mpqnet"
        r = subprocess.run([MPQ, "train", "-n", "fashion-tiny", "-e", "1", "-q", "-o", net],
                           capture_output=True, text=True, env=ENV, timeout=600)
        expect(r.returncode == 0, f"train fashion-tiny: {r.stderr[-300:]}")
        if r.returncode == 0:
            same_history(["-M", net, "-m", "haq", "-e", "6", "-q", "--eval-set", "limit=500",
                          "--set", "parallel_proposals=3"], 3, tmp, "tiny-haq")
            same_history(["-M", net, "-m", "autoq", "-e", "4", "-q", "--eval-set", "limit=500",
                          "--set", "parallel_proposals=2", "--set", "autoq_llc=1"], 3, tmp,
                         "tiny-autoq")

if failures:
    print(f"{len(failures)} failure(s)")
    sys.exit(1)
print("ok")
