#!/usr/bin/env bash
# Claim benchmarks for embedded mode, on loopback, with the bench runtime
# (worlds that start no process) so pools can hold far more worlds than
# processes could give. Prints one table; writes the figures to
# bench/results/claims-<time>.txt as well.
#
#   bench/claims.sh [BUILD_DIR]      (default: build; run `make build` first)
#
# 1. warm claim latency at a fixed 1,000 claims/s (open loop), 30,000 warm
# 2. peak durable claim throughput (closed loop, 16 connections) and the
#    same client against the bare-HTTP floor server, same run
# 3. p50 at 1,000/s with 100,000 warm worlds vs 1,000; RSS; restart time
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/build}/bin
[[ -x $bin/bindery && -x $bin/bench_claim_load && -x $bin/bench_floor_server ]] || {
    echo "build first: make build (missing binaries in $bin)" >&2; exit 1; }
work=$(mktemp -d /tmp/bdy-claims-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
              echo $((20000 + RANDOM % 20000)); }

# write_config DIR MIN_WARM CREATION_RATE
write_config() {
    mkdir -p "$1/manifests"
    cat > "$1/bindery.yaml" <<YAML
logLevel: warn
manifests: [manifests]
runtime: {kind: bench, benchReadyDelayMs: 0}
pools:
  - name: arena
    manifest: arena
    minWarm: $2
    maxWarm: 100000
    maxWorlds: 1000000
    creationRate: $3
    scaleDownCooldownSeconds: 3600
YAML
    cat > "$1/manifests/arena.yaml" <<YAML
apiVersion: bindery.dev/v1alpha1
kind: ModuleManifest
metadata: {name: arena, namespace: default}
spec:
  ports: [{name: game, containerPort: 7777, protocol: UDP}]
  local: {command: /bin/true}
YAML
}

# start DIR PORT: starts bindery in the background (pid in DIR/pid) and
# waits for /readyz.
start() {
    "$bin/bindery" serve --config "$1/bindery.yaml" --listen "127.0.0.1:$2" --data "$1/data" \
        >/dev/null 2>>"$1/log" &
    echo $! > "$1/pid"
    pids+=("$(cat "$1/pid")")
    for _ in $(seq 1 1200); do
        curl -sf "127.0.0.1:$2/readyz" >/dev/null 2>&1 && return 0
        kill -0 "$(cat "$1/pid")" 2>/dev/null || break
        sleep 0.05
    done
    echo "bindery did not become ready:" >&2; tail -3 "$1/log" >&2; exit 1
}

stop() { # DIR
    local pid; pid=$(cat "$1/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
}

warm_count() { curl -s "127.0.0.1:$1/v1/pools/default/arena" |
               sed -n 's/.*"warm":\([0-9]*\).*/\1/p'; }

wait_warm() { # PORT N TIMEOUT_S
    local end=$((SECONDS + $3))
    while (( SECONDS < end )); do
        local w; w=$(warm_count "$1"); [[ -n $w && $w -ge $2 ]] && return 0; sleep 0.5
    done
    echo "pool did not reach $2 warm worlds" >&2; exit 1
}

# Fills a pool to N warm worlds fast, then drops the creation rate so the
# measurement sees claims, not the pool refilling at full speed.
prepare() { # DIR PORT N
    write_config "$1" "$3" 10000
    start "$1" "$2"
    wait_warm "$2" "$3" 600
    write_config "$1" "$3" 20
    kill -HUP "$(cat "$1/pid")"
    sleep 1
}

field() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" <<<"$1"; }

out=()
say() { out+=("$1"); echo "$1"; }

# --- 1 and 2: a pool of 30,000 warm worlds ---------------------------------------
d1=$work/small; p1=$(free_port)
prepare "$d1" "$p1" 30000
lat1k=$("$bin/bench_claim_load" --port "$p1" --rate 1000 --connections 4 --duration 10 --json)
peak=$("$bin/bench_claim_load" --port "$p1" --concurrency 16 --duration 5 --json)
stop "$d1"
pf=$(free_port)
"$bin/bench_floor_server" --listen "$pf" --threads 4 2>/dev/null &
fpid=$!; pids+=("$fpid")
sleep 0.3
floor=$("$bin/bench_claim_load" --port "$pf" --concurrency 16 --duration 5 --json)
kill "$fpid"

# --- 3: 100,000 warm ---------------------------------------------------------------
d2=$work/large; p2=$(free_port)
prepare "$d2" "$p2" 100000
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$(cat "$d2/pid")/status")
lat100k=$("$bin/bench_claim_load" --port "$p2" --rate 1000 --connections 4 --duration 5 --json)
stop "$d2"
t0=$(date +%s.%N)
start "$d2" "$p2"
t1=$(date +%s.%N)
restart=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
stop "$d2"

ratio=$(awk -v a="$(field "$peak" rate)" -v b="$(field "$floor" rate)" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
flat=$(awk -v a="$(field "$lat100k" p50_ms)" -v b="$(field "$lat1k" p50_ms)" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}')
say "claim benchmarks ($(date -u +%FT%TZ), $(nproc) cores, build $bin)"
say "$(printf '%-46s %14s %12s' 'measure' 'value' 'target')"
say "$(printf '%-46s %14s %12s' 'warm claim p50 at 1,000/s (ms)' "$(field "$lat1k" p50_ms)" '<= 0.3')"
say "$(printf '%-46s %14s %12s' 'warm claim p99 at 1,000/s (ms)' "$(field "$lat1k" p99_ms)" '<= 2')"
say "$(printf '%-46s %14s %12s' 'peak durable claims/s (16 conns)' "$(field "$peak" rate)" '')"
say "$(printf '%-46s %14s %12s' 'bare-HTTP floor req/s (same client)' "$(field "$floor" rate)" '')"
say "$(printf '%-46s %14s %12s' 'peak ratio claims / floor' "$ratio" '>= 0.5')"
say "$(printf '%-46s %14s %12s' 'p50 at 1,000/s, 100,000 warm (ms)' "$(field "$lat100k" p50_ms)" '')"
say "$(printf '%-46s %14s %12s' 'p50 100k warm / p50 30k warm' "$flat" '<= 1.2')"
say "$(printf '%-46s %14s %12s' 'RSS with 100,000 worlds (MB)' "$((rss_kb / 1024))" '<= 300')"
say "$(printf '%-46s %14s %12s' 'restart to serving, 100,000 worlds (s)' "$restart" '<= 3')"
mkdir -p "$root/bench/results"
printf '%s\n' "${out[@]}" > "$root/bench/results/claims-$(date -u +%Y%m%dT%H%M%SZ).txt"
