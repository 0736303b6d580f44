//! Interoperability over loopback: our client and server (`WSConnection`
//! over `std::net::TcpStream`) against Python's `wsproto` and `websockets`,
//! run by `tests/python/peer.py` in the venv of `common::python`.
//!
//! Each scenario: the opening handshake with subprotocol negotiation (the
//! client offers `chat.v2, chat.v1`, the server picks `chat.v2`), text and
//! binary echo from 0 bytes to 1 MiB (and 64 KiB with matches 2 KiB back),
//! a ping answered by a pong, and the closing handshake with code 4001 and a
//! reason, started by the client or by the server. Each runs with
//! permessage-deflate (the default) and without it (turned off on our side);
//! with Python's wsproto, also with windows smaller than 15 bits, so that our
//! compressed output is inflated by zlib with a small window (which fails on
//! a distance too far back).
//!
//! Every wait is bounded: sockets have read timeouts and each scenario a
//! deadline, after which the Python peer is killed.

mod common;

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Finished, Proc};
use wsproto_std::events::{
    AcceptConnection, BytesMessage, CloseConnection, Event, Ping, Request, TextMessage,
};
use wsproto_std::wsproto_core::extension::deflate::PerMessageDeflate;
use wsproto_std::{ConnectionState, ConnectionType, Settings, WSConnection};

/// How long one scenario may take, Python's start included.
const DEADLINE: Duration = Duration::from_secs(180);
const SUBPROTOCOLS: [&str; 2] = ["chat.v2", "chat.v1"];
const SIZES: [usize; 7] = [0, 1, 125, 126, 65535, 65536, 1 << 20];
const CLOSE_CODE: u16 = 4001;
const CLOSE_REASON: &str = "done here";
/// Asks the server to start the closing handshake.
const CLOSE_ME: &str = "close-me";

// ------------------------------------------------------------- payloads

#[derive(Clone, Debug, PartialEq, Eq)]
enum Message {
    Text(String),
    Binary(Vec<u8>),
}

impl Message {
    fn event(&self) -> Event {
        match self {
            Message::Text(t) => TextMessage::new(t.clone()).into(),
            Message::Binary(b) => BytesMessage::new(b.clone()).into(),
        }
    }
}

/// The same as `far_repeats` in peer.py.
fn far_repeats() -> Vec<u8> {
    let mut x: u64 = 12345;
    let block: Vec<u8> = (0..2048)
        .map(|_| {
            x = (x * 1_103_515_245 + 12345) & 0x7FFF_FFFF;
            (x >> 23) as u8
        })
        .collect();
    block.repeat(32)
}

/// The same as `payloads` in peer.py.
fn payloads() -> Vec<Message> {
    let mut out = Vec::new();
    for size in SIZES {
        out.push(Message::Text("é".repeat(size / 2) + &"x".repeat(size % 2)));
        out.push(Message::Binary(
            (0..size).map(|i| ((i * 7) & 0xFF) as u8).collect(),
        ));
    }
    let far = far_repeats();
    out.push(Message::Text(
        far.iter().map(|b| format!("{b:02x}")).collect(),
    ));
    out.push(Message::Binary(far));
    out
}

// --------------------------------------------------------------- socket

/// A `WSConnection` over a blocking `TcpStream` with read timeouts.
struct Ws {
    stream: TcpStream,
    conn: WSConnection,
    pending: VecDeque<Event>,
    deadline: Instant,
    eof: bool,
    buf: Vec<u8>,
}

/// What `next_message` returns.
#[derive(Debug)]
enum Incoming {
    Message(Message),
    Pong(Vec<u8>),
    Other(Event),
}

impl Ws {
    fn new(stream: TcpStream, conn: WSConnection, deadline: Instant) -> Self {
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(250)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            conn,
            pending: VecDeque::new(),
            deadline,
            eof: false,
            buf: vec![0; 64 * 1024],
        }
    }

    fn send(&mut self, event: impl Into<Event>) {
        let bytes = self.conn.send(event).expect("send");
        self.stream.write_all(&bytes).expect("write to the peer");
    }

    /// Read once; false on a timeout.
    fn read(&mut self) -> bool {
        match self.stream.read(&mut self.buf) {
            Ok(0) => {
                self.eof = true;
                self.conn.receive_data(None).expect("receive_data(None)");
                true
            }
            Ok(n) => {
                self.conn
                    .receive_data(Some(&self.buf[..n]))
                    .expect("receive_data");
                true
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                false
            }
            Err(e) => panic!("read from the peer: {e}"),
        }
    }

    fn next_event(&mut self) -> Event {
        for _ in 0..10_000_000 {
            if let Some(event) = self.pending.pop_front() {
                return event;
            }
            for item in self.conn.events() {
                match item {
                    Ok(event) => self.pending.push_back(event),
                    Err(err) => panic!("the peer broke the protocol: {err}"),
                }
            }
            if !self.pending.is_empty() {
                continue;
            }
            assert!(!self.eof, "the peer closed the stream early");
            assert!(
                Instant::now() < self.deadline,
                "timed out waiting for an event"
            );
            self.read();
        }
        panic!("no event after many reads");
    }

    /// The next whole message or pong; pings are answered on the way.
    fn next_message(&mut self) -> Incoming {
        let mut text = String::new();
        let mut binary = Vec::new();
        for _ in 0..10_000_000 {
            match self.next_event() {
                Event::TextMessage(m) => {
                    text.push_str(&m.data);
                    if m.message_finished {
                        return Incoming::Message(Message::Text(text));
                    }
                }
                Event::BytesMessage(m) => {
                    binary.extend_from_slice(&m.data);
                    if m.message_finished {
                        return Incoming::Message(Message::Binary(binary));
                    }
                }
                Event::Ping(ping) => self.send(ping.response()),
                Event::Pong(pong) => return Incoming::Pong(pong.payload.to_vec()),
                other => return Incoming::Other(other),
            }
        }
        panic!("no message after many events");
    }

    /// After the closing handshake: read until the peer closes the stream.
    fn wait_for_eof(&mut self) {
        while !self.eof {
            assert!(
                Instant::now() < self.deadline,
                "the peer did not close the stream"
            );
            match self.stream.read(&mut self.buf) {
                Ok(0) => self.eof = true,
                Ok(n) => panic!("{n} bytes after the closing handshake"),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => self.eof = true,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => panic!("read from the peer: {e}"),
            }
        }
        self.conn.receive_data(None).unwrap();
        let rest: Vec<_> = self.conn.events().collect();
        assert!(rest.is_empty(), "events after the close: {rest:?}");
    }
}

// ---------------------------------------------------------------- peers

fn unique_path(what: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("interop-{}-{n}-{what}", std::process::id()))
}

fn peer_script() -> String {
    common::python_dir()
        .join("peer.py")
        .to_str()
        .expect("a UTF-8 path")
        .to_owned()
}

/// Panic with what the Python peer printed, after stopping it.
fn peer_failed(proc: Proc, why: &str) -> ! {
    let out = proc.finish(Instant::now());
    panic!(
        "{why}; the Python peer ({:?}) printed:\n{}\n{}",
        out.status, out.stdout, out.stderr
    );
}

fn check_peer(out: &Finished) {
    assert!(
        out.success() && out.stdout.lines().any(|l| l == "OK"),
        "the Python peer failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
}

/// How our side of a scenario is set up.
struct Scenario {
    /// `wsproto-server`, `websockets-client`, ...
    peer: &'static str,
    settings: Settings,
    /// Extra arguments for peer.py.
    args: &'static [&'static str],
    /// The server starts the closing handshake.
    server_close: bool,
    expect_deflate: bool,
}

fn deflate_off() -> Settings {
    let mut settings = Settings::default();
    settings.permessage_deflate = None;
    settings
}

/// Our client against a Python server; returns what the server printed.
fn our_client(scenario: Scenario) -> Option<Finished> {
    let python = common::python()?;
    let deadline = Instant::now() + DEADLINE;
    let portfile = unique_path("port");
    let _ = std::fs::remove_file(&portfile);
    let mut args = vec![
        peer_script(),
        scenario.peer.to_owned(),
        portfile.to_str().unwrap().to_owned(),
    ];
    args.extend(scenario.args.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (mut proc, _) = Proc::python(&python, &args, false);
    let mut port = None;
    while port.is_none() {
        if Instant::now() > deadline {
            peer_failed(proc, "the Python server did not start in time");
        }
        if proc.exited() {
            peer_failed(proc, "the Python server exited before listening");
        }
        port = std::fs::read_to_string(&portfile)
            .ok()
            .and_then(|p| p.trim().parse::<u16>().ok());
        if port.is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = std::fs::remove_file(&portfile);
    let port = port.unwrap();
    let stream = match TcpStream::connect(("127.0.0.1", port)) {
        Ok(stream) => stream,
        Err(e) => peer_failed(proc, &format!("connecting to 127.0.0.1:{port}: {e}")),
    };
    let mut ws = Ws::new(
        stream,
        WSConnection::with_settings(ConnectionType::Client, scenario.settings),
        deadline,
    );
    run_client_script(
        &mut ws,
        port,
        scenario.server_close,
        scenario.expect_deflate,
    );
    ws.wait_for_eof();
    drop(ws);
    let out = proc.finish(deadline);
    check_peer(&out);
    Some(out)
}

fn run_client_script(ws: &mut Ws, port: u16, server_close: bool, expect_deflate: bool) {
    ws.send(Request::new(format!("127.0.0.1:{port}"), "/chat").with_subprotocols(SUBPROTOCOLS));
    match ws.next_event() {
        Event::AcceptConnection(accept) => {
            assert_eq!(accept.subprotocol.as_deref(), Some("chat.v2"));
        }
        other => panic!("expected AcceptConnection, got {other:?}"),
    }
    assert_eq!(ws.conn.state(), ConnectionState::Open);
    assert_eq!(ws.conn.subprotocol(), Some("chat.v2"));
    assert_eq!(
        ws.conn.deflate_enabled(),
        expect_deflate,
        "permessage-deflate"
    );
    for message in payloads() {
        ws.send(message.event());
        match ws.next_message() {
            Incoming::Message(echo) => assert!(echo == message, "the echo differs"),
            other => panic!("expected an echo, got {other:?}"),
        }
    }
    ws.send(Ping::new(&b"are you there"[..]));
    match ws.next_message() {
        Incoming::Pong(payload) => assert_eq!(payload, b"are you there"),
        other => panic!("expected a pong, got {other:?}"),
    }
    if server_close {
        ws.send(TextMessage::new(CLOSE_ME));
        match ws.next_message() {
            Incoming::Other(Event::CloseConnection(close)) => {
                assert_eq!(
                    (close.code.as_u16(), close.reason.as_str()),
                    (CLOSE_CODE, CLOSE_REASON)
                );
                assert_eq!(ws.conn.state(), ConnectionState::RemoteClosing);
                ws.send(close.response());
            }
            other => panic!("expected the server's close, got {other:?}"),
        }
    } else {
        ws.send(CloseConnection::with_reason(CLOSE_CODE, CLOSE_REASON));
        assert_eq!(ws.conn.state(), ConnectionState::LocalClosing);
        match ws.next_message() {
            Incoming::Other(Event::CloseConnection(close)) => {
                assert_eq!(
                    (close.code.as_u16(), close.reason.as_str()),
                    (CLOSE_CODE, CLOSE_REASON)
                );
            }
            other => panic!("expected the close reply, got {other:?}"),
        }
    }
    assert_eq!(ws.conn.state(), ConnectionState::Closed);
}

/// A Python client against our server; returns what the client printed.
fn our_server(scenario: Scenario) -> Option<Finished> {
    let python = common::python()?;
    let deadline = Instant::now() + DEADLINE;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("ws://127.0.0.1:{port}/chat");
    let mut args = vec![peer_script(), scenario.peer.to_owned(), url];
    args.extend(scenario.args.iter().map(|a| (*a).to_owned()));
    if scenario.server_close {
        args.push("--server-close".to_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (mut proc, _) = Proc::python(&python, &args, false);
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    peer_failed(proc, "the Python client did not connect in time");
                }
                if proc.exited() {
                    peer_failed(proc, "the Python client exited before connecting");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => peer_failed(proc, &format!("accept: {e}")),
        }
    };
    drop(listener);
    let mut ws = Ws::new(
        stream,
        WSConnection::with_settings(ConnectionType::Server, scenario.settings),
        deadline,
    );
    serve_echo(&mut ws, scenario.server_close, scenario.expect_deflate);
    // The server closes the stream first (RFC 6455 §7.1.1).
    let _ = ws.stream.shutdown(Shutdown::Write);
    drop(ws);
    let out = proc.finish(deadline);
    check_peer(&out);
    Some(out)
}

/// Echo every message, each as a fragmented message of the chunks it
/// arrived in; answer pings; close when asked to, or reply to a close.
fn serve_echo(ws: &mut Ws, server_close: bool, expect_deflate: bool) {
    match ws.next_event() {
        Event::Request(request) => {
            assert_eq!(request.target, "/chat");
            assert_eq!(request.subprotocols, SUBPROTOCOLS);
            let accept = AcceptConnection {
                subprotocol: SUBPROTOCOLS
                    .iter()
                    .find(|p| request.subprotocols.iter().any(|o| o == *p))
                    .map(|p| (*p).to_owned()),
                ..AcceptConnection::default()
            };
            ws.send(accept);
        }
        other => panic!("expected a Request, got {other:?}"),
    }
    assert_eq!(ws.conn.state(), ConnectionState::Open);
    assert_eq!(ws.conn.subprotocol(), Some("chat.v2"));
    assert_eq!(
        ws.conn.deflate_enabled(),
        expect_deflate,
        "permessage-deflate"
    );
    let mut text_chunks: Vec<String> = Vec::new();
    let mut binary_chunks: Vec<Vec<u8>> = Vec::new();
    for _ in 0..100_000 {
        match ws.next_event() {
            Event::TextMessage(m) => {
                text_chunks.push(m.data.to_string());
                if !m.message_finished {
                    continue;
                }
                let chunks = std::mem::take(&mut text_chunks);
                if chunks.concat() == CLOSE_ME {
                    assert!(server_close, "asked to close unexpectedly");
                    ws.send(CloseConnection::with_reason(CLOSE_CODE, CLOSE_REASON));
                    assert_eq!(ws.conn.state(), ConnectionState::LocalClosing);
                    continue;
                }
                let last = chunks.len() - 1;
                for (i, chunk) in chunks.into_iter().enumerate() {
                    ws.send(TextMessage {
                        data: chunk.into(),
                        frame_finished: true,
                        message_finished: i == last,
                    });
                }
            }
            Event::BytesMessage(m) => {
                binary_chunks.push(m.data.to_vec());
                if !m.message_finished {
                    continue;
                }
                let chunks = std::mem::take(&mut binary_chunks);
                let last = chunks.len() - 1;
                for (i, chunk) in chunks.into_iter().enumerate() {
                    ws.send(BytesMessage {
                        data: chunk.into(),
                        frame_finished: true,
                        message_finished: i == last,
                    });
                }
            }
            Event::Ping(ping) => ws.send(ping.response()),
            Event::CloseConnection(close) => {
                assert_eq!(
                    (close.code.as_u16(), close.reason.as_str()),
                    (CLOSE_CODE, CLOSE_REASON)
                );
                if server_close {
                    assert_eq!(ws.conn.state(), ConnectionState::Closed);
                } else {
                    assert_eq!(ws.conn.state(), ConnectionState::RemoteClosing);
                    ws.send(close.response());
                    assert_eq!(ws.conn.state(), ConnectionState::Closed);
                }
                return;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    panic!("too many events");
}

fn ext_line(out: &Finished) -> &str {
    out.stdout
        .lines()
        .find(|l| l.starts_with("EXT "))
        .unwrap_or("no EXT line")
}

// ------------------------------------------------- our client, wsproto

#[test]
fn our_client_with_wsproto_server() {
    let Some(out) = our_client(Scenario {
        peer: "wsproto-server",
        settings: Settings::default(),
        args: &[],
        server_close: false,
        expect_deflate: true,
    }) else {
        return;
    };
    assert_eq!(
        ext_line(&out),
        "EXT <PerMessageDeflate client_max_window_bits=15; server_max_window_bits=15>"
    );
}

#[test]
fn our_client_with_wsproto_server_without_deflate_server_closes() {
    let Some(out) = our_client(Scenario {
        peer: "wsproto-server",
        settings: deflate_off(),
        args: &[],
        server_close: true,
        expect_deflate: false,
    }) else {
        return;
    };
    assert_eq!(ext_line(&out), "EXT none");
}

/// The server asks for client_max_window_bits=9 (our client offers the
/// parameter without a value) and our client asks for
/// server_max_window_bits=10: Python inflates our messages with a 512-byte
/// window.
#[test]
fn our_client_with_wsproto_server_small_windows() {
    let mut settings = Settings::default();
    let mut deflate = PerMessageDeflate::new();
    deflate.server_max_window_bits = Some(10);
    settings.permessage_deflate = Some(deflate);
    let Some(out) = our_client(Scenario {
        peer: "wsproto-server",
        settings,
        args: &["--window-bits", "9", "10"],
        server_close: false,
        expect_deflate: true,
    }) else {
        return;
    };
    assert_eq!(
        ext_line(&out),
        "EXT <PerMessageDeflate client_max_window_bits=9; server_max_window_bits=10>"
    );
}

/// Neither side keeps its compression context between messages: the
/// payloads repeat across messages, so a back-reference into an earlier
/// message would fail Python's fresh decompressor.
#[test]
fn our_client_with_wsproto_server_no_context_takeover() {
    let Some(out) = our_client(Scenario {
        peer: "wsproto-server",
        settings: Settings::default(),
        args: &["--no-context-takeover"],
        server_close: true,
        expect_deflate: true,
    }) else {
        return;
    };
    assert_eq!(
        ext_line(&out),
        "EXT <PerMessageDeflate client_max_window_bits=15; client_no_context_takeover; \
         server_max_window_bits=15; server_no_context_takeover>"
    );
}

// ---------------------------------------------- our client, websockets

#[test]
fn our_client_with_websockets_server() {
    our_client(Scenario {
        peer: "websockets-server",
        settings: Settings::default(),
        args: &[],
        server_close: false,
        expect_deflate: true,
    });
}

#[test]
fn our_client_with_websockets_server_without_deflate_server_closes() {
    our_client(Scenario {
        peer: "websockets-server",
        settings: deflate_off(),
        args: &[],
        server_close: true,
        expect_deflate: false,
    });
}

// ------------------------------------------------- wsproto, our server

#[test]
fn wsproto_client_with_our_server() {
    let Some(out) = our_server(Scenario {
        peer: "wsproto-client",
        settings: Settings::default(),
        args: &[],
        server_close: false,
        expect_deflate: true,
    }) else {
        return;
    };
    assert_eq!(
        ext_line(&out),
        "EXT <PerMessageDeflate client_max_window_bits=15; server_max_window_bits=15>"
    );
}

#[test]
fn wsproto_client_with_our_server_without_deflate_server_closes() {
    let Some(out) = our_server(Scenario {
        peer: "wsproto-client",
        settings: deflate_off(),
        args: &[],
        server_close: true,
        expect_deflate: false,
    }) else {
        return;
    };
    assert_eq!(ext_line(&out), "EXT none");
}

/// The client offers client_max_window_bits=9 and server_max_window_bits=9:
/// Python inflates our server's messages with a 512-byte window.
#[test]
fn wsproto_client_with_our_server_small_windows() {
    let Some(out) = our_server(Scenario {
        peer: "wsproto-client",
        settings: Settings::default(),
        args: &["--window-bits", "9", "9"],
        server_close: false,
        expect_deflate: true,
    }) else {
        return;
    };
    assert_eq!(
        ext_line(&out),
        "EXT <PerMessageDeflate client_max_window_bits=9; server_max_window_bits=9>"
    );
}

#[test]
fn wsproto_client_with_our_server_no_context_takeover() {
    let Some(out) = our_server(Scenario {
        peer: "wsproto-client",
        settings: Settings::default(),
        args: &["--no-context-takeover", "--window-bits", "10", "11"],
        server_close: false,
        expect_deflate: true,
    }) else {
        return;
    };
    assert_eq!(
        ext_line(&out),
        "EXT <PerMessageDeflate client_max_window_bits=10; client_no_context_takeover; \
         server_max_window_bits=11; server_no_context_takeover>"
    );
}

// ---------------------------------------------- websockets, our server

#[test]
fn websockets_client_with_our_server() {
    our_server(Scenario {
        peer: "websockets-client",
        settings: Settings::default(),
        args: &[],
        server_close: false,
        expect_deflate: true,
    });
}

#[test]
fn websockets_client_with_our_server_without_deflate_server_closes() {
    our_server(Scenario {
        peer: "websockets-client",
        settings: deflate_off(),
        args: &[],
        server_close: true,
        expect_deflate: false,
    });
}

/// The payloads match peer.py's (checked without Python).
#[test]
fn payloads_are_as_in_peer_py() {
    let all = payloads();
    assert_eq!(all.len(), SIZES.len() * 2 + 2);
    assert_eq!(all[2], Message::Text("x".into()));
    assert_eq!(all[3], Message::Binary(vec![0]));
    // x1 = (12345 * 1103515245 + 12345) mod 2^31, then x1 >> 23.
    let first = ((12345u64 * 1_103_515_245 + 12345) & 0x7FFF_FFFF) >> 23;
    assert_eq!(far_repeats()[0], first as u8);
    assert_eq!(far_repeats().len(), 65536);
}
