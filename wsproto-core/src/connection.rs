//! The post-handshake connection: the state machine of RFC 6455 §5–§7 over
//! caller-owned buffers.
//!
//! [`Connection`] knows nothing of HTTP: the opening handshake hands one
//! over, and it works alone too, for instance over an HTTP/2 stream opened by
//! an extended CONNECT (RFC 8441).

use crate::close::CloseCode;
use crate::error::{BufferTooSmall, LocalProtocolError, RemoteProtocolError, SendError};
use crate::event::{BytesMessage, CloseConnection, Event, Ping, Pong, TextMessage};
use crate::frame::mask::apply_mask;
use crate::frame::{
    close_payload_parts, parse_close_payload, FrameHeader, Opcode, RsvBits, Status,
    MAX_CONTROL_PAYLOAD,
};
use crate::random::{NoRandom, RandomSource};
use crate::utf8::{Completion, Utf8Validator};

#[cfg(feature = "deflate")]
use crate::extension::deflate::{DeflateCodec, DeflateParams};

/// Which end of the connection this is (`ConnectionType` in Python).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The end that sent the opening request; masks every frame it sends.
    Client,
    /// The end that accepted the opening request.
    Server,
}

/// Where a connection is in its lifetime (RFC 6455 §4, §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// Limits and settings of a [`Connection`].
///
/// Every size the peer controls has a limit here; going past one fails the
/// connection with close code 1009.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The largest frame payload accepted, in bytes (default 64 MiB).
    pub max_frame_size: u64,
    /// The largest message accepted, in bytes, after decompression
    /// (default 64 MiB).
    pub max_message_size: u64,
    /// With permessage-deflate, the most decompressed bytes handed out in one
    /// event (default 16 KiB). The buffer is allocated while a compressed
    /// message arrives.
    pub inflate_chunk_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_frame_size: 64 << 20,
            max_message_size: 64 << 20,
            inflate_chunk_size: 16 << 10,
        }
    }
}

impl Config {
    /// Set [`max_frame_size`](Self::max_frame_size).
    #[must_use]
    pub const fn max_frame_size(mut self, bytes: u64) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Set [`max_message_size`](Self::max_message_size).
    #[must_use]
    pub const fn max_message_size(mut self, bytes: u64) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Set [`inflate_chunk_size`](Self::inflate_chunk_size) (at least 16).
    #[must_use]
    pub const fn inflate_chunk_size(mut self, bytes: usize) -> Self {
        self.inflate_chunk_size = if bytes < 16 { 16 } else { bytes };
        self
    }
}

/// The result of one call to [`Connection::receive`].
#[derive(Debug)]
#[must_use = "the consumed bytes must be discarded and the event handled"]
pub struct Received<'a> {
    /// How many bytes at the front of the buffer were used. Drop them before
    /// the next call; keep the rest at the front of the buffer.
    pub consumed: usize,
    /// The next event, `Ok(None)` when more input is needed, or the peer's
    /// violation (whose [`event_hint`](RemoteProtocolError::event_hint) is the
    /// close frame to send).
    pub event: Result<Option<Event<'a>>, RemoteProtocolError>,
}

/// The kind of data message, for [`Connection::send_header`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// A text message (opcode 0x1).
    Text,
    /// A binary message (opcode 0x2).
    Binary,
}

/// A frame header written by [`Connection::send_header`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
/// 2. Call [`receive`](Self::receive) with the filled part. Handle the event,
///    then drop the first [`consumed`](Received::consumed) bytes and keep the
///    rest at the front of the buffer. Repeat while it returns events; on
///    `Ok(None)` go back to step 1. On `Err`, send the error's
///    [`event_hint`](RemoteProtocolError::event_hint) and close the
///    transport.
/// 3. When the transport ends, call [`receive_eof`](Self::receive_eof).
/// 4. Send events with [`send`](Self::send) (or
///    [`send_header`](Self::send_header) for vectored writes) at any time.
///
/// Payloads are unmasked in place and handed out as slices of the caller's
/// buffer. A frame larger than the buffer arrives as several chunks
/// (`frame_finished == false`), so a small buffer receives messages of any
/// size. A text chunk ends on a character boundary; the bytes of a code point
/// split by the buffer or by a frame boundary are carried and delivered
/// as a chunk of their own.
///
/// ```
/// use wsproto_core::event::{BytesMessage, Event};
/// use wsproto_core::{Config, Connection};
///
/// let mut server = Connection::server(Config::default());
/// // A masked binary frame [1, 2, 3] from a client, key 0.
/// let mut buf = [0x82, 0x83, 0, 0, 0, 0, 1, 2, 3];
/// let received = server.receive(&mut buf);
/// assert_eq!(received.consumed, 9);
/// assert_eq!(
///     received.event,
///     Ok(Some(Event::BytesMessage(BytesMessage::new(&[1, 2, 3]))))
/// );
///
/// let mut out = [0u8; 16];
/// let n = server.send(&BytesMessage::new(b"hi").into(), &mut out).unwrap();
/// assert_eq!(&out[..n], &[0x82, 0x02, b'h', b'i']);
/// ```
#[derive(Debug)]
pub struct Connection<R = NoRandom> {
    role: Role,
    state: ConnectionState,
    config: Config,
    rng: R,
    rx: Receiver,
    /// The kind of the fragmented message being sent, if any.
    tx_message: Option<MessageKind>,
    /// Whether the message being sent is compressed.
    tx_compressed: bool,
    /// The violation that ended the connection.
    failed: Option<RemoteProtocolError>,
    /// permessage-deflate, when negotiated.
    #[cfg(feature = "deflate")]
    deflate: Option<Deflate>,
}

/// permessage-deflate state of a connection.
#[cfg(feature = "deflate")]
#[derive(Debug)]
struct Deflate {
    codec: DeflateCodec,
    /// Decompressed output handed out in events; allocated per message.
    out: alloc::vec::Vec<u8>,
    /// A split code point at `out[tail_start..][..tail_len]`, moved to the
    /// front before the next output.
    tail_start: usize,
    tail_len: usize,
    /// Release `out` after each message (the peer resets its context).
    release_after_message: bool,
    /// A message ended: release `out` on the next call.
    release_out: bool,
    /// Release `tx` after each message sent (this end resets its context).
    release_tx_after_message: bool,
    /// Compressed output being framed.
    tx: alloc::vec::Vec<u8>,
}

/// Receive-side state, kept between calls.
#[derive(Debug)]
struct Receiver {
    /// The frame whose payload is arriving.
    frame: Option<FrameProgress>,
    /// The kind of the message being received, if one is unfinished.
    message: Option<MessageKind>,
    /// Whether that message is compressed (RSV1 on its first frame).
    compressed: bool,
    /// Payload bytes of the current message so far.
    message_len: u64,
    /// Decompressed bytes of the current message so far.
    #[cfg_attr(not(feature = "deflate"), allow(dead_code))]
    inflated_len: u64,
    utf8: Utf8Validator,
    /// A control payload that did not arrive in one buffer.
    control: [u8; MAX_CONTROL_PAYLOAD],
    control_len: usize,
    /// A code point completed across a boundary, handed out from here.
    char_buf: [u8; 4],
}

#[derive(Clone, Copy, Debug)]
struct FrameProgress {
    header: FrameHeader,
    /// Payload bytes not yet received.
    remaining: u64,
    /// Payload bytes received so far (the masking offset).
    done: u64,
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
            role,
            state: ConnectionState::Open,
            config,
            rng,
            rx: Receiver {
                frame: None,
                message: None,
                compressed: false,
                message_len: 0,
                inflated_len: 0,
                utf8: Utf8Validator::new(),
                control: [0; MAX_CONTROL_PAYLOAD],
                control_len: 0,
                char_buf: [0; 4],
            },
            tx_message: None,
            tx_compressed: false,
            failed: None,
            #[cfg(feature = "deflate")]
            deflate: None,
        }
    }

    /// Use permessage-deflate with the parameters the handshake agreed on.
    #[cfg(feature = "deflate")]
    #[must_use]
    pub fn with_deflate(mut self, params: DeflateParams) -> Self {
        let (release_after_message, release_tx_after_message) = match self.role {
            Role::Server => (
                params.client_no_context_takeover,
                params.server_no_context_takeover,
            ),
            Role::Client => (
                params.server_no_context_takeover,
                params.client_no_context_takeover,
            ),
        };
        self.deflate = Some(Deflate {
            codec: DeflateCodec::new(params, self.role),
            out: alloc::vec::Vec::new(),
            tail_start: 0,
            tail_len: 0,
            release_after_message,
            release_tx_after_message,
            release_out: false,
            tx: alloc::vec::Vec::new(),
        });
        self
    }

    /// Whether permessage-deflate is in use.
    #[must_use]
    pub fn deflate_enabled(&self) -> bool {
        #[cfg(feature = "deflate")]
        {
            self.deflate.is_some()
        }
        #[cfg(not(feature = "deflate"))]
        {
            false
        }
    }

    /// Heap bytes held for permessage-deflate: compressor and decompressor
    /// state and buffers. Zero without compression, and between messages
    /// when neither side keeps its context.
    #[must_use]
    pub fn deflate_heap_size(&self) -> usize {
        #[cfg(feature = "deflate")]
        {
            self.deflate.as_ref().map_or(0, |d| {
                d.codec.heap_size() + d.out.capacity() + d.tx.capacity()
            })
        }
        #[cfg(not(feature = "deflate"))]
        {
            0
        }
    }

    /// The current state.
    #[must_use]
    pub fn state(&self) -> ConnectionState {
        self.state
    }

    /// The role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Parse the next event from the front of `buf`, unmasking in place.
    ///
    /// See the [call order](Self#call-order). Bytes after a close frame, or
    /// after the closing handshake, are consumed and ignored (RFC 6455
    /// §5.5.1: nothing may follow a close frame). After an error, every call
    /// returns the same error.
    pub fn receive<'a>(&'a mut self, buf: &'a mut [u8]) -> Received<'a> {
        if let Some(err) = self.failed {
            return Received {
                consumed: buf.len(),
                event: Err(err),
            };
        }
        #[cfg(feature = "deflate")]
        if let Some(deflate) = self.deflate.as_mut() {
            if core::mem::take(&mut deflate.release_out) {
                deflate.out = alloc::vec::Vec::new();
            }
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
            };
        }
        let mut pos = 0;
        let frame = loop {
            if let Some(frame) = self.rx.frame {
                break frame;
            }
            match self.start_frame(buf.get(pos..).unwrap_or_default()) {
                Ok(Status::Incomplete) => {
                    return Received {
                        consumed: pos,
                        event: Ok(None),
                    }
                }
                Ok(Status::Complete(used)) => pos += used,
                Err(err) => return self.fail(pos, err),
            }
        };
        let rest = buf.get_mut(pos..).unwrap_or_default();
        let result = if frame.header.opcode.is_control() {
            self.rx.control_payload(&mut self.state, frame, rest)
        } else if self.rx.compressed {
            #[cfg(feature = "deflate")]
            match self.deflate.as_mut() {
                Some(deflate) => self.rx.inflate_payload(deflate, &self.config, frame, rest),
                None => Err(RemoteProtocolError::protocol(
                    "compressed message without deflate",
                )),
            }
            #[cfg(not(feature = "deflate"))]
            Err(RemoteProtocolError::protocol(
                "compressed message without deflate",
            ))
        } else {
            self.rx.data_payload(frame, rest)
        };
        match result {
            Ok((used, event)) => Received {
                consumed: pos + used,
                event: Ok(event),
            },
            Err(err) => {
                self.failed = Some(err);
                Received {
                    consumed: pos,
                    event: Err(err),
                }
            }
        }
    }

    /// The transport ended (`receive_data(None)` in Python).
    ///
    /// Unless the closing handshake had finished, this is an abnormal
    /// closure: the state becomes [`Closed`](ConnectionState::Closed) and the
    /// event is a `CloseConnection` with code 1006.
    pub fn receive_eof(&mut self) -> Option<Event<'static>> {
        if self.state == ConnectionState::Closed {
            return None;
        }
        self.state = ConnectionState::Closed;
        Some(Event::CloseConnection(CloseConnection::new(
            CloseCode::ABNORMAL_CLOSURE,
        )))
    }

    /// Encode `event` into `out` and return the number of bytes written.
    ///
    /// Messages, pings and pongs may be sent while the connection is open; a
    /// close frame while it is open or after the peer's close frame. A text
    /// or binary event with `message_finished == false` starts or continues
    /// a fragmented message. A short `out` is left unchanged, with the size
    /// needed in the error, and the connection state does not change.
    pub fn send(&mut self, event: &Event<'_>, out: &mut [u8]) -> Result<usize, SendError> {
        let (opcode, fin, payload, close) = self.plan_send(event)?;
        let mut close_buf = [0u8; MAX_CONTROL_PAYLOAD];
        #[cfg_attr(not(feature = "deflate"), allow(unused_mut))]
        let mut payload: &[u8] = match close {
            Some((code, reason)) => {
                close_buf[..2].copy_from_slice(&code.as_u16().to_be_bytes());
                close_buf[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
                &close_buf[..2 + reason.len()]
            }
            None => payload,
        };
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
            deflate.tx.clear();
            deflate.codec.compress(payload, fin, &mut deflate.tx);
            if self.tx_message.is_none() {
                rsv = RsvBits::RSV1;
            }
            payload = &deflate.tx;
        }
        let mut header = FrameHeader::new(fin, opcode, payload.len() as u64);
        header.rsv = rsv;
        if self.role == Role::Client {
            header.mask = Some([0; 4]);
        }
        let header_len = header.encoded_len();
        let required = header_len + payload.len();
        if out.len() < required {
            return Err(BufferTooSmall { required }.into());
        }
        if let Some(key) = header.mask.as_mut() {
            self.rng.fill(key);
        }
        header.encode(out)?;
        let body = &mut out[header_len..required];
        body.copy_from_slice(payload);
        if let Some(key) = header.mask {
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

    /// Encode `event` at the end of `out`.
    #[cfg(feature = "alloc")]
    pub fn send_vec(
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
        header.mask = self.next_mask();
        let header_len = header.encode(out)?;
        self.tx_message = if message_finished { None } else { Some(kind) };
        self.tx_compressed = false;
        Ok(FrameStart {
            header_len,
            mask: header.mask,
        })
    }

    fn next_mask(&mut self) -> Option<[u8; 4]> {
        (self.role == Role::Client).then(|| {
            let mut key = [0u8; 4];
            self.rng.fill(&mut key);
            key
        })
    }

    fn fail<'a>(&mut self, consumed: usize, err: RemoteProtocolError) -> Received<'a> {
        self.failed = Some(err);
        Received {
            consumed,
            event: Err(err),
        }
    }

    /// Parse and check a frame header; on success the frame is in progress.
    fn start_frame(&mut self, input: &[u8]) -> Result<Status<usize>, RemoteProtocolError> {
        let (header, used) = match FrameHeader::parse(input)? {
            Status::Complete(parsed) => parsed,
            Status::Incomplete => return Ok(Status::Incomplete),
        };
        let allowed_rsv = if self.deflate_enabled() {
            RsvBits::RSV1
        } else {
            RsvBits::NONE
        };
        header.validate(self.role == Role::Server, allowed_rsv)?;
        if header.rsv.rsv1()
            && (header.opcode.is_control() || header.opcode == Opcode::CONTINUATION)
        {
            // RFC 7692 §6.1: RSV1 marks the first frame of a compressed message.
            return Err(RemoteProtocolError::protocol(
                "RSV1 set on a control or continuation frame",
            ));
        }
        if header.payload_len > self.config.max_frame_size {
            return Err(RemoteProtocolError::too_big("frame larger than the limit"));
        }
        if !header.opcode.is_control() {
            let kind = match (header.opcode, self.rx.message) {
                (Opcode::CONTINUATION, Some(kind)) => kind,
                (Opcode::CONTINUATION, None) => {
                    return Err(RemoteProtocolError::protocol(
                        "continuation frame without a message to continue",
                    ))
                }
                (_, Some(_)) => {
                    return Err(RemoteProtocolError::protocol(
                        "new data frame inside a fragmented message",
                    ))
                }
                (Opcode::TEXT, None) => MessageKind::Text,
                (_, None) => MessageKind::Binary,
            };
            let message_len = self.rx.message_len.saturating_add(header.payload_len);
            if message_len > self.config.max_message_size {
                return Err(RemoteProtocolError::too_big(
                    "message larger than the limit",
                ));
            }
            if header.opcode != Opcode::CONTINUATION {
                self.rx.compressed = header.rsv.rsv1();
            }
            self.rx.message = Some(kind);
            self.rx.message_len = message_len;
        }
        self.rx.frame = Some(FrameProgress {
            header,
            remaining: header.payload_len,
            done: 0,
        });
        Ok(Status::Complete(used))
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
                ) {
                    return Err(LocalProtocolError::new(
                        "a close frame can only be sent while open or after the peer's close",
                    ));
                }
                if !close.code.is_valid_on_wire() && !close.code.is_local_only() {
                    return Err(LocalProtocolError::new(
                        "close code may not be sent on the wire",
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
                self.state = match self.state {
                    ConnectionState::RemoteClosing => ConnectionState::Closed,
                    _ => ConnectionState::LocalClosing,
                };
            }
            _ => {}
        }
    }
}

impl Receiver {
    /// Take `n` payload bytes of the current frame from the front of `buf`,
    /// unmasked, and advance the frame.
    fn take_payload<'b>(
        &mut self,
        frame: &mut FrameProgress,
        buf: &'b mut [u8],
        n: usize,
    ) -> &'b mut [u8] {
        let bytes = &mut buf[..n];
        if let Some(key) = frame.header.mask {
            apply_mask(bytes, key, (frame.done & 3) as usize);
        }
        frame.done += n as u64;
        frame.remaining -= n as u64;
        self.frame = (frame.remaining != 0).then_some(*frame);
        bytes
    }

    fn control_payload<'a>(
        &'a mut self,
        state: &mut ConnectionState,
        mut frame: FrameProgress,
        buf: &'a mut [u8],
    ) -> Result<(usize, Option<Event<'a>>), RemoteProtocolError> {
        // A control payload is at most 125 bytes (checked by `validate`).
        let remaining = frame.remaining as usize;
        let (used, payload): (usize, &[u8]) = if self.control_len == 0 && buf.len() >= remaining {
            // The whole payload is in the buffer: hand it out in place.
            let payload = self.take_payload(&mut frame, buf, remaining);
            (remaining, payload)
        } else {
            let n = remaining.min(buf.len());
            let start = self.control_len;
            let bytes = self.take_payload(&mut frame, buf, n);
            self.control[start..start + n].copy_from_slice(bytes);
            self.control_len += n;
            if frame.remaining != 0 {
                return Ok((n, None));
            }
            let len = core::mem::take(&mut self.control_len);
            (n, &self.control[..len])
        };
        let event = match frame.header.opcode {
            Opcode::PING => Event::Ping(Ping { payload }),
            Opcode::PONG => Event::Pong(Pong { payload }),
            _ => {
                let (code, reason) = parse_close_payload(payload)?;
                *state = match *state {
                    ConnectionState::LocalClosing => ConnectionState::Closed,
                    _ => ConnectionState::RemoteClosing,
                };
                Event::CloseConnection(CloseConnection { code, reason })
            }
        };
        Ok((used, Some(event)))
    }

    fn data_payload<'a>(
        &'a mut self,
        mut frame: FrameProgress,
        buf: &'a mut [u8],
    ) -> Result<(usize, Option<Event<'a>>), RemoteProtocolError> {
        let fin = frame.header.fin;
        let kind = self.message.unwrap_or(MessageKind::Binary);
        let available = usize::try_from(frame.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        if available == 0 && frame.remaining != 0 {
            return Ok((0, None));
        }
        if kind == MessageKind::Text && self.utf8.has_pending() && available != 0 {
            // Finish the code point split across the previous boundary.
            let needed = 3.min(available);
            let mut probe = [0u8; 3];
            probe[..needed].copy_from_slice(&buf[..needed]);
            if let Some(key) = frame.header.mask {
                apply_mask(&mut probe[..needed], key, (frame.done & 3) as usize);
            }
            let completion = self.utf8.complete(&probe[..needed]).map_err(invalid_text)?;
            let used = match completion {
                Completion::Char { used } => used,
                Completion::Pending => needed,
            };
            self.take_payload(&mut frame, buf, used);
            let mut len = 0;
            if let Completion::Char { .. } = completion {
                let ch = self.utf8.take_char();
                len = ch.len();
                self.char_buf[..len].copy_from_slice(ch.as_bytes());
            }
            let frame_finished = frame.remaining == 0;
            let message_finished = self.end_of_chunk(frame_finished, fin)?;
            if len == 0 && !frame_finished {
                return Ok((used, None));
            }
            let data = core::str::from_utf8(&self.char_buf[..len]).map_err(invalid_text)?;
            return Ok((
                used,
                Some(text_event(data, frame_finished, message_finished)),
            ));
        }
        let bytes = self.take_payload(&mut frame, buf, available);
        let frame_finished = frame.remaining == 0;
        match kind {
            MessageKind::Binary => {
                let message_finished = self.end_of_chunk(frame_finished, fin)?;
                Ok((
                    available,
                    Some(Event::BytesMessage(BytesMessage {
                        data: bytes,
                        frame_finished,
                        message_finished,
                    })),
                ))
            }
            MessageKind::Text => {
                // A pending code point here means an empty chunk: nothing to check yet.
                let data = if self.utf8.has_pending() {
                    ""
                } else {
                    self.utf8.validate(bytes).map_err(invalid_text)?
                };
                let message_finished = self.end_of_chunk(frame_finished, fin)?;
                if data.is_empty() && !frame_finished {
                    return Ok((available, None));
                }
                Ok((
                    available,
                    Some(text_event(data, frame_finished, message_finished)),
                ))
            }
        }
    }

    /// Decompress the payload of a compressed message as it arrives, into
    /// chunks of at most `config.inflate_chunk_size` bytes.
    #[cfg(feature = "deflate")]
    fn inflate_payload<'a>(
        &mut self,
        deflate: &'a mut Deflate,
        config: &Config,
        mut frame: FrameProgress,
        buf: &mut [u8],
    ) -> Result<(usize, Option<Event<'a>>), RemoteProtocolError> {
        let fin = frame.header.fin;
        let kind = self.message.unwrap_or(MessageKind::Binary);
        let chunk = config.inflate_chunk_size.max(16);
        if deflate.out.len() != chunk {
            deflate.out.resize(chunk, 0);
        }
        let mut used = 0;
        loop {
            let rest = buf.get_mut(used..).unwrap_or_default();
            // Unmask no more than one chunk's worth: input the codec does
            // not take is masked again, and that must not grow with the
            // frame. Even without new input, output may be pending.
            let n = usize::try_from(frame.remaining)
                .map_or(rest.len(), |r| r.min(rest.len()))
                .min(chunk);
            let input = &mut rest[..n];
            let mask_offset = (frame.done & 3) as usize;
            if let Some(key) = frame.header.mask {
                apply_mask(input, key, mask_offset);
            }
            let end_of_message = fin && n as u64 == frame.remaining;
            // The split code point of the last chunk goes first.
            let carry = deflate.tail_len;
            let tail_start = deflate.tail_start;
            deflate.out.copy_within(tail_start..tail_start + carry, 0);
            deflate.tail_len = 0;
            // Output past the message limit is never produced: one byte
            // over is enough to know.
            let room = config.max_message_size.saturating_sub(self.inflated_len);
            let space = usize::try_from(room.saturating_add(1)).map_or(chunk, |r| r.min(chunk));
            let space = (carry + space).min(chunk);
            let inflated =
                deflate
                    .codec
                    .inflate(input, end_of_message, &mut deflate.out[carry..space])?;
            // Input the codec did not take stays in the buffer, masked again.
            if let Some(key) = frame.header.mask {
                let left = &mut input[inflated.consumed..];
                apply_mask(left, key, (mask_offset + inflated.consumed) & 3);
            }
            used += inflated.consumed;
            frame.done += inflated.consumed as u64;
            frame.remaining -= inflated.consumed as u64;
            let input_done = frame.remaining == 0;
            // A full `out` may leave output pending in the codec: the frame
            // ends only once it is drained.
            // Invalid data after this output is reported by the next call,
            // before anything that follows in the stream.
            let drained = inflated.produced < space - carry && !deflate.codec.has_pending_error();
            let message_finished = fin && input_done && inflated.message_done;
            let frame_finished = input_done && if fin { inflated.message_done } else { drained };
            self.frame = (!frame_finished).then_some(frame);
            let data_len = carry + inflated.produced;
            if inflated.produced as u64 > room {
                // Report the violation that comes first in the message.
                let within = deflate.out.get(..carry + room as usize).unwrap_or_default();
                if kind == MessageKind::Text {
                    let cut = crate::utf8::incomplete_tail_start(within);
                    if simdutf8::basic::from_utf8(&within[..cut]).is_err() {
                        return Err(invalid_text(()));
                    }
                }
                return Err(RemoteProtocolError::too_big(
                    "decompressed message larger than the limit",
                ));
            }
            self.inflated_len += inflated.produced as u64;
            let emit_len = match kind {
                MessageKind::Binary => data_len,
                MessageKind::Text => {
                    // Keep a code point split by the end of this output for
                    // the next; it must be the start of one.
                    let cut = crate::utf8::incomplete_tail_start(&deflate.out[..data_len]);
                    let tail = &deflate.out[cut..data_len];
                    if !tail.is_empty() && (message_finished || !crate::utf8::is_char_prefix(tail))
                    {
                        return Err(invalid_text(()));
                    }
                    deflate.tail_start = cut;
                    deflate.tail_len = data_len - cut;
                    cut
                }
            };
            if message_finished {
                self.message = None;
                self.message_len = 0;
                self.inflated_len = 0;
                deflate.release_out = deflate.release_after_message;
            }
            if emit_len == 0 && !frame_finished {
                // Nothing to hand out yet. Go on while that can change
                // without more input: buffered input of this frame, or
                // output (or an error) still pending in the codec.
                let progressed = inflated.consumed > 0
                    || inflated.produced > 0
                    || deflate.codec.has_pending_error();
                let more_input = frame.remaining > 0 && used < buf.len();
                if deflate.codec.has_pending_error()
                    || (progressed && (more_input || frame.remaining == 0))
                {
                    continue;
                }
                return Ok((used, None));
            }
            let data = &deflate.out[..emit_len];
            let event = match kind {
                MessageKind::Binary => Event::BytesMessage(BytesMessage {
                    data,
                    frame_finished,
                    message_finished,
                }),
                MessageKind::Text => text_event(
                    simdutf8::compat::from_utf8(data).map_err(invalid_text)?,
                    frame_finished,
                    message_finished,
                ),
            };
            return Ok((used, Some(event)));
        }
    }

    /// Bookkeeping at the end of a data chunk; returns `message_finished`.
    fn end_of_chunk(
        &mut self,
        frame_finished: bool,
        fin: bool,
    ) -> Result<bool, RemoteProtocolError> {
        let message_finished = frame_finished && fin;
        if message_finished {
            if self.message == Some(MessageKind::Text) {
                self.utf8.finish().map_err(invalid_text)?;
            }
            self.message = None;
            self.message_len = 0;
        }
        Ok(message_finished)
    }
}

/// The most bytes `DeflateCodec::compress` appends for `len` input bytes:
/// stored blocks cost 5 bytes per 64 KiB, plus the sync flush.
#[cfg(feature = "deflate")]
fn deflate_bound(len: usize) -> usize {
    len + len / 8 + 64
}

fn invalid_text<E>(_: E) -> RemoteProtocolError {
    RemoteProtocolError::invalid_utf8("text message is not valid UTF-8")
}

fn text_event(data: &str, frame_finished: bool, message_finished: bool) -> Event<'_> {
    Event::TextMessage(TextMessage {
        data,
        frame_finished,
        message_finished,
    })
}
