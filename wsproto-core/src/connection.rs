//! The post-handshake connection: the state machine of RFC 6455 §5–§7 over
//! caller-owned buffers.
//!
//! [`Connection`] knows nothing of HTTP: the opening handshake hands one
//! over, and it works alone too, for instance over an HTTP/2 stream opened by
//! an extended CONNECT (RFC 8441).

use crate::close::CloseCode;
use crate::error::{BufferTooSmall, LocalProtocolError, RemoteProtocolError, SendError};
use crate::event::{CloseConnection, ConnectionEvent, Event, Ping, Pong};
use crate::frame::mask::apply_mask;
#[cfg(target_pointer_width = "64")]
use crate::frame::mask::{copy_masked, copy_masked_short, SHORT_MESSAGE};
use crate::frame::{close_payload_parts, FrameHeader, Opcode, RsvBits, MAX_CONTROL_PAYLOAD};
use crate::message::{Progress, Receiver};
use crate::random::{NoRandom, RandomSource};

#[cfg(feature = "deflate")]
use crate::extension::deflate::{DeflateParams, DeflateStream};

pub use crate::message::{Config, MessageKind, Needed, Received, MIN_RECEIVE_BUFFER};
pub use crate::role::Role;

/// Where a connection is in its lifetime (RFC 6455 §4, §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConnectionState {
    /// The opening handshake is running.
    Connecting,
    /// Messages flow both ways.
    Open,
    /// The peer sent a close frame; answer it with one.
    RemoteClosing,
    /// A close frame was sent; waiting for the peer's.
    LocalClosing,
    /// The closing handshake finished, or the transport ended.
    Closed,
    /// The server is refusing the opening handshake.
    Rejecting,
}

/// A frame header written by [`Connection::send_header`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[must_use = "the payload must be masked with the key before it is sent"]
pub struct FrameStart {
    /// The length of the header written.
    pub header_len: usize,
    /// The key to mask the payload with (clients only), from offset 0.
    pub mask: Option<[u8; 4]>,
}

/// The post-handshake WebSocket state machine.
///
/// # Call order
///
/// 1. Read bytes from the transport to the end of the filled part of a
///    buffer.
/// 2. Call [`receive`](Self::receive) with the filled part (or
///    [`receive_into`](Self::receive_into) when permessage-deflate is on).
///    Handle the event, then drop the first
///    [`consumed`](Received::consumed) bytes and keep the rest at the front
///    of the buffer. Repeat while it returns events; on `Ok(None)` go back to
///    step 1 ([`needed`](Received::needed) says how much more is needed).
///    On `Err`, send the error's
///    [`event_hint`](crate::RemoteProtocolError::event_hint) and close the
///    transport.
/// 3. When the transport ends, call [`receive_eof`](Self::receive_eof).
/// 4. Send events with [`send`](Self::send) (or
///    [`send_header`](Self::send_header) for vectored writes) at any time,
///    even while a received event is alive: events borrow only the buffers
///    the caller lent.
///
/// Payloads are unmasked in place and handed out as slices of the caller's
/// buffer. A frame larger than the buffer arrives as several chunks
/// (`frame_finished == false`), so a small buffer receives messages of any
/// size. A text chunk ends on a character boundary: the bytes of a code
/// point split by the buffer or by a frame boundary stay at the front of the
/// buffer and go out with the chunk that completes them. A control frame is
/// handed out only when it is whole in the buffer, so the buffer must hold
/// at least [`MIN_RECEIVE_BUFFER`] bytes.
///
/// ```
/// use wsproto_core::event::{BytesMessage, ConnectionEvent};
/// use wsproto_core::{Config, Connection};
///
/// let mut server = Connection::server(Config::default());
/// // A masked ping "hi" from a client, key 0, and a binary frame [1, 2, 3].
/// let mut buf = [0x89, 0x82, 0, 0, 0, 0, b'h', b'i', 0x82, 0x83, 0, 0, 0, 0, 1, 2, 3];
/// let mut out = [0u8; 16];
/// let received = server.receive(&mut buf);
/// assert_eq!(received.consumed, 8);
/// if let Ok(Some(ConnectionEvent::Ping(ping))) = received.event {
///     // The ping borrows `buf`, not `server`: answer it right away.
///     let n = server.send(&ping.response().into(), &mut out)?;
///     assert_eq!(&out[..n], &[0x8A, 0x02, b'h', b'i']);
/// }
///
/// let received = server.receive(&mut buf[8..]);
/// assert_eq!(received.consumed, 9);
/// assert_eq!(
///     received.event,
///     Ok(Some(ConnectionEvent::BytesMessage(BytesMessage::new(&[1, 2, 3]))))
/// );
/// # Ok::<(), wsproto_core::SendError>(())
/// ```
#[derive(Debug)]
pub struct Connection<R = NoRandom> {
    rng: R,
    inner: Inner,
}

/// Everything of a connection but its random source, so that the code that
/// does not draw keys is compiled once.
#[derive(Debug)]
struct Inner {
    role: Role,
    state: ConnectionState,
    /// The kind of the fragmented message being sent, if any.
    tx_message: Option<MessageKind>,
    /// Whether the message being sent is compressed.
    tx_compressed: bool,
    config: Config,
    rx: Receiver,
    /// After a failure: the close frame the error calls for may still go
    /// out.
    close_allowed: bool,
    /// permessage-deflate, when negotiated.
    #[cfg(feature = "deflate")]
    deflate: Option<alloc::boxed::Box<DeflateStream>>,
}

#[cfg(feature = "defmt")]
impl<R> defmt::Format for Connection<R> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "Connection {{ role: {}, state: {} }}",
            self.inner.role,
            self.inner.state
        )
    }
}

impl Connection<NoRandom> {
    /// A server-side connection (frames from the client must be masked).
    #[must_use]
    pub fn server(config: Config) -> Self {
        Self::new(Role::Server, config, NoRandom)
    }
}

impl<R: RandomSource> Connection<R> {
    /// A client-side connection, masking with keys drawn from `rng`.
    #[must_use]
    pub fn client(config: Config, rng: R) -> Self {
        Self::new(Role::Client, config, rng)
    }

    /// A connection for `role`. A client draws masking keys from `rng`; a
    /// server never uses it.
    #[must_use]
    pub fn new(role: Role, config: Config, rng: R) -> Self {
        Self {
            rng,
            inner: Inner {
                role,
                state: ConnectionState::Open,
                tx_message: None,
                tx_compressed: false,
                config,
                rx: Receiver::new(),
                close_allowed: false,
                #[cfg(feature = "deflate")]
                deflate: None,
            },
        }
    }

    /// The same connection drawing masking keys from `rng` instead: for
    /// instance to keep connections of both roles in one type.
    #[must_use]
    pub fn with_random_source<R2: RandomSource>(self, rng: R2) -> Connection<R2> {
        Connection {
            rng,
            inner: self.inner,
        }
    }

    /// Use permessage-deflate with the parameters the handshake agreed on.
    #[cfg(feature = "deflate")]
    #[must_use]
    pub fn with_deflate(mut self, params: DeflateParams) -> Self {
        self.inner.deflate = Some(alloc::boxed::Box::new(DeflateStream::new(
            params,
            self.inner.role,
        )));
        self
    }

    /// Lend `pool`'s permessage-deflate state to this connection: without
    /// context takeover, its messages then reuse the pool's compressor,
    /// decompressor and output buffer (reset after each message) instead of
    /// allocating them. Give them back with
    /// [`return_deflate_state`](Self::return_deflate_state) when done with
    /// the connection for now; see
    /// [`DeflatePool`](crate::extension::deflate::DeflatePool).
    #[cfg(feature = "deflate")]
    pub fn borrow_deflate_state(&mut self, pool: &mut crate::extension::deflate::DeflatePool) {
        if let Some(deflate) = self.inner.deflate.as_mut() {
            deflate.borrow_from(pool);
        }
    }

    /// Return to `pool` the state borrowed with
    /// [`borrow_deflate_state`](Self::borrow_deflate_state), and what this
    /// connection allocated meanwhile, except what a message still under
    /// way needs; from now on it frees its state after each message again.
    #[cfg(feature = "deflate")]
    pub fn return_deflate_state(&mut self, pool: &mut crate::extension::deflate::DeflatePool) {
        if let Some(deflate) = self.inner.deflate.as_mut() {
            deflate.give_back(pool);
        }
    }

    /// Whether permessage-deflate is in use.
    #[must_use]
    pub fn deflate_enabled(&self) -> bool {
        self.inner.deflate_enabled()
    }

    /// Heap bytes held for permessage-deflate: compressor and decompressor
    /// state and buffers, besides a fixed record of about 100 bytes. Zero
    /// without compression, and between messages when neither side keeps
    /// its context.
    #[must_use]
    pub fn deflate_heap_size(&self) -> usize {
        #[cfg(feature = "deflate")]
        {
            self.inner
                .deflate
                .as_ref()
                .map_or(0, |d| d.codec.heap_size() + d.tx.capacity())
        }
        #[cfg(not(feature = "deflate"))]
        {
            0
        }
    }

    /// The current state.
    #[must_use]
    pub fn state(&self) -> ConnectionState {
        self.inner.state
    }

    /// The role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.inner.role
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Parse the next event from the front of `buf`, unmasking in place.
    ///
    /// See the [call order](Self#call-order). The event borrows `buf` only.
    /// With permessage-deflate, a compressed message needs output space:
    /// use [`receive_into`](Self::receive_into); here such a message stops
    /// with [`Needed::Output`].
    ///
    /// Bytes after a close frame, or after the closing handshake, are
    /// consumed and ignored (RFC 6455 §5.5.1: nothing may follow a close
    /// frame). After an error, every call returns the same error.
    pub fn receive<'b>(&mut self, buf: &'b mut [u8]) -> Received<'b> {
        self.inner.receive(buf, &mut [])
    }

    /// [`receive`](Self::receive), with `out` lent for decompressed data: a
    /// chunk of a compressed message is written to the front of `out` and
    /// handed out from there (at most `out.len()` bytes per event; at least
    /// 4 bytes are needed). Uncompressed payloads are still handed out from
    /// `buf`, and `out` is not touched.
    pub fn receive_into<'b>(&mut self, buf: &'b mut [u8], out: &'b mut [u8]) -> Received<'b> {
        self.inner.receive(buf, out)
    }

    /// The transport ended (`receive_data(None)` in Python).
    ///
    /// Unless the closing handshake had finished, this is an abnormal
    /// closure: the state becomes [`Closed`](ConnectionState::Closed) and the
    /// event is a `CloseConnection` with code 1006.
    pub fn receive_eof(&mut self) -> Option<ConnectionEvent<'static>> {
        if self.inner.state == ConnectionState::Closed {
            return None;
        }
        self.inner.state = ConnectionState::Closed;
        Some(ConnectionEvent::CloseConnection(CloseConnection::new(
            CloseCode::ABNORMAL_CLOSURE,
        )))
    }

    /// The reply a received event calls for, if the state allows one now:
    /// the pong for a ping while the connection is open, and the close frame
    /// that completes the closing handshake after the peer's close. Send it
    /// with [`send`](Self::send).
    ///
    /// RFC 6455 §5.5.2 and §5.5.1 ask for both replies "as soon as
    /// practical"; no reply is due after this end sent its own close frame,
    /// or once the connection is closed (a `CloseConnection` with code 1006
    /// from [`receive_eof`](Self::receive_eof) needs none).
    ///
    /// ```
    /// use wsproto_core::event::{ConnectionEvent, Event, Ping};
    /// use wsproto_core::{Config, Connection};
    /// let mut server = Connection::server(Config::default());
    /// let ping = ConnectionEvent::Ping(Ping { payload: b"x" });
    /// assert!(matches!(server.reply_to(&ping), Some(Event::Pong(_))));
    /// let eof = server.receive_eof().unwrap();
    /// assert_eq!(server.reply_to(&eof), None);
    /// ```
    #[must_use]
    pub fn reply_to<'b>(&self, event: &ConnectionEvent<'b>) -> Option<Event<'b>> {
        match (event, self.inner.state) {
            (ConnectionEvent::Ping(ping), ConnectionState::Open) => {
                Some(Event::Pong(ping.response()))
            }
            (ConnectionEvent::CloseConnection(close), ConnectionState::RemoteClosing) => {
                Some(Event::CloseConnection(close.response()))
            }
            _ => None,
        }
    }

    /// Encode `event` into `out` and return the number of bytes written.
    ///
    /// Messages, pings and pongs may be sent while the connection is open; a
    /// close frame while it is open or after the peer's close frame. A text
    /// or binary event with `message_finished == false` starts or continues
    /// a fragmented message. A short `out` is left unchanged, with the size
    /// needed in the error, and the connection state does not change.
    pub fn send(&mut self, event: &Event<'_>, out: &mut [u8]) -> Result<usize, SendError> {
        // The common case with the random source's own code inlined; the
        // general path is compiled once for all sources.
        #[cfg(target_pointer_width = "64")]
        if let Some(sent) = self.inner.send_whole_message(&mut self.rng, event, out) {
            return sent;
        }
        self.inner.send(&mut self.rng, event, out)
    }

    /// Encode `event` into a new `Vec`.
    ///
    /// As with [`Handshake::send_vec`](crate::Handshake::send_vec); use
    /// [`send_into`](Self::send_into) to reuse a buffer.
    #[cfg(feature = "alloc")]
    pub fn send_vec(
        &mut self,
        event: &Event<'_>,
    ) -> Result<alloc::vec::Vec<u8>, LocalProtocolError> {
        let mut out = alloc::vec::Vec::new();
        self.send_into(event, &mut out)?;
        Ok(out)
    }

    /// Encode `event` at the end of `out`, growing it as needed; returns the
    /// number of bytes appended. The same as
    /// [`Handshake::send_into`](crate::Handshake::send_into).
    #[cfg(feature = "alloc")]
    pub fn send_into(
        &mut self,
        event: &Event<'_>,
        out: &mut alloc::vec::Vec<u8>,
    ) -> Result<usize, LocalProtocolError> {
        let start = out.len();
        let mut want = start + 16;
        loop {
            out.resize(want, 0);
            match self.send(event, &mut out[start..]) {
                Ok(n) => {
                    out.truncate(start + n);
                    return Ok(n);
                }
                Err(SendError::BufferTooSmall(BufferTooSmall { required })) => {
                    want = start + required;
                }
                Err(SendError::Local(err)) => {
                    out.truncate(start);
                    return Err(err);
                }
            }
        }
    }

    /// Write only the header of a data frame, for vectored writes without a
    /// copy: the caller sends the header, then its own payload of
    /// `payload_len` bytes, masked in place with
    /// `apply_mask(payload, key, 0)` ([`crate::frame::mask::apply_mask`]) when
    /// [`FrameStart::mask`] is set.
    ///
    /// `message_finished == false` starts or continues a fragmented message,
    /// as with [`send`](Self::send).
    ///
    /// ```
    /// use wsproto_core::connection::MessageKind;
    /// use wsproto_core::frame::mask::apply_mask;
    /// use wsproto_core::{Config, Connection};
    ///
    /// let mut client = Connection::client(Config::default(), |b: &mut [u8]| b.fill(7));
    /// let mut payload = *b"data";
    /// let mut header = [0u8; 14];
    /// let start = client.send_header(MessageKind::Binary, payload.len(), true, &mut header).unwrap();
    /// if let Some(key) = start.mask {
    ///     apply_mask(&mut payload, key, 0);
    /// }
    /// assert_eq!(&header[..start.header_len], &[0x82, 0x84, 7, 7, 7, 7]);
    /// ```
    pub fn send_header(
        &mut self,
        kind: MessageKind,
        payload_len: usize,
        message_finished: bool,
        out: &mut [u8],
    ) -> Result<FrameStart, SendError> {
        #[cfg(target_pointer_width = "64")]
        if let Some(start) =
            self.inner
                .send_short_header(&mut self.rng, kind, payload_len, message_finished, out)
        {
            return start;
        }
        self.inner
            .send_header(&mut self.rng, kind, payload_len, message_finished, out)
    }
}

/// The header length of a frame of at most 64 KiB of payload (a 7- or 16-bit
/// length), `None` above.
#[cfg(target_pointer_width = "64")]
#[inline(always)]
fn short_header_len(len: usize, masked: bool) -> Option<usize> {
    let len_bytes = match len {
        0..=125 => 0,
        126..=0xFFFF => 2,
        _ => return None,
    };
    Some(2 + len_bytes + if masked { 4 } else { 0 })
}

/// Write the header of a frame of `len` bytes (at most 64 KiB) into `head`,
/// which is [`short_header_len`] bytes long, with `first` as its first byte
/// and, if `masked`, a key drawn from `rng`; returns the key.
#[cfg(target_pointer_width = "64")]
#[inline(always)]
fn write_short_header<R: RandomSource + ?Sized>(
    rng: &mut R,
    head: &mut [u8],
    first: u8,
    len: usize,
    masked: bool,
) -> Option<[u8; 4]> {
    // The key is drawn into a local: with the source inlined it stays in a
    // register, where reading it back from the frame would wait for the
    // source's byte stores to land.
    let key = match head.last_chunk_mut::<4>() {
        Some(wire_key) if masked => {
            let mut key = [0; 4];
            rng.fill(&mut key);
            *wire_key = key;
            Some(key)
        }
        _ => None,
    };
    if let [b0, b1, rest @ ..] = head {
        *b0 = first;
        if len <= 125 {
            *b1 = len as u8;
        } else {
            *b1 = 126;
            if let [hi, lo, ..] = rest {
                [*hi, *lo] = (len as u16).to_be_bytes();
            }
        }
        if masked {
            *b1 |= 0x80;
        }
    }
    key
}

impl Inner {
    fn deflate_enabled(&self) -> bool {
        #[cfg(feature = "deflate")]
        {
            self.deflate.is_some()
        }
        #[cfg(not(feature = "deflate"))]
        {
            false
        }
    }

    fn receive<'b>(&mut self, buf: &'b mut [u8], out: &'b mut [u8]) -> Received<'b> {
        if let Some(err) = self.rx.failed {
            return Received {
                consumed: buf.len(),
                event: Err(err),
                needed: Needed::Nothing,
                decompressed: false,
            };
        }
        #[cfg(feature = "deflate")]
        if let Some(deflate) = self.deflate.as_mut() {
            if deflate.tx.capacity() > 1 << 16 {
                deflate.tx = alloc::vec::Vec::new();
            }
        }
        if matches!(
            self.state,
            ConnectionState::RemoteClosing | ConnectionState::Closed
        ) {
            return Received {
                consumed: buf.len(),
                event: Ok(None),
                needed: Needed::Input(1),
                decompressed: false,
            };
        }
        #[cfg(target_pointer_width = "64")]
        if let Some(frame) = self.rx.whole_frame_header(self.role, &self.config, buf) {
            return match Receiver::whole_frame(frame, buf) {
                Ok((consumed, event)) => Received {
                    consumed,
                    event: Ok(Some(event)),
                    needed: Needed::Nothing,
                    decompressed: false,
                },
                Err(err) => self.fail(err),
            };
        }
        let result = self.rx.receive(
            self.role,
            &self.config,
            #[cfg(feature = "deflate")]
            self.deflate.as_deref_mut(),
            buf,
            out,
        );
        match result {
            Ok((consumed, Progress::Event(event, decompressed))) => {
                if let ConnectionEvent::CloseConnection(_) = event {
                    self.state = match self.state {
                        ConnectionState::LocalClosing => ConnectionState::Closed,
                        _ => ConnectionState::RemoteClosing,
                    };
                }
                Received {
                    consumed,
                    event: Ok(Some(event)),
                    needed: Needed::Nothing,
                    decompressed,
                }
            }
            Ok((consumed, Progress::Needs(needed))) => Received {
                consumed,
                event: Ok(None),
                needed,
                decompressed: false,
            },
            Err(err) => self.fail(err),
        }
    }

    /// The peer's violation `err` ends the connection (RFC 6455 §7.1.7); a
    /// close frame may still go out, once, unless one already did.
    fn fail<'b>(&mut self, err: RemoteProtocolError) -> Received<'b> {
        self.rx.failed = Some(err);
        self.close_allowed = matches!(
            self.state,
            ConnectionState::Open | ConnectionState::RemoteClosing
        );
        self.state = ConnectionState::Closed;
        Received {
            consumed: 0,
            event: Err(err),
            needed: Needed::Nothing,
            decompressed: false,
        }
    }

    fn send(
        &mut self,
        rng: &mut dyn RandomSource,
        event: &Event<'_>,
        out: &mut [u8],
    ) -> Result<usize, SendError> {
        let (opcode, fin, payload, close) = self.plan_send(event)?;
        #[cfg_attr(not(feature = "deflate"), allow(unused_mut))]
        let mut payload: &[u8] = payload;
        #[cfg_attr(not(feature = "deflate"), allow(unused_mut))]
        let mut rsv = RsvBits::NONE;
        let compress = !opcode.is_control() && self.compress_next();
        #[cfg(feature = "deflate")]
        if let (true, Some(deflate)) = (compress, self.deflate.as_mut()) {
            // The compressed size is known only after compressing, which
            // cannot be undone: ask for room for the worst case first.
            let required = FrameHeader::MAX_LEN + deflate_bound(payload.len());
            if out.len() < required {
                return Err(BufferTooSmall { required }.into());
            }
            compress_into_tx(deflate, payload, fin);
            if self.tx_message.is_none() {
                rsv = RsvBits::RSV1;
            }
            payload = &deflate.tx;
        }
        // A close frame's payload is its code and reason, written in place.
        let payload_len = match close {
            Some((_, reason)) => 2 + reason.len(),
            None => payload.len(),
        };
        let mut header = FrameHeader::new(fin, opcode, payload_len as u64);
        header.rsv = rsv;
        if self.role == Role::Client {
            header.mask = Some([0; 4]);
        }
        let header_len = header.encoded_len();
        let required = header_len + payload_len;
        let Some(out) = out.get_mut(..required) else {
            return Err(BufferTooSmall { required }.into());
        };
        let (head, body) = out.split_at_mut(header_len);
        // The key is drawn first, straight into its place, so the rest of
        // the header is written while the source's stores land.
        #[cfg_attr(not(target_pointer_width = "64"), allow(unused_mut))]
        let mut key = match (header.mask, head.last_chunk_mut::<4>()) {
            (Some(_), Some(wire_key)) => {
                rng.fill(wire_key);
                Some(*wire_key)
            }
            _ => None,
        };
        header.encode_before_key(head);
        // On 64-bit targets a masked payload is copied and masked in one
        // pass. 32-bit ones (firmware) copy it and mask it in place, as a
        // close frame's payload is: one mask loop, shared with receiving.
        match close {
            Some((code, reason)) => {
                let (code_bytes, reason_bytes) = body.split_at_mut(2);
                code_bytes.copy_from_slice(&code.as_u16().to_be_bytes());
                reason_bytes.copy_from_slice(reason.as_bytes());
            }
            #[cfg(target_pointer_width = "64")]
            None if key.is_some() => {
                let key = key.take().unwrap_or_default();
                copy_masked(body, payload, key, 0);
            }
            None => body.copy_from_slice(payload),
        }
        if let Some(key) = key {
            apply_mask(body, key, 0);
        }
        self.commit_send(event, compress);
        #[cfg(feature = "deflate")]
        if let (true, true, Some(deflate)) = (compress, fin, self.deflate.as_mut()) {
            if deflate.release_tx_after_message {
                deflate.tx = alloc::vec::Vec::new();
            }
        }
        Ok(required)
    }

    /// The common case in one step: a whole, uncompressed text or binary
    /// message of at most 64 KiB while no fragmented message is being sent
    /// (64-bit targets). `None` for anything else, which [`send`](Self::send)
    /// goes on to handle in full; nothing is changed then.
    #[cfg(target_pointer_width = "64")]
    #[inline(always)]
    fn send_whole_message<R: RandomSource + ?Sized>(
        &mut self,
        rng: &mut R,
        event: &Event<'_>,
        out: &mut [u8],
    ) -> Option<Result<usize, SendError>> {
        let (first, data) = match event {
            Event::TextMessage(m) if m.message_finished => (0x81, m.data.as_bytes()),
            Event::BytesMessage(m) if m.message_finished => (0x82, m.data),
            _ => return None,
        };
        if self.state != ConnectionState::Open || self.tx_message.is_some() || self.compress_next()
        {
            return None;
        }
        let len = data.len();
        let masked = self.role == Role::Client;
        let header_len = short_header_len(len, masked)?;
        let required = header_len + len;
        let Some(frame) = out.get_mut(..required) else {
            return Some(Err(BufferTooSmall { required }.into()));
        };
        let (head, body) = frame.split_at_mut(header_len);
        let key = write_short_header(rng, head, first, len, masked);
        match key {
            Some(key) if len <= SHORT_MESSAGE => copy_masked_short(body, data, key),
            Some(key) => copy_masked(body, data, key, 0),
            None => body.copy_from_slice(data),
        }
        self.tx_compressed = false;
        Some(Ok(required))
    }

    /// [`send_header`](Self::send_header) in one step for the first frame
    /// of a message of at most 64 KiB (64-bit targets); `None` for anything
    /// else, with nothing changed.
    #[cfg(target_pointer_width = "64")]
    #[inline(always)]
    fn send_short_header<R: RandomSource + ?Sized>(
        &mut self,
        rng: &mut R,
        kind: MessageKind,
        payload_len: usize,
        message_finished: bool,
        out: &mut [u8],
    ) -> Option<Result<FrameStart, SendError>> {
        if self.state != ConnectionState::Open || self.tx_message.is_some() {
            return None;
        }
        let masked = self.role == Role::Client;
        let header_len = short_header_len(payload_len, masked)?;
        let Some(head) = out.get_mut(..header_len) else {
            return Some(Err(BufferTooSmall {
                required: header_len,
            }
            .into()));
        };
        let opcode = match kind {
            MessageKind::Text => 0x1,
            MessageKind::Binary => 0x2,
        };
        let first = opcode | if message_finished { 0x80 } else { 0 };
        let mask = write_short_header(rng, head, first, payload_len, masked);
        self.tx_message = if message_finished { None } else { Some(kind) };
        self.tx_compressed = false;
        Some(Ok(FrameStart { header_len, mask }))
    }

    fn send_header(
        &mut self,
        rng: &mut dyn RandomSource,
        kind: MessageKind,
        payload_len: usize,
        message_finished: bool,
        out: &mut [u8],
    ) -> Result<FrameStart, SendError> {
        self.check_data_send(kind)?;
        if self.tx_message.is_some() && self.tx_compressed {
            return Err(LocalProtocolError::new(
                "a compressed message must be continued with send, not send_header",
            )
            .into());
        }
        let opcode = self.data_opcode(kind);
        let mut header = FrameHeader::new(message_finished, opcode, payload_len as u64);
        if self.role == Role::Client {
            header.mask = Some([0; 4]);
        }
        let required = header.encoded_len();
        if out.len() < required {
            return Err(BufferTooSmall { required }.into());
        }
        if let Some(key) = header.mask.as_mut() {
            rng.fill(key);
        }
        let header_len = header.encode(out)?;
        self.tx_message = if message_finished { None } else { Some(kind) };
        self.tx_compressed = false;
        Ok(FrameStart {
            header_len,
            mask: header.mask,
        })
    }

    /// Check that `event` may be sent now; returns the frame to write.
    #[allow(clippy::type_complexity)]
    fn plan_send<'e>(
        &self,
        event: &'e Event<'_>,
    ) -> Result<(Opcode, bool, &'e [u8], Option<(CloseCode, &'e str)>), LocalProtocolError> {
        match event {
            Event::TextMessage(m) => {
                self.check_data_send(MessageKind::Text)?;
                let opcode = self.data_opcode(MessageKind::Text);
                Ok((opcode, m.message_finished, m.data.as_bytes(), None))
            }
            Event::BytesMessage(m) => {
                self.check_data_send(MessageKind::Binary)?;
                let opcode = self.data_opcode(MessageKind::Binary);
                Ok((opcode, m.message_finished, m.data, None))
            }
            Event::Ping(Ping { payload }) | Event::Pong(Pong { payload }) => {
                if self.state != ConnectionState::Open {
                    return Err(LocalProtocolError::new(
                        "ping and pong can only be sent while the connection is open",
                    ));
                }
                if payload.len() > MAX_CONTROL_PAYLOAD {
                    return Err(LocalProtocolError::new(
                        "control frame payload longer than 125 bytes",
                    ));
                }
                let opcode = if matches!(event, Event::Ping(_)) {
                    Opcode::PING
                } else {
                    Opcode::PONG
                };
                Ok((opcode, true, payload, None))
            }
            Event::CloseConnection(close) => {
                if !matches!(
                    self.state,
                    ConnectionState::Open | ConnectionState::RemoteClosing
                ) && !self.close_allowed
                {
                    return Err(LocalProtocolError::new(
                        "a close frame can only be sent while open or after the peer's close",
                    ));
                }
                if !close.code.is_valid_on_wire() && !close.code.is_local_only() {
                    return Err(LocalProtocolError::new(
                        "close code may not be sent on the wire",
                    ));
                }
                if close.code.is_local_only() && !close.reason.is_empty() {
                    // A frame without a code carries no reason (§5.5.1).
                    return Err(LocalProtocolError::new(
                        "a close with code 1005, 1006 or 1015 cannot carry a reason",
                    ));
                }
                let (code, reason) = close_payload_parts(close.code, close.reason);
                Ok((Opcode::CLOSE, true, &[], code.map(|code| (code, reason))))
            }
            _ => Err(LocalProtocolError::new(
                "handshake events are sent through the handshake, not the connection",
            )),
        }
    }

    fn check_data_send(&self, kind: MessageKind) -> Result<(), LocalProtocolError> {
        if self.state != ConnectionState::Open {
            return Err(LocalProtocolError::new(
                "messages can only be sent while the connection is open",
            ));
        }
        match self.tx_message {
            Some(current) if current != kind => Err(LocalProtocolError::new(
                "a fragmented message must be finished before another kind starts",
            )),
            _ => Ok(()),
        }
    }

    fn data_opcode(&self, kind: MessageKind) -> Opcode {
        match (self.tx_message, kind) {
            (Some(_), _) => Opcode::CONTINUATION,
            (None, MessageKind::Text) => Opcode::TEXT,
            (None, MessageKind::Binary) => Opcode::BINARY,
        }
    }

    /// Whether the next data frame sent is compressed: when compression is
    /// on, for new messages and for messages that began compressed.
    fn compress_next(&self) -> bool {
        #[cfg(feature = "deflate")]
        {
            let on = self.deflate.as_ref().is_some_and(|d| d.codec.compresses());
            on && (self.tx_message.is_none() || self.tx_compressed)
        }
        #[cfg(not(feature = "deflate"))]
        {
            false
        }
    }

    /// Record the state change of a sent event.
    fn commit_send(&mut self, event: &Event<'_>, compressed: bool) {
        if matches!(event, Event::TextMessage(_) | Event::BytesMessage(_)) {
            self.tx_compressed = compressed;
        }
        match event {
            Event::TextMessage(m) => {
                self.tx_message = (!m.message_finished).then_some(MessageKind::Text);
            }
            Event::BytesMessage(m) => {
                self.tx_message = (!m.message_finished).then_some(MessageKind::Binary);
            }
            Event::CloseConnection(_) => {
                self.close_allowed = false;
                self.state = match self.state {
                    ConnectionState::RemoteClosing | ConnectionState::Closed => {
                        ConnectionState::Closed
                    }
                    _ => ConnectionState::LocalClosing,
                };
            }
            _ => {}
        }
    }
}

/// Compress a data frame's payload into `deflate.tx`. Out of line: the
/// compressor's large stack frame, inlined into `send`, cost every
/// uncompressed send a stack probe and 4.5 KiB of frame (16 B frames went
/// from about 30 to 70 ns).
#[cfg(feature = "deflate")]
#[inline(never)]
fn compress_into_tx(deflate: &mut DeflateStream, payload: &[u8], fin: bool) {
    deflate.tx.clear();
    deflate.codec.compress(payload, fin, &mut deflate.tx);
}

/// The most bytes `DeflateCodec::compress` appends for `len` input bytes:
/// stored blocks cost 5 bytes per 64 KiB, plus the sync flush.
#[cfg(feature = "deflate")]
fn deflate_bound(len: usize) -> usize {
    len + len / 8 + 64
}

// The firmware budget: a connection without permessage-deflate fits in 64
// bytes on 32-bit targets (checked by the thumbv7em build in CI).
#[cfg(all(target_pointer_width = "32", not(feature = "deflate")))]
const _: () = assert!(core::mem::size_of::<Connection<NoRandom>>() <= 64);
