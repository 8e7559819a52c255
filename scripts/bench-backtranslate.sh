#!/usr/bin/env bash
# Back-translation benchmark (part of `make bench`): the `backtranslate` stage (Apertium,
# English -> Spanish -> English) on the SST-2 test sentences against the raw `apertium`
# command on the same lines, and its speed-up with 2 processes. Prints a markdown table.
# Needs ../shared/datasets, Apertium with eng-spa, and python3 with pyarrow (to write the raw
# command's input); skipped otherwise.
set -euo pipefail
NAME=backtranslate
source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"
RUNS=${BENCH_RUNS:-3}
command -v apertium >/dev/null || skip "apertium is not installed"

# The lines exactly as the stage sends them (a final mark added where there is none).
python3 - "$TEST" "$OUT/lines.txt" <<'PY'
import sys, pyarrow.parquet as pq
texts = pq.read_table(sys.argv[1], columns=["text"]).column("text").to_pylist()
with open(sys.argv[2], "w") as f:
    for t in texts:
        t = " ".join(t.split())
        f.write(t + ("" if t[-1:] in ".!?" else " .") + "\n")
PY
LINES=$(wc -l <"$OUT/lines.txt")

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }
calc() { awk "BEGIN { print $1 }"; }

raw=()
for _ in $(seq "$RUNS"); do
  t0=$(now)
  apertium -u eng-spa <"$OUT/lines.txt" >"$OUT/es.txt"
  apertium -u spa-eng <"$OUT/es.txt" >"$OUT/back.txt"
  raw+=("$(calc "$(now) - $t0")")
done
RAW=$(printf '%s\n' "${raw[@]}" | median)

stage() { # processes threads -> seconds (median)
  local ts=()
  for _ in $(seq "$RUNS"); do
    rm -rf "$OUT/stage"
    t0=$(now)
    "$BIN" stage backtranslate --input "$TEST" --output "$OUT/stage" --threads "$2" \
      --batch-size 4096 --set lines_per_call=$(( (LINES + 1) / 2 )) --set processes="$1" --quiet >&2
    ts+=("$(calc "$(now) - $t0")")
  done
  printf '%s\n' "${ts[@]}" | median
}
ONE=$(stage 1 1)
TWO=$(stage 2 2)

rate() { printf '%.0f' "$(calc "$LINES / $1")"; }
echo "| back-translation, $LINES SST-2 test lines, eng→spa→eng | seconds | lines/s | vs raw |"
echo "|---|---:|---:|---:|"
echo "| raw \`apertium\` (one process per direction, in turn) | $(printf '%.2f' "$RAW") | $(rate "$RAW") | 100% |"
echo "| \`retort stage backtranslate\`, 1 process | $(printf '%.2f' "$ONE") | $(rate "$ONE") | $(printf '%.0f' "$(calc "100 * $RAW / $ONE")")% |"
echo "| \`retort stage backtranslate\`, 2 processes | $(printf '%.2f' "$TWO") | $(rate "$TWO") | speed-up ×$(printf '%.2f' "$(calc "$ONE / $TWO")") |"
