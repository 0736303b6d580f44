//! A blocking WebSocket echo server over `std::net`, the server of the
//! Getting Started guide: the network glue and the application glue around a
//! `WSConnection`, in one short file to copy from.
//!
//! ```sh
//! cargo run -p wsproto-examples --bin server -- --addr 127.0.0.1:8000
//! cargo run -p wsproto-examples --bin client -- --url ws://127.0.0.1:8000/
//! ```
//!
//! Connections are served one after the other. Each text or binary message
//! is collected and sent back whole once it is complete; pings are answered
//! and the closing handshake is completed. Options: `--addr ADDR` (default
//! `127.0.0.1:8000`), `--connections N` (exit after N connections; default:
//! serve until Ctrl-C).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

use wsproto_examples::args::Args;
use wsproto_std::events::{AcceptConnection, BytesMessage, Event, TextMessage};
use wsproto_std::{ConnectionState, ConnectionType, WSConnection};

const USAGE: &str = "usage: server [--addr 127.0.0.1:8000] [--connections N]";
const RECEIVE_BYTES: usize = 4096;
/// A peer silent for this long loses its connection.
const TIMEOUT: Duration = Duration::from_secs(60);

fn main() -> io::Result<()> {
    let args = Args::from_env(&["addr", "connections"], &[], USAGE);
    let addr = args.value("addr").unwrap_or("127.0.0.1:8000");
    let connections: Option<u64> = match args.value("connections").map(str::parse) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            eprintln!("--connections takes a number\n{USAGE}");
            std::process::exit(2);
        }
    };
    let listener = TcpListener::bind(addr)?;
    println!("listening on ws://{}", listener.local_addr()?);
    let mut served = 0;
    while connections.is_none_or(|max| served < max) {
        let (stream, peer) = listener.accept()?;
        served += 1;
        println!("accepted a connection from {peer}");
        if let Err(err) = handle_connection(stream) {
            println!("connection from {peer} failed: {err}");
        }
    }
    Ok(())
}

/// Serve one client until the connection is closed.
fn handle_connection(mut stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut ws = WSConnection::new(ConnectionType::Server);
    let mut text = String::new();
    let mut bytes = Vec::new();
    let mut buf = [0u8; RECEIVE_BYTES];

    while ws.state() != ConnectionState::Closed {
        // Network glue: bytes from the socket go into the connection.
        let n = stream.read(&mut buf)?;
        let eof = n == 0;
        if eof {
            // The client closed the stream; `events` reports it as a
            // CloseConnection with code 1006.
            ws.receive_data(None).map_err(io::Error::other)?;
        } else {
            ws.receive_data(Some(&buf[..n])).map_err(io::Error::other)?;
        }

        // Application glue: events in, replies out.
        let mut out = Vec::new();
        let mut close = false;
        while let Some(event) = ws.events().next() {
            let event = match event {
                Ok(event) => event,
                Err(err) => {
                    // The client broke the protocol: send the reply the error
                    // calls for (a close frame or an HTTP refusal) and stop.
                    println!("protocol error: {err}");
                    let _ = ws.send_core(&err.event_hint(), &mut out);
                    close = true;
                    break;
                }
            };
            match event {
                Event::Request(request) => {
                    println!("accepting a request for {}", request.target);
                    ws.send_into(AcceptConnection::default(), &mut out)
                        .map_err(io::Error::other)?;
                }
                Event::TextMessage(m) => {
                    text.push_str(&m.data);
                    if m.message_finished {
                        println!("echoing a text message of {} bytes", text.len());
                        let message = TextMessage::new(std::mem::take(&mut text));
                        ws.send_into(message, &mut out).map_err(io::Error::other)?;
                    }
                }
                Event::BytesMessage(m) => {
                    bytes.extend_from_slice(&m.data);
                    if m.message_finished {
                        println!("echoing a binary message of {} bytes", bytes.len());
                        let message = BytesMessage::new(std::mem::take(&mut bytes));
                        ws.send_into(message, &mut out).map_err(io::Error::other)?;
                    }
                }
                Event::Ping(ping) => {
                    println!("answering a ping");
                    ws.send_into(ping.response(), &mut out)
                        .map_err(io::Error::other)?;
                }
                Event::CloseConnection(event) => {
                    println!(
                        "connection closed: code={} reason={:?}",
                        event.code, event.reason
                    );
                    if ws.state() == ConnectionState::RemoteClosing {
                        ws.send_into(event.response(), &mut out)
                            .map_err(io::Error::other)?;
                    }
                    close = true;
                }
                other => println!("ignoring {other:?}"),
            }
        }
        stream.write_all(&out)?;
        if close || eof {
            break;
        }
    }
    // The server closes the TCP connection first (RFC 6455 §7.1.1): send
    // FIN, then read until the client closes its side too, briefly.
    let _ = stream.shutdown(Shutdown::Write);
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    for _ in 0..64 {
        if !matches!(stream.read(&mut buf), Ok(n) if n > 0) {
            break;
        }
    }
    Ok(())
}
