"""Interop peers for the wsproto-std tests, over loopback only.

    peer.py wsproto-server PORTFILE     echo server on Python wsproto
    peer.py websockets-server PORTFILE  echo server on websockets
    peer.py wsproto-client URL          scripted client on Python wsproto
    peer.py websockets-client URL       scripted client on websockets

Servers bind 127.0.0.1 on a free port, write it to PORTFILE, serve one
connection and exit. Clients run the script below against a server that
echoes, and print "OK" or fail with a message. Every wait has a timeout.
"""
import socket
import sys

TIMEOUT = 30
SUBPROTOCOLS = ["chat.v2", "chat.v1"]
SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20]
CLOSE_CODE = 4001
CLOSE_REASON = "done here"


def payloads():
    for size in SIZES:
        yield "é" * (size // 2) + "x" * (size % 2)
        yield bytes((i * 7) & 0xFF for i in range(size))


# ---------------------------------------------------------------- wsproto

def wsproto_server(portfile):
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, Ping,
                                Request, TextMessage)
    from wsproto.extensions import PerMessageDeflate

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    open(portfile, "w").write(str(listener.getsockname()[1]))
    sock, _ = listener.accept()
    sock.settimeout(TIMEOUT)
    ws = WSConnection(ConnectionType.SERVER)
    text, data = [], bytearray()
    while True:
        chunk = sock.recv(65536)
        ws.receive_data(chunk or None)
        for event in ws.events():
            if isinstance(event, Request):
                chosen = next((p for p in SUBPROTOCOLS if p in event.subprotocols), None)
                sock.sendall(ws.send(AcceptConnection(subprotocol=chosen,
                                                      extensions=[PerMessageDeflate()])))
            elif isinstance(event, TextMessage):
                text.append(event.data)
                if event.message_finished:
                    sock.sendall(ws.send(TextMessage(data="".join(text))))
                    text = []
            elif isinstance(event, BytesMessage):
                data += event.data
                if event.message_finished:
                    sock.sendall(ws.send(BytesMessage(data=bytes(data))))
                    data = bytearray()
            elif isinstance(event, Ping):
                sock.sendall(ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                if ws.state.name == "REMOTE_CLOSING":
                    sock.sendall(ws.send(event.response()))
                sock.close()
                return
        if not chunk:
            return


def wsproto_client(url):
    from urllib.parse import urlsplit

    from wsproto import ConnectionType, WSConnection
    from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, Pong,
                                Request, TextMessage)
    from wsproto.extensions import PerMessageDeflate

    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), TIMEOUT)
    ws = WSConnection(ConnectionType.CLIENT)
    sock.sendall(ws.send(Request(host=parts.netloc, target=parts.path or "/",
                                 subprotocols=SUBPROTOCOLS,
                                 extensions=[PerMessageDeflate()])))
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
    for payload in payloads():
        event = TextMessage(data=payload) if isinstance(payload, str) else BytesMessage(data=payload)
        sock.sendall(ws.send(event))
        echoed = next_message()
        assert echoed == payload, f"echo of {len(payload)} differs"
    from wsproto.events import Ping
    sock.sendall(ws.send(Ping(payload=b"are you there")))
    pong = next_message()
    assert isinstance(pong, Pong) and pong.payload == b"are you there", pong
    sock.sendall(ws.send(CloseConnection(code=CLOSE_CODE, reason=CLOSE_REASON)))
    close = next_event()
    assert isinstance(close, CloseConnection), close
    assert (close.code, close.reason) == (CLOSE_CODE, CLOSE_REASON), close
    sock.close()
    print("OK")


# ---------------------------------------------------------------- websockets

def websockets_server(portfile):
    import threading

    from websockets.sync.server import serve

    done = threading.Event()

    def handler(conn):
        try:
            for message in conn:
                conn.send(message)
        finally:
            done.set()

    with serve(handler, "127.0.0.1", 0, subprotocols=SUBPROTOCOLS,
               max_size=4 << 20) as server:
        open(portfile, "w").write(str(server.socket.getsockname()[1]))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        done.wait(TIMEOUT * 4)
        server.shutdown()


def websockets_client(url):
    from websockets.sync.client import connect

    with connect(url, subprotocols=SUBPROTOCOLS, max_size=4 << 20,
                 open_timeout=TIMEOUT, close_timeout=TIMEOUT) as ws:
        assert ws.subprotocol == "chat.v2", ws.subprotocol
        for payload in payloads():
            ws.send(payload)
            echoed = ws.recv(timeout=TIMEOUT)
            assert echoed == payload, f"echo of {len(payload)} differs"
        ws.ping(b"are you there").wait(TIMEOUT)
        ws.close(CLOSE_CODE, CLOSE_REASON)
        assert ws.close_code == CLOSE_CODE, ws.close_code
        assert ws.close_reason == CLOSE_REASON, ws.close_reason
    print("OK")


if __name__ == "__main__":
    role, arg = sys.argv[1], sys.argv[2]
    {
        "wsproto-server": wsproto_server,
        "wsproto-client": wsproto_client,
        "websockets-server": websockets_server,
        "websockets-client": websockets_client,
    }[role](arg)
