//! Unit tests of the permessage-deflate codec (crate-internal): the RFC's
//! examples, round trips for both roles, window limits checked by an
//! independent decoder, a deflate bomb, and when state is held.

use std::ffi::OsString;
use std::process::Command;
use std::string::{String, ToString};
use std::vec::Vec;
use std::{format, println, vec};

use super::{DeflateCodec, DeflateParams};
use crate::{CloseCode, RemoteProtocolError, Role};

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
        include_str!("../../tests/data/rfc7692/7.2.3.1-hello.hex"),
    ),
    (
        "7.2.3.2-sharing-window",
        include_str!("../../tests/data/rfc7692/7.2.3.2-sharing-window.hex"),
    ),
    (
        "7.2.3.2-no-context-takeover",
        include_str!("../../tests/data/rfc7692/7.2.3.2-no-context-takeover.hex"),
    ),
    (
        "7.2.3.3-no-compression",
        include_str!("../../tests/data/rfc7692/7.2.3.3-no-compression.hex"),
    ),
    (
        "7.2.3.4-bfinal",
        include_str!("../../tests/data/rfc7692/7.2.3.4-bfinal.hex"),
    ),
    (
        "7.2.3.5-two-blocks",
        include_str!("../../tests/data/rfc7692/7.2.3.5-two-blocks.hex"),
    ),
    (
        "7.2.3.6-empty-fragment",
        include_str!("../../tests/data/rfc7692/7.2.3.6-empty-fragment.hex"),
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
                        compression_level: super::DEFAULT_LEVEL,
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
                            // Under a small window only the history stays,
                            // if the backend's matches reach it.
                            let holds = sent_data
                                && (window_bits == 15 || !sender.compresses_run_length_only());
                            assert_eq!(sender.heap_size() > 0, holds, "{context}");
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
                    compression_level: super::DEFAULT_LEVEL,
                };
                let context = format!("bits {bits} {role:?} nctk {no_context_takeover}");
                let mut codec = DeflateCodec::new(params, role);
                let payloads = compress_corpus(&mut codec);
                assert_eq!(codec.compress_window_bits(), bits);
                // miniz_oxide's matches reach 32 KiB: run-length only under
                // any smaller window; zlib-rs honours windows from 9 bits.
                let run_length_only = if cfg!(feature = "zlib-rs") {
                    bits == 8
                } else {
                    bits < 15
                };
                assert_eq!(codec.compresses_run_length_only(), run_length_only);

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
                if run_length_only {
                    // Run-length matches only.
                    assert_eq!(longest, 1, "{context}");
                } else if bits == 15 {
                    // The corpus does call for long distances.
                    assert!(longest > 1 << 14, "{context}: longest {longest}");
                } else {
                    assert!(longest > 1, "{context}: longest {longest}");
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
        if limit == usize::MAX {
            assert!(done);
            assert_eq!(total, 8 << 20);
        } else {
            assert!(!done && !rest.is_empty());
            assert!(total <= limit + out.len());
        }
    }
}

/// The estimates `heap_size` reports (checked against the allocator, through
/// a connection, in `tests/deflate.rs`).
#[test]
fn heap_size_reports_compressor_and_decompressor() {
    let mut out = Vec::with_capacity(1 << 16);
    let mut sink = vec![0; 64];
    let mut codec = DeflateCodec::new(params(), Role::Client);
    assert_eq!(codec.heap_size(), 0);
    codec.compress(b"Hello", false, &mut out);
    let reported = codec.heap_size();
    assert!(reported > 250_000, "compressor {reported}");
    let frame = out.clone();
    let _ = codec.inflate(&frame, false, &mut sink).unwrap();
    let inflater = codec.heap_size() - reported;
    assert!(
        (30_000..60_000).contains(&inflater),
        "decompressor {inflater}"
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
            let frames = compress_message(&mut codec, &[b"Hel", b"lo"]);
            assert_eq!(
                inflate_message(&mut codec, &[&hello[0].0], 3).unwrap(),
                b"Hello"
            );
            drop(frames);
            if no_context_takeover {
                assert_eq!(codec.heap_size(), 0);
            } else {
                assert!(codec.heap_size() > 300_000);
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
