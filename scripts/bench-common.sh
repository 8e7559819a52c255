# Shared preamble of the benchmark scripts (sourced, not run): the SST-2 test split, the
# release binary, a log function and skip checks. Set NAME before sourcing.
#   NAME=lm; source scripts/bench-common.sh
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TEST=../shared/datasets/sst2/test.parquet
BIN=target/release/retort
OUT=target/bench-data/$NAME
log() { echo "bench-$NAME: $*" >&2; }
skip() { log "skipped: $*"; exit 0; }

[[ -f $TEST ]] || skip "$TEST absent"
python3 -c "import pyarrow" 2>/dev/null || skip "python3 with pyarrow is needed"
[[ -x $BIN ]] || cargo build --release >&2
mkdir -p "$OUT"
