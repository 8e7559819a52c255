#!/usr/bin/env python3
"""Summary of `retort experiment` folders named SET-N (standard library only): per set and
size, each setting's accuracy (mean ± sd over seeds) and its paired difference from `gold` with
a 95% t interval; then the differences averaged over sets, against the targets of issue 13.

    python3 scripts/summarize_experiments.py target/experiments
"""

import json
import statistics
import sys
from pathlib import Path

SETTINGS = [
    "gold", "augmented", "self-distill", "ensemble", "distill", "distill-strong",
    "distill-wordnet", "distill-replace", "distill-mixed", "full", "semi", "teacher",
]
# Two-sided 95% t quantiles by degrees of freedom.
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def interval(diffs):
    m = statistics.mean(diffs)
    if len(diffs) < 2:
        return m, None
    half = T95.get(len(diffs) - 1, 1.96) * statistics.stdev(diffs) / len(diffs) ** 0.5
    return m, (m - half, m + half)


def fmt(m, ci):
    return f"{m:+.2f}" + (f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "")


def by_seed(rows, setting, key="accuracy"):
    return {r["seed"]: r[key] * 100 for r in rows if r["setting"] == setting}


def paired(rows, a, b, key="accuracy"):
    x, y = by_seed(rows, a, key), by_seed(rows, b, key)
    return [x[s] - y[s] for s in sorted(x) if s in y]


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "target/experiments")
    runs = {}
    print("| set | N | setting | seeds | accuracy | Δ vs gold [95% CI] | macro-F1 | ECE |")
    print("|---|---|---|---|---|---|---|---|")
    for d in sorted(p for p in root.iterdir() if (p / "results.json").exists()):
        rows = json.loads((d / "results.json").read_text())
        runs[d.name] = rows
        name, _, size = d.name.partition("-")
        for s in SETTINGS:
            acc = list(by_seed(rows, s).values())
            if not acc:
                continue
            f1 = list(by_seed(rows, s, "macro_f1").values())
            ece = list(by_seed(rows, s, "ece").values())
            sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0
            delta = "-" if s == "gold" else fmt(*interval(paired(rows, s, "gold")))
            print(
                f"| {name} | {size} | {s} | {len(acc)} | {statistics.mean(acc):.2f} ± {sd(acc):.2f} "
                f"| {delta} | {statistics.mean(f1):.2f} | {statistics.mean(ece):.2f} |"
            )
    print()
    print("Averaged over sets (each set's mean paired difference, then the mean of those):")
    print()
    print("| N | comparison | sets | mean Δ | per set | target |")
    print("|---|---|---|---|---|---|")
    targets = [
        ("full", "gold", "≥ +4.0"),
        ("semi", "gold", "≥ +6.0"),
        ("self-distill", "augmented", "≥ +1.0"),
        ("augmented", "gold", "(EDA paper: +3.0)"),
        ("distill", "gold", "-"),
        ("distill-wordnet", "gold", "-"),
        ("distill-replace", "gold", "-"),
        ("distill-mixed", "gold", "-"),
    ]
    sizes = sorted({n.partition("-")[2] for n in runs})
    for size in sizes:
        for a, b, target in targets:
            per = {}
            for name, rows in runs.items():
                if name.partition("-")[2] == size:
                    diffs = paired(rows, a, b)
                    if diffs:
                        per[name.partition("-")[0]] = statistics.mean(diffs)
            if per:
                cells = ", ".join(f"{k} {v:+.2f}" for k, v in sorted(per.items()))
                print(
                    f"| {size} | {a} − {b} | {len(per)} | {statistics.mean(per.values()):+.2f} "
                    f"| {cells} | {target} |"
                )
        ece = {}
        for name, rows in runs.items():
            if name.partition("-")[2] == size:
                f, g = by_seed(rows, "full", "ece"), by_seed(rows, "gold", "ece")
                if f and g:
                    ece[name.partition("-")[0]] = statistics.mean(f.values()) / statistics.mean(
                        g.values()
                    )
        if ece:
            cells = ", ".join(f"{k} {v:.2f}" for k, v in sorted(ece.items()))
            print(
                f"| {size} | ECE full / gold | {len(ece)} | {statistics.mean(ece.values()):.2f} "
                f"| {cells} | ≤ 0.5 |"
            )


if __name__ == "__main__":
    main()
