#!/usr/bin/env bash
# Build the WebAssembly client (examples/wasm), start echo-server on a free
# loopback port, and run the Node test that drives the module over a real
# TCP connection to it; then print the module's size.
#
#   scripts/wasm-test.sh
#
# Needs Node 20 or later (no npm packages). The server's log is in
# target/ci-artifacts/wasm-echo-server.log.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
artifacts="$target_dir/ci-artifacts"
module="$target_dir/wasm32-unknown-unknown/release/wsproto_example_wasm.wasm"
mkdir -p "$artifacts"

cargo build --quiet -p wsproto-example-wasm --release --target wasm32-unknown-unknown
cargo build --quiet -p wsproto-examples --release --bin echo-server

server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT

# Port 0: the server picks a free port and prints it.
log="$artifacts/wasm-echo-server.log"
"$target_dir/release/echo-server" --addr 127.0.0.1:0 > "$log" 2>&1 &
server_pid=$!
addr=""
for _ in $(seq 1 100); do
    addr="$(sed -n 's|^listening on ws://||p' "$log")"
    [ -n "$addr" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$addr" ]; then
    echo "echo-server did not start:" >&2
    cat "$log" >&2
    exit 1
fi

WSPROTO_WASM="$module" ECHO_ADDR="$addr" \
    timeout 120 node --test --test-reporter=spec examples/wasm/js/echo.test.mjs

echo "wasm module: $(wc -c < "$module") bytes ($module)"
