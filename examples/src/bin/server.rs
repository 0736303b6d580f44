//! A blocking WebSocket echo server over `std::net`: the network glue and
//! the application glue around a `WSConnection`, in one short file to copy
//! from.
//!
//! ```sh
//! cargo run -p wsproto-examples --bin server -- --addr 127.0.0.1:8765
//! cargo run -p wsproto-examples --bin client -- --url ws://127.0.0.1:8765/
//! ```
//!
//! Connections are served one after the other. Each text or binary message
//! is collected and sent back whole once it is complete; pings are answered
//! and the closing handshake is completed. Options: `--addr ADDR` (default
//! `127.0.0.1:8765`, where the client connects by default),
//! `--connections N` (exit after N connections; default: serve until
//! Ctrl-C).

#![forbid(unsafe_code)]
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use wsproto_examples::cli::{bind_hint, exit_code, Failure};
use wsproto_std::events::{AcceptConnection, BytesMessage, Event, TextMessage};
use wsproto_std::{ConnectionState, ConnectionType, WSConnection};

/// A blocking WebSocket echo server, the shortest one to copy from: it
/// serves one connection at a time, sends each text or binary message back
/// whole once it is complete, answers pings and completes the closing
/// handshake.
#[derive(Parser, Debug)]
#[command(
    name = "server",
    after_help = "Example:\n  \
        cargo run -p wsproto-examples --bin server -- --addr 127.0.0.1:8765 &\n  \
        cargo run -p wsproto-examples --bin client -- --url ws://127.0.0.1:8765/"
)]
struct Cli {
    /// The address to listen on (port 0 picks a free one)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8765")]
    addr: String,
    /// Exit after serving N connections [default: serve until Ctrl-C]
    #[arg(long, value_name = "N")]
    connections: Option<u64>,
}

const RECEIVE_BYTES: usize = 4096;
/// A peer silent for this long loses its connection.
const TIMEOUT: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    exit_code(run(&Cli::parse()))
}

fn run(cli: &Cli) -> Result<(), Failure> {
    let addr = &cli.addr;
    let listener = TcpListener::bind(addr).map_err(|err| {
        let hint = bind_hint(&err);
        Failure::new(format!("cannot listen on {addr}"), err).with_hint(hint)
    })?;
    println!("listening on ws://{}", listener.local_addr()?);
    let mut served = 0;
    while cli.connections.is_none_or(|max| served < max) {
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
