#!/usr/bin/env bash
# The cluster benchmark (issue 9): a Redis of its own (port 6391, no persistence), a fresh PostgreSQL database,
# NODES meet-server nodes (release build; ports 3101…) in one cluster, then meet-load attached to all of them
# (connections spread over the nodes in turn, memory read per node). Extra arguments go to meet-load, e.g.
#   crates/loadbench/cluster-bench.sh --clients 10000 --fanout-members 1000
# Build first: cargo build --release -p server -p loadbench. NODES=3 by default; BENCH_SERVER_BIN / BENCH_LOAD_BIN
# choose other binaries (not MEET_*: the server reads every MEET_ variable as configuration).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
need_cmd redis-server redis-server
ensure_postgres
nodes=${NODES:-3}
bin=${BENCH_SERVER_BIN:-target/release/meet-server}
load=${BENCH_LOAD_BIN:-target/release/meet-load}
[ -x "$bin" ] && [ -x "$load" ] || { echo "build first: cargo build --release -p server -p loadbench" >&2; exit 2; }
ulimit -n "$(ulimit -Hn)"
run=$(mktemp -d /tmp/meet-cluster-bench.XXXXXX)
db="meet_bench_$$"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$run"
}
trap cleanup EXIT INT TERM
redis-server --port 6391 --bind 127.0.0.1 --save "" --appendonly no --loglevel warning > "$run/redis.log" 2>&1 &
pids+=($!)
psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE $db" >/dev/null
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
urls=() node_pids=()
for i in $(seq 1 "$nodes"); do
  port=$((3100 + i))
  MEET_HTTP__PORT=$port MEET_AUTH__SECRET=$secret MEET_DATABASE__URL=postgres://postgres@127.0.0.1:5432/$db \
    MEET_CLUSTER__REDIS_URL=redis://127.0.0.1:6391 MEET_CLUSTER__NODE_ID=bench-$i MEET_CLUSTER__SECRET=$secret \
    MEET_CLUSTER__KEY_PREFIX=bench$$ MEET_LIMITS__SEND_MESSAGE__COUNT=1000000 MEET_LIMITS__SEND_MESSAGE__WINDOW_MS=60000 \
    MEET_RECORDING__DIR="$run/rec-$i" RUST_LOG=warn "$bin" > "$run/node-$i.log" 2>&1 &
  pids+=($!) node_pids+=($!) urls+=("http://127.0.0.1:$port")
  # one at a time: the first applies the migrations
  for _ in $(seq 1 100); do grep -q 'listening on' "$run/node-$i.log" && break; sleep 0.2; done
  grep -q 'listening on' "$run/node-$i.log" || { cat "$run/node-$i.log" >&2; exit 1; }
done
also_url=$(IFS=,; echo "${urls[*]:1}")
also_pid=$(IFS=,; echo "${node_pids[*]:1}")
extra=()
[ "$nodes" -gt 1 ] && extra=(--also-url "$also_url" --also-pid "$also_pid")
"$load" --url "${urls[0]}" --server-pid "${node_pids[0]}" --secret "$secret" "${extra[@]}" "$@"
