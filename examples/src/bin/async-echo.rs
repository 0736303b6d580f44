//! A WebSocket echo server and client on tokio, with the async adapter of
//! `wsproto_std::stream`: a `WebSocketStream` is a `Stream` of messages and
//! a `Sink` for them, as in tokio-tungstenite.
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
//! The server echoes each text and binary message; the adapter answers
//! pings and completes the closing handshake. Each connection is one task
//! that reads with one half of the stream while echoes wait in the other,
//! with an idle timeout. The client sends text and binary messages (up to 1 MiB) and a
//! ping, checks the echoes, and closes.

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::process::ExitCode;
use std::task::ready;
use std::time::Duration;

use clap::Parser;
use futures_util::{Sink, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::timeout;
use wsproto_examples::cli::{bind_hint, connect_hint, echo_server_command, exit_code, Failure};
use wsproto_examples::url::WsUrl;
use wsproto_std::stream::{accept, client, CloseFrame, Error, Message};
use wsproto_std::CloseCode;

/// A WebSocket echo server and client on tokio. With no option it starts a
/// server on a free loopback port, runs the client's self-test against it
/// (text and binary messages up to 1 MiB and a ping, every echo checked),
/// and exits with status 0 if every echo matched.
///
/// The server echoes each message, answers pings, completes the closing
/// handshake and closes connections idle for --idle-timeout.
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
    /// Close a connection (code 1001) after this many seconds without a
    /// message
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    idle_timeout: u64,
}

/// How long the client's self-test may take in all.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let idle = Duration::from_secs(cli.idle_timeout);
    let result = match (&cli.serve, &cli.connect) {
        (Some(addr), _) => serve_until_ctrl_c(addr, idle).await.map_err(|err| {
            let hint = bind_hint(&err);
            Failure::new(format!("cannot serve on {addr}"), err).with_hint(hint)
        }),
        (None, Some(url)) => self_test(url).await.map_err(|err| {
            let hint = match &err {
                Error::Io(err) => {
                    connect_hint(err, "echo server", &echo_server_command(&url.socket_addr()))
                }
                _ => None,
            };
            Failure::new(format!("the self-test against {url} failed"), err).with_hint(hint)
        }),
        (None, None) => serve_and_test(idle)
            .await
            .map_err(|err| Failure::new("the self-test failed", err)),
    };
    exit_code(result)
}

/// `--serve`: the server alone, until Ctrl-C.
async fn serve_until_ctrl_c(addr: &str, idle: Duration) -> io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!("listening on ws://{}", listener.local_addr()?);
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop.send(true);
        }
    });
    serve(listener, stopped, idle).await;
    println!("stopped");
    Ok(())
}

/// No option: a server on a free loopback port, the self-test against it,
/// then both stop.
async fn serve_and_test(idle: Duration) -> Result<(), Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("listening on ws://{addr}");
    let (stop, stopped) = watch::channel(false);
    let server = tokio::spawn(serve(listener, stopped, idle));
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
async fn serve(listener: TcpListener, mut stopped: watch::Receiver<bool>, idle: Duration) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(async move {
                        if let Err(err) = serve_connection(stream, idle).await {
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

/// Echoes that may wait for a slow peer before reading pauses.
const MAX_QUEUED: usize = 16;

/// Serve one connection: echo every message until the peer closes. The
/// halves run side by side, so reading (and answering pings) goes on while
/// echoes wait for a peer that is still sending, up to [`MAX_QUEUED`].
async fn serve_connection(stream: TcpStream, idle: Duration) -> Result<(), Error> {
    stream.set_nodelay(true)?;
    let ws = timeout(idle, accept(stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no request in time"))??;
    let (mut write, mut read) = ws.split();
    let mut queue = VecDeque::new();
    loop {
        tokio::select! {
            message = read.next(), if queue.len() < MAX_QUEUED => match message.transpose()? {
                Some(message) if message.is_text() || message.is_binary() => queue.push_back(message),
                Some(_) => {}
                None => return Ok(()),
            },
            sent = send_queued(&mut write, &mut queue), if !queue.is_empty() => sent?,
            () = tokio::time::sleep(idle) => {
                // Nothing read or written for that long: the peer is silent,
                // or does not read its echoes.
                let mut ws = write.reunite(read).map_err(io::Error::other)?;
                let bye = CloseFrame {
                    code: CloseCode::GOING_AWAY,
                    reason: "idle".into(),
                };
                return ws.close(Some(bye)).await;
            }
        }
    }
}

/// Send the queued messages and flush. A message leaves the queue only
/// when the sink takes it, so dropping this future loses nothing.
async fn send_queued<S>(sink: &mut S, queue: &mut VecDeque<Message>) -> Result<(), Error>
where
    S: Sink<Message, Error = Error> + Unpin,
{
    poll_fn(|cx| {
        while !queue.is_empty() {
            ready!(sink.poll_ready_unpin(cx))?;
            if let Some(message) = queue.pop_front() {
                sink.start_send_unpin(message)?;
            }
        }
        sink.poll_flush_unpin(cx)
    })
    .await
}

/// The client: connect to `url`, check a few echoes and a ping, close.
async fn self_test(url: &WsUrl) -> Result<(), Error> {
    timeout(TEST_TIMEOUT, run_client(url))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the self-test took too long"))?
}

async fn run_client(url: &WsUrl) -> Result<(), Error> {
    let stream = TcpStream::connect(url.socket_addr()).await?;
    stream.set_nodelay(true)?;
    let (mut ws, _) = client(stream, &url.host_header(), &url.target).await?;
    println!(
        "connected to {url}, permessage-deflate: {}",
        ws.connection().deflate_enabled()
    );

    let big_text = "wsproto ".repeat(128 * 1024);
    let big_binary: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 % 256) as u8).collect();
    let messages = [
        Message::text("Hello from tokio"),
        Message::text("h\u{e9}llo, w\u{f6}rld \u{2713}"),
        Message::binary(vec![0, 1, 2, 255]),
        Message::text(big_text),
        Message::binary(big_binary),
        Message::text(""),
    ];
    for message in messages {
        ws.send(message.clone()).await?;
        let echo = ws.next().await.transpose()?;
        if echo.as_ref() != Some(&message) {
            return Err(io::Error::other(format!(
                "echo mismatch for a message of {} bytes",
                message.len()
            ))
            .into());
        }
        let kind = if message.is_text() { "text" } else { "binary" };
        println!("echoed a {kind} message of {} bytes", message.len());
    }

    ws.send(Message::Ping("tokio ping".into())).await?;
    match ws.next().await.transpose()? {
        Some(Message::Pong(payload)) if payload == "tokio ping" => println!("pong received"),
        other => return Err(io::Error::other(format!("expected a pong: {other:?}")).into()),
    }

    let done = CloseFrame {
        code: CloseCode::NORMAL_CLOSURE,
        reason: "done".into(),
    };
    ws.close(Some(done)).await?;
    println!("closed");
    println!("self-test passed");
    Ok(())
}
