#!/usr/bin/env bash
# Runs every libFuzzer driver in BIN_DIR for SECONDS each, starting from the
# committed corpus (new inputs go to a scratch folder, not into the repo).
set -euo pipefail
bin=${1:?usage: fuzz.sh BIN_DIR [SECONDS]}
secs=${2:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
status=0
for f in "$bin"/fuzz_*; do
    name=$(basename "$f"); corpus=${name#fuzz_}
    scratch=$(mktemp -d)
    echo "== $name ($secs s)"
    if ! "$f" -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 \
        "$scratch" "$root/tests/fuzz/corpus/$corpus" 2>"$scratch.log"; then
        tail -40 "$scratch.log"; status=1
    else
        grep -E 'stat::number_of_executed_units|Done' "$scratch.log" | tail -2
    fi
    rm -rf "$scratch" "$scratch.log"
done
exit $status
