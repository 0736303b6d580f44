//! A blocking WebSocket client over `std::net`: it connects, sends a few
//! messages and a ping, prints what comes back, and closes the connection.
//!
//! ```sh
//! cargo run --release -p wsproto-examples --bin echo-server -- --addr 127.0.0.1:8765 &
//! cargo run -p wsproto-examples --bin client
//! ```
//!
//! Any echo server does, such as `echo-server` above or the `server`
//! example. Options: `--url URL` (default `ws://127.0.0.1:8765/`, where the
//! README's echo server listens).

#![forbid(unsafe_code)]
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use wsproto_examples::cli::{connect_hint, echo_server_command, exit_code, Failure};
use wsproto_examples::url::WsUrl;
use wsproto_std::events::{BytesMessage, CloseConnection, Event, Ping, Request, TextMessage};
use wsproto_std::{CloseCode, ConnectionState, ConnectionType, WSConnection};

/// A blocking WebSocket client: it connects to an echo server, sends two
/// text messages, 100 000 bytes of binary data and a ping, prints what comes
/// back, and closes the connection.
#[derive(Parser, Debug)]
#[command(
    name = "client",
    after_help = "Example, with the README's echo server:\n  \
        cargo run --release -p wsproto-examples --bin echo-server -- --addr 127.0.0.1:8765 &\n  \
        cargo run -p wsproto-examples --bin client"
)]
struct Cli {
    /// The echo server to talk to (ws:// only; the examples have no TLS)
    #[arg(long, value_name = "URL", default_value = "ws://127.0.0.1:8765/")]
    url: WsUrl,
}

const RECEIVE_BYTES: usize = 4096;
/// A server silent for this long is given up on.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The most reads spent waiting for one reply.
const MAX_READS: usize = 10_000;

fn main() -> ExitCode {
    exit_code(run(&Cli::parse()))
}

fn run(cli: &Cli) -> Result<(), Failure> {
    let url = &cli.url;
    println!("connecting to {}", url.socket_addr());
    let mut stream = TcpStream::connect(url.socket_addr()).map_err(|err| {
        let hint = connect_hint(
            &err,
            "echo server",
            &echo_server_command(&url.socket_addr()),
        );
        Failure::new(format!("cannot connect to {}", url.socket_addr()), err).with_hint(hint)
    })?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let mut ws = WSConnection::new(ConnectionType::Client);

    // The opening handshake: send a Request, wait for the answer.
    let request = Request::new(url.host_header(), &url.target);
    net_send(&mut stream, &ws.send(request).map_err(io::Error::other)?)?;
    receive_until(&mut ws, &mut stream, |e| {
        matches!(e, Event::AcceptConnection(_) | Event::RejectConnection(_))
    })?;
    if ws.state() != ConnectionState::Open {
        return Err(Failure::msg("the server refused the WebSocket handshake"));
    }

    for message in ["wsproto is great", "héllo, wörld ✓"] {
        println!("sending message: {message}");
        net_send(
            &mut stream,
            &ws.send(TextMessage::new(message))
                .map_err(io::Error::other)?,
        )?;
        receive_until(&mut ws, &mut stream, message_finished)?;
    }

    let data: Vec<u8> = (0..=255).cycle().take(100_000).collect();
    println!("sending {} bytes of binary data", data.len());
    net_send(
        &mut stream,
        &ws.send(BytesMessage::new(data)).map_err(io::Error::other)?,
    )?;
    receive_until(&mut ws, &mut stream, message_finished)?;

    println!("sending ping");
    net_send(
        &mut stream,
        &ws.send(Ping::new(&b"ping"[..])).map_err(io::Error::other)?,
    )?;
    receive_until(&mut ws, &mut stream, |e| matches!(e, Event::Pong(_)))?;

    // The closing handshake: send a close frame, wait for the server's.
    println!("closing the connection");
    let close = CloseConnection::with_reason(CloseCode::NORMAL_CLOSURE, "sample reason");
    net_send(&mut stream, &ws.send(close).map_err(io::Error::other)?)?;
    receive_until(&mut ws, &mut stream, |e| {
        matches!(e, Event::CloseConnection(_))
    })?;

    // The server closes the TCP connection; wait for it, briefly.
    let mut buf = [0u8; RECEIVE_BYTES];
    for _ in 0..64 {
        if !matches!(stream.read(&mut buf), Ok(n) if n > 0) {
            break;
        }
    }
    println!("done");
    Ok(())
}

fn message_finished(event: &Event) -> bool {
    match event {
        Event::TextMessage(m) => m.message_finished,
        Event::BytesMessage(m) => m.message_finished,
        _ => false,
    }
}

/// Network glue: write bytes from the connection to the socket.
fn net_send(stream: &mut TcpStream, data: &[u8]) -> io::Result<()> {
    stream.write_all(data)
}

/// Network glue: read from the socket and handle events until one matches
/// `done`.
fn receive_until(
    ws: &mut WSConnection,
    stream: &mut TcpStream,
    done: impl Fn(&Event) -> bool,
) -> io::Result<()> {
    let mut buf = [0u8; RECEIVE_BYTES];
    for _ in 0..MAX_READS {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            ws.receive_data(None).map_err(io::Error::other)?;
        } else {
            ws.receive_data(Some(&buf[..n])).map_err(io::Error::other)?;
        }
        let mut finished = n == 0;
        while let Some(event) = ws.events().next() {
            let event = event.map_err(io::Error::other)?;
            finished |= done(&event);
            handle_event(ws, stream, event)?;
        }
        if finished {
            return Ok(());
        }
    }
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        "no reply after many reads",
    ))
}

/// Application glue: print each event and answer those that need a reply.
fn handle_event(ws: &mut WSConnection, stream: &mut TcpStream, event: Event) -> io::Result<()> {
    match event {
        Event::AcceptConnection(_) => println!("connection established"),
        Event::RejectConnection(reject) => {
            println!("connection rejected: HTTP {}", reject.status_code);
        }
        Event::CloseConnection(close) => {
            println!(
                "connection closed: code={} reason={:?}",
                close.code, close.reason
            );
            // A close frame the server started must be answered.
            if ws.state() == ConnectionState::RemoteClosing {
                net_send(
                    stream,
                    &ws.send(close.response()).map_err(io::Error::other)?,
                )?;
            }
        }
        Event::Ping(ping) => {
            println!("received ping with payload {:?}", ping.payload);
            net_send(stream, &ws.send(ping.response()).map_err(io::Error::other)?)?;
        }
        Event::Pong(pong) => println!("received pong with payload {:?}", pong.payload),
        Event::TextMessage(m) => {
            println!("received text: {}", &*m.data);
            if m.message_finished {
                println!("message finished");
            }
        }
        Event::BytesMessage(m) => {
            println!("received {} bytes of binary data", m.data.len());
            if m.message_finished {
                println!("binary message finished");
            }
        }
        other => println!("unknown event: {other:?}"),
    }
    Ok(())
}
