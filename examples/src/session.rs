//! A blocking WebSocket endpoint over a [`TcpStream`]: the network glue
//! around a [`WSConnection`] that the example programs share.
//!
//! [`Session`] reads from the socket only when the connection has no event
//! left to give, batches what it sends, and ends with a bounded wait for the
//! peer to close the stream. [`echo`] is the echo loop of the echo server and
//! of the Autobahn client.

use std::io::{self, Read};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use wsproto_std::events::{AcceptConnection, Event, Ping, Request, TextMessage};
use wsproto_std::{
    CloseCode, ConnectionState, ConnectionType, Expired, RemoteProtocolError, Settings,
    WSConnection,
};

use crate::url::WsUrl;
use crate::writer::WriteBehind;

/// The read and write timeout of the examples' sockets: a peer that stalls
/// for this long loses its connection.
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// How long [`Session::finish`] waits for the peer to close the stream.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Size of the socket read buffer.
const READ_SIZE: usize = 64 * 1024;

/// Output is written out once this much is batched.
const FLUSH_SIZE: usize = 64 * 1024;

/// The most output waiting for a slow peer, by default, before reading stops
/// too: the default message size limit, so that a peer that sends a whole
/// message before reading its echo never deadlocks with us. Servers set
/// their own with [`Session::with_write_limits`].
pub const WRITE_BEHIND_LIMIT: usize = 64 << 20;

/// The most bytes read while waiting for the peer to close the stream.
const DRAIN_LIMIT: usize = 1 << 20;

/// A [`WSConnection`] bound to a blocking [`TcpStream`].
///
/// Reads happen on the caller's thread; writes on a thread of the session,
/// so reading goes on while the peer is slow to read (up to 64 MiB of
/// output waits for it; then the session stops reading too).
///
/// ```no_run
/// use wsproto_examples::session::{Session, IO_TIMEOUT};
/// use wsproto_std::events::{Event, TextMessage};
/// use wsproto_std::Settings;
///
/// let url = "ws://127.0.0.1:8765/".parse()?;
/// let mut session = Session::connect(&url, Settings::default(), IO_TIMEOUT)?;
/// session.send(TextMessage::new("hello"))?;
/// session.flush()?;
/// if let Some(Ok(Event::TextMessage(echo))) = session.next_event()? {
///     println!("{}", &*echo.data);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Session {
    stream: TcpStream,
    writer: WriteBehind,
    ws: WSConnection,
    buf: Vec<u8>,
    out: Vec<u8>,
    eof: bool,
    deadline: Option<Instant>,
    /// How long queued output may wait for the peer to read it.
    drain_timeout: Duration,
    /// The origin of the connection's timer ticks (milliseconds).
    started: Instant,
    /// The peer went silent or did not finish the closing handshake in
    /// time: it is dropped without waiting any more.
    gave_up: bool,
}

impl Session {
    /// Wrap a connected stream, setting [`IO_TIMEOUT`] on it. `ws` may
    /// already hold received bytes.
    ///
    /// # Errors
    ///
    /// The socket options could not be set.
    pub fn new(stream: TcpStream, ws: WSConnection) -> io::Result<Self> {
        Self::with_write_limits(stream, ws, WRITE_BEHIND_LIMIT, IO_TIMEOUT)
    }

    /// [`new`](Self::new), holding at most `limit` bytes of output for a
    /// peer that does not read, and giving up on it (the session fails with
    /// `TimedOut`) when what is queued has not drained within
    /// `drain_timeout`.
    ///
    /// # Errors
    ///
    /// The socket options could not be set, or the writer thread could not
    /// start.
    pub fn with_write_limits(
        stream: TcpStream,
        ws: WSConnection,
        limit: usize,
        drain_timeout: Duration,
    ) -> io::Result<Self> {
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let mut session = Self {
            writer: WriteBehind::start(&stream, limit)?,
            stream,
            ws,
            buf: vec![0; READ_SIZE],
            out: Vec::new(),
            eof: false,
            deadline: None,
            drain_timeout,
            started: Instant::now(),
            gave_up: false,
        };
        // Start the connection's timers (Settings::timers), if any.
        session.tick()?;
        Ok(session)
    }

    /// The connection's timer ticks: milliseconds since the session began.
    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Drive the connection's timers: send the keepalive ping that is due;
    /// an expired handshake, keepalive or closing handshake ends the session
    /// (the connection then reports a 1006 closure, or the handshake fails).
    fn tick(&mut self) -> io::Result<()> {
        let now = self.now();
        while let Some(expired) = self.ws.handle_timeout(now) {
            match expired {
                Expired::PingDue => {
                    self.ws
                        .send_into(Ping::new(&b"keepalive"[..]), &mut self.out)
                        .map_err(local_error)?;
                }
                Expired::Handshake => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the opening handshake took too long",
                    ))
                }
                _ => self.gave_up = true,
            }
        }
        Ok(())
    }

    /// Connect to `url` as a client and run the opening handshake.
    ///
    /// # Errors
    ///
    /// The connection failed, timed out, or the server refused the
    /// handshake or broke the protocol.
    pub fn connect(url: &WsUrl, settings: Settings, timeout: Duration) -> io::Result<Self> {
        Self::connect_with(
            url,
            Request::new(url.host_header(), &url.target),
            settings,
            timeout,
        )
    }

    /// Connect to `url` and send `request` as the opening handshake, for
    /// a request with subprotocols or extra headers.
    ///
    /// # Errors
    ///
    /// As [`connect`](Self::connect).
    pub fn connect_with(
        url: &WsUrl,
        request: Request,
        settings: Settings,
        timeout: Duration,
    ) -> io::Result<Self> {
        let stream = connect_tcp(&url.socket_addr(), timeout)?;
        let ws = WSConnection::with_settings(ConnectionType::Client, settings);
        let mut session = Self::new(stream, ws)?.with_deadline(Instant::now() + timeout);
        session.send(request)?;
        session.flush()?;
        // The first event decides: accepted, refused, or broken.
        match session.next_event()? {
            Some(Ok(Event::AcceptConnection(_))) => {
                session.deadline = None;
                session.stream.set_read_timeout(Some(IO_TIMEOUT))?;
                Ok(session)
            }
            Some(Ok(Event::RejectConnection(reject))) => Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!(
                    "the server refused the handshake: HTTP {}",
                    reject.status_code
                ),
            )),
            Some(Ok(other)) => Err(io::Error::other(format!(
                "unexpected event during the handshake: {other:?}"
            ))),
            Some(Err(err)) => Err(remote_error(err)),
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the stream during the handshake",
            )),
        }
    }

    /// Fail [`next_event`](Self::next_event) with `TimedOut` after
    /// `deadline`, whatever the peer does.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The connection.
    #[must_use]
    pub fn connection(&self) -> &WSConnection {
        &self.ws
    }

    /// The socket.
    #[must_use]
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// The next event, reading from the socket when none is buffered.
    ///
    /// Batched output is written out before each read. `Ok(None)` means
    /// nothing more will come: the connection is closed or the peer closed
    /// the stream. An `Err` event is the peer's violation: send its hint
    /// with [`send_hint`](Self::send_hint), then [`finish`](Self::finish).
    ///
    /// # Errors
    ///
    /// A read or write failed or timed out, or the deadline passed.
    pub fn next_event(&mut self) -> io::Result<Option<Result<Event, RemoteProtocolError>>> {
        loop {
            // What expired shows in the events (a 1006 closure), so first.
            self.tick()?;
            if let Some(event) = self.ws.events().next() {
                return Ok(Some(event));
            }
            if self.eof || self.ws.state() == ConnectionState::Closed {
                return Ok(None);
            }
            self.flush()?;
            // Wait no longer than the next timer or the deadline.
            let mut wait = IO_TIMEOUT;
            if let Some(at) = self.ws.poll_timeout() {
                wait = wait.min(Duration::from_millis(at.saturating_sub(self.now())));
            }
            if let Some(deadline) = self.deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
                }
                wait = wait.min(left);
            }
            if wait.is_zero() {
                continue;
            }
            self.stream.set_read_timeout(Some(wait))?;
            // Read no more than the connection accepts before its events
            // are taken.
            let space = self.ws.receive_space().min(self.buf.len());
            let n = match self.stream.read(&mut self.buf[..space]) {
                Ok(n) => n,
                Err(err) if is_timeout(&err) && self.ws.poll_timeout().is_some() => continue,
                Err(err) => return Err(err),
            };
            if n == 0 {
                self.eof = true;
                self.ws.receive_data(None).map_err(local_error)?;
            } else {
                self.ws
                    .receive_data(Some(&self.buf[..n]))
                    .map_err(local_error)?;
            }
        }
    }

    /// Queue `event` for sending; the output is written out when enough is
    /// batched, before the next read, and by [`flush`](Self::flush).
    ///
    /// # Errors
    ///
    /// The event cannot be sent in this state (`InvalidInput`), or a write
    /// failed.
    pub fn send(&mut self, event: impl Into<Event>) -> io::Result<()> {
        self.ws
            .send_into(event, &mut self.out)
            .map_err(local_error)?;
        if self.out.len() >= FLUSH_SIZE {
            self.flush()?;
        }
        Ok(())
    }

    /// Queue the reply `err` calls for: a close frame with its code, or an
    /// HTTP refusal during the handshake. Nothing is queued if the state
    /// allows no reply.
    pub fn send_hint(&mut self, err: &RemoteProtocolError) {
        // A hint the state forbids (a close frame after ours) is not sent.
        let _ = self.ws.send_core(&err.event_hint(), &mut self.out);
    }

    /// Hand everything queued to the writer thread.
    ///
    /// # Errors
    ///
    /// An earlier write failed, or the peer has not read for
    /// [`IO_TIMEOUT`] while 64 MiB wait for it.
    pub fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.writer
                .write(std::mem::take(&mut self.out), self.drain_timeout)?;
        }
        Ok(())
    }

    /// End the session: write out what is queued (waiting at most
    /// [`IO_TIMEOUT`] for the peer to take it), let the peer close the
    /// stream (a server half-closes first, as RFC 6455 §7.1.1 asks of it),
    /// reading and discarding until then, for at most [`CLOSE_GRACE`].
    ///
    /// # Errors
    ///
    /// The queued output could not be written.
    pub fn finish(mut self) -> io::Result<()> {
        self.flush()?;
        if let Err(err) = self.writer.finish(self.drain_timeout) {
            let _ = self.stream.shutdown(Shutdown::Both);
            return Err(err);
        }
        if self.ws.connection_type() == ConnectionType::Server {
            let _ = self.stream.shutdown(Shutdown::Write);
        }
        if !self.eof && !self.gave_up {
            drain(&mut self.stream, &mut self.buf, CLOSE_GRACE);
        }
        let _ = self.stream.shutdown(Shutdown::Both);
        Ok(())
    }
}

/// A socket timeout: `WouldBlock` on Unix, `TimedOut` on Windows.
pub(crate) fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Read and discard until the peer closes the stream, for at most `grace`
/// and [`DRAIN_LIMIT`] bytes.
pub(crate) fn drain(stream: &mut TcpStream, buf: &mut [u8], grace: Duration) {
    let end = Instant::now() + grace;
    let mut total = 0;
    while total < DRAIN_LIMIT {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => total += n,
        }
    }
}

/// Connect to the first address of `addr` that answers within `timeout`.
///
/// # Errors
///
/// The name did not resolve, or no address accepted the connection.
pub fn connect_tcp(addr: &str, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{addr} did not resolve"));
    for candidate in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&candidate, timeout) {
            Ok(stream) => return Ok(stream),
            Err(err) => last = err,
        }
    }
    Err(last)
}

/// How an [`echo`] session ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EchoSummary {
    /// Complete messages echoed.
    pub messages: u64,
    /// Payload bytes echoed.
    pub bytes: u64,
    /// The close code received (1006 when the stream ended without a close
    /// frame), if the connection was closed by the peer.
    pub close: Option<CloseCode>,
    /// The peer's protocol violation, answered with its hint.
    pub error: Option<RemoteProtocolError>,
}

/// Echo every message back until the connection closes: each received chunk
/// goes back at once as a frame of the same message, so a message of any
/// size passes through without being buffered whole. Pings are answered,
/// the peer's close frame is answered, a protocol violation is answered
/// with its hint. A server accepts the opening request it receives.
///
/// Call [`Session::finish`] afterwards.
///
/// # Errors
///
/// A read or write failed or timed out.
pub fn echo(session: &mut Session) -> io::Result<EchoSummary> {
    let mut summary = EchoSummary::default();
    while let Some(event) = session.next_event()? {
        match event {
            Ok(Event::Request(_)) => session.send(AcceptConnection::default())?,
            Ok(Event::TextMessage(m)) => {
                summary.bytes += m.data.len() as u64;
                summary.messages += u64::from(m.message_finished);
                // An empty chunk in the middle of a message carries nothing.
                if !m.data.is_empty() || m.message_finished {
                    session.send(TextMessage {
                        frame_finished: true,
                        ..m
                    })?;
                }
            }
            Ok(Event::BytesMessage(m)) => {
                summary.bytes += m.data.len() as u64;
                summary.messages += u64::from(m.message_finished);
                if !m.data.is_empty() || m.message_finished {
                    session.send(wsproto_std::events::BytesMessage {
                        frame_finished: true,
                        ..m
                    })?;
                }
            }
            Ok(event @ Event::Ping(_)) => {
                if let Some(pong) = session.connection().reply_to(&event) {
                    session.send(pong)?;
                }
            }
            Ok(Event::CloseConnection(close)) => {
                let code = close.code;
                if let Some(reply) = session.connection().reply_to(&close.into()) {
                    session.send(reply)?;
                }
                summary.close = Some(code);
                break;
            }
            Ok(_) => {}
            Err(err) => {
                session.send_hint(&err);
                summary.error = Some(err);
                break;
            }
        }
    }
    session.flush()?;
    Ok(summary)
}

/// A [`LocalProtocolError`](wsproto_std::LocalProtocolError) as an I/O
/// error: a bug of the calling program.
fn local_error(err: wsproto_std::LocalProtocolError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, err.to_string())
}

/// A [`RemoteProtocolError`] as an I/O error.
pub(crate) fn remote_error(err: RemoteProtocolError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err.to_string())
}
