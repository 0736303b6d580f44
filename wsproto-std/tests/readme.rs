//! The README's quick starts, run against real sockets on loopback: the
//! client ends when the server drops the stream, and the server ends
//! cleanly when a client drops TCP without a close frame. The bodies below
//! are the README's code with its address made a parameter; a test checks
//! that they have not drifted apart.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use wsproto_std::events::{AcceptConnection, Event, Request, TextMessage};
use wsproto_std::{ConnectionType, WSConnection};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

// BEGIN client
fn readme_client(addr: &str) -> Result<()> {
    let mut sock = std::net::TcpStream::connect(addr)?;
    let mut ws = WSConnection::new(ConnectionType::Client);
    sock.write_all(&ws.send(Request::new(addr, "/"))?)?;
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.read(&mut buf)?;
        // Zero bytes: the server closed the stream; `None` says so.
        ws.receive_data(if n == 0 { None } else { Some(&buf[..n]) })?;
        while let Some(event) = ws.next_event() {
            match event? {
                Event::AcceptConnection(_) => {
                    sock.write_all(&ws.send(TextMessage::new("hello"))?)?
                }
                Event::TextMessage(m) => {
                    println!("echo: {}", &*m.data);
                    return Ok(());
                }
                Event::RejectConnection(r) => {
                    return Err(format!("refused: {}", r.status_code).into())
                }
                // The server closed, or the stream ended (code 1006).
                Event::CloseConnection(c) => return Err(format!("closed: {}", c.code).into()),
                _ => {}
            }
        }
    }
}
// END client

// BEGIN server
fn readme_server(addr: &str) -> Result<()> {
    let (mut sock, _) = std::net::TcpListener::bind(addr)?.accept()?;
    let mut ws = WSConnection::new(ConnectionType::Server);
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.read(&mut buf)?;
        ws.receive_data(if n == 0 { None } else { Some(&buf[..n]) })?;
        while let Some(event) = ws.next_event() {
            let event = match event {
                Ok(event) => event,
                Err(err) => {
                    // The peer broke the protocol: send what the error calls for.
                    let mut hint = Vec::new();
                    ws.send_core(&err.event_hint(), &mut hint)?;
                    sock.write_all(&hint)?;
                    return Err(err.into());
                }
            };
            // The pong for a ping, the close reply to a close frame: only when due.
            if let Some(reply) = ws.reply_to(&event) {
                sock.write_all(&ws.send(reply)?)?;
            }
            match event {
                Event::Request(_) => sock.write_all(&ws.send(AcceptConnection::default())?)?,
                Event::TextMessage(m) => sock.write_all(&ws.send(m)?)?,
                Event::BytesMessage(m) => sock.write_all(&ws.send(m)?)?,
                Event::CloseConnection(_) => return Ok(()),
                _ => {}
            }
        }
    }
}
// END server

/// A free loopback port (released again, for the code under test to bind).
fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// Run `f` on a thread and wait at most 10 s for it.
fn within_10s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("did not finish within 10 s")
}

/// Connect, retrying while the server thread starts (at most 5 s).
fn connect(addr: &str) -> TcpStream {
    for _ in 0..500 {
        if let Ok(sock) = TcpStream::connect(addr) {
            sock.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            return sock;
        }
        thread::sleep(Duration::from_millis(10));
    }
    panic!("the server did not listen on {addr}");
}

/// Read from `sock` into `ws` until `want` says an event is the one, or
/// the stream ends.
fn read_until(sock: &mut TcpStream, ws: &mut WSConnection, want: impl Fn(&Event) -> bool) -> bool {
    let mut buf = [0u8; 4096];
    for _ in 0..1000 {
        while let Some(event) = ws.next_event() {
            if want(&event.unwrap()) {
                return true;
            }
        }
        let n = sock.read(&mut buf).unwrap();
        if n == 0 {
            return false;
        }
        ws.receive_data(Some(&buf[..n])).unwrap();
    }
    false
}

/// A client that echoes through the server, pings it, then drops TCP
/// without a close frame: the server answers and ends with `Ok`.
#[test]
fn the_server_quick_start_survives_a_dropped_stream() {
    let addr = free_addr();
    let server_addr = addr.clone();
    let server = thread::spawn(move || readme_server(&server_addr).map_err(|e| e.to_string()));
    let result = within_10s(move || {
        let mut sock = connect(&addr);
        let mut ws = WSConnection::new(ConnectionType::Client);
        sock.write_all(&ws.send(Request::new(addr.as_str(), "/")).unwrap())
            .unwrap();
        assert!(read_until(&mut sock, &mut ws, |e| matches!(
            e,
            Event::AcceptConnection(_)
        )));
        sock.write_all(&ws.send(TextMessage::new("hi")).unwrap())
            .unwrap();
        assert!(read_until(&mut sock, &mut ws, |e| {
            matches!(e, Event::TextMessage(m) if &*m.data == "hi")
        }));
        sock.write_all(&ws.send(wsproto_std::events::Ping::new(&b"p"[..])).unwrap())
            .unwrap();
        assert!(read_until(&mut sock, &mut ws, |e| matches!(
            e,
            Event::Pong(_)
        )));
        drop(sock);
        server.join().unwrap()
    });
    assert_eq!(result, Ok(()));
}

/// The server quick start answers a close frame with one and ends.
#[test]
fn the_server_quick_start_completes_the_closing_handshake() {
    let addr = free_addr();
    let server_addr = addr.clone();
    let server = thread::spawn(move || readme_server(&server_addr).map_err(|e| e.to_string()));
    let result = within_10s(move || {
        let mut sock = connect(&addr);
        let mut ws = WSConnection::new(ConnectionType::Client);
        sock.write_all(&ws.send(Request::new(addr.as_str(), "/")).unwrap())
            .unwrap();
        assert!(read_until(&mut sock, &mut ws, |e| matches!(
            e,
            Event::AcceptConnection(_)
        )));
        let close =
            wsproto_std::events::CloseConnection::new(wsproto_std::CloseCode::NORMAL_CLOSURE);
        sock.write_all(&ws.send(close).unwrap()).unwrap();
        let replied = read_until(&mut sock, &mut ws, |e| {
            matches!(e, Event::CloseConnection(_))
        });
        (replied, server.join().unwrap())
    });
    assert_eq!(result, (true, Ok(())));
}

/// A server that accepts and then drops the stream: the client quick start
/// ends with the 1006 closure instead of reading forever.
#[test]
fn the_client_quick_start_ends_when_the_stream_does() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = thread::spawn(move || {
        let (mut sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut ws = WSConnection::new(ConnectionType::Server);
        assert!(read_until(&mut sock, &mut ws, |e| matches!(
            e,
            Event::Request(_)
        )));
        sock.write_all(&ws.send(AcceptConnection::default()).unwrap())
            .unwrap();
        // Read the client's message, then drop the stream unanswered.
        assert!(read_until(&mut sock, &mut ws, |e| matches!(
            e,
            Event::TextMessage(_)
        )));
    });
    let result = within_10s(move || readme_client(&addr).map_err(|e| e.to_string()));
    server.join().unwrap();
    assert_eq!(result, Err("closed: 1006".to_owned()));
}

/// The client quick start against an echoing server: it prints the echo
/// and ends.
#[test]
fn the_client_quick_start_gets_its_echo() {
    let addr = free_addr();
    let server_addr = addr.clone();
    let server = thread::spawn(move || readme_server(&server_addr).map_err(|e| e.to_string()));
    let client_addr = addr.clone();
    let result = within_10s(move || {
        // Retry while the server thread is not listening yet (at most 5 s).
        for _ in 0..500 {
            match readme_client(&client_addr) {
                Err(err) if err.to_string().contains("refused") => {
                    thread::sleep(Duration::from_millis(10));
                }
                other => return other.map_err(|e| e.to_string()),
            }
        }
        Err("the server did not listen".to_owned())
    });
    assert_eq!(result, Ok(()));
    // The client dropped the stream after its echo: the server ended.
    assert_eq!(within_10s(move || server.join().unwrap()), Ok(()));
}

/// The bodies above are the README's, with the address as a parameter.
#[test]
fn the_quick_starts_match_the_readme() {
    let readme = include_str!("../../README.md");
    let blocks: Vec<&str> = readme
        .split("```rust,no_run\n")
        .skip(1)
        .map(|rest| rest.split("\n```").next().unwrap())
        .collect();
    let this = include_str!("readme.rs");
    for (name, block) in ["client", "server"].iter().zip(&blocks) {
        let start = this.find(&format!("// BEGIN {name}\n")).unwrap();
        let end = this.find(&format!("// END {name}\n")).unwrap();
        let body: Vec<&str> = this[start..end]
            .lines()
            .skip(2) // the marker and the `fn` line
            .collect();
        let body: Vec<String> = body[..body.len() - 1] // the closing brace
            .iter()
            .map(|line| line.strip_prefix("    ").unwrap_or(line).to_owned())
            .collect();
        let from_readme: Vec<String> = block
            .lines()
            .filter(|line| !line.starts_with('#') && !line.starts_with("use "))
            .map(|line| line.replace("\"127.0.0.1:8765\"", "addr"))
            .skip_while(|line| line.is_empty())
            .collect();
        assert_eq!(
            from_readme, body,
            "the {name} quick start drifted from the README"
        );
    }
}
