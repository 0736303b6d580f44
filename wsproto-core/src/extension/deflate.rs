//! permessage-deflate (RFC 7692): negotiation with [`PerMessageDeflate`],
//! and the streaming codec each connection keeps inside.
//!
//! The handshake runs [`PerMessageDeflate`] through the
//! [`Extension`] trait; once it is [`enabled`](Extension::enabled),
//! [`PerMessageDeflate::params`] gives the agreed [`DeflateParams`], from
//! which the connection builds its codec for its [`Role`]
//! ([`Handshake::into_connection`](crate::Handshake::into_connection) does
//! it, or [`Connection::with_deflate`](crate::Connection::with_deflate)).
//!
//! Messages are raw DEFLATE (RFC 1951) ending in a sync flush whose trailing
//! `00 00 ff ff` is removed on send and appended on receive (§7.2.1, §7.2.2).
//!
//! Window sizes: receiving, the codec always keeps a 32 KiB window, so it
//! reads every `*_max_window_bits` from 8 to 15. Sending under a window
//! smaller than 32 KiB, miniz_oxide (the default compressor) compresses
//! with run-length matches only (every back-reference has distance 1),
//! which no window can be too small for; zlib-rs (feature `zlib-rs`)
//! honours windows from 9 bits, and uses run-length matches under 8 bits.
//!
//! Memory: the decompressor state (about 60 KB: a 48 KiB output window and
//! the Huffman tables) and the compressor state (about 320 KB with
//! miniz_oxide, 140 KB to 380 KB with zlib-rs) are allocated when a message
//! first needs them, and released when the message ends if the sending side
//! agreed to no context takeover. An idle connection without context
//! takeover holds neither; with a [`DeflatePool`] lent to it, its messages
//! allocate nothing either. Under a window smaller than 32 KiB no
//! compressor stays between messages even with context takeover: only the
//! last window of bytes sent (none with miniz_oxide's run-length matches),
//! to prime the next message's compressor.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::mem::size_of;

use miniz_oxide::inflate::core::{
    decompress, inflate_flags::TINFL_FLAG_HAS_MORE_INPUT,
    inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF, DecompressorOxide,
};
use miniz_oxide::inflate::TINFLStatus;

use crate::close::CloseCode;
use crate::error::RemoteProtocolError;
use crate::extension::{Extension, ExtensionOffer};
use crate::frame::payload::PayloadCursor;
use crate::role::Role;
use crate::utf8;

/// The extension token of permessage-deflate.
pub const NAME: &str = "permessage-deflate";

/// Registry as in the Python API: names of the extensions this crate
/// implements.
pub const SUPPORTED_EXTENSIONS: &[&str] = &[NAME];

/// The largest window, `2^15` bytes, assumed when no `*_max_window_bits` was
/// agreed.
pub const MAX_WINDOW_BITS: u8 = 15;

/// The smallest window RFC 7692 allows, `2^8` bytes.
pub const MIN_WINDOW_BITS: u8 = 8;

/// The end of a sync flush (an empty stored block), removed from every
/// message on send and appended on receive.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The default compression level: 6, zlib's default and what Python's
/// wsproto uses.
pub const DEFAULT_LEVEL: u8 = 6;

/// The compressor of the miniz_oxide backend (the default).
///
/// miniz_oxide's matches reach back 32 KiB whatever the window: under a
/// smaller window it compresses with run-length matches only (distance 1),
/// which need no history, so the state can go after every message.
#[cfg(not(feature = "zlib-rs"))]
mod backend {
    use alloc::boxed::Box;
    use alloc::vec::Vec;
    use core::mem::size_of;

    use miniz_oxide::deflate::core::{
        compress, create_comp_flags_from_zip_params, CompressionStrategy, CompressorOxide,
        TDEFLFlush, TDEFLStatus,
    };

    use super::MAX_WINDOW_BITS;

    /// Heap held by a boxed `CompressorOxide` of miniz_oxide 0.9: the box
    /// itself plus its own boxes (LZ dictionary with lookahead copy, hash
    /// chain and hash heads, output staging buffer, Huffman tables).
    pub(super) const HEAP: usize = size_of::<CompressorOxide>()
        + (32_768 + 258)
        + 2 * 32_768
        + 2 * 32_768
        + 65_536 * 13 / 10
        + (2 * 2 + 1) * 3 * 288;

    pub(super) struct Compressor {
        inner: CompressorOxide,
        level: u8,
        window_bits: u8,
    }

    impl Compressor {
        pub(super) fn new(level: u8, window_bits: u8) -> Box<Self> {
            // Raw deflate (no zlib header), in the zlib convention.
            let raw = -i32::from(MAX_WINDOW_BITS);
            let strategy = if run_length_only(window_bits) {
                CompressionStrategy::RLE
            } else {
                CompressionStrategy::Default
            };
            let mut flags = create_comp_flags_from_zip_params(
                level_for(level, window_bits),
                raw,
                strategy as i32,
            );
            if let Some(&probes) = usize::from(level)
                .checked_sub(4)
                .and_then(|i| LAZY_PROBES.get(i))
            {
                flags = (flags & !PROBES_MASK) | probes;
            }
            Box::new(Self {
                inner: CompressorOxide::new(flags),
                level,
                window_bits,
            })
        }

        /// Whether this compressor compresses as one for `level` and
        /// `window_bits` would.
        pub(super) fn matches(&self, level: u8, window_bits: u8) -> bool {
            (self.level, self.window_bits) == (level, window_bits)
        }

        /// Start a new stream without history, keeping the allocations.
        pub(super) fn reset(&mut self) {
            self.inner.reset();
        }

        /// Heap held by this compressor.
        pub(super) fn heap_size(&self) -> usize {
            HEAP
        }

        /// Whether the compressor needs the history of earlier messages to
        /// go on: run-length matches never reach into it.
        pub(super) fn keeps_history(window_bits: u8) -> bool {
            !run_length_only(window_bits)
        }

        /// Compress `input` and sync-flush, appending to `out`.
        pub(super) fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
            let mut rest = input;
            loop {
                // Room for all of it even if it does not compress, so that
                // one call usually does.
                let room = rest.len() + rest.len() / 8 + 64;
                let len = out.len();
                out.resize(len + room, 0);
                let (status, used, written) = match out.get_mut(len..) {
                    Some(buf) => compress(&mut self.inner, rest, buf, TDEFLFlush::Sync),
                    None => (TDEFLStatus::BadParam, 0, 0),
                };
                out.truncate(len + written);
                rest = rest.get(used..).unwrap_or_default();
                // Only misuse of the compressor fails or stalls; stop rather
                // than spin.
                debug_assert_eq!(status, TDEFLStatus::Okay);
                let stalled = used == 0 && written == 0;
                if status != TDEFLStatus::Okay || stalled || (rest.is_empty() && written < room) {
                    break;
                }
            }
        }
    }

    /// The low 12 bits of miniz_oxide's compressor flags: how many earlier
    /// positions it tries for a match.
    const PROBES_MASK: u32 = 0xfff;

    /// The probes of levels 4, 5 and 6, where miniz_oxide's own table has
    /// 16, 32 and 128. zlib's level 6 follows a chain of at most 128
    /// positions, and a quarter of that once it holds a match of 8 bytes;
    /// 32 probes compress JSON-like messages to within 2% of zlib's level 6
    /// at 1.2 to 1.7 times miniz_oxide's own level-6 speed (BENCHMARKS.md).
    /// Levels 4 and 5 stay below it.
    const LAZY_PROBES: [u32; 3] = [8, 16, 32];

    /// Under a window smaller than 32 KiB, only distance 1 is safe.
    pub(super) fn run_length_only(window_bits: u8) -> bool {
        window_bits < MAX_WINDOW_BITS
    }

    /// Level 1 takes miniz_oxide's fast path, which ignores
    /// TDEFL_RLE_MATCHES and would break the window limit of run-length-only
    /// compression: under a window smaller than 32 KiB it becomes level 2.
    fn level_for(level: u8, window_bits: u8) -> i32 {
        let level = level.clamp(1, 9);
        if level == 1 && window_bits < MAX_WINDOW_BITS {
            2
        } else {
            i32::from(level)
        }
    }
}

/// The compressor of the zlib-rs backend (feature `zlib-rs`), through its
/// safe streaming API (`zlib_rs::Deflate`): it honours every window from
/// 9 bits up; for a window of 8 bits, which zlib refuses for raw deflate,
/// it compresses with run-length matches (distance 1) under a 9-bit window.
#[cfg(feature = "zlib-rs")]
mod backend {
    use alloc::boxed::Box;
    use alloc::vec::Vec;

    use zlib_rs::{Deflate, DeflateConfig, DeflateFlush, Method, Status, Strategy};

    use super::MAX_WINDOW_BITS;

    /// zlib-rs's memLevel: its default. Lower levels shrink only the
    /// literal buffers (1 KiB to 112 KiB); the hash heads stay 128 KiB.
    const MEM_LEVEL: i32 = 8;

    /// Heap held by a compressor for `window_bits`: one allocation in
    /// zlib-rs 0.6 (state, two windows, the hash chain, 64 Ki hash heads of
    /// two bytes, the pending and symbol buffers of `lit_bufsize` times 7,
    /// 64-byte alignment), measured with a counting allocator in
    /// `tests/deflate.rs`.
    pub(super) fn heap_for(window_bits: u8) -> usize {
        let w = 1usize << zlib_bits(window_bits);
        let lit_bufsize = 1usize << (MEM_LEVEL + 6);
        // The state and the alignment padding, as measured.
        const STATE: usize = 5_376;
        STATE + 2 * w + 2 * w + 2 * 65_536 + 7 * lit_bufsize
    }

    /// The largest compressor, for the default window.
    #[cfg(all(test, not(miri)))]
    pub(super) const HEAP: usize = 5_376 + 4 * 32_768 + 2 * 65_536 + 7 * 16_384;

    pub(super) struct Compressor {
        inner: Deflate,
        level: u8,
        window_bits: u8,
    }

    impl Compressor {
        pub(super) fn new(level: u8, window_bits: u8) -> Box<Self> {
            let strategy = if window_bits < 9 {
                Strategy::Rle
            } else {
                Strategy::Default
            };
            let config = DeflateConfig {
                level: level_for(level),
                method: Method::Deflated,
                // Negative: raw deflate, no zlib header.
                window_bits: -i32::from(zlib_bits(window_bits)),
                mem_level: MEM_LEVEL,
                strategy,
            };
            Box::new(Self {
                inner: Deflate::new_with_config(config),
                level,
                window_bits,
            })
        }

        /// Whether this compressor compresses as one for `level` and
        /// `window_bits` would.
        pub(super) fn matches(&self, level: u8, window_bits: u8) -> bool {
            (self.level, self.window_bits) == (level, window_bits)
        }

        /// Start a new stream without history, keeping the allocation.
        pub(super) fn reset(&mut self) {
            self.inner.reset();
        }

        pub(super) fn heap_size(&self) -> usize {
            heap_for(self.window_bits)
        }

        /// zlib-rs honours the window, so its matches reach into earlier
        /// messages of the stream (except under the 8-bit window).
        pub(super) fn keeps_history(window_bits: u8) -> bool {
            window_bits >= 9
        }

        /// Prime a fresh compressor with the last bytes sent, the history
        /// the peer keeps.
        pub(super) fn set_history(&mut self, history: &[u8]) {
            // Fails only on a stream already under way, which a fresh one
            // is not.
            let result = self.inner.set_dictionary(history);
            debug_assert!(result.is_ok());
        }

        /// Compress `input` and sync-flush, appending to `out`.
        pub(super) fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
            let mut rest = input;
            loop {
                let room = rest.len() + rest.len() / 8 + 64;
                let len = out.len();
                out.resize(len + room, 0);
                let before = (self.inner.total_in(), self.inner.total_out());
                let result = match out.get_mut(len..) {
                    Some(buf) => self.inner.compress(rest, buf, DeflateFlush::SyncFlush),
                    None => Ok(Status::BufError),
                };
                let used = (self.inner.total_in() - before.0) as usize;
                let written = (self.inner.total_out() - before.1) as usize;
                out.truncate(len + written);
                rest = rest.get(used..).unwrap_or_default();
                // A sync flush is complete when output space is left over.
                let stalled = used == 0 && written == 0;
                debug_assert!(matches!(result, Ok(Status::Ok | Status::BufError)));
                if result.is_err() || stalled || (rest.is_empty() && written < room) {
                    break;
                }
            }
        }
    }

    /// zlib's smallest raw window is 9 bits.
    fn zlib_bits(window_bits: u8) -> u8 {
        window_bits.clamp(9, MAX_WINDOW_BITS)
    }

    /// zlib-rs's level 1 is a quick mode whose output is 14% to 27% larger
    /// than C zlib's level 1 on JSON (BENCHMARKS.md); its level 2 is both
    /// faster than zlib's level 1 and smaller, so level 1 asks for it.
    fn level_for(level: u8) -> i32 {
        i32::from(level.clamp(2, 9))
    }
}

use backend::Compressor;

/// The history a back-reference may reach: 32 KiB (RFC 1951 §3.2.5).
const WINDOW: usize = 32 << 10;

/// The decompressor's output buffer: the window plus room for new output.
const INFLATE_BUFFER: usize = WINDOW + (16 << 10);

/// Heap held by an [`Inflater`].
const DECOMPRESSOR_HEAP: usize = size_of::<Inflater>() + INFLATE_BUFFER;

/// A raw DEFLATE decoder over a sliding window that knows how much history
/// it has: a back-reference to before the start of the stream is an error,
/// never a read of stale or zeroed bytes.
struct Inflater {
    decompressor: DecompressorOxide,
    /// Decoded bytes; `buffer[..pos]` is the history (at most the window
    /// after sliding, all of it before).
    buffer: Vec<u8>,
    pos: usize,
}

impl Inflater {
    fn new() -> Box<Self> {
        Box::new(Self {
            decompressor: DecompressorOxide::new(),
            buffer: alloc::vec![0; INFLATE_BUFFER],
            pos: 0,
        })
    }

    /// Decode from `src` into `out`: (input used, output written, status).
    fn step(&mut self, src: &[u8], out: &mut [u8]) -> (usize, usize, TINFLStatus) {
        if self.pos > INFLATE_BUFFER - (8 << 10) {
            // Keep the last window of history; room for new output follows.
            self.buffer.copy_within(self.pos - WINDOW..self.pos, 0);
            self.pos = WINDOW;
        }
        let end = (self.pos + out.len()).min(INFLATE_BUFFER);
        let Some(target) = self.buffer.get_mut(..end) else {
            return (0, 0, TINFLStatus::BadParam);
        };
        let flags = TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF | TINFL_FLAG_HAS_MORE_INPUT;
        let (status, used, written) =
            decompress(&mut self.decompressor, src, target, self.pos, flags);
        let written = written.min(end - self.pos).min(out.len());
        out[..written].copy_from_slice(&self.buffer[self.pos..self.pos + written]);
        self.pos += written;
        (used, written, status)
    }

    /// A final block ended the stream: the next bytes start a new one, over
    /// the same history.
    fn end_of_stream(&mut self) {
        self.decompressor.init();
    }

    /// A new stream without history, keeping the buffer.
    fn reset(&mut self) {
        self.decompressor.init();
        self.pos = 0;
    }

    /// Nothing of a stream is under way: as after [`reset`](Self::reset).
    fn is_fresh(&self) -> bool {
        self.pos == 0
    }
}

/// Negotiation of permessage-deflate (RFC 7692 §7.1), for either role.
///
/// A client sets the fields to shape its offer: the `server_*` fields are
/// requests to the server, the `client_*` fields are promises about its own
/// compression. A server sets them to shape its answers: `server_*` limit
/// its own compression, `client_*` are asked of every client that allows
/// it. Window bits outside 8..=15 are clamped into that range.
///
/// ```
/// use wsproto_core::extension::deflate::PerMessageDeflate;
/// use wsproto_core::extension::{parse_extensions, Extension};
///
/// let mut client = PerMessageDeflate::new();
/// let mut offer = String::new();
/// client.offer(&mut offer).unwrap();
/// assert_eq!(offer, "permessage-deflate; client_max_window_bits");
///
/// let mut server = PerMessageDeflate::new();
/// server.server_no_context_takeover = true;
/// let mut answer = String::new();
/// let offered = parse_extensions(&offer).next().unwrap().unwrap();
/// assert!(server.accept(&offered, &mut answer).unwrap());
/// assert_eq!(answer, "permessage-deflate; server_no_context_takeover");
///
/// let answered = parse_extensions(&answer).next().unwrap().unwrap();
/// client.finalize(&answered).unwrap();
/// assert_eq!(client.params(), server.params());
/// assert!(client.params().unwrap().server_no_context_takeover);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PerMessageDeflate {
    /// Client: promise not to use context takeover for its messages.
    /// Server: ask clients not to use it.
    pub client_no_context_takeover: bool,
    /// Client: the largest window it will compress with (`None`: offered
    /// without a value, any window the server picks). Server: the window to
    /// ask of clients that offered `client_max_window_bits`.
    pub client_max_window_bits: Option<u8>,
    /// Client: ask the server not to use context takeover. Server: never use
    /// it for its own messages.
    pub server_no_context_takeover: bool,
    /// Client: the largest window the server may compress with. Server: the
    /// largest window it compresses with.
    pub server_max_window_bits: Option<u8>,
    /// `false` negotiates as usual but sends every message uncompressed,
    /// which RFC 7692 allows; for small devices that can afford the
    /// decompressor but not the compressor.
    pub compress: bool,
    /// The compression level, 1 (fastest) to 9 (smallest); default 6. Not
    /// negotiated: it only affects what this end sends.
    pub compression_level: u8,
    negotiated: Option<DeflateParams>,
}

impl Default for PerMessageDeflate {
    fn default() -> Self {
        Self {
            client_no_context_takeover: false,
            client_max_window_bits: None,
            server_no_context_takeover: false,
            server_max_window_bits: None,
            compress: true,
            compression_level: DEFAULT_LEVEL,
            negotiated: None,
        }
    }
}

impl PerMessageDeflate {
    /// No parameters of its own; compresses what it sends.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The agreed parameters, once [`accept`](Extension::accept) or
    /// [`finalize`](Extension::finalize) succeeded.
    #[must_use]
    pub fn params(&self) -> Option<DeflateParams> {
        self.negotiated
    }
}

impl Extension for PerMessageDeflate {
    fn name(&self) -> &str {
        NAME
    }

    fn deflate_params(&self) -> Option<DeflateParams> {
        self.negotiated
    }

    fn enabled(&self) -> bool {
        self.negotiated.is_some()
    }

    /// `client_max_window_bits` is always offered, without a value unless
    /// one is set, so that the server may limit the client's window.
    fn offer(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        out.write_str(NAME)?;
        out.write_str("; client_max_window_bits")?;
        if let Some(bits) = self.client_max_window_bits {
            write!(out, "={}", clamp_bits(bits))?;
        }
        if let Some(bits) = self.server_max_window_bits {
            write!(out, "; server_max_window_bits={}", clamp_bits(bits))?;
        }
        if self.client_no_context_takeover {
            out.write_str("; client_no_context_takeover")?;
        }
        if self.server_no_context_takeover {
            out.write_str("; server_no_context_takeover")?;
        }
        Ok(())
    }

    /// Declines (writes nothing, returns `Ok(false)`) an offer with an
    /// unknown or repeated parameter, a missing or invalid value, a value on
    /// a `*_no_context_takeover`, or a quoted value with escapes; a decline
    /// leaves an earlier agreement as it was. The handshake should stop at
    /// the first offer accepted, as a server accepts at most one. Otherwise
    /// answers:
    ///
    /// - `client_no_context_takeover` if offered or configured;
    /// - `server_no_context_takeover` if offered or configured;
    /// - `client_max_window_bits=N` only if offered, `N` the smaller of the
    ///   offered value and ours (omitted if neither has one);
    /// - `server_max_window_bits=N` if offered or configured, `N` the
    ///   smaller of the offered value and ours.
    fn accept(
        &mut self,
        offer: &ExtensionOffer<'_>,
        out: &mut dyn fmt::Write,
    ) -> Result<bool, fmt::Error> {
        if offer.name != NAME {
            return Ok(false);
        }
        let Ok(offered) = Params::parse(offer) else {
            return Ok(false);
        };
        // §7.1.2.1: an offer's server_max_window_bits has a value.
        if offered.server_max_window_bits == Some(None) {
            return Ok(false);
        }

        let client_no_context_takeover =
            self.client_no_context_takeover || offered.client_no_context_takeover;
        let server_no_context_takeover =
            self.server_no_context_takeover || offered.server_no_context_takeover;
        // §7.1.2.2: only if offered, and no larger than the offered value.
        let client_max_window_bits = match offered.client_max_window_bits {
            None => None,
            Some(value) => min_bits(value, self.client_max_window_bits),
        };
        // §7.1.2.1: no larger than requested; our own limit may be added.
        let server_max_window_bits = min_bits(
            offered.server_max_window_bits.flatten(),
            self.server_max_window_bits,
        );

        out.write_str(NAME)?;
        if client_no_context_takeover {
            out.write_str("; client_no_context_takeover")?;
        }
        if server_no_context_takeover {
            out.write_str("; server_no_context_takeover")?;
        }
        if let Some(bits) = client_max_window_bits {
            write!(out, "; client_max_window_bits={bits}")?;
        }
        if let Some(bits) = server_max_window_bits {
            write!(out, "; server_max_window_bits={bits}")?;
        }

        self.negotiated = Some(DeflateParams {
            client_no_context_takeover,
            server_no_context_takeover,
            client_max_window_bits: client_max_window_bits.unwrap_or(MAX_WINDOW_BITS),
            server_max_window_bits: server_max_window_bits.unwrap_or(MAX_WINDOW_BITS),
            compress: self.compress,
            compression_level: self.compression_level,
        });
        Ok(true)
    }

    /// Fails with close code 1002 (protocol error) on a response that is
    /// not for permessage-deflate, has an unknown or repeated parameter, a
    /// missing or invalid value, a value on a `*_no_context_takeover`, a
    /// quoted value with escapes, a `client_max_window_bits` larger than we
    /// offered, or that does not grant what we asked of the server
    /// (`server_no_context_takeover`, `server_max_window_bits` no larger
    /// than requested), as §7.1.1.1 and §7.1.2.1 oblige it to.
    fn finalize(&mut self, response: &ExtensionOffer<'_>) -> Result<(), RemoteProtocolError> {
        self.negotiated = None;
        if response.name != NAME {
            return Err(refused("response is not for permessage-deflate"));
        }
        let answered = Params::parse(response).map_err(refused)?;

        let client_max_window_bits = answered_bits(
            answered.client_max_window_bits,
            self.client_max_window_bits,
            "client_max_window_bits without a value",
            "client_max_window_bits larger than offered",
        )?;
        let server_max_window_bits = answered_bits(
            answered.server_max_window_bits,
            self.server_max_window_bits,
            "server_max_window_bits without a value",
            "server_max_window_bits larger than requested",
        )?;
        if self.server_max_window_bits.is_some() && server_max_window_bits.is_none() {
            return Err(refused("server_max_window_bits requested but not granted"));
        }
        if self.server_no_context_takeover && !answered.server_no_context_takeover {
            return Err(refused(
                "server_no_context_takeover requested but not granted",
            ));
        }

        self.negotiated = Some(DeflateParams {
            // Offered, it is a promise we keep even if the server did not
            // echo it (§7.1.1.2).
            client_no_context_takeover: self.client_no_context_takeover
                || answered.client_no_context_takeover,
            server_no_context_takeover: answered.server_no_context_takeover,
            // Our own limit still applies if the server allowed more.
            client_max_window_bits: min_bits(client_max_window_bits, self.client_max_window_bits)
                .unwrap_or(MAX_WINDOW_BITS),
            server_max_window_bits: server_max_window_bits.unwrap_or(MAX_WINDOW_BITS),
            compress: self.compress,
            compression_level: self.compression_level,
        });
        Ok(())
    }
}

/// The agreed permessage-deflate parameters: what a connection needs to
/// build its codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DeflateParams {
    /// The client does not use context takeover: each client message is
    /// compressed on its own.
    pub client_no_context_takeover: bool,
    /// The server does not use context takeover.
    pub server_no_context_takeover: bool,
    /// The client's window, 8..=15 (15 when not negotiated).
    pub client_max_window_bits: u8,
    /// The server's window, 8..=15 (15 when not negotiated).
    pub server_max_window_bits: u8,
    /// Whether this end compresses the messages it sends.
    pub compress: bool,
    /// The compression level for the messages this end sends, 1 to 9.
    pub compression_level: u8,
}

impl Default for DeflateParams {
    /// What `permessage-deflate` without parameters agrees on.
    fn default() -> Self {
        Self {
            client_no_context_takeover: false,
            server_no_context_takeover: false,
            client_max_window_bits: MAX_WINDOW_BITS,
            server_max_window_bits: MAX_WINDOW_BITS,
            compress: true,
            compression_level: DEFAULT_LEVEL,
        }
    }
}

/// The permessage-deflate transform of one connection: decompresses the
/// messages it receives and compresses those it sends.
///
/// A server decompresses under the client's parameters
/// (`client_no_context_takeover`, `client_max_window_bits`) and compresses
/// under the server's; a client the other way round.
///
/// # Receiving
///
/// For each message with RSV1 set, feed its unmasked payload, across all its
/// frames, to [`inflate`](Self::inflate):
///
/// 1. call with the payload bytes at hand and `end_of_message` true only if
///    they end with the last byte of the final frame (an empty final frame
///    counts: call with empty input and `end_of_message` true);
/// 2. hand out `out[..produced]`, drop `consumed` bytes of the input, and
///    call again with the rest (empty once everything is consumed) and the
///    same `end_of_message`;
/// 3. the message is complete when the result has `message_done`; the next
///    call starts the next compressed message.
///
/// Keep `out` non-empty: a call with an empty `out` cannot finish a message.
/// Count `produced` against the message size limit; the codec itself never
/// holds more than its fixed state, however much a message expands.
///
/// # Sending
///
/// If [`compresses`](Self::compresses), set RSV1 on the first frame of each
/// data message and send as its payload (across frames) what
/// [`compress`](Self::compress) appends, `end_of_message` true on the final
/// frame. Every call emits all the input given so far, so each frame can be
/// sent at once.
pub(crate) struct DeflateCodec {
    inflater: Option<Box<Inflater>>,
    /// The peer resets its compressor after each message.
    inflate_fresh_each_message: bool,
    /// Payload bytes went into the decompressor since the message began (or
    /// since a final block ended a stream), so the tail must follow.
    tail_needed: bool,
    /// How many bytes of [`TAIL`] the decompressor took in this message.
    tail_fed: usize,
    /// Invalid data was found after output that was handed out first.
    corrupt: bool,

    compressor: Option<Box<Compressor>>,
    compress_fresh_each_message: bool,
    /// Drop the compressor after each message: this end resets its context,
    /// or a small window says memory counts more than the time to build a
    /// compressor per message.
    compressor_per_message: bool,
    /// With a compressor per message but context takeover: the last
    /// `2^compress_window_bits` bytes sent, to prime the next compressor
    /// with (empty when the backend's matches never reach them).
    history: Vec<u8>,
    keep_history: bool,
    /// The compressor has compressed since it was last reset.
    compressor_dirty: bool,
    /// A message is being compressed (its final chunk has not come).
    compressing: bool,
    /// State is reset rather than freed after a message, to go back to a
    /// [`DeflatePool`].
    pooled: bool,
    compress_level: u8,
    compress_window_bits: u8,
    compress: bool,
}

/// The result of one [`DeflateCodec::inflate`] call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(crate) struct Inflated {
    /// How many input bytes were used; pass the rest next time.
    pub(crate) consumed: usize,
    /// How many bytes were written to the front of `out`.
    pub(crate) produced: usize,
    /// The message is complete: every byte of it has been produced.
    pub(crate) message_done: bool,
}

impl DeflateCodec {
    /// A codec for the agreed `params`, on the `role` side. Allocates
    /// nothing until a message needs it.
    #[must_use]
    pub(crate) fn new(params: DeflateParams, role: Role) -> Self {
        let (inflate_fresh_each_message, compress_fresh_each_message, window_bits) = match role {
            Role::Server => (
                params.client_no_context_takeover,
                params.server_no_context_takeover,
                params.server_max_window_bits,
            ),
            Role::Client => (
                params.server_no_context_takeover,
                params.client_no_context_takeover,
                params.client_max_window_bits,
            ),
        };
        let window_bits = clamp_bits(window_bits);
        let compressor_per_message =
            compress_fresh_each_message || compact_between_messages(window_bits);
        let keep_history = !compress_fresh_each_message
            && compressor_per_message
            && Compressor::keeps_history(window_bits);
        Self {
            inflater: None,
            inflate_fresh_each_message,
            tail_needed: false,
            tail_fed: 0,
            corrupt: false,
            compressor: None,
            compress_fresh_each_message,
            compressor_per_message,
            history: Vec::new(),
            keep_history,
            compressor_dirty: false,
            compressing: false,
            pooled: false,
            compress_level: params.compression_level,
            compress_window_bits: window_bits,
            compress: params.compress,
        }
    }

    /// Whether messages sent should be compressed
    /// ([`DeflateParams::compress`]). When `false`, send them as they are,
    /// with RSV1 clear.
    #[must_use]
    pub(crate) fn compresses(&self) -> bool {
        self.compress
    }

    #[cfg(all(test, not(miri)))]
    /// The window, in bits, that [`compress`](Self::compress) honours.
    #[must_use]
    pub(crate) fn compress_window_bits(&self) -> u8 {
        self.compress_window_bits
    }

    #[cfg(all(test, not(miri)))]
    /// Whether [`compress`](Self::compress) uses run-length matches only
    /// (every back-reference has distance 1), as it does under a window
    /// smaller than 32 KiB.
    #[must_use]
    pub(crate) fn compresses_run_length_only(&self) -> bool {
        !Compressor::keeps_history(self.compress_window_bits)
    }

    /// Decompress the payload of a compressed message as it arrives; see
    /// [Receiving](Self#receiving) for the call sequence.
    ///
    /// `input` is unmasked payload; `end_of_message` says it ends with the
    /// last payload byte of the message's final frame. Writes at most
    /// `out.len()` bytes. Appends the `00 00 ff ff` tail itself at the end
    /// of the message (§7.2.2); a message with an empty payload is empty.
    ///
    /// A block with BFINAL set ends a DEFLATE stream (§7.2.3.4): whatever
    /// follows it in the message starts a new stream, and so does the next
    /// message.
    ///
    /// # Errors
    ///
    /// Data that is not valid DEFLATE fails with close code 1007 (invalid
    /// frame payload data), as Python's wsproto does. The codec is then
    /// unusable; the connection must close.
    pub(crate) fn inflate(
        &mut self,
        input: &[u8],
        end_of_message: bool,
        out: &mut [u8],
    ) -> Result<Inflated, RemoteProtocolError> {
        if self.corrupt {
            return Err(corrupt_data());
        }
        let mut consumed = 0;
        let mut produced = 0;
        let mut message_done = false;
        loop {
            let rest = input.get(consumed..).unwrap_or_default();
            let (src, from_tail) = if !rest.is_empty() {
                (rest, false)
            } else if end_of_message && self.tail_needed {
                (TAIL.get(self.tail_fed..).unwrap_or_default(), true)
            } else {
                (rest, false)
            };
            if self.inflater.is_none() && src.is_empty() {
                // Nothing was fed since the state was released: nothing is
                // pending.
                message_done = end_of_message;
                break;
            }
            let inflater = self.inflater.get_or_insert_with(Inflater::new);
            let Some(out_rest) = out.get_mut(produced..) else {
                break;
            };
            if out_rest.is_empty() && src.is_empty() {
                break;
            }

            let (bytes_consumed, bytes_written, status) = inflater.step(src, out_rest);
            produced += bytes_written;
            if from_tail {
                self.tail_fed += bytes_consumed;
            } else if bytes_consumed > 0 {
                consumed += bytes_consumed;
                self.tail_needed = true;
            }
            match status {
                TINFLStatus::Done => {
                    // A final block ended the stream and its output is out.
                    // What follows (normally the empty stored block whose
                    // end was removed, §7.2.3.4) begins a new stream over
                    // the same history: this peer's own output.
                    inflater.end_of_stream();
                    self.tail_needed = false;
                    continue;
                }
                TINFLStatus::NeedsMoreInput | TINFLStatus::HasMoreOutput => {}
                _ => {
                    self.inflater = None;
                    self.tail_needed = false;
                    self.tail_fed = 0;
                    if produced > 0 {
                        // Hand out what came before the bad data first, so
                        // that violations are reported in stream order.
                        self.corrupt = true;
                        return Ok(Inflated {
                            consumed,
                            produced,
                            message_done: false,
                        });
                    }
                    return Err(corrupt_data());
                }
            }
            let result_bytes = (bytes_consumed, bytes_written);
            if result_bytes == (0, 0) {
                // No input and room in `out` (an empty `out` with no input
                // stopped above), yet no output: nothing is pending, and if
                // the message ended, everything of it was fed.
                message_done = end_of_message && src.is_empty();
                break;
            }
            if produced == out.len() {
                break;
            }
        }
        if message_done {
            self.tail_needed = false;
            self.tail_fed = 0;
            if self.inflate_fresh_each_message {
                if self.pooled {
                    if let Some(inflater) = self.inflater.as_mut() {
                        inflater.reset();
                    }
                } else {
                    self.inflater = None;
                }
            }
        }
        Ok(Inflated {
            consumed,
            produced,
            message_done,
        })
    }

    /// Compress a chunk of a message to send, appending to `out`.
    ///
    /// Each call ends with a sync flush, so `out` holds all of the message
    /// given so far, ready to go out as a frame. An empty non-final chunk
    /// appends nothing. With `end_of_message`, the trailing `00 00 ff ff` is
    /// removed (§7.2.1), and an empty final chunk appends `00` (§7.2.3.6).
    pub(crate) fn compress(&mut self, input: &[u8], end_of_message: bool, out: &mut Vec<u8>) {
        if input.is_empty() {
            // The stream is at a byte-aligned block boundary after the last
            // sync flush; an empty stored block without its tail is `00`.
            if end_of_message {
                out.push(0x00);
                self.end_compressed_message();
            }
            return;
        }
        let fresh = self.compressor.is_none() || self.compressor_dirty;
        let compressor = self
            .compressor
            .get_or_insert_with(|| Compressor::new(self.compress_level, self.compress_window_bits));
        let new_stream = fresh && !self.compressing;
        if new_stream && self.compressor_dirty {
            compressor.reset();
        }
        #[cfg(feature = "zlib-rs")]
        if new_stream && !self.history.is_empty() {
            compressor.set_history(&self.history);
        }
        self.compressor_dirty = false;
        self.compressing = !end_of_message;
        let start = out.len();
        compressor.compress(input, out);
        if self.keep_history {
            self.remember(input);
        }
        if end_of_message {
            if out.get(start..).is_some_and(|sent| sent.ends_with(&TAIL)) {
                out.truncate(out.len() - TAIL.len());
            }
            self.end_compressed_message();
        }
    }

    /// Whether invalid data was found after output that this call handed
    /// out: the next call to [`inflate`](Self::inflate) fails.
    #[must_use]
    pub(crate) fn has_pending_error(&self) -> bool {
        self.corrupt
    }

    /// Heap bytes currently held by the compressor and decompressor state.
    #[must_use]
    pub(crate) fn heap_size(&self) -> usize {
        self.inflater.as_ref().map_or(0, |_| DECOMPRESSOR_HEAP)
            + self.compressor.as_ref().map_or(0, |c| c.heap_size())
            + self.history.capacity()
    }

    fn end_compressed_message(&mut self) {
        self.compressing = false;
        if self.compressor_per_message {
            if self.pooled {
                self.compressor_dirty = self.compressor.is_some();
            } else {
                self.compressor = None;
            }
        }
    }

    /// Take from `pool` what the next messages need and this codec would
    /// otherwise allocate per message, and reset rather than free it after
    /// each message.
    fn borrow_from(&mut self, pool: &mut DeflatePool) {
        self.pooled = true;
        if self.compress && self.compressor_per_message && self.compressor.is_none() {
            let (level, bits) = (self.compress_level, self.compress_window_bits);
            if let Some(i) = pool.compressors.iter().position(|c| c.matches(level, bits)) {
                self.compressor = Some(pool.compressors.swap_remove(i));
                self.compressor_dirty = true;
            }
        }
        if self.inflate_fresh_each_message && self.inflater.is_none() {
            self.inflater = pool.inflaters.pop();
        }
    }

    /// Give back to `pool` the per-message state that no message is using.
    fn give_back(&mut self, pool: &mut DeflatePool) {
        self.pooled = false;
        if self.compressor_per_message && !self.compressing {
            if let Some(compressor) = self.compressor.take() {
                pool.compressors.push(compressor);
            }
            self.compressor_dirty = false;
        }
        if self.inflate_fresh_each_message
            && !self.tail_needed
            && self.inflater.as_ref().is_some_and(|i| i.is_fresh())
        {
            if let Some(inflater) = self.inflater.take() {
                pool.inflaters.push(inflater);
            }
        }
    }

    /// Keep the last window of what was sent: the history the peer's
    /// decompressor holds.
    fn remember(&mut self, input: &[u8]) {
        let window = 1usize << self.compress_window_bits;
        if self.history.capacity() < window {
            self.history.reserve_exact(window - self.history.len());
        }
        let input = input
            .get(input.len().saturating_sub(window)..)
            .unwrap_or_default();
        let excess = (self.history.len() + input.len()).saturating_sub(window);
        self.history.drain(..excess.min(self.history.len()));
        self.history.extend_from_slice(input);
    }
}

/// Compressor and decompressor state, and output buffers, shared by
/// connections that reset their context after each message, so that
/// sending and receiving such messages allocates nothing once the pool has
/// grown to the number of messages under way at once, while idle
/// connections still hold nothing.
///
/// Lend it to a connection for the length of its work with
/// [`Connection::borrow_deflate_state`](crate::Connection::borrow_deflate_state)
/// and take it back with
/// [`Connection::return_deflate_state`](crate::Connection::return_deflate_state).
/// A connection keeps what a message still under way needs and gives it
/// back after a later call; state a connection allocated itself while
/// borrowing joins the pool when it is returned.
///
/// ```
/// use wsproto_core::event::TextMessage;
/// use wsproto_core::extension::deflate::{DeflateParams, DeflatePool};
/// use wsproto_core::{Config, Connection};
///
/// let params = DeflateParams {
///     server_no_context_takeover: true,
///     client_no_context_takeover: true,
///     ..DeflateParams::default()
/// };
/// let mut pool = DeflatePool::new();
/// let mut servers: Vec<_> = (0..3)
///     .map(|_| Connection::server(Config::default()).with_deflate(params))
///     .collect();
/// let mut out = vec![0; 1024];
/// for server in &mut servers {
///     server.borrow_deflate_state(&mut pool);
///     server.send(&TextMessage::new("hello").into(), &mut out).unwrap();
///     server.return_deflate_state(&mut pool);
///     assert_eq!(server.deflate_heap_size(), 0);
/// }
/// // One compressor and one buffer served all three.
/// assert!(pool.heap_size() > 0);
/// ```
#[derive(Default)]
// The boxes move between the pool and the codecs' `Option<Box<_>>` slots
// as they are: taking state out of a box would copy or allocate.
#[allow(clippy::vec_box)]
pub struct DeflatePool {
    compressors: Vec<Box<Compressor>>,
    inflaters: Vec<Box<Inflater>>,
    buffers: Vec<Vec<u8>>,
}

impl DeflatePool {
    /// An empty pool: it grows as connections return what they allocated.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Heap bytes held by the state in the pool.
    #[must_use]
    pub fn heap_size(&self) -> usize {
        self.compressors
            .iter()
            .map(|c| c.heap_size())
            .sum::<usize>()
            + self.inflaters.len() * DECOMPRESSOR_HEAP
            + self.buffers.iter().map(Vec::capacity).sum::<usize>()
    }

    /// Free everything the pool holds.
    pub fn clear(&mut self) {
        self.compressors.clear();
        self.inflaters.clear();
        self.buffers.clear();
    }
}

impl fmt::Debug for DeflatePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeflatePool")
            .field("compressors", &self.compressors.len())
            .field("inflaters", &self.inflaters.len())
            .field("buffers", &self.buffers.len())
            .field("heap_size", &self.heap_size())
            .finish()
    }
}

/// permessage-deflate on a connection: the codec, the bytes of a split code
/// point carried from one output to the next, and the message counters.
#[derive(Debug)]
pub(crate) struct DeflateStream {
    pub(crate) codec: DeflateCodec,
    /// Output bytes carried to the front of the next output: the start of a
    /// code point split by the end of the last one.
    tail: [u8; 4],
    tail_len: u8,
    /// Decompressed bytes of the current message so far.
    inflated_len: u64,
    /// Compressed output being framed, kept between messages only while
    /// this end keeps its context.
    pub(crate) tx: Vec<u8>,
    /// Release `tx` after each message sent (this end resets its context).
    pub(crate) release_tx_after_message: bool,
    /// `release_tx_after_message` as agreed, while a pool lends `tx`.
    release_tx_when_idle: bool,
}

/// What one [`DeflateStream::inflate`] call made of the payload.
pub(crate) struct Inflation<'b> {
    /// Payload bytes used from the input.
    pub(crate) used: usize,
    /// Decompressed data to hand out, if any.
    pub(crate) data: Option<&'b [u8]>,
    pub(crate) frame_finished: bool,
    pub(crate) message_finished: bool,
    /// Without data: the output space needed to go on, or zero when more
    /// input is needed.
    pub(crate) output_needed: usize,
}

/// The least output space that always makes progress: a carried code
/// point of up to three bytes and one more byte.
const MIN_OUTPUT: usize = 4;

impl DeflateStream {
    pub(crate) fn new(params: DeflateParams, role: Role) -> Self {
        let (no_context_takeover, window_bits) = match role {
            Role::Server => (
                params.server_no_context_takeover,
                params.server_max_window_bits,
            ),
            Role::Client => (
                params.client_no_context_takeover,
                params.client_max_window_bits,
            ),
        };
        let release_tx_after_message =
            no_context_takeover || compact_between_messages(clamp_bits(window_bits));
        Self {
            codec: DeflateCodec::new(params, role),
            tail: [0; 4],
            tail_len: 0,
            inflated_len: 0,
            tx: Vec::new(),
            release_tx_after_message,
            release_tx_when_idle: release_tx_after_message,
        }
    }

    /// See [`Connection::borrow_deflate_state`](crate::Connection::borrow_deflate_state).
    pub(crate) fn borrow_from(&mut self, pool: &mut DeflatePool) {
        self.codec.borrow_from(pool);
        if self.release_tx_when_idle {
            self.release_tx_after_message = false;
            if self.tx.capacity() == 0 {
                self.tx = pool.buffers.pop().unwrap_or_default();
            }
        }
    }

    /// See [`Connection::return_deflate_state`](crate::Connection::return_deflate_state).
    pub(crate) fn give_back(&mut self, pool: &mut DeflatePool) {
        self.codec.give_back(pool);
        if self.release_tx_when_idle {
            self.release_tx_after_message = true;
            if self.tx.capacity() > 0 {
                self.tx.clear();
                pool.buffers.push(core::mem::take(&mut self.tx));
            }
        }
    }

    /// Decompress the payload of a compressed frame from `input` (masked,
    /// its first byte the next payload byte of `frame`) into `out`. Input
    /// that is not used stays in place, masked as it came.
    pub(crate) fn inflate<'b>(
        &mut self,
        frame: &mut PayloadCursor,
        text: bool,
        max_message_size: u64,
        input: &mut [u8],
        out: &'b mut [u8],
    ) -> Result<Inflation<'b>, RemoteProtocolError> {
        let mut inflation = Inflation {
            used: 0,
            data: None,
            frame_finished: false,
            message_finished: false,
            output_needed: MIN_OUTPUT,
        };
        if out.len() < MIN_OUTPUT {
            return Ok(inflation);
        }
        inflation.output_needed = 0;
        let fin = frame.fin;
        let chunk = out.len();
        loop {
            let rest = input.get_mut(inflation.used..).unwrap_or_default();
            // Unmask no more than one output's worth: input the codec does
            // not take is masked again, and that must not grow with the
            // frame. Even without new input, output may be pending.
            let n = frame.take_len(rest.len()).min(chunk);
            let (taken, _) = rest.split_at_mut(n);
            frame.unmask(taken);
            let end_of_message = fin && n as u64 == frame.remaining;
            // The split code point of the last output goes first.
            let carry = usize::from(core::mem::take(&mut self.tail_len));
            out[..carry].copy_from_slice(&self.tail[..carry]);
            // Output past the message limit is never produced: one byte
            // over is enough to know.
            let room = max_message_size.saturating_sub(self.inflated_len);
            let space = usize::try_from(room.saturating_add(1)).map_or(chunk, |r| r.min(chunk));
            let space = (carry + space).min(chunk);
            let inflated = self
                .codec
                .inflate(taken, end_of_message, &mut out[carry..space])?;
            let (_, left) = taken.split_at_mut(inflated.consumed);
            frame.remask_after(inflated.consumed, left);
            inflation.used += inflated.consumed;
            frame.advance(inflated.consumed);
            let input_done = frame.is_done();
            // A full output may leave output pending in the codec: the
            // frame ends only once it is drained. Invalid data after this
            // output is reported by the next call, before anything that
            // follows in the stream.
            let drained = inflated.produced < space - carry && !self.codec.has_pending_error();
            // A message that ends exactly where the output does: ask for one
            // more byte to learn whether this chunk is its last, rather
            // than handing out an empty last chunk next time.
            let (message_done, probed) = if fin
                && input_done
                && !inflated.message_done
                && !drained
                && !self.codec.has_pending_error()
                && room > inflated.produced as u64
            {
                self.probe_end()
            } else {
                (inflated.message_done, None)
            };
            inflation.message_finished = fin && input_done && message_done;
            inflation.frame_finished = input_done && if fin { message_done } else { drained };
            let data_len = carry + inflated.produced;
            if inflated.produced as u64 > room {
                // Report the violation that comes first in the message.
                let within = out.get(..carry + room as usize).unwrap_or_default();
                if text {
                    let cut = utf8::incomplete_tail_start(within);
                    if simdutf8::basic::from_utf8(&within[..cut]).is_err() {
                        return Err(utf8::invalid_text());
                    }
                }
                return Err(RemoteProtocolError::too_big(
                    "decompressed message larger than the limit",
                ));
            }
            self.inflated_len += inflated.produced as u64 + u64::from(probed.is_some());
            let emit_len = if text {
                // Keep a code point split by the end of this output for the
                // next; it must be the start of one.
                let cut = utf8::incomplete_tail_start(&out[..data_len]);
                let tail = &out[cut..data_len];
                if !tail.is_empty() && (inflation.message_finished || !utf8::is_char_prefix(tail)) {
                    return Err(utf8::invalid_text());
                }
                self.tail[..tail.len()].copy_from_slice(tail);
                self.tail_len = tail.len() as u8;
                cut
            } else {
                data_len
            };
            if let Some(byte) = probed {
                // The probed byte goes out first next time.
                self.tail[usize::from(self.tail_len)] = byte;
                self.tail_len += 1;
            }
            if inflation.message_finished {
                self.inflated_len = 0;
            }
            if emit_len == 0 && !inflation.frame_finished {
                // Nothing to hand out yet. Go on while that can change
                // without more input: buffered input of this frame, or
                // output (or an error) still pending in the codec.
                let pending_error = self.codec.has_pending_error();
                let progressed = inflated.consumed > 0 || inflated.produced > 0 || pending_error;
                let more_input = frame.remaining > 0 && inflation.used < input.len();
                if pending_error || (progressed && (more_input || frame.remaining == 0)) {
                    continue;
                }
                return Ok(inflation);
            }
            inflation.data = Some(&out[..emit_len]);
            return Ok(inflation);
        }
    }

    /// At the end of a message's input, with the output full: whether the
    /// message is done, or the next byte of it. Invalid data found here is
    /// reported by the next call, after the output before it.
    fn probe_end(&mut self) -> (bool, Option<u8>) {
        let mut probe = [0u8; 1];
        match self.codec.inflate(&[], true, &mut probe) {
            Ok(step) if step.produced == 1 => (false, Some(probe[0])),
            Ok(step) => (step.message_done, None),
            Err(_) => {
                self.codec.corrupt = true;
                (false, None)
            }
        }
    }
}

fn corrupt_data() -> RemoteProtocolError {
    RemoteProtocolError::close(
        CloseCode::INVALID_FRAME_PAYLOAD_DATA,
        "invalid compressed data",
    )
}

impl fmt::Debug for DeflateCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeflateCodec")
            .field(
                "inflate_fresh_each_message",
                &self.inflate_fresh_each_message,
            )
            .field(
                "compress_fresh_each_message",
                &self.compress_fresh_each_message,
            )
            .field("compress_window_bits", &self.compress_window_bits)
            .field("compress", &self.compress)
            .field("heap_size", &self.heap_size())
            .finish_non_exhaustive()
    }
}

/// The parameters of one offer or response, each seen at most once.
/// `Some(None)` is a window-bits parameter without a value.
#[derive(Default)]
struct Params {
    client_no_context_takeover: bool,
    server_no_context_takeover: bool,
    client_max_window_bits: Option<Option<u8>>,
    server_max_window_bits: Option<Option<u8>>,
}

impl Params {
    /// RFC 7692 §7.1: known names, each once, with valid values.
    fn parse(offer: &ExtensionOffer<'_>) -> Result<Self, &'static str> {
        let mut params = Self::default();
        for param in offer.params() {
            let param = param.map_err(|_| "malformed extension parameter")?;
            if param.has_escapes() {
                return Err("quoted parameter value with escapes");
            }
            match param.name {
                "client_no_context_takeover" | "server_no_context_takeover" => {
                    if param.value.is_some() {
                        return Err("value on a no_context_takeover parameter");
                    }
                    let seen = if param.name == "client_no_context_takeover" {
                        &mut params.client_no_context_takeover
                    } else {
                        &mut params.server_no_context_takeover
                    };
                    if *seen {
                        return Err("repeated extension parameter");
                    }
                    *seen = true;
                }
                "client_max_window_bits" | "server_max_window_bits" => {
                    let bits = match param.value {
                        None => None,
                        Some(value) => Some(parse_window_bits(value)?),
                    };
                    let seen = if param.name == "client_max_window_bits" {
                        &mut params.client_max_window_bits
                    } else {
                        &mut params.server_max_window_bits
                    };
                    if seen.is_some() {
                        return Err("repeated extension parameter");
                    }
                    *seen = Some(bits);
                }
                _ => return Err("unknown permessage-deflate parameter"),
            }
        }
        Ok(params)
    }
}

/// §7.1.2: a decimal integer without leading zeros, 8 to 15.
fn parse_window_bits(value: &str) -> Result<u8, &'static str> {
    const BAD: &str = "max_window_bits is not an integer from 8 to 15";
    let bits = match value.as_bytes() {
        [d @ b'8'..=b'9'] => d - b'0',
        [b'1', d @ b'0'..=b'5'] => 10 + (d - b'0'),
        _ => return Err(BAD),
    };
    Ok(bits)
}

/// Whether a connection that sends under a window of `bits` keeps only
/// what the next message needs between messages (the last window of bytes
/// sent, and no compressor), rather than its compressor: under a window
/// smaller than 32 KiB, which asks for little memory.
fn compact_between_messages(bits: u8) -> bool {
    bits < MAX_WINDOW_BITS
}

fn clamp_bits(bits: u8) -> u8 {
    bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS)
}

/// The smaller of two optional window sizes, `None` if both are.
fn min_bits(a: Option<u8>, b: Option<u8>) -> Option<u8> {
    let b = b.map(clamp_bits);
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A window-bits parameter of a response: it needs a value, no larger than
/// the one we sent (§7.1.2).
fn answered_bits(
    answered: Option<Option<u8>>,
    ours: Option<u8>,
    no_value: &'static str,
    too_large: &'static str,
) -> Result<Option<u8>, RemoteProtocolError> {
    match answered {
        None => Ok(None),
        Some(None) => Err(refused(no_value)),
        Some(Some(bits)) if ours.is_some_and(|ours| bits > clamp_bits(ours)) => {
            Err(refused(too_large))
        }
        Some(bits) => Ok(bits),
    }
}

fn refused(message: &'static str) -> RemoteProtocolError {
    RemoteProtocolError::protocol(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_bits_are_8_to_15_without_leading_zeros() {
        for bits in 8..=15u8 {
            let text = alloc::format!("{bits}");
            assert_eq!(parse_window_bits(&text), Ok(bits));
        }
        for bad in [
            "", "7", "16", "08", "010", "+9", "9 ", "1e1", "255", "99999",
        ] {
            assert!(parse_window_bits(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn min_bits_clamps_our_setting() {
        assert_eq!(min_bits(None, None), None);
        assert_eq!(min_bits(Some(10), None), Some(10));
        assert_eq!(min_bits(None, Some(20)), Some(15));
        assert_eq!(min_bits(Some(12), Some(3)), Some(8));
        assert_eq!(min_bits(Some(9), Some(11)), Some(9));
    }

    #[test]
    fn heap_estimates_are_plausible() {
        assert!((55_000..70_000).contains(&DECOMPRESSOR_HEAP));
        assert!((300_000..400_000).contains(&backend::HEAP));
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for DeflateCodec {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "DeflateCodec {{ compress: {}, window_bits: {}, heap: {} }}",
            self.compress,
            self.compress_window_bits,
            self.heap_size()
        );
    }
}

// Long-running (large round trips, Python's zlib as a cross-check) and free
// of unsafe code: not run under Miri.
#[cfg(all(test, not(miri)))]
#[path = "deflate_tests.rs"]
mod codec_tests;
