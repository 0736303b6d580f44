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
//! that reads with one half of the stream while echoes wait in the other.
//! It is a model of a hardened deployment: every wait has a deadline and
//! every buffer a bound, each with a flag (`--help` shows the defaults):
//! the whole request head within 10 s, else 408; a ping after 30 s of
//! silence, dropped without a pong in 10 s; at most 1 MiB of echoes held
//! (beyond the message being echoed) for a peer that does not read, dropped
//! if they do not drain for 10 s; 503 past 512 connections or 64 from one
//! address. The client sends text and binary messages (up to 1 MiB) and a
//! ping, checks the echoes, and closes.

#![forbid(unsafe_code)]

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::io;
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::ready;
use std::time::Duration;

use clap::Parser;
use futures_util::{Sink, SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{timeout, Instant};
use wsproto_examples::cli::{bind_hint, connect_hint, echo_server_command, exit_code, Failure};
use wsproto_examples::url::WsUrl;
use wsproto_std::stream::{
    accept_with_config, client, CloseFrame, Error, Message, WebSocketConfig,
};
use wsproto_std::{CloseCode, TimerConfig};

/// A WebSocket echo server and client on tokio. With no option it starts a
/// server on a free loopback port, runs the client's self-test against it
/// (text and binary messages up to 1 MiB and a ping, every echo checked),
/// and exits with status 0 if every echo matched.
///
/// The server echoes each message, answers pings and completes the closing
/// handshake. Every wait has a deadline and every buffer a bound; the flags
/// below set them.
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
    /// Connections served at once; more get a 503 at once
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Connections from one IP address at once; more get a 503 at once
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_per_address)]
    max_per_address: usize,
    /// Seconds a client has to send its whole request head (then 408)
    #[arg(long, value_name = "SECS", default_value_t = secs(Limits::default().head_timeout))]
    head_timeout: f64,
    /// Seconds of silence from a peer before it gets a ping
    #[arg(long, value_name = "SECS", default_value_t = secs(Limits::default().keepalive_interval))]
    keepalive_interval: f64,
    /// Seconds a ping waits for its pong before the peer is dropped
    #[arg(long, value_name = "SECS", default_value_t = secs(Limits::default().keepalive_timeout))]
    keepalive_timeout: f64,
    /// Bytes of echoes held for a peer that does not read, beyond the
    /// message being echoed (reading pauses past it)
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_queued)]
    max_queued: usize,
    /// Seconds held echoes may wait for the peer to take one (then the
    /// peer is dropped)
    #[arg(long, value_name = "SECS", default_value_t = secs(Limits::default().drain_timeout))]
    drain_timeout: f64,
    /// Seconds the peer has to answer our close frame
    #[arg(long, value_name = "SECS", default_value_t = secs(Limits::default().close_timeout))]
    close_timeout: f64,
}

fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

impl Cli {
    fn limits(&self) -> Result<Limits, Failure> {
        let duration = |name: &str, secs: f64| {
            Duration::try_from_secs_f64(secs)
                .map_err(|err| Failure::new(format!("--{name} {secs} is not a duration"), err))
        };
        Ok(Limits {
            max_connections: self.max_connections,
            max_per_address: self.max_per_address,
            head_timeout: duration("head-timeout", self.head_timeout)?,
            keepalive_interval: duration("keepalive-interval", self.keepalive_interval)?,
            keepalive_timeout: duration("keepalive-timeout", self.keepalive_timeout)?,
            max_queued: self.max_queued,
            drain_timeout: duration("drain-timeout", self.drain_timeout)?,
            close_timeout: duration("close-timeout", self.close_timeout)?,
        })
    }
}

/// What the server grants each peer.
#[derive(Clone, Copy, Debug)]
struct Limits {
    max_connections: usize,
    max_per_address: usize,
    head_timeout: Duration,
    keepalive_interval: Duration,
    keepalive_timeout: Duration,
    max_queued: usize,
    drain_timeout: Duration,
    close_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 512,
            max_per_address: 64,
            head_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            max_queued: 1 << 20,
            drain_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
        }
    }
}

impl Limits {
    /// The adapter's settings for each connection.
    fn config(&self) -> WebSocketConfig {
        let mut config = WebSocketConfig::default()
            .handshake_timeout(self.head_timeout)
            .keepalive(self.keepalive_interval, self.keepalive_timeout)
            .close_timeout(self.close_timeout)
            .max_write_buffer_size(self.max_queued.min(128 * 1024));
        let close = u64::try_from(self.close_timeout.as_millis()).unwrap_or(u64::MAX);
        config.settings.timers = TimerConfig::default().close_timeout(close);
        config
    }
}

/// How long the self-test may take in all.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let limits = match cli.limits() {
        Ok(limits) => limits,
        Err(failure) => return exit_code(Err(failure)),
    };
    let result = match (&cli.serve, &cli.connect) {
        (Some(addr), _) => serve_until_ctrl_c(addr, limits).await.map_err(|err| {
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
        (None, None) => serve_and_test(limits)
            .await
            .map_err(|err| Failure::new("the self-test failed", err)),
    };
    exit_code(result)
}

/// `--serve`: the server alone, until Ctrl-C.
async fn serve_until_ctrl_c(addr: &str, limits: Limits) -> io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!("listening on ws://{}", listener.local_addr()?);
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop.send(true);
        }
    });
    serve(listener, stopped, limits).await;
    println!("stopped");
    Ok(())
}

/// No option: a server on a free loopback port, the self-test against it,
/// then both stop.
async fn serve_and_test(limits: Limits) -> Result<(), Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("listening on ws://{addr}");
    let (stop, stopped) = watch::channel(false);
    let server = tokio::spawn(serve(listener, stopped, limits));
    let url: WsUrl = format!("ws://{addr}/")
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let result = self_test(&url).await;
    let _ = stop.send(true);
    server.await.map_err(io::Error::other)?;
    result
}

/// The connections being served: how many, and how many per address.
#[derive(Debug, Default)]
struct Live {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// A connection's place in [`Live`], given back when dropped.
struct Slot {
    live: Arc<Mutex<Live>>,
    ip: IpAddr,
}

impl Slot {
    /// A place for a connection from `ip`, or why there is none.
    fn take(live: &Arc<Mutex<Live>>, ip: IpAddr, limits: &Limits) -> Result<Self, &'static str> {
        let mut guard = live.lock().unwrap_or_else(PoisonError::into_inner);
        if guard.total >= limits.max_connections {
            return Err("the server is at its connection limit");
        }
        let from_ip = guard.per_address.entry(ip).or_default();
        if *from_ip >= limits.max_per_address {
            return Err("too many connections from your address");
        }
        *from_ip += 1;
        guard.total += 1;
        Ok(Self {
            live: Arc::clone(live),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut guard = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        guard.total -= 1;
        if let Some(count) = guard.per_address.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                guard.per_address.remove(&self.ip);
            }
        }
    }
}

/// How long a refused peer may keep its socket open to read the refusal.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Accept connections until `stopped` turns true; each is served by its
/// own task, and those still running are cancelled at the end. Past the
/// limits a connection gets a 503 with the reason.
async fn serve(listener: TcpListener, mut stopped: watch::Receiver<bool>, limits: Limits) {
    let live = Arc::new(Mutex::new(Live::default()));
    let refusing = Arc::new(AtomicUsize::new(0));
    let mut connections = JoinSet::new();
    let mut failed = false;
    loop {
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match Slot::take(&live, peer.ip(), &limits) {
                    Ok(slot) => {
                        connections.spawn(async move {
                            if let Err(err) = serve_connection(stream, &limits).await {
                                eprintln!("{peer}: {err}");
                            }
                            drop(slot);
                        });
                    }
                    Err(why) => {
                        eprintln!("{peer}: refused with 503: {why}");
                        refuse(stream, why, &refusing, limits.max_connections);
                    }
                },
                Err(err) => {
                    eprintln!("accept failed: {err}");
                    failed = true;
                }
            },
            // Reap finished tasks so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
        if std::mem::take(&mut failed) {
            // Out of descriptors, most often: wait a moment rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    connections.shutdown().await;
}

/// Answer 503 with `why`, without waiting for a peer that does not read
/// (the response fits in the socket buffer). The socket stays open for at
/// most [`REFUSAL_LINGER`] so that the peer reads the answer before the
/// close (closing with its request unread would reset the connection); at
/// most `max_lingering` refused sockets linger at once, others close at
/// once.
fn refuse(stream: TcpStream, why: &str, refusing: &Arc<AtomicUsize>, max_lingering: usize) {
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n{why}\n",
        why.len() + 1
    );
    let _ = stream.try_write(response.as_bytes());
    if refusing.fetch_add(1, Ordering::Relaxed) >= max_lingering {
        refusing.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let refusing = Arc::clone(refusing);
    tokio::spawn(async move {
        let mut stream = stream;
        let _ = stream.shutdown().await;
        let mut sink = [0u8; 1024];
        let _ = timeout(REFUSAL_LINGER, async {
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
        refusing.fetch_sub(1, Ordering::Relaxed);
    });
}

/// Serve one connection: echo every message until the peer closes. The
/// halves run side by side, so reading (and answering pings) goes on while
/// echoes wait for a peer that is still sending, up to
/// [`Limits::max_queued`] bytes beyond one message; reading pauses past it,
/// and the peer is dropped when no echo leaves for
/// [`Limits::drain_timeout`]. The adapter sends the keepalive pings and
/// ends the stream with `Error::Timeout` when a deadline passes.
async fn serve_connection(stream: TcpStream, limits: &Limits) -> Result<(), Error> {
    stream.set_nodelay(true)?;
    let ws = accept_with_config(stream, limits.config()).await?;
    let (mut write, mut read) = ws.split();
    let mut queue = Queue::default();
    let mut drain_deadline = None;
    let mut progress_seen = 0;
    loop {
        if queue.messages.is_empty() {
            drain_deadline = None;
        } else if drain_deadline.is_none() || queue.sent != progress_seen {
            progress_seen = queue.sent;
            drain_deadline = Some(Instant::now() + limits.drain_timeout);
        }
        let stalled = drain_deadline.unwrap_or_else(Instant::now);
        tokio::select! {
            message = read.next(), if queue.bytes < limits.max_queued => match message.transpose()? {
                Some(message) if message.is_text() || message.is_binary() => queue.push(message),
                Some(_) => {}
                None => return Ok(()),
            },
            sent = send_queued(&mut write, &mut queue), if !queue.messages.is_empty() => sent?,
            () = tokio::time::sleep_until(stalled), if drain_deadline.is_some() => {
                // The peer does not take its echoes: drop it, and what is
                // held for it.
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("echoes not drained for {:?}, {} bytes held", limits.drain_timeout, queue.bytes),
                )
                .into());
            }
        }
    }
}

/// Echoes waiting for the sink.
#[derive(Default)]
struct Queue {
    messages: VecDeque<Message>,
    /// Their payload bytes.
    bytes: usize,
    /// How many messages the sink took so far.
    sent: u64,
}

impl Queue {
    fn push(&mut self, message: Message) {
        self.bytes += message.len();
        self.messages.push_back(message);
    }
}

/// Send the queued messages and flush. A message leaves the queue only
/// when the sink takes it, so dropping this future loses nothing.
async fn send_queued<S>(sink: &mut S, queue: &mut Queue) -> Result<(), Error>
where
    S: Sink<Message, Error = Error> + Unpin,
{
    poll_fn(|cx| {
        while !queue.messages.is_empty() {
            ready!(sink.poll_ready_unpin(cx))?;
            if let Some(message) = queue.messages.pop_front() {
                queue.bytes -= message.len();
                queue.sent += 1;
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
