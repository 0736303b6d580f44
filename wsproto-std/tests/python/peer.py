"""Interop peers for the wsproto-std tests, over loopback only.

    peer.py wsproto-server PORTFILE [options]     echo server on Python wsproto
    peer.py websockets-server PORTFILE [options]  echo server on websockets
    peer.py wsproto-client URL [options]          scripted client on Python wsproto
    peer.py websockets-client URL [options]       scripted client on websockets

Options:
    --window-bits C S   wsproto peers: permessage-deflate with
                        client_max_window_bits=C and server_max_window_bits=S
                        (a server asks it of clients that offer the parameter;
                        a client offers both)
    --no-context-takeover
                        wsproto peers: permessage-deflate with
                        client_no_context_takeover and server_no_context_takeover
    --server-close      clients: after the script, ask the server to start
                        the closing handshake (by sending the text
                        "close-me") instead of starting it themselves

Servers bind 127.0.0.1 on a free port, write it to PORTFILE, serve one
connection and exit; on the text "close-me" they start the closing handshake
with code 4001. Clients run the script below against a server that echoes
and print "OK", or fail with a message. wsproto peers print the negotiated
extension as a line "EXT <...>" ("EXT none" without one). Every wait has a
timeout.
"""
import argparse
import socket
import sys

TIMEOUT = 30
SUBPROTOCOLS = ["chat.v2", "chat.v1"]
SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20]
CLOSE_CODE = 4001
CLOSE_REASON = "done here"
CLOSE_ME = "close-me"


def far_repeats():
    """64 KiB: a 2 KiB pseudo-random block repeated, so that a compressor
    finds matches 2 KiB back, farther than a small window allows."""
    x, block = 12345, bytearray()
    for _ in range(2048):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        block.append(x >> 23)
    return bytes(block) * 32


def payloads():
    for size in SIZES:
        yield "é" * (size // 2) + "x" * (size % 2)
        yield bytes((i * 7) & 0xFF for i in range(size))
    yield far_repeats()
    yield far_repeats().hex()


def describe(extensions):
    enabled = [ext for ext in extensions if ext.enabled()]
    return "EXT " + (" ".join(repr(ext) for ext in enabled) or "none")


def deflate(options):
    from wsproto.extensions import PerMessageDeflate

    client_bits, server_bits = options.window_bits or (None, None)
    return PerMessageDeflate(client_max_window_bits=client_bits,
                             server_max_window_bits=server_bits,
                             client_no_context_takeover=options.no_context_takeover,
                             server_no_context_takeover=options.no_context_takeover)


# ---------------------------------------------------------------- wsproto

def wsproto_server(portfile, options):
    from wsproto import ConnectionType, WSConnection
    from wsproto.connection import ConnectionState
    from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, Ping,
                                Request, TextMessage)

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    with open(portfile, "w") as f:
        f.write(str(listener.getsockname()[1]))
    sock, _ = listener.accept()
    listener.close()
    sock.settimeout(TIMEOUT)
    ws = WSConnection(ConnectionType.SERVER)
    text, data = [], bytearray()
    while True:
        chunk = sock.recv(65536)
        ws.receive_data(chunk or None)
        for event in ws.events():
            if isinstance(event, Request):
                chosen = next((p for p in SUBPROTOCOLS if p in event.subprotocols), None)
                extension = deflate(options)
                sock.sendall(ws.send(AcceptConnection(subprotocol=chosen,
                                                      extensions=[extension])))
                print(describe([extension]), flush=True)
            elif isinstance(event, TextMessage):
                text.append(event.data)
                if event.message_finished:
                    message = "".join(text)
                    text = []
                    if message == CLOSE_ME:
                        sock.sendall(ws.send(CloseConnection(code=CLOSE_CODE,
                                                             reason=CLOSE_REASON)))
                    else:
                        sock.sendall(ws.send(TextMessage(data=message)))
            elif isinstance(event, BytesMessage):
                data += event.data
                if event.message_finished:
                    sock.sendall(ws.send(BytesMessage(data=bytes(data))))
                    data = bytearray()
            elif isinstance(event, Ping):
                sock.sendall(ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                if ws.state == ConnectionState.REMOTE_CLOSING:
                    sock.sendall(ws.send(event.response()))
                sock.close()
                print("OK", flush=True)
                return
        if not chunk:
            raise AssertionError("the client closed the stream without a close frame")


def wsproto_client(url, options):
    from urllib.parse import urlsplit

    from wsproto import ConnectionType, WSConnection
    from wsproto.connection import ConnectionState
    from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, Ping, Pong,
                                Request, TextMessage)

    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), TIMEOUT)
    ws = WSConnection(ConnectionType.CLIENT)
    sock.sendall(ws.send(Request(host=parts.netloc, target=parts.path or "/",
                                 subprotocols=SUBPROTOCOLS,
                                 extensions=[deflate(options)])))
    pending = []

    def next_event():
        while not pending:
            chunk = sock.recv(65536)
            ws.receive_data(chunk or None)
            pending.extend(ws.events())
        return pending.pop(0)

    def next_message():
        parts_ = []
        while True:
            event = next_event()
            if isinstance(event, (TextMessage, BytesMessage)):
                parts_.append(event.data)
                if event.message_finished:
                    return "".join(parts_) if isinstance(event, TextMessage) else b"".join(parts_)
            elif isinstance(event, Pong):
                return event
            else:
                raise AssertionError(f"unexpected {event!r}")

    accept = next_event()
    assert isinstance(accept, AcceptConnection), accept
    assert accept.subprotocol == "chat.v2", accept.subprotocol
    print(describe(accept.extensions), flush=True)
    for payload in payloads():
        event = TextMessage(data=payload) if isinstance(payload, str) else BytesMessage(data=payload)
        sock.sendall(ws.send(event))
        echoed = next_message()
        assert echoed == payload, f"echo of {len(payload)} differs"
    sock.sendall(ws.send(Ping(payload=b"are you there")))
    pong = next_message()
    assert isinstance(pong, Pong) and pong.payload == b"are you there", pong
    if options.server_close:
        sock.sendall(ws.send(TextMessage(data=CLOSE_ME)))
        close = next_event()
        assert isinstance(close, CloseConnection), close
        assert ws.state == ConnectionState.REMOTE_CLOSING, ws.state
        sock.sendall(ws.send(close.response()))
    else:
        sock.sendall(ws.send(CloseConnection(code=CLOSE_CODE, reason=CLOSE_REASON)))
        close = next_event()
        assert isinstance(close, CloseConnection), close
    assert (close.code, close.reason) == (CLOSE_CODE, CLOSE_REASON), close
    assert ws.state == ConnectionState.CLOSED, ws.state
    # The server closes the stream after the closing handshake.
    sock.settimeout(TIMEOUT)
    assert sock.recv(1) == b"", "bytes after the closing handshake"
    sock.close()
    print("OK", flush=True)


# ---------------------------------------------------------------- websockets

def websockets_server(portfile, options):
    import threading

    from websockets.exceptions import ConnectionClosed
    from websockets.sync.server import serve

    done = threading.Event()
    result = []

    def handler(conn):
        try:
            for message in conn:
                if message == CLOSE_ME:
                    conn.close(CLOSE_CODE, CLOSE_REASON)
                    break
                conn.send(message)
            result.append("OK")
        except ConnectionClosed as exc:
            # A close code other than 1000 and 1001 ends the iteration with
            # an exception: check that it is the expected one.
            if exc.rcvd is not None and (exc.rcvd.code, exc.rcvd.reason) == (
                    CLOSE_CODE, CLOSE_REASON):
                result.append("OK")
            else:
                result.append(f"closed: {exc!r}")
        finally:
            done.set()

    with serve(handler, "127.0.0.1", 0, subprotocols=SUBPROTOCOLS,
               max_size=4 << 20, ping_interval=None, open_timeout=TIMEOUT,
               close_timeout=TIMEOUT) as server:
        with open(portfile, "w") as f:
            f.write(str(server.socket.getsockname()[1]))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        finished = done.wait(TIMEOUT * 4)
        server.shutdown()
    assert finished, "no connection finished in time"
    assert result == ["OK"], result
    print("OK", flush=True)


def websockets_client(url, options):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with connect(url, subprotocols=SUBPROTOCOLS, max_size=4 << 20, proxy=None,
                 ping_interval=None, open_timeout=TIMEOUT,
                 close_timeout=TIMEOUT) as ws:
        assert ws.subprotocol == "chat.v2", ws.subprotocol
        for payload in payloads():
            ws.send(payload)
            echoed = ws.recv(timeout=TIMEOUT)
            assert echoed == payload, f"echo of {len(payload)} differs"
        assert ws.ping(b"are you there").wait(TIMEOUT), "no pong"
        if options.server_close:
            ws.send(CLOSE_ME)
            try:
                ws.recv(timeout=TIMEOUT)
                raise AssertionError("a message instead of the close frame")
            except ConnectionClosed:
                pass
        else:
            ws.close(CLOSE_CODE, CLOSE_REASON)
        assert ws.close_code == CLOSE_CODE, ws.close_code
        assert ws.close_reason == CLOSE_REASON, ws.close_reason
    print("OK", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["wsproto-server", "wsproto-client",
                                         "websockets-server", "websockets-client"])
    parser.add_argument("arg")
    parser.add_argument("--window-bits", nargs=2, type=int, metavar=("C", "S"))
    parser.add_argument("--no-context-takeover", action="store_true")
    parser.add_argument("--server-close", action="store_true")
    options = parser.parse_args()
    {
        "wsproto-server": wsproto_server,
        "wsproto-client": wsproto_client,
        "websockets-server": websockets_server,
        "websockets-client": websockets_client,
    }[options.role](options.arg, options)


if __name__ == "__main__":
    sys.exit(main())
