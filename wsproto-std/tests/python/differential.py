"""Differential oracle: feed byte streams to Python wsproto's post-handshake
Connection and print the events as JSON, for comparison with wsproto-core.

Input (stdin): a JSON list of cases {"role": "server"|"client", "hex": "..."},
optionally with "deflate": an extension header value such as
"permessage-deflate; client_no_context_takeover" to run with
permessage-deflate as agreed by that value.
Output (stdout): a JSON list, one event list per case. Data chunks of one
message are merged; a protocol failure is ["error", code]. With
permessage-deflate, ["final-block"] marks where the decompressor first
reached the end of a DEFLATE stream (a block with BFINAL set): wsproto
ignores what follows it in the message.
"""
import json
import sys

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.frame_protocol import ParseFailed


def run(role, data, deflate=None):
    extensions = []
    if deflate is not None:
        from wsproto.extensions import PerMessageDeflate

        extension = PerMessageDeflate()
        if role == "server":
            extension.accept(deflate)
        else:
            extension.finalize(deflate)
        extensions.append(extension)
    out = []
    seen_final = []

    def watch(method):
        def watched(proto, *args):
            # Without context takeover the decompressor is dropped at the
            # end of a message: look at the one in use before the call too.
            before = extension._decompressor
            result = method(proto, *args)
            for decompressor in (before, extension._decompressor):
                if decompressor is not None and decompressor.eof and not seen_final:
                    seen_final.append(True)
                    out.append(["final-block"])
            return result
        return watched

    if extensions:
        extension.frame_inbound_payload_data = watch(extension.frame_inbound_payload_data)
        extension.frame_inbound_complete = watch(extension.frame_inbound_complete)
    conn = Connection(ConnectionType.SERVER if role == "server" else ConnectionType.CLIENT,
                      extensions=extensions)
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
    results = [run(case["role"], bytes.fromhex(case["hex"]), case.get("deflate"))
               for case in cases]
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
