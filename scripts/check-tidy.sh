#!/usr/bin/env bash
# Fails when clang-tidy (with the repository's .clang-tidy) finds anything
# in the product sources. BUILD_DIR must hold compile_commands.json.
set -euo pipefail
build=${1:?usage: check-tidy.sh BUILD_DIR}
cd "$(dirname "$0")/.."
command -v clang-tidy >/dev/null || { echo "clang-tidy not installed" >&2; exit 1; }
files=$(ls allocator/*.c reconciler/*.c pool/*.c)
out=$(printf '%s\n' $files | xargs -P "$(nproc)" -n 1 clang-tidy -p "$build" --quiet 2>&1 |
      grep -E '(warning|error):' || true)
if [[ -n "$out" ]]; then
    echo "$out"
    exit 1
fi
echo "clang-tidy: $(echo $files | wc -w) files clean"
