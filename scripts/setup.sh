#!/usr/bin/env bash
# Installs the Debian packages Bindery needs that are missing, and nothing
# else. Idempotent; runs as root or through sudo.
#   scripts/setup.sh run    what building and running the daemon needs
#   scripts/setup.sh test   plus the test suite's tools
#   scripts/setup.sh bench  plus the benchmark tools
set -euo pipefail

purpose=${1:-run}

build=(gcc make cmake pkg-config libmicrohttpd-dev libcurl4-openssl-dev libjson-c-dev
       libyaml-dev libsqlite3-dev libssl-dev libgnutls28-dev libjemalloc-dev libpcre2-dev curl)
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
# env: sudo drops DEBIAN_FRONTEND from the environment. The lock timeout
# rides out apt's daily job on a freshly booted machine.
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)
"${apt[@]}" update -qq
# A tool no configured repository offers (kubectl comes from Kubernetes' own
# repository) is reported and skipped, so the rest still installs and what
# needs the tool says so; a build package missing from every repository is
# an error.
installable=()
for pkg in "${missing[@]}"; do
    candidate=$(apt-cache policy "$pkg" 2>/dev/null | sed -n 's/^ *Candidate: //p')
    if [[ -n $candidate && $candidate != "(none)" ]]; then
        installable+=("$pkg")
    elif [[ " ${build[*]} " == *" $pkg "* ]]; then
        echo "setup: no configured repository offers $pkg, which the build needs" >&2
        exit 1
    else
        echo "setup: warning: no configured repository offers $pkg; not installed" >&2
    fi
done
if [[ ${#installable[@]} -gt 0 ]]; then
    "${apt[@]}" install -y -qq --no-install-recommends "${installable[@]}"
fi
