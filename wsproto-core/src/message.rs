//! The message layer of the receive side: frames in, events out (RFC 6455
//! §5.4–§5.6). Fragmentation rules, control frames between fragments, text
//! validation and the limits of [`Config`].
//!
//! Every byte an event hands out lies in the caller's buffer, never here:
//!
//! - a control frame is taken only once it is whole in the buffer;
//! - the bytes of a code point split by the end of the buffer or by a frame
//!   boundary stay unconsumed at the front of the buffer (already unmasked;
//!   [`Receiver`] counts them) and go out with the chunk that completes
//!   them. When a frame header or a control frame sits behind them, they
//!   are moved within the caller's buffer so that they stay in front of
//!   what is left to read;
//! - inflated data goes into output space the caller lends.

use crate::error::RemoteProtocolError;
use crate::event::{BytesMessage, CloseConnection, ConnectionEvent, Ping, Pong, TextMessage};
#[cfg(target_pointer_width = "64")]
use crate::frame::mask::{apply_mask, text::unmask_whole_utf8};
use crate::frame::payload::PayloadCursor;
use crate::frame::{
    parse_close_payload, FrameHeader, Opcode, RsvBits, Status, MAX_CONTROL_PAYLOAD,
};
use crate::role::Role;
use crate::utf8;

#[cfg(feature = "deflate")]
use crate::extension::deflate::DeflateStream;

/// Limits and settings of a [`Connection`](crate::Connection).
///
/// Every size the peer controls has a limit here; going past one fails the
/// connection with close code 1009.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Config {
    /// The largest frame payload accepted, in bytes (default 64 MiB).
    pub max_frame_size: u64,
    /// The largest message accepted, in bytes, after decompression
    /// (default 64 MiB).
    pub max_message_size: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_frame_size: 64 << 20,
            max_message_size: 64 << 20,
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
}

/// The kind of a data message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MessageKind {
    /// A text message (opcode 0x1).
    Text,
    /// A binary message (opcode 0x2).
    Binary,
}

/// The result of one call to [`Connection::receive`](crate::Connection::receive).
#[derive(Debug)]
#[must_use = "the consumed bytes must be discarded and the event handled"]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Received<'b> {
    /// How many bytes at the front of the buffer were used. Drop them before
    /// the next call; keep the rest at the front of the buffer.
    pub consumed: usize,
    /// The next event, `Ok(None)` when the call cannot go on (see
    /// [`needed`](Self::needed)), or the peer's violation (whose
    /// [`event_hint`](RemoteProtocolError::event_hint) is the close frame to
    /// send).
    pub event: Result<Option<ConnectionEvent<'b>>, RemoteProtocolError>,
    /// What the next call needs when `event` is `Ok(None)`.
    pub needed: Needed,
    /// Where the event's data lies: `false` for the last bytes of the
    /// consumed part of the buffer (`buf[consumed - len..consumed]`), `true`
    /// for decompressed data at the front of the output space
    /// (`out[..len]`). An owner of both buffers splits the data off the
    /// right one without looking at pointers.
    pub decompressed: bool,
}

/// What [`Connection::receive`](crate::Connection::receive) needs before it
/// can go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Needed {
    /// Nothing: the call returned an event or an error.
    Nothing,
    /// More input: the buffer, once the consumed bytes are dropped, must
    /// hold at least this many bytes. A buffer whose capacity is smaller
    /// can never make progress (a control frame must be whole in the buffer:
    /// [`MIN_RECEIVE_BUFFER`] bytes are always enough).
    Input(usize),
    /// Output space for decompressed data, at least this many bytes: call
    /// [`receive_into`](crate::Connection::receive_into) with it.
    Output(usize),
}

/// A receive buffer of this many bytes always makes progress: the largest
/// control frame (a 2-byte header, a 4-byte masking key, 125 bytes of
/// payload) behind the three bytes of a split code point.
pub const MIN_RECEIVE_BUFFER: usize = 3 + 2 + 4 + MAX_CONTROL_PAYLOAD;

/// The receive side of a connection: counters and flags only.
#[derive(Debug)]
pub(crate) struct Receiver {
    /// The data frame whose payload is arriving.
    frame: Option<PayloadCursor>,
    /// The kind of the message being received, if one is unfinished.
    message: Option<MessageKind>,
    /// Whether that message is compressed (RSV1 on its first frame).
    compressed: bool,
    /// Bytes at the front of the caller's buffer that start a code point:
    /// payload already taken and unmasked, not yet handed out.
    carry: u8,
    /// Payload bytes of the current message so far.
    message_len: u64,
    /// The violation that ended the connection.
    pub(crate) failed: Option<RemoteProtocolError>,
}

/// What a data chunk of a message is, before it becomes an event.
struct Chunk {
    frame_finished: bool,
    message_finished: bool,
}

impl Receiver {
    pub(crate) const fn new() -> Self {
        Self {
            frame: None,
            message: None,
            compressed: false,
            carry: 0,
            message_len: 0,
            failed: None,
        }
    }

    /// Parse the next event from the front of `buf`; inflated data goes to
    /// `out`.
    pub(crate) fn receive<'b>(
        &mut self,
        role: Role,
        config: &Config,
        #[cfg(feature = "deflate")] inflate: Option<&mut DeflateStream>,
        buf: &'b mut [u8],
        #[cfg_attr(not(feature = "deflate"), allow(unused_variables))] out: &'b mut [u8],
    ) -> Result<(usize, Progress<'b>), RemoteProtocolError> {
        #[cfg(feature = "deflate")]
        let deflate_on = inflate.is_some();
        #[cfg(not(feature = "deflate"))]
        let deflate_on = false;
        let carry = usize::from(self.carry);
        let (start, frame) = match self.frame {
            Some(frame) => (0, frame),
            None => {
                let input = buf.get(carry..).unwrap_or_default();
                let (header, used) = match FrameHeader::parse(input)? {
                    Status::Complete(parsed) => parsed,
                    Status::Incomplete => {
                        return Ok((0, Progress::Needs(Needed::Input(buf.len() + 1))))
                    }
                };
                self.check_header(role, config, deflate_on, &header)?;
                if header.opcode.is_control() {
                    return control_frame(&header, used, carry, buf);
                }
                self.start_message(config, &header)?;
                // The carried bytes move up to sit right before the payload.
                move_carry(buf, carry, used);
                (used, PayloadCursor::new(&header))
            }
        };
        if self.compressed {
            #[cfg(feature = "deflate")]
            if let Some(inflate) = inflate {
                return self.inflate(inflate, config, frame, start, buf, out);
            }
            return Err(RemoteProtocolError::protocol(
                "compressed message without deflate",
            ));
        }
        self.data(frame, start, buf)
    }

    /// The header of a frame that [`whole_frame`](Self::whole_frame) can
    /// take in one step, or `None` for the general path: an unfragmented
    /// text or binary frame (FIN set, no RSV bit) with a 7- or 16-bit length,
    /// masked as `role` requires, within the limits, whole in `buf`, while
    /// no message is in progress. Reads `buf` only.
    #[cfg(target_pointer_width = "64")]
    #[inline(always)]
    pub(crate) fn whole_frame_header(
        &self,
        role: Role,
        config: &Config,
        buf: &[u8],
    ) -> Option<WholeFrame> {
        if self.frame.is_some() || self.message.is_some() {
            return None;
        }
        let [b0, b1, ..] = *buf else {
            return None;
        };
        let text = match b0 {
            0x81 => true,
            0x82 => false,
            _ => return None,
        };
        let masked = b1 & 0x80 != 0;
        if masked != (role == Role::Server) {
            return None;
        }
        let (len, mut start) = match b1 & 0x7F {
            127 => return None,
            126 => {
                let len = u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]);
                if len < 126 {
                    return None;
                }
                (usize::from(len), 4)
            }
            short => (usize::from(short), 2),
        };
        let mut key = None;
        if masked {
            key = Some(<[u8; 4]>::try_from(buf.get(start..start + 4)?).ok()?);
            start += 4;
        }
        let limit = config.max_frame_size.min(config.max_message_size);
        if len as u64 > limit || start + len > buf.len() {
            return None;
        }
        Some(WholeFrame {
            text,
            key,
            start,
            end: start + len,
        })
    }

    /// Take the frame that [`whole_frame_header`](Self::whole_frame_header)
    /// found at the front of `buf`: unmask it, validate text, and hand it
    /// out as one event. Stores nothing: no message was in progress, and
    /// none is after it.
    #[cfg(target_pointer_width = "64")]
    #[inline(always)]
    pub(crate) fn whole_frame<'b>(
        frame: WholeFrame,
        buf: &'b mut [u8],
    ) -> Result<(usize, ConnectionEvent<'b>), RemoteProtocolError> {
        let payload = buf.get_mut(frame.start..frame.end).unwrap_or_default();
        if frame.text {
            let text = unmask_whole_utf8(payload, frame.key).ok_or_else(utf8::invalid_text)?;
            return Ok((
                frame.end,
                ConnectionEvent::TextMessage(TextMessage {
                    data: text,
                    frame_finished: true,
                    message_finished: true,
                }),
            ));
        }
        if let Some(key) = frame.key {
            apply_mask(payload, key, 0);
        }
        let payload: &'b [u8] = payload;
        Ok((
            frame.end,
            ConnectionEvent::BytesMessage(BytesMessage {
                data: payload,
                frame_finished: true,
                message_finished: true,
            }),
        ))
    }

    /// The rules a header must follow here, given the connection (RFC 6455
    /// §5.2, §5.4, RFC 7692 §6.1) and the limits.
    fn check_header(
        &self,
        role: Role,
        config: &Config,
        deflate_on: bool,
        header: &FrameHeader,
    ) -> Result<(), RemoteProtocolError> {
        let allowed_rsv = if deflate_on {
            RsvBits::RSV1
        } else {
            RsvBits::NONE
        };
        header.validate(role == Role::Server, allowed_rsv)?;
        if header.rsv.rsv1()
            && (header.opcode.is_control() || header.opcode == Opcode::CONTINUATION)
        {
            // RFC 7692 §6.1: RSV1 marks the first frame of a compressed message.
            return Err(RemoteProtocolError::protocol(
                "RSV1 set on a control or continuation frame",
            ));
        }
        if header.payload_len > config.max_frame_size {
            return Err(RemoteProtocolError::too_big("frame larger than the limit"));
        }
        Ok(())
    }

    /// Begin a data frame: the fragmentation rules of §5.4 and the message
    /// limit.
    fn start_message(
        &mut self,
        config: &Config,
        header: &FrameHeader,
    ) -> Result<(), RemoteProtocolError> {
        let kind = match (header.opcode, self.message) {
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
        let message_len = self.message_len.saturating_add(header.payload_len);
        if message_len > config.max_message_size {
            return Err(RemoteProtocolError::too_big(
                "message larger than the limit",
            ));
        }
        if header.opcode != Opcode::CONTINUATION {
            self.compressed = header.rsv.rsv1();
        }
        self.message = Some(kind);
        self.message_len = message_len;
        self.frame = Some(PayloadCursor::new(header));
        Ok(())
    }

    /// Hand out the payload of an uncompressed data frame that is in `buf`
    /// from `start` on, behind the carried bytes of a split code point.
    /// Text is unmasked and validated in one pass.
    fn data<'b>(
        &mut self,
        mut frame: PayloadCursor,
        start: usize,
        buf: &'b mut [u8],
    ) -> Result<(usize, Progress<'b>), RemoteProtocolError> {
        let carry = usize::from(self.carry);
        let chunk = buf.get_mut(start..).unwrap_or_default();
        let n = frame.take_len(chunk.len().saturating_sub(carry));
        let chunk = chunk.get_mut(..carry + n).unwrap_or_default();
        let data = match self.message {
            Some(MessageKind::Text) => {
                let (text, tail) = frame
                    .unmask_text(chunk, carry)
                    .ok_or_else(utf8::invalid_text)?;
                Data::Text(text, tail)
            }
            _ => {
                frame.unmask(chunk);
                Data::Binary(chunk)
            }
        };
        frame.advance(n);
        let frame_finished = frame.is_done();
        let chunk_info = Chunk {
            frame_finished,
            message_finished: frame_finished && frame.fin,
        };
        let (event, len, tail) = match data {
            Data::Binary(data) => (
                ConnectionEvent::BytesMessage(BytesMessage {
                    data,
                    frame_finished,
                    message_finished: chunk_info.message_finished,
                }),
                data.len(),
                0,
            ),
            Data::Text(text, tail) => {
                if !tail.is_empty() && (chunk_info.message_finished || !utf8::is_char_prefix(tail))
                {
                    return Err(utf8::invalid_text());
                }
                self.carry = tail.len() as u8;
                (text_event(text, &chunk_info), text.len(), tail.len())
            }
        };
        self.frame = (!frame_finished).then_some(frame);
        self.end_chunk(&chunk_info);
        if len == 0 && !frame_finished {
            return Ok((start, Progress::Needs(Needed::Input(tail + 1))));
        }
        Ok((start + len, Progress::Event(event, false)))
    }

    /// Decompress the payload of a compressed message as it arrives.
    #[cfg(feature = "deflate")]
    fn inflate<'b>(
        &mut self,
        stream: &mut DeflateStream,
        config: &Config,
        mut frame: PayloadCursor,
        start: usize,
        buf: &'b mut [u8],
        out: &'b mut [u8],
    ) -> Result<(usize, Progress<'b>), RemoteProtocolError> {
        let text = self.message == Some(MessageKind::Text);
        let input = buf.get_mut(start..).unwrap_or_default();
        let inflation = stream.inflate(&mut frame, text, config.max_message_size, input, out)?;
        self.frame = (!inflation.frame_finished).then_some(frame);
        let chunk = Chunk {
            frame_finished: inflation.frame_finished,
            message_finished: inflation.message_finished,
        };
        self.end_chunk(&chunk);
        let consumed = start + inflation.used;
        let Some(data) = inflation.data else {
            let needed = match inflation.output_needed {
                0 => Needed::Input(buf.len() - consumed + 1),
                n => Needed::Output(n),
            };
            return Ok((consumed, Progress::Needs(needed)));
        };
        let event = if text {
            let text = simdutf8::compat::from_utf8(data).map_err(|_| utf8::invalid_text())?;
            text_event(text, &chunk)
        } else {
            ConnectionEvent::BytesMessage(BytesMessage {
                data,
                frame_finished: chunk.frame_finished,
                message_finished: chunk.message_finished,
            })
        };
        Ok((consumed, Progress::Event(event, true)))
    }

    /// Bookkeeping at the end of a data chunk.
    fn end_chunk(&mut self, chunk: &Chunk) {
        if chunk.message_finished {
            self.message = None;
            self.message_len = 0;
            self.carry = 0;
        }
    }
}

/// A whole single-frame message at the front of the buffer: see
/// [`Receiver::whole_frame_header`].
#[cfg(target_pointer_width = "64")]
#[derive(Clone, Copy)]
pub(crate) struct WholeFrame {
    text: bool,
    key: Option<[u8; 4]>,
    /// Where the payload begins and ends in the buffer.
    start: usize,
    end: usize,
}

/// A chunk of an uncompressed message, unmasked: binary, or text (the text
/// up to a split code point, and the bytes of that code point).
enum Data<'b> {
    Binary(&'b [u8]),
    Text(&'b str, &'b [u8]),
}

/// What one step of the receiver produced.
pub(crate) enum Progress<'b> {
    /// An event for the caller, and whether its data was decompressed
    /// into the output space.
    Event(ConnectionEvent<'b>, bool),
    /// Nothing until the caller provides this.
    Needs(Needed),
}

/// Move the `carry` (at most 3) bytes at the front of `buf` to `to`, byte
/// by byte, last first: the places may overlap, and a move this short needs
/// no memmove.
fn move_carry(buf: &mut [u8], carry: usize, to: usize) {
    for i in [2, 1, 0] {
        if i < carry {
            if let (Some(&byte), Some(_)) = (buf.get(i), buf.get(to + i)) {
                buf[to + i] = byte;
            }
        }
    }
}

/// A control frame whose header of `used` bytes sits behind `carry`
/// carried bytes: taken only when it is whole in `buf` (§5.5).
fn control_frame<'b>(
    header: &FrameHeader,
    used: usize,
    carry: usize,
    buf: &'b mut [u8],
) -> Result<(usize, Progress<'b>), RemoteProtocolError> {
    // At most 125 bytes: checked by `FrameHeader::validate`.
    let len = header.payload_len as usize;
    let start = carry + used;
    let end = start + len;
    let Some(payload) = buf.get_mut(start..end) else {
        return Ok((0, Progress::Needs(Needed::Input(end))));
    };
    PayloadCursor::new(header).unmask(payload);
    if carry != 0 {
        // Rotate the carried bytes past the frame, in front of what follows
        // it: three reversals (no memmove is linked for this rare case).
        buf[..carry].reverse();
        buf[carry..end].reverse();
        buf[..end].reverse();
    }
    // The payload ends where the consumed bytes end, as for data.
    let consumed = end - carry;
    let buf: &'b [u8] = buf;
    let payload = &buf[consumed - len..consumed];
    let event = match header.opcode {
        Opcode::PING => ConnectionEvent::Ping(Ping { payload }),
        Opcode::PONG => ConnectionEvent::Pong(Pong { payload }),
        _ => {
            let (code, reason) = parse_close_payload(payload)?;
            ConnectionEvent::CloseConnection(CloseConnection { code, reason })
        }
    };
    Ok((consumed, Progress::Event(event, false)))
}

fn text_event<'b>(data: &'b str, chunk: &Chunk) -> ConnectionEvent<'b> {
    ConnectionEvent::TextMessage(TextMessage {
        data,
        frame_finished: chunk.frame_finished,
        message_finished: chunk.message_finished,
    })
}

// The result of a receive call: `Ok(None)` and the error share the niche of
// the event (checked on 64-bit targets).
#[cfg(target_pointer_width = "64")]
const _: () = {
    type Outcome<'b> = Result<Option<ConnectionEvent<'b>>, RemoteProtocolError>;
    assert!(core::mem::size_of::<Outcome<'_>>() <= core::mem::size_of::<ConnectionEvent<'_>>());
    assert!(core::mem::size_of::<Received<'_>>() <= 64);
};
