#!/usr/bin/env bash
# The GPU check, run on a machine with an NVIDIA GPU (H100/H200, CUDA 13 driver), PyTorch and
# transformers, from the repository root, after `make gpu-bundle` here carried
# target/gpu-check to it:
#   bash scripts/gpu-check.sh [BUNDLE]      (BUNDLE: default target/gpu-check)
# It writes the table to $OUT/gpu-check.md (and gpu-check.json, logs/). DEVICE=cuda:1 picks
# another GPU; QUICK=1 runs small sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
bundle="${1:-target/gpu-check}"
out="${OUT:-out/gpu-check}"
py="${PYTHON:-python3}"

[[ -f "$bundle/retort-cuda.xz" || -f "$bundle/retort" ]] || {
  echo "error: no retort binary in $bundle" >&2
  echo "hint: run \`make build-cuda gpu-bundle\` on the build machine and bring $bundle along" >&2
  exit 1
}
"$py" -c 'import torch, transformers' 2>/dev/null || {
  echo "error: $py cannot import torch and transformers" >&2
  echo "hint: set PYTHON to an interpreter that has them" >&2
  exit 1
}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
mkdir -p "$out"
exec "$py" scripts/gpu_check.py --bundle "$bundle" --out "$out" --device "${DEVICE:-cuda}" ${QUICK:+--quick}
