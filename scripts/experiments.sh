#!/usr/bin/env bash
# The experiment of docs/RESULTS.md: `retort experiment` (fast CNN student, 3 seeds, EDA
# settings by training size as the EDA paper recommends) on SST-2, TREC and CR at N=500 and
# on the full training sets, two runs side by side with one thread each. Every finished step
# is reused, so an interrupted run continues. Then prints the summary table.
#
#   bash scripts/experiments.sh [OUT]     # default OUT: target/experiments
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${1:-target/experiments}
D=../shared/datasets
[[ -d $D ]] || { echo "error: $D is absent" >&2; exit 1; }
cargo build --release >&2
mkdir -p "$OUT"
job() { # set size [extra flags]
  local set=$1 size=$2; shift 2
  RAYON_NUM_THREADS=1 target/release/retort experiment --train "$D/$set/train_$size.parquet" \
    --test "$D/$set/test.parquet" --out "$OUT/$set-$size$([[ $# -gt 0 ]] && echo -fresh)" \
    --seeds 3 --quiet "$@" >"$OUT/$set-$size.log" 2>&1
  echo "done: $set $size $*" >&2
}
( job cr 500; job sst2 500; job trec full; job cr 500 --fresh-copies ) &
( job trec 500; job cr full; job sst2 full; job trec 500 --fresh-copies ) &
wait
python3 scripts/summarize_experiments.py "$OUT"
