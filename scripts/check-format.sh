#!/usr/bin/env bash
# Fails when any C source or header differs from what .clang-format asks for.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "clang-format not installed" >&2; exit 1; }
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build*')
[[ -n "$files" ]] || files=$(find allocator reconciler pool include tests bench -name '*.[ch]')
clang-format --dry-run -Werror $files
echo "format: $(echo "$files" | wc -w) files clean"
