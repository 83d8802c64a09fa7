#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECS seconds each (default 180), one after
# the other, growing tests/fuzz/corpus/<target> from the committed seeds/<target>.
# Usage (from anywhere): tests/fuzz/run.sh [-t SECS] [target...]
# The last lines of each log (libFuzzer's final stats: execs, cov, ft) are what RESULTS.md
# records. Needs a nightly toolchain and `cargo install cargo-fuzz`.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=180
if [ "${1:-}" = "-t" ]; then secs=$2; shift 2; fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(ident http_head commands in_body config resp ws_frame)
mkdir -p tests/fuzz/logs
for t in "${targets[@]}"; do
    mkdir -p "tests/fuzz/corpus/$t"
    echo "== $t (${secs}s)"
    dict=()
    [ -f "tests/fuzz/dicts/$t.dict" ] && dict=(-dict="tests/fuzz/dicts/$t.dict")
    cargo +nightly fuzz run --fuzz-dir tests/fuzz "$t" \
        "tests/fuzz/corpus/$t" "tests/fuzz/seeds/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" \
        > "tests/fuzz/logs/$t.log" 2>&1 || { echo "FAILED: $t (see tests/fuzz/logs/$t.log)"; tail -40 "tests/fuzz/logs/$t.log"; }
    grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|REDUCE|NEW)' "tests/fuzz/logs/$t.log" | tail -1 || true
    grep -E 'stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "tests/fuzz/logs/$t.log"  || true
done
