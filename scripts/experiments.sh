#!/usr/bin/env bash
# The study of docs/RESULTS.md: `retort experiment` with its defaults (CNN student from scratch,
# EDA settings by training size, a dev split choosing epochs and `full`, the MiniLM `distill`
# teacher when `make assets` has fetched it) on SST-2, TREC and CR, with the rest of each
# `train_full` as the unlabeled pool of `semi` (labels dropped). Two runs side by side with one
# thread each; every finished step is reused, so an interrupted study continues. Then prints
# the summary: per set and averaged over sets, the paired differences with 95% intervals, and
# the targets of issue 13.
#
#   bash scripts/experiments.sh [OUT]       # default OUT: target/experiments
#   SEEDS=5 SIZES="500 2000" SETS="sst2 trec cr" RETORT=target/debug/retort bash scripts/experiments.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${1:-target/experiments}
D=${DATASETS:-../shared/datasets}
SEEDS=${SEEDS:-5}
SIZES=${SIZES:-500}
SETS=${SETS:-sst2 trec cr}
[[ -d $D ]] || { echo "error: $D is absent (the study reads ../shared/datasets)" >&2; exit 1; }
if [[ -z ${RETORT:-} ]]; then
  cargo build --release >&2
  RETORT=target/release/retort
fi
mkdir -p "$OUT/pools"
python3 - "$D" "$OUT/pools" "$SETS" "$SIZES" <<'PY'
import sys, pyarrow as pa, pyarrow.parquet as pq
from pathlib import Path
data, pools, sets, sizes = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()
for s in sets:
    full = pq.read_table(data / s / "train_full.parquet")
    test = set(t.strip().lower() for t in pq.read_table(data / s / "test.parquet")["text"].to_pylist())
    for n in sizes:
        out = pools / f"{s}-{n}.parquet"
        if out.exists() or n == "full":
            continue
        train = set(pq.read_table(data / s / f"train_{n}.parquet")["text"].to_pylist())
        keep = [i for i, t in enumerate(full["text"].to_pylist())
                if t not in train and t.strip().lower() not in test]
        pool = full.take(keep).select(["id", "text"])
        pq.write_table(pool, out)
        print(f"pool {s} N={n}: {pool.num_rows} unlabeled rows", file=sys.stderr)
PY
jobs=()
for size in $SIZES; do for set in $SETS; do jobs+=("$set $size"); done; done
job() { # set size
  local set=$1 size=$2 pool=()
  [[ -f $OUT/pools/$set-$size.parquet ]] && pool=(--unlabeled "$OUT/pools/$set-$size.parquet")
  RAYON_NUM_THREADS=1 "$RETORT" experiment --train "$D/$set/train_$size.parquet" \
    --test "$D/$set/test.parquet" --out "$OUT/$set-$size" --seeds "$SEEDS" --quiet "${pool[@]}" \
    >"$OUT/$set-$size.log" 2>&1 || echo "failed: $set $size (see $OUT/$set-$size.log)" >&2
  echo "done: $set $size" >&2
}
for ((i = 0; i < ${#jobs[@]}; i += 2)); do
  job ${jobs[i]} &
  [[ $((i + 1)) -lt ${#jobs[@]} ]] && job ${jobs[i + 1]} &
  wait
done
python3 scripts/summarize_experiments.py "$OUT"
