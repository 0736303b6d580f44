#!/usr/bin/env bash
# Resident memory per idle connection of the async echo server: starts
# `async-echo --serve` on loopback, opens N idle WebSocket connections to it
# (default 10000) and prints the growth of the server's VmRSS per
# connection. Usage: scripts/idle-memory.sh [N [ECHO_BYTES]]; with
# ECHO_BYTES each connection first sends a message of that size and reads
# its echo. DEFLATE=1 offers permessage-deflate.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-10000}"
echo_bytes="${2:-0}"
port="${PORT:-9003}"
# Each process holds one descriptor per connection.
ulimit -n "$(( n + 1024 > $(ulimit -Hn) ? $(ulimit -Hn) : n + 1024 ))"
cargo build --release -q -p wsproto-examples --bin async-echo --bin idle-connections
# Every connection comes from 127.0.0.1: lift the connection limits past N,
# and push the keepalive ping past the measurement (its timer is still armed).
target/release/async-echo --serve "127.0.0.1:$port" \
    --max-connections "$(( n + 16 ))" --max-per-address "$(( n + 16 ))" \
    --keepalive-interval 600 >/dev/null 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
target/release/idle-connections --url "ws://127.0.0.1:$port/" --server-pid "$server" --connections "$n" --echo-bytes "$echo_bytes" ${DEFLATE:+--deflate}
