#!/usr/bin/env bash
# Run the Autobahn TestSuite (through kosoku) against our echo server or our
# client, print a summary line per behaviour, and fail on any FAILED or
# NON-STRICT case, and on any UNIMPLEMENTED case as a server.
#
#   scripts/autobahn.sh server [kosoku options, e.g. -i '12.*']
#   scripts/autobahn.sh client [kosoku options]
#
# AUTOBAHN_FEATURES adds cargo features to the build of the example, e.g.
# AUTOBAHN_FEATURES=wsproto-core/zlib-rs for the zlib-rs compressor.
#
# Reports land in reports/<mode>/ (index.json, HTML) with summary.txt.
set -euo pipefail
mode="${1:?usage: scripts/autobahn.sh server|client [kosoku options]}"
shift
cd "$(dirname "$0")/.."
root="$PWD"
venv="${AUTOBAHN_VENV:-$root/target/autobahn-venv}"
outdir="$root/reports/$mode"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
agent="wsproto-rs"

if [ ! -x "$venv/bin/kosoku" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check kosoku
fi
kosoku_version="$("$venv/bin/pip" show kosoku 2>/dev/null | sed -n 's/^Version: //p')"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
wait_port() {
    for _ in $(seq 1 300); do
        if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 0.2).close()" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2
    return 1
}

pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

rm -rf "$outdir"
mkdir -p "$outdir"
port="$(free_port)"
status=0
case "$mode" in
server)
    cargo build --release --quiet -p wsproto-examples --bin echo-server \
        ${AUTOBAHN_FEATURES:+--features "$AUTOBAHN_FEATURES"}
    # The 9.x cases send messages of up to 16 MiB before reading the echo:
    # hold up to 64 MiB for the suite, as for a peer that reads late.
    "$target_dir/release/echo-server" --addr "127.0.0.1:$port" \
        --max-queued 67108864 --drain-timeout 60 > "$outdir/server.log" 2>&1 &
    pids+=($!)
    wait_port "$port"
    # kosoku's exit code counts every non-OK case; the summary below decides.
    "$venv/bin/kosoku" -m fuzzingclient -p "${AUTOBAHN_PARALLELISM:-2}" -o "$outdir" "$@" \
        "127.0.0.1:$port" > "$outdir/kosoku.log" 2>&1 || true
    ;;
client)
    cargo build --release --quiet -p wsproto-examples --bin autobahn-client \
        ${AUTOBAHN_FEATURES:+--features "$AUTOBAHN_FEATURES"}
    "$venv/bin/kosoku" -m fuzzingserver -o "$outdir" "$@" "127.0.0.1:$port" \
        > "$outdir/kosoku.log" 2>&1 &
    kosoku_pid=$!
    pids+=("$kosoku_pid")
    wait_port "$port"
    timeout 1500 "$target_dir/release/autobahn-client" --url "ws://127.0.0.1:$port" \
        --agent "$agent" > "$outdir/client.log" 2>&1 || status=$?
    # kosoku writes the reports and exits after /updateReports.
    for _ in $(seq 1 600); do
        kill -0 "$kosoku_pid" 2>/dev/null || break
        sleep 0.1
    done
    ;;
*)
    echo "unknown mode $mode (server or client)" >&2
    exit 2
    ;;
esac

if [ ! -f "$outdir/index.json" ]; then
    echo "no index.json: the run did not finish" >&2
    tail -n 20 "$outdir"/*.log >&2 || true
    exit 1
fi

python3 - "$outdir/index.json" "$mode" "$kosoku_version" "$outdir/summary.txt" <<'PY'
import collections, datetime, json, sys
path, mode, version, summary_path = sys.argv[1:]
index = json.load(open(path))
counts = collections.Counter()
bad = []
for agent, cases in index.items():
    for case_id, entry in cases.items():
        behavior = entry["behavior"]
        counts[behavior] += 1
        if behavior in ("FAILED", "NON-STRICT", "ERROR") or (
            mode == "server" and behavior == "UNIMPLEMENTED"
        ):
            bad.append((case_id, behavior, entry.get("behaviorClose")))
lines = [
    f"Autobahn TestSuite via kosoku {version}, wsproto-rs as {mode}, "
    f"{datetime.date.today().isoformat()}: {sum(counts.values())} cases"
]
for behavior in ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED", "ERROR"):
    lines.append(f"  {behavior}: {counts.get(behavior, 0)}")
for case_id, behavior, close in sorted(bad, key=lambda b: [int(p) for p in b[0].split(".")])[:50]:
    lines.append(f"  ! {case_id} {behavior} (close: {close})")
text = "\n".join(lines)
print(text)
open(summary_path, "w").write(text + "\n")
sys.exit(1 if bad else 0)
PY
exit "$status"
