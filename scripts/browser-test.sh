#!/usr/bin/env bash
# Open echo-server's demo page in headless Chromium: start the server on a
# free loopback port, send a short text and a message over 64 KiB through
# the page's form, check that the echoes appear on the page, and keep a
# screenshot in target/ci-artifacts/demo.png.
#
#   scripts/browser-test.sh
#
# Installs Debian's chromium if it is missing (apt-get, as root or through
# sudo) and playwright-core from npm into target/browser-test (versions
# pinned by scripts/browser/package-lock.json); Chromium itself is never
# downloaded by npm.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
artifacts="$target_dir/ci-artifacts"
deps="$target_dir/browser-test"
mkdir -p "$artifacts" "$deps"

if ! command -v chromium >/dev/null; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    timeout 900 $sudo apt-get update -qq
    timeout 900 $sudo apt-get install -y -qq --no-install-recommends chromium
fi
chromium --version 2>/dev/null || true

# playwright-core only: the browser is Debian's.
cp scripts/browser/package.json scripts/browser/package-lock.json "$deps/"
if ! cmp -s "$deps/package-lock.json" "$deps/installed.lock" 2>/dev/null; then
    (cd "$deps" && timeout 300 npm ci --no-audit --no-fund --loglevel=error)
    cp "$deps/package-lock.json" "$deps/installed.lock"
fi

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
log="$artifacts/browser-echo-server.log"
"$target_dir/release/echo-server" --addr 127.0.0.1:0 --verbose > "$log" 2>&1 &
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

rm -f "$artifacts/demo.png"
DEMO_URL="http://$addr/" SCREENSHOT="$artifacts/demo.png" BROWSER_DEPS="$deps" \
    timeout 120 node scripts/browser/demo.mjs
test -s "$artifacts/demo.png"
