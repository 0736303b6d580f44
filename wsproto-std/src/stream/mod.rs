//! An async adapter for tokio (feature `tokio`): a [`WebSocketStream`] over
//! any `AsyncRead + AsyncWrite + Unpin` that is a
//! [`Stream`] of whole [`Message`]s and a
//! [`Sink`] of them, in the shape tokio-tungstenite
//! users know.
//!
//! | tokio-tungstenite | here |
//! |---|---|
//! | `client_async(request, stream)` | [`client`]`(stream, host, path)`, [`client_with_config`] |
//! | `accept_async(stream)` | [`accept`]`(stream)`, [`accept_with_config`] |
//! | `accept_hdr_async(stream, callback)` | [`accept_request`]`(stream, config, callback)` |
//! | `WebSocketStream::from_raw_socket` | [`WebSocketStream::from_connection`] |
//! | `tungstenite::Message`, `CloseFrame` | [`Message`], [`CloseFrame`] |
//! | `tungstenite::Error` | [`Error`] |
//! | `WebSocketConfig` | [`WebSocketConfig`] |
//! | `StreamExt::split` | the same |
//!
//! The adapter answers pings (only the most recent one when output is
//! backed up, as RFC 6455 §5.5.3 allows) and the peer's close frame, and
//! ends the stream after the closing handshake. Reading goes on while
//! writes wait: after [`split`](futures_util::StreamExt::split), the read
//! half keeps reading (and answering pings) while the write half waits for
//! the peer to take its output. Memory is bounded: the sink reports
//! back-pressure once [`WebSocketConfig::max_write_buffer_size`] bytes wait
//! for the transport, a message is assembled only up to the maximum message
//! size, and reads go through a 4 KiB buffer on the stack.
//!
//! Deadlines and keepalive are off by default, as in tokio-tungstenite;
//! [`WebSocketConfig::handshake_timeout`] and [`WebSocketConfig::keepalive`]
//! turn them on (they drive the timers of [`Settings::timers`], with
//! milliseconds since the handshake started as ticks). The read side runs
//! them: a stream that is polled for messages (or its read half) sends the
//! keepalive ping when the peer has been silent, and ends with
//! [`Error::Timeout`] when the pong does not come in time, or when the
//! peer does not finish the closing handshake within
//! `settings.timers.close_timeout`. Drop the stream then to close the
//! transport.
//!
//! On a stream that is not split, `send(...).await` does not read: if the
//! peer may keep sending while it does not read (a pipelining client of an
//! echo server), split the stream and read in one half while the other
//! writes, as `examples/src/bin/async-echo.rs` does.
//!
//! ```
//! use futures_util::{SinkExt, StreamExt};
//! use wsproto_std::stream::{accept, client, Message};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), wsproto_std::stream::Error> {
//! let (client_io, server_io) = tokio::io::duplex(64 * 1024);
//! let server = tokio::spawn(async move {
//!     let mut ws = accept(server_io).await?;
//!     while let Some(message) = ws.next().await {
//!         let message = message?;
//!         if message.is_text() || message.is_binary() {
//!             ws.send(message).await?;
//!         }
//!     }
//!     Ok::<_, wsproto_std::stream::Error>(())
//! });
//!
//! let (mut ws, _accept) = client(client_io, "example.com", "/").await?;
//! ws.send(Message::text("hello")).await?;
//! assert_eq!(ws.next().await.transpose()?, Some(Message::text("hello")));
//! ws.close(None).await?;
//! server.await.unwrap()?;
//! # Ok(())
//! # }
//! ```

mod error;
mod handshake;
mod message;

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::stream::FusedStream;
use futures_util::task::AtomicWaker;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};
use wsproto_core::extension::deflate::PerMessageDeflate;

use crate::events::{CloseConnection, Event};
use crate::{CloseCode, ConnectionState, Expired, Settings, TimerConfig, WSConnection};

pub use error::Error;
pub use handshake::{accept, accept_request, accept_with_config, client, client_with_config};
pub use message::{CloseFrame, Message};

/// Bytes read from the transport at a time, into a buffer on the stack.
const READ_CHUNK: usize = 4096;
/// An output buffer that grew past this is released once written, so an
/// idle connection holds little.
const KEEP_OUTPUT: usize = 4096;

/// Settings of a [`WebSocketStream`] and its handshake.
///
/// ```
/// use std::time::Duration;
/// use wsproto_std::stream::WebSocketConfig;
///
/// let config = WebSocketConfig::default()
///     .max_message_size(1 << 20)
///     .max_write_buffer_size(64 * 1024)
///     .close_timeout(Duration::from_secs(2))
///     .permessage_deflate(false);
/// assert_eq!(config.settings.handshake.connection.max_message_size, 1 << 20);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WebSocketConfig {
    /// The settings of the [`WSConnection`] underneath: limits (the
    /// maximum message size is `settings.handshake.connection
    /// .max_message_size`, 64 MiB by default) and permessage-deflate (on
    /// by default). `auto_reply` is not used: the adapter answers itself.
    pub settings: Settings,
    /// Bytes waiting for the transport above which the sink's `poll_ready`
    /// waits (default 128 KiB). One message may go past it.
    pub max_write_buffer_size: usize,
    /// How long [`WebSocketStream::close`] waits for the peer's close frame
    /// (default 5 s).
    pub close_timeout: Duration,
    /// The most time the opening handshake may take (default: no limit).
    /// A server that has no whole request head by then answers 408 and
    /// closes; either side's handshake fails with [`Error::Timeout`].
    pub handshake_timeout: Option<Duration>,
    /// Keepalive (default: off): after `.0` without input a ping is sent,
    /// and when no pong comes within `.1` the stream ends with
    /// [`Error::Timeout`].
    pub keepalive: Option<(Duration, Duration)>,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        Self {
            settings: Settings::default(),
            max_write_buffer_size: 128 * 1024,
            close_timeout: Duration::from_secs(5),
            handshake_timeout: None,
            keepalive: None,
        }
    }
}

impl WebSocketConfig {
    /// The largest message received, in bytes, after decompression; a
    /// larger one fails the connection with close code 1009.
    ///
    /// ```
    /// # use wsproto_std::stream::WebSocketConfig;
    /// let config = WebSocketConfig::default().max_message_size(4096);
    /// assert_eq!(config.settings.handshake.connection.max_message_size, 4096);
    /// ```
    #[must_use]
    pub fn max_message_size(mut self, bytes: u64) -> Self {
        self.settings.handshake.connection.max_message_size = bytes;
        self
    }

    /// Set [`max_write_buffer_size`](Self::max_write_buffer_size).
    ///
    /// ```
    /// # use wsproto_std::stream::WebSocketConfig;
    /// let config = WebSocketConfig::default().max_write_buffer_size(8192);
    /// assert_eq!(config.max_write_buffer_size, 8192);
    /// ```
    #[must_use]
    pub fn max_write_buffer_size(mut self, bytes: usize) -> Self {
        self.max_write_buffer_size = bytes;
        self
    }

    /// Set [`close_timeout`](Self::close_timeout).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use wsproto_std::stream::WebSocketConfig;
    /// let config = WebSocketConfig::default().close_timeout(Duration::from_secs(1));
    /// assert_eq!(config.close_timeout, Duration::from_secs(1));
    /// ```
    #[must_use]
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Set [`handshake_timeout`](Self::handshake_timeout).
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use wsproto_std::stream::WebSocketConfig;
    /// let config = WebSocketConfig::default().handshake_timeout(Duration::from_secs(10));
    /// assert_eq!(config.handshake_timeout, Some(Duration::from_secs(10)));
    /// ```
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = Some(timeout);
        self
    }

    /// Set [`keepalive`](Self::keepalive): a ping after `interval` without
    /// input, the end of the stream when its pong takes longer than
    /// `timeout`.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use wsproto_std::stream::WebSocketConfig;
    /// let config = WebSocketConfig::default()
    ///     .keepalive(Duration::from_secs(30), Duration::from_secs(10));
    /// assert_eq!(config.keepalive, Some((Duration::from_secs(30), Duration::from_secs(10))));
    /// ```
    #[must_use]
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.keepalive = Some((interval, timeout));
        self
    }

    /// The settings of a new connection: [`settings`](Self::settings) with
    /// the timers of this configuration added.
    pub(crate) fn connection_settings(&self) -> Settings {
        let mut settings = self.settings.clone();
        let mut timers: TimerConfig = settings.timers;
        if let Some(timeout) = self.handshake_timeout {
            timers = timers.handshake_timeout(millis(timeout));
        }
        if let Some((interval, timeout)) = self.keepalive {
            timers = timers.keepalive(millis(interval), Some(millis(timeout)));
        }
        settings.timers = timers;
        settings
    }

    /// Offer (client) or accept (server) permessage-deflate, or not.
    ///
    /// ```
    /// # use wsproto_std::stream::WebSocketConfig;
    /// let config = WebSocketConfig::default().permessage_deflate(false);
    /// assert!(config.settings.permessage_deflate.is_none());
    /// ```
    #[must_use]
    pub fn permessage_deflate(mut self, on: bool) -> Self {
        self.settings.permessage_deflate = on.then(PerMessageDeflate::new);
        self
    }
}

/// A WebSocket connection over an async transport: a
/// [`Stream`] of received [`Message`]s and a
/// [`Sink`] for sending them.
///
/// Make one with [`client`], [`accept`], or
/// [`from_connection`](Self::from_connection) after an upgrade done by an
/// HTTP server. Split it with
/// [`StreamExt::split`] to read in one task
/// and write in another: reading goes on while writes wait.
///
/// The stream yields whole text and binary messages, pings (already
/// answered), pongs, and the peer's `Close`, then ends once the closing
/// handshake is over. A protocol violation by the peer comes as one
/// [`Error::Protocol`] (its close frame is sent), then the stream ends.
///
/// Closing: [`close`](Self::close) sends our close frame and waits, within
/// a time limit, for the peer's. The sink's `close` (what a write half
/// has) sends a close frame with code 1000 unless one was sent, and
/// flushes; the read half then yields the peer's reply and ends.
///
/// ```
/// use futures_util::{SinkExt, StreamExt};
/// use wsproto_std::stream::{accept, client, Message};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), wsproto_std::stream::Error> {
/// let (a, b) = tokio::io::duplex(4096);
/// let server = tokio::spawn(async move { accept(b).await });
/// let (ws, _) = client(a, "localhost", "/").await?;
/// let mut server = server.await.unwrap()?;
///
/// let (mut write, mut read) = ws.split();
/// write.send(Message::binary(vec![1, 2, 3])).await?;
/// assert_eq!(server.next().await.transpose()?, Some(Message::binary(vec![1, 2, 3])));
/// server.send(Message::text("back")).await?;
/// assert_eq!(read.next().await.transpose()?, Some(Message::text("back")));
/// # Ok(())
/// # }
/// ```
pub struct WebSocketStream<S> {
    io: S,
    ws: WSConnection,
    /// Encoded frames; `out[written..]` waits for the transport.
    out: Vec<u8>,
    written: usize,
    /// The latest ping not answered yet because output was backed up.
    pending_pong: Option<Bytes>,
    /// The message being put together.
    partial: Partial,
    read: ReadState,
    max_write_buffer_size: usize,
    close_timeout: Duration,
    /// Where the connection's timer ticks (milliseconds) count from.
    start: Instant,
    /// Armed at the connection's next deadline, once it has one.
    timer: Option<Pin<Box<Sleep>>>,
    /// Wakes both halves on transport readiness: the read half may write
    /// (replies) and either may be the one waiting.
    wakers: Arc<Wakers>,
    waker: Waker,
}

impl<S> std::fmt::Debug for WebSocketStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketStream")
            .field("ws", &self.ws)
            .field("buffered", &self.unwritten())
            .finish_non_exhaustive()
    }
}

enum Partial {
    None,
    Text(String),
    Binary(BytesMut),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ReadState {
    Open,
    /// The connection is over; our last frame is written, then the stream
    /// ends.
    Ending,
    Ended,
}

#[derive(Default)]
struct Wakers {
    read: AtomicWaker,
    write: AtomicWaker,
}

impl Wake for Wakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.read.wake();
        self.write.wake();
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocketStream<S> {
    /// A stream over `io` for a connection whose handshake is done, such as
    /// a server's after an upgrade parsed by an HTTP server (see
    /// [`WSConnection::initiate_upgrade_connection`]). Bytes that followed
    /// the handshake and are buffered in `ws` are read first. The
    /// connection's own settings apply (its [`Settings::timers`] run with
    /// milliseconds since this call as ticks); `config` gives the
    /// adapter's.
    ///
    /// ```
    /// use wsproto_std::events::{AcceptConnection, Event};
    /// use wsproto_std::stream::{WebSocketConfig, WebSocketStream};
    /// use wsproto_std::{ConnectionType, WSConnection};
    ///
    /// let mut ws = WSConnection::new(ConnectionType::Server);
    /// // The headers of a request parsed by an HTTP server.
    /// let headers: [(&str, &[u8]); 5] = [
    ///     ("Host", b"example.com"),
    ///     ("Upgrade", b"websocket"),
    ///     ("Connection", b"Upgrade"),
    ///     ("Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    ///     ("Sec-WebSocket-Version", b"13"),
    /// ];
    /// ws.initiate_upgrade_connection(&headers, "/chat")?;
    /// assert!(matches!(ws.next_event(), Some(Ok(Event::Request(_)))));
    /// // The 101 head, for the HTTP server to send.
    /// let _head = ws.send(AcceptConnection::default())?;
    /// let (io, _peer) = tokio::io::duplex(1024);
    /// let stream = WebSocketStream::from_connection(io, ws, WebSocketConfig::default());
    /// # drop(stream);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_connection(io: S, ws: WSConnection, config: WebSocketConfig) -> Self {
        Self::started(io, ws, &config, Instant::now())
    }

    /// A stream whose connection's timers count from `start`.
    pub(crate) fn started(
        io: S,
        ws: WSConnection,
        config: &WebSocketConfig,
        start: Instant,
    ) -> Self {
        let wakers = Arc::new(Wakers::default());
        let waker = Waker::from(Arc::clone(&wakers));
        Self {
            io,
            ws,
            out: Vec::new(),
            written: 0,
            pending_pong: None,
            partial: Partial::None,
            read: ReadState::Open,
            max_write_buffer_size: config.max_write_buffer_size,
            close_timeout: config.close_timeout,
            start,
            timer: None,
            wakers,
            waker,
        }
    }

    /// Send our close frame (code 1000 when `frame` is `None`), then read
    /// until the peer's close frame ends the stream, for at most the
    /// configured close timeout; messages that arrive meanwhile are
    /// dropped. Then shut the transport's write side down.
    ///
    /// ```
    /// # use futures_util::StreamExt;
    /// # use wsproto_std::stream::{accept, client, CloseFrame};
    /// # use wsproto_std::CloseCode;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), wsproto_std::stream::Error> {
    /// # let (a, b) = tokio::io::duplex(4096);
    /// # let server = tokio::spawn(async move {
    /// #     let mut ws = accept(b).await?;
    /// #     while ws.next().await.transpose()?.is_some() {}
    /// #     Ok::<_, wsproto_std::stream::Error>(())
    /// # });
    /// let (mut ws, _) = client(a, "localhost", "/").await?;
    /// ws.close(Some(CloseFrame { code: CloseCode::NORMAL_CLOSURE, reason: "bye".into() }))
    ///     .await?;
    /// # server.await.unwrap()?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when the peer did not answer in time, or what
    /// failed while sending and reading.
    pub async fn close(&mut self, frame: Option<CloseFrame>) -> Result<(), Error> {
        let frame = frame.unwrap_or(CloseFrame {
            code: CloseCode::NORMAL_CLOSURE,
            reason: String::new(),
        });
        let limit = self.close_timeout;
        let handshake = async {
            self.send(Message::Close(Some(frame))).await?;
            while let Some(message) = self.next().await {
                message?;
            }
            Ok::<_, Error>(())
        };
        tokio::time::timeout(limit, handshake)
            .await
            .map_err(|_| Error::Timeout)??;
        match self.io.shutdown().await {
            Err(err) if err.kind() != io::ErrorKind::NotConnected => Err(err.into()),
            _ => Ok(()),
        }
    }
}

impl<S> WebSocketStream<S> {
    /// The transport.
    ///
    /// ```
    /// # use wsproto_std::stream::{WebSocketConfig, WebSocketStream};
    /// # use wsproto_std::{ConnectionType, WSConnection};
    /// # let (io, _peer) = tokio::io::duplex(64);
    /// let ws = WebSocketStream::from_connection(io, WSConnection::new(ConnectionType::Server), WebSocketConfig::default());
    /// let _io: &tokio::io::DuplexStream = ws.get_ref();
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The transport, mutably. Reading or writing it directly corrupts the
    /// connection.
    ///
    /// ```
    /// # use wsproto_std::stream::{WebSocketConfig, WebSocketStream};
    /// # use wsproto_std::{ConnectionType, WSConnection};
    /// # let (io, _peer) = tokio::io::duplex(64);
    /// let mut ws = WebSocketStream::from_connection(io, WSConnection::new(ConnectionType::Server), WebSocketConfig::default());
    /// let _io: &mut tokio::io::DuplexStream = ws.get_mut();
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// The sans-I/O connection underneath: its
    /// [`state`](WSConnection::state),
    /// [`subprotocol`](WSConnection::subprotocol),
    /// [`deflate_enabled`](WSConnection::deflate_enabled).
    ///
    /// ```
    /// # use wsproto_std::stream::{WebSocketConfig, WebSocketStream};
    /// # use wsproto_std::{ConnectionType, WSConnection};
    /// # let (io, _peer) = tokio::io::duplex(64);
    /// let ws = WebSocketStream::from_connection(io, WSConnection::new(ConnectionType::Server), WebSocketConfig::default());
    /// assert_eq!(ws.connection().subprotocol(), None);
    /// ```
    pub fn connection(&self) -> &WSConnection {
        &self.ws
    }

    /// The state of the connection.
    ///
    /// ```
    /// # use wsproto_std::stream::{WebSocketConfig, WebSocketStream};
    /// # use wsproto_std::{ConnectionState, ConnectionType, WSConnection};
    /// # let (io, _peer) = tokio::io::duplex(64);
    /// let ws = WebSocketStream::from_connection(io, WSConnection::new(ConnectionType::Server), WebSocketConfig::default());
    /// assert_eq!(ws.state(), ConnectionState::Connecting);
    /// ```
    pub fn state(&self) -> ConnectionState {
        self.ws.state()
    }

    fn unwritten(&self) -> usize {
        self.out.len() - self.written
    }

    /// Drop the written prefix of the output before appending to it, once
    /// it is at least half of the buffer (so the cost is amortized and the
    /// prefix never outgrows what is still to write).
    fn compact(&mut self) {
        if self.written > 0 && self.written >= self.out.len() / 2 {
            self.out.drain(..self.written);
            self.written = 0;
        }
    }

    /// Encode a pong for the latest unanswered ping if there is room.
    fn queue_pong(&mut self) {
        if self.unwritten() >= self.max_write_buffer_size {
            return;
        }
        if let Some(payload) = self.pending_pong.take() {
            if self.ws.state() == ConnectionState::Open {
                self.compact();
                // A pong the state allows is always encodable.
                let _ = self
                    .ws
                    .send_into(crate::events::Pong::new(payload), &mut self.out);
            }
        }
    }

    /// Handle one event; a whole message is returned.
    fn on_event(&mut self, event: Event) -> Option<Result<Message, Error>> {
        match event {
            Event::TextMessage(m) => {
                match (&mut self.partial, m.message_finished) {
                    (Partial::Text(text), finished) => {
                        text.push_str(&m.data);
                        if finished {
                            let text = std::mem::take(text);
                            self.partial = Partial::None;
                            return Some(Ok(Message::Text(text.into())));
                        }
                    }
                    (_, true) => return Some(Ok(Message::Text(m.data))),
                    (_, false) => self.partial = Partial::Text(String::from(&*m.data)),
                }
                None
            }
            Event::BytesMessage(m) => {
                match (&mut self.partial, m.message_finished) {
                    (Partial::Binary(data), finished) => {
                        data.extend_from_slice(&m.data);
                        if finished {
                            let data = std::mem::take(data).freeze();
                            self.partial = Partial::None;
                            return Some(Ok(Message::Binary(data)));
                        }
                    }
                    (_, true) => return Some(Ok(Message::Binary(m.data))),
                    (_, false) => self.partial = Partial::Binary(BytesMut::from(&m.data[..])),
                }
                None
            }
            Event::Ping(ping) => {
                if let Some(Event::Pong(pong)) = self.ws.reply_to(&Event::Ping(ping.clone())) {
                    // Only the latest ping needs an answer (RFC 6455 §5.5.3).
                    self.pending_pong = Some(pong.payload);
                    self.queue_pong();
                }
                Some(Ok(Message::Ping(ping.payload)))
            }
            Event::Pong(pong) => Some(Ok(Message::Pong(pong.payload))),
            Event::CloseConnection(close) => {
                self.partial = Partial::None;
                if close.code == CloseCode::ABNORMAL_CLOSURE {
                    return Some(Err(Error::AbnormalClosure));
                }
                let event = Event::CloseConnection(close);
                if let Some(reply) = self.ws.reply_to(&event) {
                    self.pending_pong = None;
                    self.compact();
                    if let Err(err) = self.ws.send_into(reply, &mut self.out) {
                        return Some(Err(Error::Local(err)));
                    }
                }
                let Event::CloseConnection(CloseConnection { code, reason }) = event else {
                    return None;
                };
                let frame =
                    (code != CloseCode::NO_STATUS_RCVD).then_some(CloseFrame { code, reason });
                Some(Ok(Message::Close(frame)))
            }
            _ => None,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocketStream<S> {
    /// Write out what is buffered.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.out.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.out[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.written = 0;
        if self.out.capacity() > KEEP_OUTPUT {
            self.out = Vec::new();
        } else {
            self.out.clear();
        }
        Poll::Ready(Ok(()))
    }

    /// Start writing a reply (a pong, a close frame) without waiting, so
    /// it goes out even if the caller stops polling after this message.
    /// A failure shows on the next poll.
    fn try_write_out(&mut self, cx: &mut Context<'_>) {
        if self.unwritten() > 0 {
            let _ = self.poll_write_out(cx);
        }
    }

    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, Error>>> {
        self.wakers.read.register(cx.waker());
        let waker = self.waker.clone();
        let mut io_cx = Context::from_waker(&waker);
        loop {
            match self.read {
                ReadState::Ended => return Poll::Ready(None),
                ReadState::Ending => {
                    if self.poll_timers(&mut io_cx).is_err() {
                        // A peer that does not take our last frame in time
                        // is not waited for any longer.
                        self.read = ReadState::Ended;
                        return Poll::Ready(None);
                    }
                    let written = ready!(self.poll_write_out(&mut io_cx));
                    self.read = ReadState::Ended;
                    // The peer may be gone already; the stream ends anyway.
                    drop(written);
                    return Poll::Ready(None);
                }
                ReadState::Open => {}
            }
            self.queue_pong();
            if self.unwritten() > 0 {
                if let Poll::Ready(Err(err)) = self.poll_write_out(&mut io_cx) {
                    self.read = ReadState::Ended;
                    return Poll::Ready(Some(Err(err.into())));
                }
            }
            match self.ws.next_event() {
                Some(Ok(event)) => {
                    if let Some(message) = self.on_event(event) {
                        self.try_write_out(&mut io_cx);
                        return Poll::Ready(Some(message));
                    }
                }
                Some(Err(err)) => {
                    self.partial = Partial::None;
                    self.pending_pong = None;
                    self.compact();
                    let _ = self.ws.send_core(&err.event_hint(), &mut self.out);
                    self.read = ReadState::Ending;
                    self.try_write_out(&mut io_cx);
                    return Poll::Ready(Some(Err(Error::Protocol(err))));
                }
                None if self.ws.state() == ConnectionState::Closed => {
                    self.read = ReadState::Ending;
                }
                None => {
                    if let Err(err) = self.poll_timers(&mut io_cx) {
                        self.read = ReadState::Ended;
                        return Poll::Ready(Some(Err(err)));
                    }
                    if self.unwritten() > 0 {
                        // A keepalive ping was queued.
                        self.try_write_out(&mut io_cx);
                    }
                    if let Err(err) = ready!(poll_fill(&mut self.io, &mut self.ws, &mut io_cx)) {
                        self.read = ReadState::Ended;
                        return Poll::Ready(Some(Err(err.into())));
                    }
                }
            }
        }
    }
}

impl<S> WebSocketStream<S> {
    /// Run the connection's timers up to now: queue a keepalive ping when
    /// one is due, fail when the peer let a deadline pass, and arm the
    /// timer (woken through `cx`) for the next deadline.
    fn poll_timers(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        // Bounded: each pass either handles something that moves the
        // deadline later, or returns.
        for _ in 0..8 {
            match self.ws.handle_timeout(ticks(self.start)) {
                Some(Expired::PingDue) => {
                    if self.ws.state() == ConnectionState::Open {
                        self.compact();
                        self.ws
                            .send_into(crate::events::Ping::new(Bytes::new()), &mut self.out)?;
                    }
                    continue;
                }
                Some(Expired::Keepalive | Expired::Close | Expired::Handshake) => {
                    return Err(Error::Timeout);
                }
                Some(_) | None => {}
            }
            let Some(deadline) = self.ws.poll_timeout() else {
                return Ok(());
            };
            let at = self.start + Duration::from_millis(deadline);
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            if timer.deadline() != at {
                timer.as_mut().reset(at);
            }
            if timer.as_mut().poll(cx).is_pending() {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Milliseconds since `start`: the ticks of the connection's timers.
pub(crate) fn ticks(start: Instant) -> u64 {
    millis(start.elapsed())
}

/// A duration in timer ticks (milliseconds), saturating.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Read once from `io` into a buffer on the stack and feed the bytes to
/// `ws` (the end of the transport as `None`); `true` at the end.
pub(crate) fn poll_fill<S: AsyncRead + Unpin>(
    io: &mut S,
    ws: &mut WSConnection,
    cx: &mut Context<'_>,
) -> Poll<io::Result<bool>> {
    let mut storage = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
    let space = ws.receive_space().clamp(1, READ_CHUNK);
    let mut buf = ReadBuf::uninit(&mut storage[..space]);
    ready!(Pin::new(io).poll_read(cx, &mut buf))?;
    let data = buf.filled();
    let eof = data.is_empty();
    ws.receive_data((!eof).then_some(data))
        .map_err(io::Error::other)?;
    Poll::Ready(Ok(eof))
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocketStream<S> {
    type Item = Result<Message, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_message(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> FusedStream for WebSocketStream<S> {
    fn is_terminated(&self) -> bool {
        self.read == ReadState::Ended
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocketStream<S> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        this.wakers.write.register(cx.waker());
        let waker = this.waker.clone();
        let mut io_cx = Context::from_waker(&waker);
        if this.unwritten() > 0 && this.unwritten() >= this.max_write_buffer_size {
            ready!(this.poll_write_out(&mut io_cx))?;
        }
        this.queue_pong();
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Error> {
        let this = self.get_mut();
        let state = this.ws.state();
        if message.is_close() && state != ConnectionState::Open {
            // Closing twice, or while the peer's close is being answered.
            return Ok(());
        }
        this.compact();
        // The pong for the latest ping goes first, even over the limit: it
        // is small, and after our close it could not be sent at all.
        if let Some(payload) = this.pending_pong.take() {
            if state == ConnectionState::Open {
                let _ = this
                    .ws
                    .send_into(crate::events::Pong::new(payload), &mut this.out);
            }
        }
        this.ws
            .send_into(message.into_event(), &mut this.out)
            .map_err(|err| match state {
                ConnectionState::Open => Error::Local(err),
                ConnectionState::Closed => Error::ConnectionClosed,
                _ => Error::AlreadyClosed,
            })
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let this = self.get_mut();
        this.wakers.write.register(cx.waker());
        let waker = this.waker.clone();
        let mut io_cx = Context::from_waker(&waker);
        this.queue_pong();
        ready!(this.poll_write_out(&mut io_cx))?;
        ready!(Pin::new(&mut this.io).poll_flush(&mut io_cx))?;
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.ws.state() == ConnectionState::Open {
            let bye = CloseFrame {
                code: CloseCode::NORMAL_CLOSURE,
                reason: String::new(),
            };
            self.as_mut().start_send(Message::Close(Some(bye)))?;
        }
        self.poll_flush(cx)
    }
}
