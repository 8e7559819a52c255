#!/usr/bin/env python3
"""Summary table of `retort experiment` folders (standard library only).

    python3 scripts/summarize_experiments.py target/experiments
"""

import json
import statistics
import sys
from pathlib import Path

SETTINGS = ["gold", "augmented", "self-distill", "ensemble"]


def cell(values, scale=100.0):
    m = statistics.mean(values) * scale
    s = (statistics.stdev(values) if len(values) > 1 else 0.0) * scale
    return m, s


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "target/experiments")
    print("| set | N | setting | accuracy | Δ vs gold | macro-F1 | NLL | ECE |")
    print("|---|---|---|---|---|---|---|---|")
    for d in sorted(p for p in root.iterdir() if (p / "results.json").exists()):
        rows = json.loads((d / "results.json").read_text())
        name, _, size = d.name.partition("-")
        gold, _ = cell([r["accuracy"] for r in rows if r["setting"] == "gold"])
        for s in SETTINGS:
            of = [r for r in rows if r["setting"] == s]
            acc = cell([r["accuracy"] for r in of])
            f1 = cell([r["macro_f1"] for r in of])
            nll = cell([r["nll"] for r in of], 1.0)
            ece = cell([r["ece"] for r in of])
            print(
                f"| {name} | {size} | {s} | {acc[0]:.2f} ± {acc[1]:.2f} | {acc[0] - gold:+.2f} "
                f"| {f1[0]:.2f} ± {f1[1]:.2f} | {nll[0]:.3f} ± {nll[1]:.3f} "
                f"| {ece[0]:.2f} ± {ece[1]:.2f} |"
            )


if __name__ == "__main__":
    main()
