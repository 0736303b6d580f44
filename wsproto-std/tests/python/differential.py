"""Differential oracle: feed byte streams to Python wsproto's post-handshake
Connection and print the events as JSON, for comparison with wsproto-core.

Input (stdin): a JSON list of cases {"role": "server"|"client", "hex": "..."}.
Output (stdout): a JSON list, one event list per case. Data chunks of one
message are merged; a protocol failure is ["error", code].
"""
import json
import sys

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.frame_protocol import ParseFailed


def run(role, data):
    conn = Connection(ConnectionType.SERVER if role == "server" else ConnectionType.CLIENT)
    out = []
    conn.receive_data(data)
    try:
        for event in conn.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                kind = "text" if isinstance(event, TextMessage) else "bytes"
                chunk = event.data if kind == "text" else event.data.hex()
                if out and out[-1][0] == kind and not out[-1][2]:
                    out[-1][1] += chunk
                    out[-1][2] = event.message_finished
                else:
                    out.append([kind, chunk, event.message_finished])
            elif isinstance(event, Ping):
                out.append(["ping", bytes(event.payload).hex()])
            elif isinstance(event, Pong):
                out.append(["pong", bytes(event.payload).hex()])
            elif isinstance(event, CloseConnection):
                # A protocol failure is reported as a CloseConnection too, but
                # leaves the state open; a real close frame does not.
                if conn.state in (ConnectionState.REMOTE_CLOSING, ConnectionState.CLOSED):
                    out.append(["close", int(event.code), event.reason or ""])
                else:
                    out.append(["error", int(event.code)])
                    break
    except ParseFailed as exc:  # older versions raise instead of yielding
        out.append(["error", int(exc.code)])
    return out


def main():
    cases = json.load(sys.stdin)
    results = [run(case["role"], bytes.fromhex(case["hex"])) for case in cases]
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
