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

use wsproto_std::{ConnectionType, Settings, WSConnection};

use crate::session::{drain, echo, Session, CLOSE_GRACE, IO_TIMEOUT};

/// The demo page served to plain HTTP requests for `/`.
pub const INDEX_HTML: &str = include_str!("../static/index.html");

/// The largest request head read before deciding between the page and the
/// WebSocket handshake (the handshake's own limit is the same).
const MAX_HEAD: usize = 8 * 1024;

/// Connections served at once; more are closed at once.
pub const MAX_CONNECTIONS: usize = 512;

/// How long [`EchoServer::run`] waits for its connections once stopped.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// A WebSocket echo server; see the [module docs](self).
#[derive(Debug)]
pub struct EchoServer {
    listener: TcpListener,
    local: SocketAddr,
    shared: Arc<Shared>,
    settings: Settings,
    verbose: bool,
}

#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    /// Where to connect to wake the accept loop up.
    wake: SocketAddr,
    /// The live connections, to shut them down on stop.
    live: Mutex<HashMap<u64, TcpStream>>,
    next_id: AtomicU64,
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
                live: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
            }),
            settings: default_settings(),
            verbose: false,
        })
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
            if threads.len() >= MAX_CONNECTIONS {
                eprintln!("{peer}: refused, {MAX_CONNECTIONS} connections already");
                continue;
            }
            let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
            if let Ok(clone) = stream.try_clone() {
                self.live().insert(id, clone);
            }
            let shared = Arc::clone(&self.shared);
            let settings = self.settings.clone();
            let verbose = self.verbose;
            let spawned = std::thread::Builder::new()
                .name(format!("ws-{peer}"))
                .spawn(move || {
                    match serve_connection(stream, settings) {
                        Ok(outcome) if verbose => eprintln!("{peer}: {outcome}"),
                        Ok(_) => {}
                        Err(err) if is_timeout(&err) => {
                            eprintln!(
                                "{peer}: no progress for {} s, dropped",
                                IO_TIMEOUT.as_secs()
                            );
                        }
                        Err(err) => eprintln!("{peer}: {err}"),
                    }
                    shared
                        .live
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&id);
                });
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(err) => {
                    eprintln!("{peer}: no thread: {err}");
                    self.live().remove(&id);
                }
            }
        }
        for stream in self.live().values() {
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

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<u64, TcpStream>> {
        self.shared
            .live
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A socket timeout: `WouldBlock` on Unix, `TimedOut` on Windows.
fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
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
pub fn serve_connection(mut stream: TcpStream, settings: Settings) -> io::Result<Outcome> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let head = read_head(&mut stream)?;
    if head.is_empty() {
        return Ok(Outcome::NoRequest);
    }
    if let Some((target, status, response)) = page_response(&head) {
        stream.write_all(&response)?;
        let _ = stream.shutdown(Shutdown::Write);
        drain(&mut stream, &mut [0; 4096], CLOSE_GRACE);
        return Ok(Outcome::Page { target, status });
    }
    let mut ws = WSConnection::with_settings(ConnectionType::Server, settings);
    ws.receive_data(Some(&head))
        .map_err(|err| io::Error::other(err.to_string()))?;
    let mut session = Session::new(stream, ws)?;
    let summary = echo(&mut session)?;
    session.finish()?;
    Ok(Outcome::WebSocket(summary))
}

/// Read until the end of the request head, [`MAX_HEAD`] bytes, or the end
/// of the stream; bytes after the head (pipelined frames) are kept.
fn read_head(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while head.len() < MAX_HEAD && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(head)
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
