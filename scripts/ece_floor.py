#!/usr/bin/env python3
"""The ECE a perfectly calibrated model shows by chance on a finite test set (standard library
only): each row's confidence is drawn uniformly in [1/classes, 1] and the row is correct with
exactly that probability, so the true calibration error is 0; the 15-bin ECE that retort
reports (docs/RESULTS.md) is measured on such samples. It is the floor under which no
difference in ECE can be seen on a test set of that size.

    python3 scripts/ece_floor.py            # the test sets of ../shared/datasets
    python3 scripts/ece_floor.py 1752:2 500:6
"""

import random
import statistics
import sys


def ece(conf, correct, bins=15):
    total = 0.0
    n = len(conf)
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        idx = [i for i, c in enumerate(conf) if (c > lo or b == 0) and c <= hi]
        if idx:
            acc = sum(correct[i] for i in idx) / len(idx)
            mean_conf = sum(conf[i] for i in idx) / len(idx)
            total += len(idx) / n * abs(acc - mean_conf)
    return total


def floor(rows, classes, draws=200, seed=0):
    rng = random.Random(seed)
    values = []
    for _ in range(draws):
        conf = [rng.uniform(1 / classes, 1) for _ in range(rows)]
        correct = [rng.random() < c for c in conf]
        values.append(ece(conf, correct))
    return statistics.mean(values), statistics.stdev(values)


def main():
    cases = sys.argv[1:] or ["1752:2", "452:2", "500:6"]
    print("| test rows | classes | ECE of a calibrated model (%), mean ± sd over 200 draws |")
    print("|---|---|---|")
    for case in cases:
        rows, classes = (int(x) for x in case.split(":"))
        m, sd = floor(rows, classes)
        print(f"| {rows} | {classes} | {100 * m:.2f} ± {100 * sd:.2f} |")


if __name__ == "__main__":
    main()
