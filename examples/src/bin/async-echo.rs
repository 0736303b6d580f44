//! A WebSocket echo server and client on tokio: `WSConnection` over
//! `tokio::net::TcpStream`. The connection does no I/O, so the async glue is
//! the same as the blocking one with `.await` on reads and writes.
//!
//! ```sh
//! # Both in one process: a server on 127.0.0.1:0, the client's self-test
//! # against it, then exit (status 0 if every echo matched).
//! cargo run -p wsproto-examples --bin async-echo
//! # Only the server, until Ctrl-C:
//! cargo run -p wsproto-examples --bin async-echo -- --serve 127.0.0.1:9002
//! # Only the client, against any echo server:
//! cargo run -p wsproto-examples --bin async-echo -- --connect ws://127.0.0.1:9002/
//! ```
//!
//! The server echoes each received chunk at once as a frame of the same
//! message, answers pings, completes the closing handshake and answers
//! protocol errors with their close code; each connection is a task with a
//! 60 s idle timeout. The client sends text and binary messages (up to
//! 1 MiB) and a ping, checks the echoes, and closes.
//!
//! To stay short, a connection writes what it queued before it reads again:
//! a peer that sends more than the socket buffers hold without reading its
//! echo stalls it until the timeout. The blocking `echo-server` shows how to
//! keep reading while output waits (a writer of its own).

#![forbid(unsafe_code)]
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::timeout;
use wsproto_examples::cli::{bind_hint, connect_hint, echo_server_command, exit_code, Failure};
use wsproto_examples::url::WsUrl;
use wsproto_std::events::{
    AcceptConnection, BytesMessage, CloseConnection, Event, Ping, Request, TextMessage,
};
use wsproto_std::{CloseCode, ConnectionState, ConnectionType, RemoteProtocolError, WSConnection};

/// A WebSocket echo server and client on tokio. With no option it starts a
/// server on a free loopback port, runs the client's self-test against it
/// (text and binary messages up to 1 MiB and a ping, every echo checked),
/// and exits with status 0 if every echo matched.
///
/// The server echoes each chunk at once, answers pings, completes the
/// closing handshake and gives each connection a 60 s idle timeout.
#[derive(Parser, Debug)]
#[command(
    name = "async-echo",
    after_help = "Examples:\n  \
        cargo run -p wsproto-examples --bin async-echo\n  \
        cargo run -p wsproto-examples --bin async-echo -- --serve 127.0.0.1:9002\n  \
        cargo run -p wsproto-examples --bin async-echo -- --connect ws://127.0.0.1:9002/"
)]
struct Cli {
    /// Only serve, on ADDR, until Ctrl-C [default: off; a server on a free
    /// port for the self-test]
    #[arg(long, value_name = "ADDR", conflicts_with = "connect")]
    serve: Option<String>,
    /// Only run the self-test, against the echo server at URL [default: off;
    /// the program's own server]
    #[arg(long, value_name = "URL")]
    connect: Option<WsUrl>,
}

/// A peer silent for this long loses its connection.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the client's self-test may take in all.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match (&cli.serve, &cli.connect) {
        (Some(addr), _) => serve_until_ctrl_c(addr).await.map_err(|err| {
            let hint = bind_hint(&err);
            Failure::new(format!("cannot serve on {addr}"), err).with_hint(hint)
        }),
        (None, Some(url)) => self_test(url).await.map_err(|err| {
            let hint = connect_hint(
                &err,
                "echo server",
                &echo_server_command(&url.socket_addr()),
            );
            Failure::new(format!("the self-test against {url} failed"), err).with_hint(hint)
        }),
        (None, None) => serve_and_test()
            .await
            .map_err(|err| Failure::new("the self-test failed", err)),
    };
    exit_code(result)
}

/// `--serve`: the server alone, until Ctrl-C.
async fn serve_until_ctrl_c(addr: &str) -> io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!("listening on ws://{}", listener.local_addr()?);
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop.send(true);
        }
    });
    serve(listener, stopped).await;
    println!("stopped");
    Ok(())
}

/// No option: a server on a free loopback port, the self-test against it,
/// then both stop.
async fn serve_and_test() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("listening on ws://{addr}");
    let (stop, stopped) = watch::channel(false);
    let server = tokio::spawn(serve(listener, stopped));
    let url: WsUrl = format!("ws://{addr}/")
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let result = self_test(&url).await;
    let _ = stop.send(true);
    server.await.map_err(io::Error::other)?;
    result
}

/// Accept connections until `stopped` turns true; each is served by its
/// own task, and those still running are cancelled at the end.
async fn serve(listener: TcpListener, mut stopped: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(async move {
                        if let Err(err) = serve_connection(stream).await {
                            eprintln!("{peer}: {err}");
                        }
                    });
                }
                Err(err) => eprintln!("accept failed: {err}"),
            },
            // Reap finished tasks so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

/// A `WSConnection` bound to a tokio `TcpStream`.
struct AsyncWs {
    stream: TcpStream,
    ws: WSConnection,
    buf: Vec<u8>,
    out: Vec<u8>,
    eof: bool,
}

impl AsyncWs {
    fn new(stream: TcpStream, kind: ConnectionType) -> Self {
        Self {
            stream,
            ws: WSConnection::new(kind),
            buf: vec![0; 64 * 1024],
            out: Vec::new(),
            eof: false,
        }
    }

    /// The next event, reading when none is buffered (after writing out what
    /// is queued); `None` once the connection or the stream is closed.
    async fn next_event(&mut self) -> io::Result<Option<Result<Event, RemoteProtocolError>>> {
        loop {
            if let Some(event) = self.ws.events().next() {
                return Ok(Some(event));
            }
            if self.eof || self.ws.state() == ConnectionState::Closed {
                return Ok(None);
            }
            self.flush().await?;
            let n = timeout(IDLE_TIMEOUT, self.stream.read(&mut self.buf))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "peer idle"))??;
            self.eof = n == 0;
            let data = (n > 0).then(|| &self.buf[..n]);
            self.ws.receive_data(data).map_err(io::Error::other)?;
        }
    }

    /// Queue an event for sending.
    fn send(&mut self, event: impl Into<Event>) -> io::Result<()> {
        self.ws
            .send_into(event, &mut self.out)
            .map_err(io::Error::other)
    }

    async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            timeout(IDLE_TIMEOUT, self.stream.write_all(&self.out))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "peer not reading"))??;
            self.out.clear();
        }
        Ok(())
    }

    /// Write out what is queued, then close the stream: a server at once, a
    /// client once the server has closed its side (or after a few seconds).
    async fn finish(mut self) -> io::Result<()> {
        self.flush().await?;
        if self.ws.connection_type() == ConnectionType::Client && !self.eof {
            let wait = async {
                while self.stream.read(&mut self.buf).await? > 0 {}
                io::Result::Ok(())
            };
            let _ = timeout(Duration::from_secs(5), wait).await;
        }
        self.stream.shutdown().await
    }
}

/// Serve one connection: echo until it is closed.
async fn serve_connection(stream: TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut conn = AsyncWs::new(stream, ConnectionType::Server);
    while let Some(event) = conn.next_event().await? {
        match event {
            Ok(Event::Request(_)) => conn.send(AcceptConnection::default())?,
            // Each chunk goes back at once as a frame of the same message.
            Ok(Event::TextMessage(m)) => conn.send(m)?,
            Ok(Event::BytesMessage(m)) => conn.send(m)?,
            Ok(Event::Ping(ping)) => conn.send(ping.response())?,
            Ok(Event::CloseConnection(close)) => {
                if conn.ws.state() == ConnectionState::RemoteClosing {
                    conn.send(close.response())?;
                }
                break;
            }
            Ok(_) => {}
            Err(err) => {
                // Send the close frame (or HTTP refusal) the error calls for.
                let _ = conn.ws.send_core(&err.event_hint(), &mut conn.out);
                break;
            }
        }
    }
    conn.finish().await
}

/// The client: connect to `url`, check a few echoes and a ping, close.
async fn self_test(url: &WsUrl) -> io::Result<()> {
    timeout(TEST_TIMEOUT, run_client(url))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the self-test took too long"))?
}

async fn run_client(url: &WsUrl) -> io::Result<()> {
    let addr: SocketAddr = tokio::net::lookup_host(url.socket_addr())
        .await?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut conn = AsyncWs::new(stream, ConnectionType::Client);
    conn.send(Request::new(url.host_header(), &url.target))?;
    match conn.next_event().await? {
        Some(Ok(Event::AcceptConnection(_))) => {}
        other => return Err(io::Error::other(format!("handshake failed: {other:?}"))),
    }
    println!(
        "connected to {url}, permessage-deflate: {}",
        conn.ws.deflate_enabled()
    );

    let big_text: String = "wsproto ".repeat(128 * 1024);
    let big_binary: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 % 256) as u8).collect();
    let messages: Vec<(bool, Vec<u8>)> = vec![
        (true, b"Hello from tokio".to_vec()),
        (true, "h\u{e9}llo, w\u{f6}rld \u{2713}".as_bytes().to_vec()),
        (false, vec![0, 1, 2, 255]),
        (true, big_text.into_bytes()),
        (false, big_binary),
        (true, Vec::new()),
    ];
    for (text, data) in &messages {
        if *text {
            let text = String::from_utf8(data.clone()).map_err(io::Error::other)?;
            conn.send(TextMessage::new(text))?;
        } else {
            conn.send(BytesMessage::new(data.clone()))?;
        }
        let (echo_text, echo) = receive_message(&mut conn).await?;
        if echo_text != *text || echo != *data {
            return Err(io::Error::other(format!(
                "echo mismatch for a message of {} bytes",
                data.len()
            )));
        }
        println!(
            "echoed a {} message of {} bytes",
            if *text { "text" } else { "binary" },
            data.len()
        );
    }

    conn.send(Ping::new(&b"tokio ping"[..]))?;
    match conn.next_event().await? {
        Some(Ok(Event::Pong(pong))) if pong.payload[..] == b"tokio ping"[..] => {
            println!("pong received");
        }
        other => return Err(io::Error::other(format!("expected a pong: {other:?}"))),
    }

    conn.send(CloseConnection::with_reason(
        CloseCode::NORMAL_CLOSURE,
        "done",
    ))?;
    match conn.next_event().await? {
        Some(Ok(Event::CloseConnection(close))) => {
            println!("closed: code={} reason={:?}", close.code, close.reason);
        }
        other => return Err(io::Error::other(format!("expected a close: {other:?}"))),
    }
    conn.finish().await?;
    println!("self-test passed");
    Ok(())
}

/// Collect the chunks of one message: (is text, payload).
async fn receive_message(conn: &mut AsyncWs) -> io::Result<(bool, Vec<u8>)> {
    let mut data = Vec::new();
    loop {
        match conn.next_event().await? {
            Some(Ok(Event::TextMessage(m))) => {
                data.extend_from_slice(m.data.as_bytes());
                if m.message_finished {
                    return Ok((true, data));
                }
            }
            Some(Ok(Event::BytesMessage(m))) => {
                data.extend_from_slice(&m.data);
                if m.message_finished {
                    return Ok((false, data));
                }
            }
            Some(Ok(Event::Ping(ping))) => conn.send(ping.response())?,
            other => return Err(io::Error::other(format!("expected a message: {other:?}"))),
        }
    }
}
