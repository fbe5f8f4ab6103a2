#!/usr/bin/env python3
"""Joins the results.csv of several bench-signal processes (each scored a range of the same
policies, -r) and prints, per episode-signal setting, the Spearman rank correlation between the
episode scores and the final fine-tuned test top-1, with the mean seconds per evaluation.

Usage: python3 bench/signal_merge.py OUT_A/results.csv OUT_B/results.csv ...
Standard library only (no SciPy): ranks with ties averaged, Pearson on the ranks."""
import csv
import sys


def ranks(xs):
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2.0
        i = j + 1
    return r


def spearman(x, y):
    rx, ry = ranks(x), ranks(y)
    n = len(x)
    mx, my = sum(rx) / n, sum(ry) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    return sxy / (sxx * syy) ** 0.5 if sxx > 0 and syy > 0 else float("nan")


def main(paths):
    rows, settings = {}, []
    for path in paths:
        with open(path) as f:
            reader = csv.DictReader(f)
            for c in reader.fieldnames[3:]:
                if not c.startswith("seconds ") and c not in settings:
                    settings.append(c)
            for r in reader:
                key = r["source"].split()[0]  # pNN: the policy's file in the run
                row = rows.setdefault(key, {})
                if r["final_test"] not in ("nan", "-nan"):
                    row["final_test"] = r["final_test"]
                    row["latency_ratio"] = r["latency_ratio"]
                for c, v in r.items():
                    if c not in ("source", "final_test", "latency_ratio"):
                        row[c] = v
    # only policies with a final figure (runs with -F, or fine-tunes not reached yet, have none)
    rows = {k: r for k, r in rows.items() if "final_test" in r}
    if len(rows) < 3:
        sys.exit(f"{len(rows)} policies: too few for a correlation")
    keys = sorted(rows)
    final = [float(rows[k]["final_test"]) for k in keys]
    lat = [float(rows[k]["latency_ratio"]) for k in keys]
    print(f"{len(keys)} policies, latency {min(lat):.3f}..{max(lat):.3f} of all-8-bit; final test "
          f"top-1 {100 * min(final):.2f}..{100 * max(final):.2f}% (mean "
          f"{100 * sum(final) / len(final):.2f}%)")
    print(f"{'episode signal (limit=2000 +)':36} {'spearman':>9} {'s/evaluation':>12} "
          f"{'mean score':>10}")
    for s in settings:
        if any(s not in rows[k] for k in keys):
            print(f"{s:36} (not scored for every policy)")
            continue
        score = [float(rows[k][s]) for k in keys]
        secs = [float(rows[k]["seconds " + s]) for k in keys]
        print(f"{s:36} {spearman(score, final):9.3f} {sum(secs) / len(secs):12.2f} "
              f"{100 * sum(score) / len(score):9.2f}%")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
