#!/usr/bin/env bash
# Installs the Debian packages Bindery needs that are missing, and nothing
# else. Idempotent; runs as root or through sudo.
#   scripts/setup.sh run    what building and running the daemon needs
#   scripts/setup.sh test   plus the test suite's tools
#   scripts/setup.sh bench  plus the benchmark tools
set -euo pipefail

purpose=${1:-run}

build=(gcc make cmake pkg-config libmicrohttpd-dev libcurl4-openssl-dev libjson-c-dev
       libyaml-dev libsqlite3-dev libssl-dev libjemalloc-dev libpcre2-dev curl)
test=(libcmocka-dev valgrind clang clang-format clang-tidy kubectl)
bench=(gnuplot-nox wrk)

case "$purpose" in
run) want=("${build[@]}") ;;
test) want=("${build[@]}" "${test[@]}") ;;
bench) want=("${build[@]}" "${test[@]}" "${bench[@]}") ;;
*) echo "usage: $0 run|test|bench" >&2; exit 2 ;;
esac

missing=()
for pkg in "${want[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

echo "setup: installing ${missing[*]}" >&2
sudo=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: need root or sudo to install ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
