#!/usr/bin/env bash
# Benchmarks of retort (`make bench`). Prints one markdown table on stdout and saves it to
# target/bench-results.md; progress and build output go to stderr, run logs to
# target/bench-logs/.
#
#   1. single-thread throughput of every augmenter, in-process (benches/bench.rs);
#   2. end-to-end `retort run pipelines/eda.toml` on SST-2 (7,447 sentences) with 1 and 2
#      worker threads: median of BENCH_RUNS runs (default 3), wall clock and CPU time, peak RSS,
#      plus the start-up cost (WordNet load) measured on a 1-row input;
#   3. peak RSS of the same pipeline on generated corpora of 10k, 200k and BENCH_BIG_ROWS
#      (default 2,000,000) rows, written under target/bench-data/; "not growing" compares the
#      biggest with the 200k-row run.
#
# The SST-2 parts are skipped when ../shared/datasets is absent; the generated corpora then
# cycle the sentences of fixtures/reviews.parquet.
#
# Environment: BENCH_RUNS (default 3), BENCH_BIG_ROWS (default 2000000), BENCH_SKIP_BIG=1 to
# skip the big-corpus run.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

SST2=../shared/datasets/sst2/train_full.parquet
FIXTURE=fixtures/reviews.parquet
WORDNET=/usr/share/wordnet
BIN=target/release/retort
DATA=target/bench-data
LOGS=target/bench-logs
RESULTS=target/bench-results.md
RUNS=${BENCH_RUNS:-3}
BIG_ROWS=${BENCH_BIG_ROWS:-2000000}
SMALL_ROWS=10000
MID_ROWS=200000 # memory growth is judged from here: 10k rows do not fill the pipeline's buffers
NPROC=$(nproc)

# Targets.
TARGET_RATE=45000 # EDA end to end, input sentences/s per core
TARGET_RSS_MB=300 # peak RSS for BIG_ROWS rows
GROWTH_MAX=1.25   # peak RSS(BIG_ROWS) / peak RSS(MID_ROWS) at most this

log() { echo "bench: $*" >&2; }
die() {
    echo "bench: error: $*" >&2
    exit 1
}

TICKER=
cleanup() {
    if [[ -n $TICKER ]]; then kill "$TICKER" 2>/dev/null || true; fi
}
trap cleanup EXIT

mkdir -p "$DATA" "$LOGS"

# --- prerequisites ---------------------------------------------------------------------------
if [[ ! -x /usr/bin/time ]]; then
    log "/usr/bin/time is missing: installing the \`time\` package"
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        apt-get install -y time >&2 || { apt-get update >&2 && apt-get install -y time >&2; }
    fi
    [[ -x /usr/bin/time ]] || die "/usr/bin/time not found (apt-get install -y time)"
fi
[[ -f $WORDNET/data.noun ]] || die "WordNet not found in $WORDNET (apt-get install -y wordnet-base)"

if [[ -f $SST2 ]]; then
    CORPUS=$SST2
    HAVE_SST2=1
else
    CORPUS=$FIXTURE
    HAVE_SST2=0
    log "$SST2 absent: SST-2 parts are skipped, generated corpora cycle $FIXTURE"
fi

# The bench target is built with the dev-dependencies, whose features change some shared
# dependencies: it gets its own copies of them (a second long build the first time) and also
# relinks target/release/retort. So build it first, run its executable directly, and build the
# plain release binary last.
log "building (cargo bench --no-run, then cargo build --release)..."
BENCH_EXE=$(cargo bench --bench bench --no-run --message-format=json-render-diagnostics |
    grep -o '"executable":"[^"]*"' | sed 's/^"executable":"//; s/"$//' | grep '/bench-' | tail -n 1)
[[ -n $BENCH_EXE && -x $BENCH_EXE ]] || die "could not find the executable of benches/bench.rs"
cargo build --release >&2
[[ -x $BIN ]] || die "$BIN was not built"

bench() { "$BENCH_EXE" "$@"; }

# --- helpers ---------------------------------------------------------------------------------
ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 |"); }

calc() { awk "BEGIN { printf \"%s\", ($*) }"; }
# Thousands separators for an integer-valued number.
fmt() { awk -v x="$1" 'BEGIN { s = sprintf("%.0f", x); n = length(s); o = "";
    for (i = 1; i <= n; i++) { o = o substr(s, i, 1); if ((n - i) % 3 == 0 && i < n) o = o "," }
    print o }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
max() { printf '%s\n' "$@" | sort -g | tail -n 1; }
mb() { calc "$1 / 1024"; } # KiB -> MiB (awk prints the full value; round where printed)
verdict() { if [[ $1 == 1 ]]; then echo "**PASS**"; else echo "**FAIL**"; fi; }

# timed NAME CMD...: runs CMD under /usr/bin/time; stdout+stderr to $LOGS/NAME.log.
# Sets T_WALL (s), T_RSS (KiB), T_CPU (user+sys, s; 10 ms resolution).
timed() {
    local name=$1
    shift
    local tfile=$LOGS/$name.time
    local t0=$EPOCHREALTIME
    if ! /usr/bin/time -f '%e %M %U %S' -o "$tfile" "$@" >"$LOGS/$name.log" 2>&1; then
        tail -n 20 "$LOGS/$name.log" >&2
        die "command failed (log: $LOGS/$name.log): $*"
    fi
    local t1=$EPOCHREALTIME
    read -r _ T_RSS u s < <(tail -n 1 "$tfile")
    # Wall clock from bash (microseconds) rather than time's 10 ms resolution.
    T_WALL=$(calc "${t1/,/.} - ${t0/,/.}")
    T_CPU=$(calc "$u + $s")
}

# run_eda NAME INPUT THREADS [--quiet]: the EDA pipeline with copies=4, alpha=0.1.
run_eda() {
    local name=$1 input=$2 threads=$3
    shift 3
    local out=$DATA/out-$name
    rm -rf "$out"
    timed "$name" "$BIN" run pipelines/eda.toml --var "input=$input" --var "output=$out" \
        --var alpha=0.1 --var copies=4 --threads "$threads" --force "$@"
    rm -rf "$out"
}

# --- 1. augmenters in-process -----------------------------------------------------------------
log "1/3: augmenters in-process over $CORPUS (>= 1.5 s each)..."
mapfile -t AUG < <(bench aug "$CORPUS")
[[ ${#AUG[@]} -gt 0 ]] || die "benches/bench.rs printed nothing"
ROWS+=("${AUG[@]}")

# --- 2. end to end on SST-2 -------------------------------------------------------------------
ONE=$DATA/one-row.parquet
[[ -f $ONE ]] || bench gen-corpus 1 "$ONE" "$CORPUS"
log "2/3: start-up (1-row input, $RUNS runs)..."
walls=() cpus=() rss=()
for i in $(seq "$RUNS"); do
    run_eda "startup-$i" "$ONE" 1 --quiet
    walls+=("$T_WALL") cpus+=("$T_CPU") rss+=("$T_RSS")
done
START_WALL=$(median "${walls[@]}")
START_CPU=$(median "${cpus[@]}")
row "EDA start-up: 1-row input (WordNet load + setup)" \
    "$(printf '%.3f' "$START_WALL") s wall, $(printf '%.2f' "$START_CPU") s CPU; peak RSS $(printf '%.0f' "$(mb "$(max "${rss[@]}")")") MiB" \
    "" "median of $RUNS; subtracted in the *net* numbers below"

if [[ $HAVE_SST2 == 1 ]]; then
    N=$(bench rows "$SST2")
    for T in 1 2; do
        log "2/3: SST-2 end to end, --threads $T ($RUNS runs)..."
        walls=() cpus=() rss=()
        for i in $(seq "$RUNS"); do
            run_eda "sst2-t$T-$i" "$SST2" "$T" --quiet
            walls+=("$T_WALL") cpus+=("$T_CPU") rss+=("$T_RSS")
        done
        W=$(median "${walls[@]}")
        C=$(median "${cpus[@]}")
        NET_W=$(calc "($W - $START_WALL) > 0.01 ? $W - $START_WALL : 0.01")
        NET_C=$(calc "($C - $START_CPU) > 0.01 ? $C - $START_CPU : 0.01")
        RATE=$(calc "$N / $W")
        NET_RATE=$(calc "$N / $NET_W")
        PER_CPU=$(calc "$N / $NET_C")
        PER_WORKER=$(calc "$NET_RATE / $T")
        ok=$(calc "($PER_CPU >= $TARGET_RATE) ? 1 : 0")  # per core = per CPU-second of all threads
        row "EDA end to end, SST-2 ($(fmt "$N") rows, copies=4), --threads $T" \
            "$(fmt "$RATE") sentences/s wall ($(printf '%.3f' "$W") s); net of start-up: $(fmt "$NET_RATE")/s = $(fmt "$PER_WORKER")/s per worker, $(fmt "$PER_CPU")/s per CPU-second; peak RSS $(printf '%.0f' "$(mb "$(max "${rss[@]}")")") MiB" \
            "≥ $(fmt $TARGET_RATE)/s per core: $(verdict "$ok")" \
            "median of $RUNS; CPU = user+sys of all threads (source and sink included)"
    done
    # One run without --quiet for the per-stage busy-time table (kept in the log).
    run_eda sst2-stages "$SST2" 1
    log "per-stage table of the SST-2 --threads 1 run: $LOGS/sst2-stages.log"
else
    row "EDA end to end, SST-2" "skipped: $SST2 absent" "≥ $(fmt $TARGET_RATE)/s per core" ""
fi

# --- 3. peak memory on generated corpora -------------------------------------------------------
gen() { # gen N PATH
    if [[ ! -f $2 ]]; then
        log "generating $1 rows into $2..."
        bench gen-corpus "$1" "$2" "$CORPUS"
    fi
}
SMALL=$DATA/corpus-$SMALL_ROWS.parquet
BIG=$DATA/corpus-$BIG_ROWS.parquet
gen "$SMALL_ROWS" "$SMALL"
log "3/3: peak RSS, $SMALL_ROWS rows, --threads $NPROC..."
run_eda "mem-$SMALL_ROWS" "$SMALL" "$NPROC"
SMALL_RSS=$T_RSS
row "Peak RSS, EDA on $(fmt $SMALL_ROWS) generated rows, --threads $NPROC" \
    "$(printf '%.0f' "$(mb "$SMALL_RSS")") MiB ($(printf '%.2f' "$T_WALL") s wall)" "" \
    "rows cycle $(basename "$CORPUS")"

MID=$DATA/corpus-$MID_ROWS.parquet
gen "$MID_ROWS" "$MID"
log "3/3: peak RSS, $MID_ROWS rows, --threads $NPROC..."
run_eda "mem-$MID_ROWS" "$MID" "$NPROC"
MID_RSS=$T_RSS
row "Peak RSS, EDA on $(fmt $MID_ROWS) generated rows, --threads $NPROC" \
    "$(printf '%.0f' "$(mb "$MID_RSS")") MiB ($(printf '%.2f' "$T_WALL") s wall, $(fmt "$(calc "$MID_ROWS / $T_WALL")") rows/s)" "" \
    "reference for the growth check below"

if [[ ${BENCH_SKIP_BIG:-0} == 1 ]]; then
    row "Peak RSS, EDA on $(fmt "$BIG_ROWS") generated rows" "skipped (BENCH_SKIP_BIG=1)" \
        "≤ $TARGET_RSS_MB MB, not growing" ""
else
    gen "$BIG_ROWS" "$BIG"
    log "3/3: peak RSS, $BIG_ROWS rows, --threads $NPROC (this takes a while; log: $LOGS/mem-$BIG_ROWS.log)..."
    start=$SECONDS
    (while sleep 30; do log "  ... $((SECONDS - start)) s, output so far: $(du -sh "$DATA/out-mem-$BIG_ROWS" 2>/dev/null | cut -f1)"; done) &
    TICKER=$!
    run_eda "mem-$BIG_ROWS" "$BIG" "$NPROC"
    kill "$TICKER" 2>/dev/null || true
    wait "$TICKER" 2>/dev/null || true
    TICKER=
    BIG_RSS=$T_RSS
    BIG_MB=$(mb "$BIG_RSS")
    GROWTH=$(calc "$BIG_RSS / $MID_RSS")
    GROWTH_SMALL=$(calc "$BIG_RSS / $SMALL_RSS")
    ok=$(calc "($BIG_MB * 1.048576 <= $TARGET_RSS_MB && $GROWTH <= $GROWTH_MAX) ? 1 : 0")
    NET_W=$(calc "($T_WALL - $START_WALL) > 0.01 ? $T_WALL - $START_WALL : 0.01")
    NET_C=$(calc "($T_CPU - $START_CPU) > 0.01 ? $T_CPU - $START_CPU : 0.01")
    row "Peak RSS, EDA on $(fmt "$BIG_ROWS") generated rows, --threads $NPROC" \
        "$(printf '%.0f' "$BIG_MB") MiB ($(printf '%.0f' "$(calc "$BIG_MB * 1.048576")") MB), $(printf '%.2f' "$GROWTH")× the $(fmt $MID_ROWS)-row and $(printf '%.2f' "$GROWTH_SMALL")× the $(fmt $SMALL_ROWS)-row peak; $(fmt "$(calc "$BIG_ROWS / $T_WALL")") rows/s wall ($(printf '%.0f' "$T_WALL") s), $(fmt "$(calc "$BIG_ROWS / $NET_C")")/s per CPU-second" \
        "≤ $TARGET_RSS_MB MB and ≤ ${GROWTH_MAX}× the $(fmt $MID_ROWS)-row peak: $(verdict "$ok")" \
        "one run; per-stage table in $LOGS/mem-$BIG_ROWS.log"
fi

# --- the table ---------------------------------------------------------------------------------
{
    echo "retort benchmarks — $(date -u '+%Y-%m-%d %H:%M UTC'), $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $NPROC CPUs ($(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ //' || echo '?')), corpus $CORPUS"
    echo
    echo "| Benchmark | Result | Target | Notes |"
    echo "| --- | --- | --- | --- |"
    printf '%s\n' "${ROWS[@]}"
} | tee "$RESULTS"
log "saved to $RESULTS"
