//! permessage-deflate (RFC 7692): the RFC's examples, round trips for both
//! roles, window limits checked by an independent decoder, a deflate bomb,
//! heap use, and negotiation.
#![cfg(feature = "deflate")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::OsString;
use std::process::Command;

use wsproto_core::extension::deflate::{
    DeflateCodec, DeflateParams, PerMessageDeflate, NAME, SUPPORTED_EXTENSIONS,
};
use wsproto_core::extension::{parse_extensions, Extension};
use wsproto_core::{CloseCode, RemoteProtocolError, Role};

// ---------------------------------------------------------------------------
// Heap accounting: live bytes allocated by the current thread.

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments and
// only adds bookkeeping in thread-local cells, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        track(layout.size() as isize);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        track(layout.size() as isize);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(-(layout.size() as isize));
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        track(new_size as isize - layout.size() as isize);
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_bytes() -> isize {
    LIVE.with(Cell::get)
}

/// Start measuring the peak from now; returns the current live bytes.
fn reset_peak() -> isize {
    let now = live_bytes();
    PEAK.with(|peak| peak.set(now));
    now
}

fn peak_bytes() -> isize {
    PEAK.with(Cell::get)
}

// ---------------------------------------------------------------------------
// Helpers.

fn params() -> DeflateParams {
    DeflateParams::default()
}

fn peer(role: Role) -> Role {
    match role {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    }
}

/// Receive one compressed message that arrives in `pieces` (frames, or
/// parts of them; the last piece ends the message), following the call
/// sequence documented on `DeflateCodec`, with an `out` of `out_len` bytes.
fn inflate_message(
    codec: &mut DeflateCodec,
    pieces: &[&[u8]],
    out_len: usize,
) -> Result<Vec<u8>, RemoteProtocolError> {
    let mut out = vec![0; out_len];
    let mut message = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let last = i + 1 == pieces.len();
        let mut rest: &[u8] = piece;
        loop {
            let result = codec.inflate(rest, last, &mut out)?;
            assert!(result.consumed <= rest.len());
            assert!(result.produced <= out.len());
            message.extend_from_slice(&out[..result.produced]);
            rest = &rest[result.consumed..];
            if result.message_done {
                assert!(
                    last && rest.is_empty(),
                    "done before the end of the message"
                );
                return Ok(message);
            }
            assert!(
                result.consumed > 0 || result.produced > 0 || !last,
                "no progress at the end of the message"
            );
            if !last && rest.is_empty() && result.produced < out.len() {
                break;
            }
        }
    }
    panic!("the message never completed");
}

/// Compress one message given in `chunks` (the last one ends it); returns
/// the payload of each frame.
fn compress_message(codec: &mut DeflateCodec, chunks: &[&[u8]]) -> Vec<Vec<u8>> {
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let mut frame = Vec::new();
            codec.compress(chunk, i + 1 == chunks.len(), &mut frame);
            frame
        })
        .collect()
}

fn hex(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|byte| u8::from_str_radix(byte, 16).unwrap())
        .collect()
}

/// The messages of an example file: `(payload, text)` per line.
fn example(file: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    file.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (payload, text) = line.split_once("->").unwrap();
            (hex(payload), text.trim().as_bytes().to_vec())
        })
        .collect()
}

const EXAMPLES: &[(&str, &str)] = &[
    (
        "7.2.3.1-hello",
        include_str!("data/rfc7692/7.2.3.1-hello.hex"),
    ),
    (
        "7.2.3.2-sharing-window",
        include_str!("data/rfc7692/7.2.3.2-sharing-window.hex"),
    ),
    (
        "7.2.3.2-no-context-takeover",
        include_str!("data/rfc7692/7.2.3.2-no-context-takeover.hex"),
    ),
    (
        "7.2.3.3-no-compression",
        include_str!("data/rfc7692/7.2.3.3-no-compression.hex"),
    ),
    (
        "7.2.3.4-bfinal",
        include_str!("data/rfc7692/7.2.3.4-bfinal.hex"),
    ),
    (
        "7.2.3.5-two-blocks",
        include_str!("data/rfc7692/7.2.3.5-two-blocks.hex"),
    ),
    (
        "7.2.3.6-empty-fragment",
        include_str!("data/rfc7692/7.2.3.6-empty-fragment.hex"),
    ),
];

fn example_named(name: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let (_, file) = EXAMPLES.iter().find(|(n, _)| *n == name).unwrap();
    example(file)
}

/// Deterministic test data: xorshift bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// Text from a small vocabulary: compresses well, with short and long
    /// distance matches.
    fn text(&mut self, len: usize) -> Vec<u8> {
        const WORDS: &[&str] = &[
            "web",
            "socket ",
            "frame",
            "deflate ",
            "window",
            " message",
            "context ",
            "takeover",
            ", ",
            "\n",
            "RFC 7692 ",
            "Hello",
            "\u{e9}t\u{e9} ",
            "\u{1f600}",
        ];
        let mut text = Vec::with_capacity(len + 16);
        while text.len() < len {
            let word = WORDS[(self.next() % WORDS.len() as u64) as usize];
            text.extend_from_slice(word.as_bytes());
        }
        text.truncate(len);
        text
    }
}

// ---------------------------------------------------------------------------
// RFC 7692 section 7.2.3 examples.

#[test]
fn rfc7692_examples_inflate_split_at_every_byte() {
    for (name, file) in EXAMPLES {
        let messages = example(file);
        let no_context_takeover = name.contains("no-context-takeover");
        let longest = messages.iter().map(|(p, _)| p.len()).max().unwrap();
        for split in 0..=longest {
            for out_len in [1, 7, 4096] {
                let params = DeflateParams {
                    client_no_context_takeover: no_context_takeover,
                    ..params()
                };
                let mut codec = DeflateCodec::new(params, Role::Server);
                for (payload, text) in &messages {
                    let at = split.min(payload.len());
                    let pieces = [&payload[..at], &payload[at..]];
                    let got = inflate_message(&mut codec, &pieces, out_len)
                        .unwrap_or_else(|e| panic!("{name}, split {split}: {e}"));
                    assert_eq!(&got, text, "{name}, split {split}, out {out_len}");
                    if no_context_takeover {
                        assert_eq!(codec.heap_size(), 0, "{name}");
                    }
                }
            }
        }
    }
}

#[test]
fn rfc7692_examples_inflate_byte_by_byte() {
    for (name, file) in EXAMPLES {
        let mut codec = DeflateCodec::new(params(), Role::Client);
        for (payload, text) in example(file) {
            let pieces: Vec<&[u8]> = payload.chunks(1).chain([&[][..]]).collect();
            let got = inflate_message(&mut codec, &pieces, 1).unwrap();
            assert_eq!(got, text, "{name}");
        }
    }
}

#[test]
fn bfinal_ends_the_stream_and_the_next_message_starts_a_new_one() {
    let bfinal = example_named("7.2.3.4-bfinal");
    let hello = example_named("7.2.3.1-hello");
    let mut codec = DeflateCodec::new(params(), Role::Server);
    for (payload, text) in [&bfinal[0], &hello[0], &bfinal[0], &bfinal[0], &hello[0]] {
        assert_eq!(&inflate_message(&mut codec, &[payload], 16).unwrap(), text);
    }
    // A final block that ends the payload exactly (no empty block after it):
    // the tail is not needed and the message is still complete.
    let bare = &bfinal[0].0[..bfinal[0].0.len() - 1];
    assert_eq!(inflate_message(&mut codec, &[bare], 16).unwrap(), b"Hello");
    assert_eq!(
        inflate_message(&mut codec, &[&hello[0].0], 16).unwrap(),
        b"Hello"
    );
    // Several streams in one message, each ended by a final block.
    let three = [bare, bare, bare].concat();
    assert_eq!(
        inflate_message(&mut codec, &[&three[..9], &three[9..]], 4).unwrap(),
        b"HelloHelloHello"
    );
    // Many empty final blocks (`03 00`) are cheap and carry nothing.
    let empties = [0x03, 0x00].repeat(50_000);
    assert_eq!(inflate_message(&mut codec, &[&empties], 16).unwrap(), b"");
    assert_eq!(
        inflate_message(&mut codec, &[&hello[0].0], 16).unwrap(),
        b"Hello"
    );
}

#[test]
fn empty_fragment_ends_a_fragmented_message() {
    // §7.2.3.6's empty final fragment after a first fragment that carries
    // §7.2.3.1's "Hello" with its sync flush kept (our construction).
    let empty = example_named("7.2.3.6-empty-fragment");
    let first = [
        &example_named("7.2.3.1-hello")[0].0[..],
        &[0x00, 0x00, 0xff, 0xff],
    ]
    .concat();
    assert_eq!(first, hex("f2 48 cd c9 c9 07 00 00 00 ff ff"));
    for out_len in [1, 5, 100] {
        let mut codec = DeflateCodec::new(params(), Role::Server);
        let got = inflate_message(&mut codec, &[&first, &empty[0].0], out_len).unwrap();
        assert_eq!(got, b"Hello");
    }
}

#[test]
fn compress_reproduces_rfc7692_examples() {
    let hello = example_named("7.2.3.1-hello");
    let shared = example_named("7.2.3.2-sharing-window");
    let two_blocks = example_named("7.2.3.5-two-blocks");
    let empty = example_named("7.2.3.6-empty-fragment");
    for role in [Role::Client, Role::Server] {
        let mut codec = DeflateCodec::new(params(), role);
        assert_eq!(
            compress_message(&mut codec, &[b"Hello"]),
            [hello[0].0.clone()]
        );

        let mut codec = DeflateCodec::new(params(), role);
        for (payload, text) in &shared {
            assert_eq!(&compress_message(&mut codec, &[text]).concat(), payload);
        }

        let no_context_takeover = DeflateParams {
            client_no_context_takeover: true,
            server_no_context_takeover: true,
            ..params()
        };
        let mut codec = DeflateCodec::new(no_context_takeover, role);
        for (payload, text) in example_named("7.2.3.2-no-context-takeover") {
            assert_eq!(compress_message(&mut codec, &[&text]).concat(), payload);
            assert_eq!(codec.heap_size(), 0);
        }

        // "He" then "llo" with a sync flush between them: §7.2.3.5.
        let mut codec = DeflateCodec::new(params(), role);
        let frames = compress_message(&mut codec, &[b"He", b"llo"]);
        assert_eq!(frames[0], hex("f2 48 05 00 00 00 ff ff"));
        assert_eq!(frames.concat(), two_blocks[0].0);

        // An empty message is §7.2.3.6's single 00, and allocates nothing.
        let mut codec = DeflateCodec::new(params(), role);
        assert_eq!(compress_message(&mut codec, &[b""]), [empty[0].0.clone()]);
        assert_eq!(codec.heap_size(), 0);
        // An empty non-final chunk sends nothing.
        assert_eq!(
            compress_message(&mut codec, &[b"", b""]),
            [vec![], vec![0x00]]
        );
    }
}

// ---------------------------------------------------------------------------
// Round trips.

#[test]
fn round_trips_in_both_directions() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut messages: Vec<Vec<u8>> = vec![Vec::new(), b"a".to_vec(), b"Hello".to_vec()];
    messages.push(rng.text(3_000));
    messages.push(rng.bytes(2_000));
    messages.push(rng.text(70_000));
    messages.push(messages[3].clone());
    messages.push(vec![b'z'; 40_000]);

    for sender_role in [Role::Client, Role::Server] {
        for no_context_takeover in [false, true] {
            for window_bits in [15, 9] {
                for (chunk, out_len) in [(usize::MAX, 16_384), (1_000, 7), (7, 1), (65_536, 1)] {
                    let params = DeflateParams {
                        client_no_context_takeover: no_context_takeover,
                        server_no_context_takeover: no_context_takeover,
                        client_max_window_bits: window_bits,
                        server_max_window_bits: window_bits,
                        compress: true,
                        compression_level: wsproto_core::extension::deflate::DEFAULT_LEVEL,
                    };
                    let mut sender = DeflateCodec::new(params, sender_role);
                    let mut receiver = DeflateCodec::new(params, peer(sender_role));
                    let mut sent_data = false;
                    for message in &messages {
                        if chunk < 100 && message.len() > 5_000 {
                            continue;
                        }
                        let chunks: Vec<&[u8]> = if message.is_empty() {
                            vec![&[]]
                        } else {
                            message.chunks(chunk.min(message.len())).collect()
                        };
                        let frames = compress_message(&mut sender, &chunks);
                        let pieces: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
                        let got = inflate_message(&mut receiver, &pieces, out_len).unwrap();
                        let context = format!(
                            "{sender_role:?} nctk={no_context_takeover} bits={window_bits} \
                             chunk={chunk} out={out_len} len={}",
                            message.len()
                        );
                        assert!(got == *message, "{context}");
                        sent_data |= !message.is_empty();
                        if no_context_takeover {
                            assert_eq!(sender.heap_size(), 0, "{context}");
                            assert_eq!(receiver.heap_size(), 0, "{context}");
                        } else {
                            // An empty message is sent as `00` without a
                            // compressor, but the receiver inflates it.
                            assert_eq!(sender.heap_size() > 0, sent_data, "{context}");
                            assert!(receiver.heap_size() > 0, "{context}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn context_takeover_shrinks_repeated_messages() {
    let message = Rng(7).text(2_000);
    let mut with = DeflateCodec::new(params(), Role::Client);
    let without_params = DeflateParams {
        client_no_context_takeover: true,
        ..params()
    };
    let mut without = DeflateCodec::new(without_params, Role::Client);
    let first = compress_message(&mut with, &[&message]).concat();
    let second = compress_message(&mut with, &[&message]).concat();
    assert!(
        second.len() < first.len() / 10,
        "{} vs {}",
        second.len(),
        first.len()
    );
    let again = compress_message(&mut without, &[&message]).concat();
    assert_eq!(again, compress_message(&mut without, &[&message]).concat());
    assert_eq!(again, first);
}

#[test]
fn corrupt_data_fails_with_1007() {
    for (payload, what) in [
        (hex("ff ff ff ff"), "reserved block type"),
        (hex("00 05 00 00 00 48 65 6c 6c 6f"), "stored length check"),
        (
            hex("f2 48 cd c9 c9 07 00 07"),
            "reserved block type after a good block",
        ),
    ] {
        let mut codec = DeflateCodec::new(params(), Role::Server);
        let err = inflate_message(&mut codec, &[&payload], 64).unwrap_err();
        assert_eq!(
            err.close_code(),
            Some(CloseCode::INVALID_FRAME_PAYLOAD_DATA),
            "{what}"
        );
        assert_eq!(codec.heap_size(), 0, "{what}");
    }
}

#[test]
fn empty_payload_is_an_empty_message_and_allocates_nothing() {
    let mut codec = DeflateCodec::new(params(), Role::Client);
    let result = codec.inflate(&[], true, &mut [0; 8]).unwrap();
    assert_eq!(
        (result.consumed, result.produced, result.message_done),
        (0, 0, true)
    );
    assert_eq!(codec.heap_size(), 0);
    // The stream is untouched: the next message still decodes.
    let hello = example_named("7.2.3.1-hello");
    assert_eq!(
        inflate_message(&mut codec, &[&hello[0].0], 8).unwrap(),
        b"Hello"
    );
}

// ---------------------------------------------------------------------------
// Windows smaller than 32 KiB.

/// A DEFLATE decoder (RFC 1951) written for these tests, independent of
/// miniz_oxide: decodes `data` to its end, appending to `history` (which
/// holds what earlier messages of the stream produced), and returns the
/// longest back-reference distance it met.
fn walk(data: &[u8], history: &mut Vec<u8>) -> Result<usize, String> {
    const LENGTH_BASE: [usize; 29] = [
        3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
        131, 163, 195, 227, 258,
    ];
    const LENGTH_EXTRA: [u32; 29] = [
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
    ];
    const DIST_BASE: [usize; 30] = [
        1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
        2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
    ];
    const DIST_EXTRA: [u32; 30] = [
        0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12,
        13, 13,
    ];
    const CODE_LENGTH_ORDER: [usize; 19] = [
        16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
    ];

    struct Bits<'a> {
        data: &'a [u8],
        pos: usize,
        buf: u64,
        count: u32,
    }
    impl Bits<'_> {
        fn take(&mut self, n: u32) -> Result<usize, String> {
            while self.count < n {
                let byte = *self.data.get(self.pos).ok_or("unexpected end of data")?;
                self.buf |= u64::from(byte) << self.count;
                self.pos += 1;
                self.count += 8;
            }
            let value = self.buf & ((1 << n) - 1);
            self.buf >>= n;
            self.count -= n;
            Ok(value as usize)
        }
    }

    /// Canonical Huffman code (RFC 1951 §3.2.2): codes of one length are
    /// consecutive, shorter codes sort first.
    struct Huffman {
        counts: [usize; 16],
        symbols: Vec<usize>,
    }
    impl Huffman {
        fn new(lengths: &[u8]) -> Self {
            let mut counts = [0; 16];
            for &len in lengths {
                counts[usize::from(len)] += 1;
            }
            counts[0] = 0;
            let mut symbols = Vec::new();
            for len in 1..16 {
                for (symbol, &l) in lengths.iter().enumerate() {
                    if usize::from(l) == len {
                        symbols.push(symbol);
                    }
                }
            }
            Self { counts, symbols }
        }

        fn decode(&self, bits: &mut Bits<'_>) -> Result<usize, String> {
            let (mut code, mut first, mut index) = (0, 0, 0);
            for len in 1..16 {
                code |= bits.take(1)?;
                let count = self.counts[len];
                if code < first + count {
                    return Ok(self.symbols[index + code - first]);
                }
                index += count;
                first = (first + count) << 1;
                code <<= 1;
            }
            Err("invalid Huffman code".into())
        }
    }

    let mut bits = Bits {
        data,
        pos: 0,
        buf: 0,
        count: 0,
    };
    let mut longest = 0;
    while bits.pos < data.len() {
        let last = bits.take(1)? == 1;
        let (literals, distances) = match bits.take(2)? {
            0 => {
                bits.buf = 0;
                bits.count = 0;
                let len = bits.take(16)?;
                let nlen = bits.take(16)?;
                if len != !nlen & 0xffff {
                    return Err("stored block length check".into());
                }
                for _ in 0..len {
                    history.push(bits.take(8)? as u8);
                }
                if last {
                    break;
                }
                continue;
            }
            1 => {
                let mut lengths = [8u8; 288];
                lengths[144..256].fill(9);
                lengths[256..280].fill(7);
                (Huffman::new(&lengths), Huffman::new(&[5; 30]))
            }
            2 => {
                let hlit = bits.take(5)? + 257;
                let hdist = bits.take(5)? + 1;
                let hclen = bits.take(4)? + 4;
                let mut code_lengths = [0u8; 19];
                for &i in &CODE_LENGTH_ORDER[..hclen] {
                    code_lengths[i] = bits.take(3)? as u8;
                }
                let code_lengths = Huffman::new(&code_lengths);
                let mut lengths = Vec::with_capacity(hlit + hdist);
                while lengths.len() < hlit + hdist {
                    let (value, repeat) = match code_lengths.decode(&mut bits)? {
                        symbol @ 0..=15 => (symbol as u8, 1),
                        16 => (*lengths.last().ok_or("repeat at start")?, 3 + bits.take(2)?),
                        17 => (0, 3 + bits.take(3)?),
                        _ => (0, 11 + bits.take(7)?),
                    };
                    lengths.extend(std::iter::repeat_n(value, repeat));
                }
                if lengths.len() != hlit + hdist {
                    return Err("code lengths overflow".into());
                }
                (
                    Huffman::new(&lengths[..hlit]),
                    Huffman::new(&lengths[hlit..]),
                )
            }
            _ => return Err("reserved block type".into()),
        };
        loop {
            match literals.decode(&mut bits)? {
                literal @ 0..=255 => history.push(literal as u8),
                256 => break,
                symbol => {
                    let i = symbol - 257;
                    let len = LENGTH_BASE.get(i).ok_or("bad length code")?
                        + bits.take(LENGTH_EXTRA[i])?;
                    let d = distances.decode(&mut bits)?;
                    let dist =
                        DIST_BASE.get(d).ok_or("bad distance code")? + bits.take(DIST_EXTRA[d])?;
                    if dist > history.len() {
                        return Err(format!("distance {dist} beyond the stream's start"));
                    }
                    longest = longest.max(dist);
                    for _ in 0..len {
                        history.push(history[history.len() - dist]);
                    }
                }
            }
        }
        if last {
            break;
        }
    }
    Ok(longest)
}

#[test]
fn walker_agrees_with_rfc7692_examples() {
    for name in [
        "7.2.3.1-hello",
        "7.2.3.3-no-compression",
        "7.2.3.5-two-blocks",
    ] {
        let (payload, text) = &example_named(name)[0];
        let mut history = Vec::new();
        walk(
            &[payload.as_slice(), &[0, 0, 0xff, 0xff]].concat(),
            &mut history,
        )
        .unwrap();
        assert_eq!(&history, text, "{name}");
    }
    let mut history = Vec::new();
    for (payload, text) in example_named("7.2.3.2-sharing-window") {
        let start = history.len();
        let longest = walk(
            &[payload.as_slice(), &[0, 0, 0xff, 0xff]].concat(),
            &mut history,
        );
        assert_eq!(&history[start..], text);
        assert_eq!(longest.unwrap(), if start == 0 { 0 } else { 5 });
    }
}

/// Messages with repeats at every distance: within 256 bytes, a few KiB,
/// and across messages more than 16 KiB apart.
fn window_corpus() -> Vec<Vec<u8>> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let block = rng.text(3_000);
    let noise = rng.bytes(20_000);
    let first = [
        &block[..],
        &noise,
        &block,
        &[b'x'; 600],
        &block[..100],
        &block[..100],
    ]
    .concat();
    let second = [&block[..], &rng.text(500)].concat();
    let third = rng.text(20_000);
    vec![first, second, third, block]
}

/// Compress the corpus; returns the payload of each message.
fn compress_corpus(codec: &mut DeflateCodec) -> Vec<Vec<u8>> {
    window_corpus()
        .iter()
        .map(|message| {
            let chunks: Vec<&[u8]> = message.chunks(10_000).collect();
            compress_message(codec, &chunks).concat()
        })
        .collect()
}

/// Decompress each file of messages (a 4-byte big-endian length before
/// each) under its window and compare with the expected text; one run for
/// all, as starting python3 is slow. Taking one byte of output per call
/// makes zlib check every distance against its window: within a call it
/// also accepts references into that call's own output.
const ZLIB_CHECK: &str = r#"
import struct, sys, zlib
expected = open(sys.argv[1], 'rb').read()
args, failed = sys.argv[2:], []
for path, wbits, fresh in zip(args[0::3], map(int, args[1::3]), args[2::3]):
    data, out, d, i = open(path, 'rb').read(), [], None, 0
    try:
        while i < len(data):
            (n,) = struct.unpack('>I', data[i:i + 4])
            message, i = data[i + 4:i + 4 + n], i + 4 + n
            if d is None or fresh == '1':
                d = zlib.decompressobj(-wbits)
            # zlib holds references to its window only for the output of
            # earlier calls: take the output one byte per call.
            rest = message + b'\x00\x00\xff\xff'
            while rest:
                out.append(d.decompress(rest, 1))
                rest = d.unconsumed_tail
            while byte := d.decompress(b'', 1):
                out.append(byte)
        if b''.join(out) != expected:
            failed.append(path + ': different output')
    except zlib.error as e:
        failed.append(path + ': ' + str(e))
print('\n'.join(failed))
sys.exit(1 if failed else 0)
"#;

/// For every window from 8 to 15 bits, in both roles (the client's and the
/// server's windows differ, so each role must pick its own), with and
/// without context takeover: every back-reference stays inside the window
/// (checked by `walk`, and by zlib through python3 when it is present), and
/// the peer's codec reads the messages back.
#[test]
fn small_windows_keep_every_distance_inside_the_window() {
    let corpus = window_corpus();
    let python = Command::new("python3").arg("--version").output().is_ok();
    if !python {
        println!("skipped: python3 not found (zlib cross-check)");
    }
    let dir = std::env::temp_dir().join(format!("wsproto-deflate-{}", std::process::id()));
    let expected_path = dir.join("expected.bin");
    let mut zlib_args: Vec<OsString> = Vec::new();
    if python {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&expected_path, corpus.concat()).unwrap();
    }
    for client_bits in 8..=15u8 {
        let server_bits = 23 - client_bits;
        for role in [Role::Client, Role::Server] {
            let bits = match role {
                Role::Client => client_bits,
                Role::Server => server_bits,
            };
            for no_context_takeover in [false, true] {
                let params = DeflateParams {
                    client_no_context_takeover: no_context_takeover,
                    server_no_context_takeover: no_context_takeover,
                    client_max_window_bits: client_bits,
                    server_max_window_bits: server_bits,
                    compress: true,
                    compression_level: wsproto_core::extension::deflate::DEFAULT_LEVEL,
                };
                let context = format!("bits {bits} {role:?} nctk {no_context_takeover}");
                let mut codec = DeflateCodec::new(params, role);
                let payloads = compress_corpus(&mut codec);
                assert_eq!(codec.compress_window_bits(), bits);
                assert_eq!(codec.compresses_run_length_only(), bits < 15);

                let mut history = Vec::new();
                let mut longest = 0;
                for (payload, message) in payloads.iter().zip(&corpus) {
                    if no_context_takeover {
                        history.clear();
                    }
                    let start = history.len();
                    let stream = [payload.as_slice(), &[0, 0, 0xff, 0xff]].concat();
                    let dist =
                        walk(&stream, &mut history).unwrap_or_else(|e| panic!("{context}: {e}"));
                    assert!(&history[start..] == message, "{context}");
                    longest = longest.max(dist);
                }
                assert!(longest <= 1 << bits, "{context}: distance {longest}");
                if bits < 15 {
                    // Run-length matches only.
                    assert_eq!(longest, 1, "{context}");
                } else {
                    // The corpus does call for long distances.
                    assert!(longest > 1 << 14, "{context}: longest {longest}");
                }

                let mut receiver = DeflateCodec::new(params, peer(role));
                for (payload, message) in payloads.iter().zip(&corpus) {
                    let got = inflate_message(&mut receiver, &[payload], 4096).unwrap();
                    assert!(got == *message, "{context}");
                }

                if python {
                    let mut data = Vec::new();
                    for payload in &payloads {
                        data.extend_from_slice(&(payload.len() as u32).to_be_bytes());
                        data.extend_from_slice(payload);
                    }
                    let path = dir.join(format!("{bits}-{role:?}-{no_context_takeover}.bin"));
                    std::fs::write(&path, &data).unwrap();
                    // zlib refuses a raw window of 8 bits; 9 is its smallest.
                    zlib_args.push(path.into_os_string());
                    zlib_args.push(bits.max(9).to_string().into());
                    zlib_args.push(if no_context_takeover { "1" } else { "0" }.into());
                }
            }
        }
    }
    if python {
        let output = Command::new("python3")
            .arg("-c")
            .arg(ZLIB_CHECK)
            .arg(&expected_path)
            .args(&zlib_args)
            .output()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            output.status.success(),
            "zlib rejected:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(zlib_args.len(), 8 * 2 * 2 * 3);
    }
}

// ---------------------------------------------------------------------------
// Memory.

#[test]
fn deflate_bomb_never_grows_memory() {
    // 8 MiB of zeros in 8 KiB or so.
    let mut sender = DeflateCodec::new(params(), Role::Client);
    let zeros = vec![0u8; 1 << 20];
    let mut bomb = Vec::new();
    for i in 0..8 {
        sender.compress(&zeros, i == 7, &mut bomb);
    }
    drop(sender);
    drop(zeros);
    assert!(bomb.len() < 12 * 1024, "{}", bomb.len());

    let mut out = vec![0; 16 * 1024];
    for limit in [1 << 20, usize::MAX] {
        let mut receiver = DeflateCodec::new(params(), Role::Server);
        let base = reset_peak();
        let mut rest = &bomb[..];
        let mut total = 0;
        let mut done = false;
        while !done {
            let result = receiver.inflate(rest, true, &mut out).unwrap();
            rest = &rest[result.consumed..];
            total += result.produced;
            done = result.message_done;
            assert!(receiver.heap_size() <= 64_000, "{}", receiver.heap_size());
            assert!(result.produced > 0 || done);
            if total > limit {
                // The connection stops here with 1009.
                break;
            }
        }
        let held = peak_bytes() - base;
        assert!(held <= 64_000, "peak heap {held} bytes");
        if limit == usize::MAX {
            assert!(done);
            assert_eq!(total, 8 << 20);
        } else {
            assert!(!done && !rest.is_empty());
            assert!(total <= limit + out.len());
        }
    }
}

#[test]
fn heap_size_matches_what_is_allocated() {
    let mut out = Vec::with_capacity(1 << 16);
    let mut sink = vec![0; 64];
    let mut codec = DeflateCodec::new(params(), Role::Client);
    assert_eq!(codec.heap_size(), 0);

    let base = live_bytes();
    codec.compress(b"Hello", false, &mut out);
    let held = (live_bytes() - base) as usize;
    let reported = codec.heap_size();
    assert!(reported > 250_000, "compressor {reported}");
    assert!(
        held.abs_diff(reported) <= reported / 50,
        "held {held}, reported {reported}"
    );

    let base = live_bytes();
    let frame = out.clone();
    let _ = codec.inflate(&frame, false, &mut sink).unwrap();
    drop(frame);
    let held = (live_bytes() - base) as usize;
    let inflater = codec.heap_size() - reported;
    assert!(
        (30_000..60_000).contains(&inflater),
        "decompressor {inflater}"
    );
    assert!(
        held.abs_diff(inflater) <= inflater / 50,
        "held {held}, reported {inflater}"
    );
}

#[test]
fn state_is_held_only_with_context_takeover() {
    let hello = example_named("7.2.3.1-hello");
    for role in [Role::Client, Role::Server] {
        for no_context_takeover in [false, true] {
            let params = DeflateParams {
                client_no_context_takeover: no_context_takeover,
                server_no_context_takeover: no_context_takeover,
                ..params()
            };
            let mut codec = DeflateCodec::new(params, role);
            assert_eq!(codec.heap_size(), 0);
            let base = live_bytes();
            let frames = compress_message(&mut codec, &[b"Hel", b"lo"]);
            assert_eq!(
                inflate_message(&mut codec, &[&hello[0].0], 3).unwrap(),
                b"Hello"
            );
            drop(frames);
            if no_context_takeover {
                assert_eq!(codec.heap_size(), 0);
                assert!(
                    live_bytes() - base <= 0,
                    "{} bytes held",
                    live_bytes() - base
                );
            } else {
                assert!(codec.heap_size() > 300_000);
                assert!(live_bytes() - base > 300_000);
            }
        }
    }
}

#[test]
fn state_is_allocated_only_when_a_message_needs_it() {
    // The server decompresses with context takeover but compresses without.
    let params = DeflateParams {
        server_no_context_takeover: true,
        ..params()
    };
    let mut server = DeflateCodec::new(params, Role::Server);
    let mut client = DeflateCodec::new(params, Role::Client);
    let frames = compress_message(&mut client, &[b"Hello"]);
    assert!(client.heap_size() > 250_000);
    assert_eq!(server.heap_size(), 0);
    // A partial message holds the decompressor...
    let mut out = [0; 2];
    let result = server.inflate(&frames[0][..3], false, &mut out).unwrap();
    assert!(!result.message_done);
    assert!(server.heap_size() > 0);
    // ...which stays after the message, as the client keeps its context.
    let rest = &frames[0][result.consumed..];
    let got = inflate_message(&mut server, &[rest], 16).unwrap();
    assert_eq!([&out[..result.produced], &got].concat(), b"Hello");
    let receiving = server.heap_size();
    assert!(receiving > 0 && receiving < 60_000);
    // Sending allocates the compressor for the message only.
    let reply = compress_message(&mut server, &[b"Hi", b" there"]);
    assert_eq!(server.heap_size(), receiving);
    let pieces: Vec<&[u8]> = reply.iter().map(Vec::as_slice).collect();
    assert_eq!(
        inflate_message(&mut client, &pieces, 4).unwrap(),
        b"Hi there"
    );
}

// ---------------------------------------------------------------------------
// Negotiation.

fn configured(set: impl FnOnce(&mut PerMessageDeflate)) -> PerMessageDeflate {
    let mut extension = PerMessageDeflate::new();
    set(&mut extension);
    extension
}

fn offer_of(extension: &PerMessageDeflate) -> String {
    let mut offer = String::new();
    extension.offer(&mut offer).unwrap();
    offer
}

/// The server's answer to `offer`, or `None` if it declined.
fn answer(server: &mut PerMessageDeflate, offer: &str) -> Option<String> {
    let offer = parse_extensions(offer).next().unwrap().unwrap();
    let mut out = String::new();
    if server.accept(&offer, &mut out).unwrap() {
        assert!(server.enabled());
        assert!(server.params().is_some());
        Some(out)
    } else {
        assert!(out.is_empty(), "declined but wrote {out:?}");
        None
    }
}

/// Offer `offer` to a server that must decline it; returns the server
/// window of the agreement it still holds.
fn decline(server: &mut PerMessageDeflate, offer: &str) -> Option<u8> {
    let offer = parse_extensions(offer).next().unwrap().unwrap();
    let before = server.params();
    let mut out = String::new();
    assert!(!server.accept(&offer, &mut out).unwrap());
    assert!(out.is_empty(), "declined but wrote {out:?}");
    assert_eq!(server.params(), before);
    before.map(|params| params.server_max_window_bits)
}

fn finalize(
    client: &mut PerMessageDeflate,
    response: &str,
) -> Result<DeflateParams, RemoteProtocolError> {
    let response = parse_extensions(response).next().unwrap().unwrap();
    client.finalize(&response)?;
    assert!(client.enabled());
    Ok(client.params().unwrap())
}

#[test]
fn registry_and_name() {
    assert_eq!(SUPPORTED_EXTENSIONS, &["permessage-deflate"]);
    assert_eq!(PerMessageDeflate::new().name(), NAME);
    assert!(!PerMessageDeflate::new().enabled());
    assert_eq!(PerMessageDeflate::new(), PerMessageDeflate::default());
    assert!(PerMessageDeflate::new().compress);
}

#[test]
fn client_offers() {
    assert_eq!(
        offer_of(&PerMessageDeflate::new()),
        "permessage-deflate; client_max_window_bits"
    );
    let everything = configured(|p| {
        p.client_no_context_takeover = true;
        p.client_max_window_bits = Some(12);
        p.server_no_context_takeover = true;
        p.server_max_window_bits = Some(10);
    });
    assert_eq!(
        offer_of(&everything),
        "permessage-deflate; client_max_window_bits=12; server_max_window_bits=10; \
         client_no_context_takeover; server_no_context_takeover"
    );
    let clamped = configured(|p| {
        p.client_max_window_bits = Some(4);
        p.server_max_window_bits = Some(20);
    });
    assert_eq!(
        offer_of(&clamped),
        "permessage-deflate; client_max_window_bits=8; server_max_window_bits=15"
    );
    // Every offer parses back under the extension grammar.
    for extension in [PerMessageDeflate::new(), everything, clamped] {
        let offer = offer_of(&extension);
        let parsed: Vec<_> = parse_extensions(&offer).collect::<Result<_, _>>().unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].name, NAME);
    }
}

#[test]
fn server_accepts_valid_offers() {
    let p = |cnctk, snctk, cbits, sbits| DeflateParams {
        client_no_context_takeover: cnctk,
        server_no_context_takeover: snctk,
        client_max_window_bits: cbits,
        server_max_window_bits: sbits,
        compress: true,
        compression_level: wsproto_core::extension::deflate::DEFAULT_LEVEL,
    };
    let cases = [
        (
            "permessage-deflate",
            "permessage-deflate",
            p(false, false, 15, 15),
        ),
        (
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate",
            p(false, false, 15, 15),
        ),
        (
            "permessage-deflate; client_max_window_bits=10",
            "permessage-deflate; client_max_window_bits=10",
            p(false, false, 10, 15),
        ),
        (
            "permessage-deflate; client_max_window_bits=\"10\"",
            "permessage-deflate; client_max_window_bits=10",
            p(false, false, 10, 15),
        ),
        (
            "permessage-deflate; client_no_context_takeover",
            "permessage-deflate; client_no_context_takeover",
            p(true, false, 15, 15),
        ),
        (
            "permessage-deflate; server_no_context_takeover",
            "permessage-deflate; server_no_context_takeover",
            p(false, true, 15, 15),
        ),
        // Autobahn 13.x style offers.
        (
            "permessage-deflate; client_no_context_takeover; client_max_window_bits",
            "permessage-deflate; client_no_context_takeover",
            p(true, false, 15, 15),
        ),
        (
            "permessage-deflate; client_no_context_takeover; client_max_window_bits=8",
            "permessage-deflate; client_no_context_takeover; client_max_window_bits=8",
            p(true, false, 8, 15),
        ),
        (
            "permessage-deflate; client_max_window_bits; server_max_window_bits=8",
            "permessage-deflate; server_max_window_bits=8",
            p(false, false, 15, 8),
        ),
        (
            "permessage-deflate; server_max_window_bits=9",
            "permessage-deflate; server_max_window_bits=9",
            p(false, false, 15, 9),
        ),
        (
            "permessage-deflate; server_max_window_bits=15",
            "permessage-deflate; server_max_window_bits=15",
            p(false, false, 15, 15),
        ),
        (
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=8",
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=8",
            p(false, true, 15, 8),
        ),
        (
            "permessage-deflate; client_max_window_bits=9; server_max_window_bits=12; \
             client_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_no_context_takeover; server_no_context_takeover; \
             client_max_window_bits=9; server_max_window_bits=12",
            p(true, true, 9, 12),
        ),
    ];
    for (offer, expected, params) in cases {
        let mut server = PerMessageDeflate::new();
        assert_eq!(
            answer(&mut server, offer).as_deref(),
            Some(expected),
            "{offer}"
        );
        assert_eq!(server.params(), Some(params), "{offer}");
    }
}

#[test]
fn server_settings_shape_the_answer() {
    let mut server = configured(|p| {
        p.client_no_context_takeover = true;
        p.client_max_window_bits = Some(9);
        p.server_no_context_takeover = true;
        p.server_max_window_bits = Some(10);
        p.compress = false;
    });
    let cases = [
        (
            "permessage-deflate",
            "permessage-deflate; client_no_context_takeover; server_no_context_takeover; \
             server_max_window_bits=10",
            (15, 10),
        ),
        (
            "permessage-deflate; client_max_window_bits",
            "permessage-deflate; client_no_context_takeover; server_no_context_takeover; \
             client_max_window_bits=9; server_max_window_bits=10",
            (9, 10),
        ),
        (
            "permessage-deflate; client_max_window_bits=8; server_max_window_bits=12",
            "permessage-deflate; client_no_context_takeover; server_no_context_takeover; \
             client_max_window_bits=8; server_max_window_bits=10",
            (8, 10),
        ),
        (
            "permessage-deflate; server_max_window_bits=9",
            "permessage-deflate; client_no_context_takeover; server_no_context_takeover; \
             server_max_window_bits=9",
            (15, 9),
        ),
    ];
    for (offer, expected, (cbits, sbits)) in cases {
        assert_eq!(
            answer(&mut server, offer).as_deref(),
            Some(expected),
            "{offer}"
        );
        let params = server.params().unwrap();
        assert!(params.client_no_context_takeover && params.server_no_context_takeover);
        assert_eq!(
            (params.client_max_window_bits, params.server_max_window_bits),
            (cbits, sbits)
        );
        assert!(!params.compress);
    }
}

#[test]
fn server_declines_invalid_offers() {
    for offer in [
        "x-webkit-deflate-frame",
        "permessage-deflate; foo",
        "permessage-deflate; foo=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; client_max_window_bits; client_max_window_bits",
        "permessage-deflate; client_max_window_bits=10; client_max_window_bits=10",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=11",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=08",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits=1",
        "permessage-deflate; server_max_window_bits=+9",
        "permessage-deflate; server_max_window_bits=nine",
        "permessage-deflate; server_max_window_bits=\"\"",
        "permessage-deflate; server_max_window_bits=\"1\\0\"",
        "permessage-deflate; client_max_window_bits=0",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=255",
        "permessage-deflate; client_max_window_bits=99999999999999999999",
        "permessage-deflate; client_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover=\"\"",
        "permessage-deflate; Server_No_Context_Takeover",
    ] {
        let mut server = PerMessageDeflate::new();
        assert_eq!(answer(&mut server, offer), None, "{offer}");
        assert!(!server.enabled() && server.params().is_none(), "{offer}");
    }
    // A declined offer leaves an earlier agreement; an accepted one
    // replaces it.
    let mut server = PerMessageDeflate::new();
    assert!(answer(&mut server, "permessage-deflate; server_max_window_bits=9").is_some());
    assert_eq!(decline(&mut server, "permessage-deflate; foo"), Some(9));
    assert!(answer(&mut server, "permessage-deflate; server_max_window_bits=8").is_some());
    assert_eq!(server.params().unwrap().server_max_window_bits, 8);
}

#[test]
fn client_accepts_valid_responses() {
    let mut client = PerMessageDeflate::new();
    let params = finalize(&mut client, "permessage-deflate").unwrap();
    assert_eq!(params, DeflateParams::default());
    let params = finalize(&mut client, "permessage-deflate; client_max_window_bits=9").unwrap();
    assert_eq!(params.client_max_window_bits, 9);
    // The server may limit its own window unasked.
    let params = finalize(&mut client, "permessage-deflate; server_max_window_bits=10").unwrap();
    assert_eq!(params.server_max_window_bits, 10);
    let params = finalize(
        &mut client,
        "permessage-deflate; client_no_context_takeover; server_no_context_takeover",
    )
    .unwrap();
    assert!(params.client_no_context_takeover && params.server_no_context_takeover);

    let mut client = configured(|p| {
        p.client_no_context_takeover = true;
        p.client_max_window_bits = Some(12);
        p.server_no_context_takeover = true;
        p.server_max_window_bits = Some(10);
        p.compress = false;
    });
    let params = finalize(
        &mut client,
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=10",
    )
    .unwrap();
    assert_eq!(
        params,
        DeflateParams {
            // Offered: our promise holds even if the server did not echo it.
            client_no_context_takeover: true,
            server_no_context_takeover: true,
            // Our own limit, as the server allowed any window.
            client_max_window_bits: 12,
            server_max_window_bits: 10,
            compress: false,
            compression_level: wsproto_core::extension::deflate::DEFAULT_LEVEL,
        }
    );
    let params = finalize(
        &mut client,
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; \
         client_max_window_bits=8",
    )
    .unwrap();
    assert_eq!(
        (params.client_max_window_bits, params.server_max_window_bits),
        (8, 9)
    );
}

#[test]
fn client_fails_invalid_responses() {
    let default = PerMessageDeflate::new();
    let demanding = configured(|p| {
        p.client_max_window_bits = Some(12);
        p.server_no_context_takeover = true;
        p.server_max_window_bits = Some(10);
    });
    let cases: &[(&PerMessageDeflate, &str)] = &[
        (&default, "x-webkit-deflate-frame"),
        (&default, "permessage-deflate; foo"),
        (&default, "permessage-deflate; foo=bar"),
        (&default, "permessage-deflate; client_max_window_bits"),
        (&default, "permessage-deflate; server_max_window_bits"),
        (&default, "permessage-deflate; server_max_window_bits=7"),
        (&default, "permessage-deflate; server_max_window_bits=16"),
        (&default, "permessage-deflate; client_max_window_bits=08"),
        (
            &default,
            "permessage-deflate; client_max_window_bits=\"1\\2\"",
        ),
        (
            &default,
            "permessage-deflate; client_no_context_takeover=true",
        ),
        (
            &default,
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        ),
        (
            &default,
            "permessage-deflate; client_max_window_bits=9; client_max_window_bits=9",
        ),
        (
            &demanding,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=11",
        ),
        (&demanding, "permessage-deflate; server_no_context_takeover"),
        (&demanding, "permessage-deflate; server_max_window_bits=10"),
        (
            &demanding,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; \
             client_max_window_bits=13",
        ),
    ];
    for (client, response) in cases {
        let mut client = (*client).clone();
        let err = finalize(&mut client, response).unwrap_err();
        assert_eq!(
            err.close_code(),
            Some(CloseCode::PROTOCOL_ERROR),
            "{response}"
        );
        assert!(!client.enabled(), "{response}");
    }
}

#[test]
fn both_ends_agree() {
    let configs = [
        PerMessageDeflate::new(),
        configured(|p| {
            p.client_no_context_takeover = true;
        }),
        configured(|p| {
            p.server_no_context_takeover = true;
            p.server_max_window_bits = Some(9);
        }),
        configured(|p| {
            p.client_max_window_bits = Some(11);
            p.server_max_window_bits = Some(13);
        }),
        configured(|p| {
            p.client_no_context_takeover = true;
            p.client_max_window_bits = Some(8);
            p.server_no_context_takeover = true;
            p.server_max_window_bits = Some(8);
        }),
    ];
    for client_config in &configs {
        for server_config in &configs {
            let mut client = client_config.clone();
            let mut server = server_config.clone();
            let offer = offer_of(&client);
            let response = answer(&mut server, &offer).unwrap();
            let params = finalize(&mut client, &response)
                .unwrap_or_else(|e| panic!("{offer} -> {response}: {e}"));
            assert_eq!(Some(params), server.params(), "{offer} -> {response}");

            // And the codecs they build talk to each other.
            let mut client_codec = DeflateCodec::new(params, Role::Client);
            let mut server_codec = DeflateCodec::new(params, Role::Server);
            let text = Rng(3).text(5_000);
            for _ in 0..2 {
                let frames = compress_message(&mut client_codec, &[&text]);
                assert!(inflate_message(&mut server_codec, &[&frames[0]], 512).unwrap() == text);
                let frames = compress_message(&mut server_codec, &[&text]);
                assert!(inflate_message(&mut client_codec, &[&frames[0]], 512).unwrap() == text);
            }
        }
    }
}

#[test]
fn into_connection_applies_the_negotiated_deflate() {
    use wsproto_core::event::{AcceptConnection, Event, Request, TextMessage};
    use wsproto_core::handshake::{Handshake, HandshakeConfig};

    let config = HandshakeConfig::default();
    let mut client = Handshake::client(config, |d: &mut [u8]| d.fill(7))
        .with_extensions(Some(PerMessageDeflate::new()));
    let mut server = Handshake::server(config).with_extensions(Some(PerMessageDeflate::new()));
    let mut wire = [0u8; 512];
    let request = Request {
        host: "example.com",
        target: "/",
        ..Request::default()
    };
    let n = client.send(&request.into(), &mut wire).unwrap();
    let received = server.receive(&mut wire[..n]);
    assert!(matches!(received.event, Ok(Some(Event::Request(_)))));
    let n = server
        .send(&AcceptConnection::default().into(), &mut wire)
        .unwrap();
    let received = client.receive(&mut wire[..n]);
    assert!(matches!(
        received.event,
        Ok(Some(Event::AcceptConnection(_)))
    ));

    let client = client.into_connection().unwrap();
    let server = server.into_connection().unwrap();
    assert!(client.extensions.as_ref().is_some_and(|e| e.enabled()));
    let (mut client, mut server) = (client.connection, server.connection);
    assert!(client.deflate_enabled() && server.deflate_enabled());

    // A compressed message (RSV1 set) goes through without further setup.
    let text = "hello hello hello hello hello hello";
    let n = client
        .send(&TextMessage::new(text).into(), &mut wire)
        .unwrap();
    assert_eq!(wire[0] & 0x40, 0x40, "RSV1: compressed");
    let mut inflated = [0u8; 128];
    let received = server.receive_into(&mut wire[..n], &mut inflated);
    match received.event {
        Ok(Some(Event::TextMessage(m))) => assert_eq!(m.data, text),
        other => panic!("{other:?}"),
    }
}
