//! The echo server behind the `echo-server` program: a thread per
//! connection over blocking `std::net` sockets, WebSocket echo on every
//! upgrade request, and the demo page for plain HTTP requests.
//!
//! ```
//! use wsproto_examples::echo_server::EchoServer;
//! use wsproto_examples::session::{Session, IO_TIMEOUT};
//! use wsproto_examples::url::WsUrl;
//! use wsproto_std::events::{Event, TextMessage};
//! use wsproto_std::Settings;
//!
//! let server = EchoServer::bind("127.0.0.1:0")?;
//! let addr = server.local_addr();
//! let stop = server.stop_handle();
//! let running = std::thread::spawn(move || server.run());
//!
//! let url: WsUrl = format!("ws://{addr}/").parse()?;
//! let mut session = Session::connect(&url, Settings::default(), IO_TIMEOUT)?;
//! session.send(TextMessage::new("hello"))?;
//! session.flush()?;
//! match session.next_event()? {
//!     Some(Ok(Event::TextMessage(m))) => assert_eq!(&*m.data, "hello"),
//!     other => panic!("{other:?}"),
//! }
//!
//! stop.stop();
//! running.join().unwrap()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wsproto_std::{ConnectionType, Settings, TimerConfig, WSConnection};

use crate::session::{drain, echo, is_timeout, Session, CLOSE_GRACE, IO_TIMEOUT};

/// The demo page served to plain HTTP requests for `/`.
pub const INDEX_HTML: &str = include_str!("../static/index.html");

/// The largest request head read before deciding between the page and the
/// WebSocket handshake (the handshake's own limit is the same).
const MAX_HEAD: usize = 8 * 1024;

/// Connections served at once, by default; more are refused with 503.
pub const MAX_CONNECTIONS: usize = 512;

/// What the server grants each peer: every wait has a deadline, every
/// buffer a bound, every refusal a reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; more get a 503 at once.
    pub max_connections: usize,
    /// Connections from one IP address at once; more get a 503 at once.
    pub max_per_address: usize,
    /// The time a client has to send its whole request head; then it gets
    /// a 408 and is closed (slowloris clients never hold a slot longer).
    pub head_timeout: Duration,
    /// A ping goes to a peer silent for this long...
    pub keepalive_interval: Duration,
    /// ...and the connection is dropped when its pong takes longer than
    /// this.
    pub keepalive_timeout: Duration,
    /// The most output held for a peer that does not read (by default the
    /// largest message, so that a peer that sends a whole message before it
    /// reads the echo is still served).
    pub max_queued: usize,
    /// How long held output may wait for the peer to read it; then the
    /// peer is dropped.
    pub drain_timeout: Duration,
    /// How long the peer has to answer our close frame.
    pub close_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            max_per_address: 64,
            head_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            max_queued: crate::session::WRITE_BEHIND_LIMIT,
            drain_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
        }
    }
}

/// How long [`EchoServer::run`] waits for its connections once stopped.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A WebSocket echo server; see the [module docs](self).
#[derive(Debug)]
pub struct EchoServer {
    listener: TcpListener,
    local: SocketAddr,
    shared: Arc<Shared>,
    settings: Settings,
    limits: Limits,
    verbose: bool,
}

#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    /// Where to connect to wake the accept loop up.
    wake: SocketAddr,
    /// The live connections, to shut them down on stop, and how many come
    /// from each address.
    live: Mutex<Live>,
    next_id: AtomicU64,
}

#[derive(Debug, Default)]
struct Live {
    streams: HashMap<u64, TcpStream>,
    per_address: HashMap<IpAddr, usize>,
}

impl Live {
    fn remove(&mut self, id: u64, ip: IpAddr) {
        self.streams.remove(&id);
        if let Some(count) = self.per_address.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                self.per_address.remove(&ip);
            }
        }
    }
}

/// Stops a running [`EchoServer`] from another thread (or a signal
/// handler thread).
#[derive(Clone, Debug)]
pub struct StopHandle(Arc<Shared>);

impl StopHandle {
    /// Ask the server to stop: it stops accepting, shuts its connections
    /// down, and [`EchoServer::run`] returns.
    pub fn stop(&self) {
        self.0.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept up; the loop sees the flag and ends.
        let _ = TcpStream::connect_timeout(&self.0.wake, Duration::from_secs(1));
    }
}

impl EchoServer {
    /// Listen on `addr` (port 0 picks a free port).
    ///
    /// # Errors
    ///
    /// The address could not be bound.
    pub fn bind(addr: impl std::net::ToSocketAddrs) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let local = listener.local_addr()?;
        let wake_ip = match local.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        Ok(Self {
            listener,
            local,
            shared: Arc::new(Shared {
                stop: AtomicBool::new(false),
                wake: SocketAddr::new(wake_ip, local.port()),
                live: Mutex::new(Live::default()),
                next_id: AtomicU64::new(0),
            }),
            settings: default_settings(),
            limits: Limits::default(),
            verbose: false,
        })
    }

    /// Use `limits` instead of [`Limits::default`].
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Use `settings` for every connection (by default permessage-deflate is
    /// accepted, compressing at level 1).
    #[must_use]
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Print a line per connection to standard error.
    #[must_use]
    pub fn verbose(mut self, verbose: bool) -> Self {
        self.verbose = verbose;
        self
    }

    /// The address listened on.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// A handle that stops [`run`](Self::run).
    #[must_use]
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(Arc::clone(&self.shared))
    }

    /// Serve until stopped: accept connections and serve each on its own
    /// thread. When stopped, shut the live connections down and wait for
    /// their threads a few seconds.
    ///
    /// # Errors
    ///
    /// Accepting failed for a reason other than a failed connection.
    pub fn run(self) -> io::Result<()> {
        let mut threads: Vec<JoinHandle<()>> = Vec::new();
        let mut result = Ok(());
        while !self.shared.stop.load(Ordering::SeqCst) {
            let (stream, peer) = match self.listener.accept() {
                Ok(accepted) => accepted,
                // A connection that failed before it was accepted.
                Err(err) if is_transient(&err) => continue,
                Err(err) => {
                    result = Err(err);
                    break;
                }
            };
            if self.shared.stop.load(Ordering::SeqCst) {
                break;
            }
            threads.retain(|t| !t.is_finished());
            let limits = self.limits;
            let from_peer = self
                .live()
                .per_address
                .get(&peer.ip())
                .copied()
                .unwrap_or(0);
            let refusal = if threads.len() >= limits.max_connections {
                Some("the server is at its connection limit")
            } else if from_peer >= limits.max_per_address {
                Some("too many connections from your address")
            } else {
                None
            };
            if let Some(reason) = refusal {
                if self.verbose {
                    eprintln!("{peer}: refused with 503: {reason}");
                }
                refuse(stream, 503, "Service Unavailable", reason);
                continue;
            }
            let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
            {
                let mut live = self.live();
                if let Ok(clone) = stream.try_clone() {
                    live.streams.insert(id, clone);
                }
                *live.per_address.entry(peer.ip()).or_default() += 1;
            }
            let shared = Arc::clone(&self.shared);
            let settings = self.settings.clone();
            let verbose = self.verbose;
            let spawned = std::thread::Builder::new()
                .name(format!("ws-{peer}"))
                .spawn(move || {
                    match serve_connection_with(stream, settings, &limits) {
                        Ok(outcome) if verbose => eprintln!("{peer}: {outcome}"),
                        Ok(_) => {}
                        Err(err) if is_timeout(&err) && verbose => {
                            eprintln!("{peer}: dropped: {err}");
                        }
                        Err(err) if is_timeout(&err) => {}
                        Err(err) => eprintln!("{peer}: {err}"),
                    }
                    shared
                        .live
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(id, peer.ip());
                });
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(err) => {
                    eprintln!("{peer}: no thread: {err}");
                    self.live().remove(id, peer.ip());
                }
            }
        }
        for stream in self.live().streams.values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let end = Instant::now() + STOP_GRACE;
        while threads.iter().any(|t| !t.is_finished()) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        for thread in threads.into_iter().filter(JoinHandle::is_finished) {
            let _ = thread.join();
        }
        result
    }

    fn live(&self) -> std::sync::MutexGuard<'_, Live> {
        self.shared
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Errors of `accept` that concern one connection, not the listener.
fn is_transient(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// What happened on one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The demo page (or a 404) was served.
    Page {
        /// The request target.
        target: String,
        /// The HTTP status sent.
        status: u16,
    },
    /// A WebSocket session ran.
    WebSocket(crate::session::EchoSummary),
    /// The peer closed the stream before sending a request.
    NoRequest,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Page { target, status } => write!(f, "HTTP {status} for {target}"),
            Self::WebSocket(s) => {
                write!(f, "echoed {} messages ({} bytes)", s.messages, s.bytes)?;
                if let Some(code) = s.close {
                    write!(f, ", closed with {code}")?;
                }
                if let Some(err) = &s.error {
                    write!(f, ", protocol error: {err}")?;
                }
                Ok(())
            }
            Self::NoRequest => f.write_str("closed before a request"),
        }
    }
}

/// Serve one accepted connection to its end: the demo page for a plain
/// HTTP `GET`, WebSocket echo (see [`echo`]) for anything else.
///
/// # Errors
///
/// A read or write failed or timed out.
pub fn serve_connection(stream: TcpStream, settings: Settings) -> io::Result<Outcome> {
    serve_connection_with(stream, settings, &Limits::default())
}

/// [`serve_connection`] under `limits`: the head deadline, keepalive, and
/// the bound and deadline on output held for a peer that does not read.
///
/// # Errors
///
/// A read or write failed or timed out.
pub fn serve_connection_with(
    mut stream: TcpStream,
    mut settings: Settings,
    limits: &Limits,
) -> io::Result<Outcome> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(limits.drain_timeout.min(IO_TIMEOUT)))?;
    let head = match read_head(&mut stream, limits.head_timeout) {
        Err(err) if is_timeout(&err) => {
            refuse(
                stream,
                408,
                "Request Timeout",
                "the request head took too long",
            );
            return Err(err);
        }
        other => other?,
    };
    if head.is_empty() {
        return Ok(Outcome::NoRequest);
    }
    if let Some((target, status, response)) = page_response(&head) {
        stream.write_all(&response)?;
        let _ = stream.shutdown(Shutdown::Write);
        drain(&mut stream, &mut [0; 4096], CLOSE_GRACE);
        return Ok(Outcome::Page { target, status });
    }
    settings.timers = TimerConfig::default()
        .keepalive(
            millis(limits.keepalive_interval),
            Some(millis(limits.keepalive_timeout)),
        )
        .close_timeout(millis(limits.close_timeout));
    let mut ws = WSConnection::with_settings(ConnectionType::Server, settings);
    ws.receive_data(Some(&head))
        .map_err(|err| io::Error::other(err.to_string()))?;
    let mut session =
        Session::with_write_limits(stream, ws, limits.max_queued, limits.drain_timeout)?;
    let summary = echo(&mut session)?;
    session.finish()?;
    Ok(Outcome::WebSocket(summary))
}

/// Read until the request head is complete or malformed (as `httparse`,
/// the handshake's parser, sees it: bare LF line ends are read as the
/// library reads them), [`MAX_HEAD`] bytes, or the end of the stream, all
/// within `deadline`; bytes after the head (pipelined frames) are kept.
fn read_head(stream: &mut TcpStream, deadline: Duration) -> io::Result<Vec<u8>> {
    let end = Instant::now() + deadline;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while head.len() < MAX_HEAD && head_is_partial(&head) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the request head took too long",
            ));
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    Ok(head)
}

/// Whether `head` is the beginning of a request head that more bytes could
/// complete (empty included); a complete or malformed head is not.
fn head_is_partial(head: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    matches!(request.parse(head), Ok(httparse::Status::Partial))
}

/// Answer with an HTTP refusal, without waiting for a peer that does not
/// read (the response fits in the socket buffer), and close.
fn refuse(stream: TcpStream, status: u16, reason: &str, why: &str) {
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n{why}\n",
        why.len() + 1
    );
    let mut stream = stream;
    if stream.set_nonblocking(true).is_ok() {
        let _ = stream.write_all(response.as_bytes());
    }
    let _ = stream.shutdown(Shutdown::Write);
}

/// A duration in the connection timers' ticks (milliseconds).
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// For a plain HTTP `GET` or `HEAD` (no `Upgrade: websocket`), the target,
/// the status and the whole response; `None` for a WebSocket handshake and
/// for anything malformed, which the handshake refuses on its own.
fn page_response(head: &[u8]) -> Option<(String, u16, Vec<u8>)> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    if !matches!(request.parse(head), Ok(httparse::Status::Complete(_))) {
        return None;
    }
    let method = request.method?;
    if method != "GET" && method != "HEAD" {
        return None;
    }
    let upgrade = request.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("upgrade")
            && std::str::from_utf8(h.value).is_ok_and(|v| {
                v.split(',')
                    .any(|token| token.trim().eq_ignore_ascii_case("websocket"))
            })
    });
    if upgrade {
        return None;
    }
    let target = request.path.unwrap_or("/").to_owned();
    let path = target.split('?').next().unwrap_or("/");
    let (status, content_type, body) = match path {
        "/" | "/index.html" => (200, "text/html; charset=utf-8", INDEX_HTML),
        _ => (
            404,
            "text/plain; charset=utf-8",
            "Not found: the demo is at /\n",
        ),
    };
    let reason = if status == 200 { "OK" } else { "Not Found" };
    let mut response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method == "GET" {
        response.extend_from_slice(body.as_bytes());
    }
    Some((target, status, response))
}

/// The echo server's settings: permessage-deflate accepted when offered,
/// compressing at level 1, since an echo server favours speed over ratio.
#[must_use]
pub fn default_settings() -> Settings {
    let mut settings = Settings::default();
    if let Some(deflate) = settings.permessage_deflate.as_mut() {
        deflate.compression_level = 1;
    }
    settings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_only_for_plain_requests() {
        let (target, status, response) =
            page_response(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!((target.as_str(), status), ("/", 200));
        assert!(response.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(response.ends_with(INDEX_HTML.as_bytes()));

        let (_, status, response) =
            page_response(b"HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(status, 404);
        assert!(response.ends_with(b"\r\n\r\n"));

        let upgrade = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\n\
            Connection: Upgrade\r\n\r\n";
        assert!(page_response(upgrade).is_none());
        assert!(page_response(b"POST / HTTP/1.1\r\n\r\n").is_none());
        assert!(page_response(b"GET / HTTP/1.1\r\nHost").is_none());
        assert!(page_response(b"\x00\x01junk\r\n\r\n").is_none());
    }
}
