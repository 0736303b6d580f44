//! A client sending masked frames: [`Connection::send`] (copy and mask into
//! the caller's buffer) beside the copying path of each peer that produces
//! the same masked frame bytes in a buffer, and the in-place path
//! (`send_header` plus [`apply_mask`]) beside fastwebsockets' in-place one.
//!
//! Workloads: binary and text messages of 16 B, 125 B, 4 KiB, 64 KiB and
//! 1 MiB, one final frame per iteration, the text being the multi-byte text
//! of the receive benchmark. Throughput is in payload bytes; the table
//! printed at the end also gives frames per second for the small sizes.
//!
//! The paths measured, each producing a whole masked frame per iteration:
//!
//! - `wsproto-core/send`: `Connection::send` into a buffer, the key drawn
//!   from a cheap injected source;
//! - `tungstenite/frame`: `Frame::message` with a key set, `Frame::format`
//!   into a `Vec` (cleared each time); the payload is a shared `Bytes`, so
//!   building the frame copies nothing;
//! - `tungstenite/websocket`: `WebSocket::send` of a client over a `Vec`
//!   writer (cleared each time), masking with tungstenite's own keys;
//! - `fastwebsockets/write`: `Frame::write` of a borrowed payload into a
//!   `Vec`, then its `unmask` over the payload written (its `write` copies
//!   without masking, and its `mask` would copy a borrowed payload into a new
//!   allocation first: this is the cheapest copying path it offers);
//! - `embedded-websocket/write`: `WebSocketClient::write` into a caller
//!   buffer (one bytewise pass);
//! - `wsproto-core/send_header+apply_mask` and `fastwebsockets/in-place`:
//!   the header into a small buffer and the caller's payload masked in place
//!   (the vectored-write path; not a copy, so not in the copying ratio);
//! - `memcpy`: a plain copy of the payload, the least a copying send costs.
//!
//! Before anything is timed, each path's output is decoded by a small
//! decoder written here and compared with the payload. Every path that
//! draws its own key draws it from the same cheap source: one xorshift step
//! per key.
//!
//! After criterion's rows and their table of ratios, the copying paths at
//! 16 B and 125 B run again in paired rounds (every library in turn, round
//! after round; see `common::paired_rounds`), and a second table gives the
//! median of the rounds' ratios: the figure that holds from run to run at
//! these sizes.
//!
//! Times are the CPU time of the benchmark thread (see `common`);
//! `WSPROTO_BENCH_CLOCK=wall` measures wall-clock time instead.
//!
//! Run with `cargo bench -p wsproto-core --features std --bench send`;
//! results are in `BENCHMARKS.md` at the top of the repository.

use std::hint::black_box;
use std::io::{self, Read, Write};
use std::time::{Duration, SystemTime};

use criterion::measurement::{Measurement, WallTime};
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};
use embedded_websocket::{WebSocketClient, WebSocketSendMessageType, WebSocketState};
use fastwebsockets::{Frame as FastFrame, OpCode as FastOpCode, Payload};
use tungstenite::protocol::frame::coding::{Data, OpCode as TungsteniteOpCode};
use tungstenite::protocol::frame::Frame as TungsteniteFrame;
use tungstenite::protocol::{Message, Role as TungsteniteRole, WebSocket};
use wsproto_core::connection::MessageKind;
use wsproto_core::event::{BytesMessage, Event, TextMessage};
use wsproto_core::frame::mask::apply_mask;
use wsproto_core::{Config, Connection};

mod common;
use common::{
    binary_payload, median_since, paired_rounds, size_label, text_payload, Contender, Kind, Paired,
    ThreadCpuTime, WARM_UP,
};

/// `len` bytes starting on a 4096-byte boundary.
struct PageAligned {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl PageAligned {
    const PAGE: usize = 4096;

    fn new(len: usize) -> Self {
        let storage = vec![0u8; len + Self::PAGE];
        let start = storage.as_ptr().align_offset(Self::PAGE);
        Self {
            storage,
            start,
            len,
        }
    }

    fn as_ref(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }

    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

/// A cheap deterministic source of masking keys: one xorshift step per four
/// bytes, so a key costs every library the same one step (drawing byte by
/// byte, four dependent steps, took more than half of a 16-byte send).
fn cheap_rng() -> impl FnMut(&mut [u8]) {
    let mut state = 0x6a09_e667_u32;
    move |dest: &mut [u8]| {
        for chunk in dest.chunks_mut(4) {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            chunk.copy_from_slice(&state.to_ne_bytes()[..chunk.len()]);
        }
    }
}

/// Payload sizes of the frames.
const SIZES: [usize; 5] = [16, 125, 4 << 10, 64 << 10, 1 << 20];

/// The longest frame header: 2 bytes, an 8-byte length and the key.
const MAX_HEADER: usize = 14;

/// The peers' copying paths, compared with `wsproto-core/send`.
const COPYING_PEERS: [&str; 4] = [
    "tungstenite/frame",
    "tungstenite/websocket",
    "fastwebsockets/write",
    "embedded-websocket/write",
];

/// Decode one final masked frame of `kind` that fills `frame` exactly, by
/// RFC 6455 §5.2 written out here, and return its unmasked payload.
fn decode_masked(frame: &[u8], kind: Kind) -> Vec<u8> {
    assert_eq!(frame[0], 0x80 | kind.opcode(), "FIN and opcode");
    assert_eq!(frame[1] & 0x80, 0x80, "mask bit");
    let (len, at) = match frame[1] & 0x7f {
        126 => (u16::from_be_bytes([frame[2], frame[3]]) as usize, 4),
        127 => (
            u64::from_be_bytes(frame[2..10].try_into().unwrap()) as usize,
            10,
        ),
        len => (len as usize, 2),
    };
    let key = &frame[at..at + 4];
    let body = &frame[at + 4..];
    assert_eq!(body.len(), len, "frame length");
    body.iter()
        .enumerate()
        .map(|(i, b)| b ^ key[i % 4])
        .collect()
}

/// A `Vec` writer for tungstenite's `WebSocket`, which also wants `Read`.
#[derive(Default)]
struct VecWriter(Vec<u8>);

impl Read for VecWriter {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        Ok(0)
    }
}

impl Write for VecWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An `RngCore` for embedded-websocket's client: the same cheap xorshift
/// keys as wsproto-core gets.
struct CheapRng<F>(F);

impl<F: FnMut(&mut [u8])> rand_core::RngCore for CheapRng<F> {
    fn next_u32(&mut self) -> u32 {
        let mut bytes = [0u8; 4];
        (self.0)(&mut bytes);
        u32::from_ne_bytes(bytes)
    }

    fn next_u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        (self.0)(&mut bytes);
        u64::from_ne_bytes(bytes)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        (self.0)(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        (self.0)(dest);
        Ok(())
    }
}

/// A key from `rng`, for the peers whose API takes one.
fn next_key(rng: &mut impl FnMut(&mut [u8])) -> [u8; 4] {
    let mut key = [0u8; 4];
    rng(&mut key);
    key
}

/// The paths of one workload, ready to run, each verified once.
struct Senders<'p> {
    kind: Kind,
    payload: &'p [u8],
    text: &'p str,
    message: Message,
    tungstenite_payload: tungstenite::Bytes,
}

impl<'p> Senders<'p> {
    fn new(kind: Kind, payload: &'p [u8]) -> Self {
        let text = std::str::from_utf8(payload).unwrap_or("");
        let message = match kind {
            Kind::Binary => Message::binary(payload.to_vec()),
            Kind::Text => Message::text(text.to_owned()),
        };
        Self {
            kind,
            payload,
            text,
            message,
            tungstenite_payload: tungstenite::Bytes::copy_from_slice(payload),
        }
    }

    fn event(&self) -> Event<'p> {
        match self.kind {
            Kind::Binary => Event::BytesMessage(BytesMessage::new(self.payload)),
            Kind::Text => Event::TextMessage(TextMessage::new(self.text)),
        }
    }

    fn message_kind(&self) -> MessageKind {
        match self.kind {
            Kind::Binary => MessageKind::Binary,
            Kind::Text => MessageKind::Text,
        }
    }

    fn wsproto_send<R: wsproto_core::RandomSource>(
        &self,
        client: &mut Connection<R>,
        event: &Event<'_>,
        out: &mut [u8],
    ) -> usize {
        client.send(event, out).expect("send")
    }

    fn tungstenite_frame(&self, rng: &mut impl FnMut(&mut [u8]), out: &mut Vec<u8>) {
        let data = match self.kind {
            Kind::Binary => Data::Binary,
            Kind::Text => Data::Text,
        };
        let mut frame = TungsteniteFrame::message(
            self.tungstenite_payload.clone(),
            TungsteniteOpCode::Data(data),
            true,
        );
        frame.header_mut().mask = Some(next_key(rng));
        out.clear();
        frame.format(out).expect("tungstenite format");
    }

    fn tungstenite_websocket(&self, ws: &mut WebSocket<VecWriter>) {
        ws.get_mut().0.clear();
        ws.send(self.message.clone()).expect("tungstenite send");
    }

    fn fastwebsockets_write<'o>(
        &self,
        rng: &mut impl FnMut(&mut [u8]),
        out: &'o mut Vec<u8>,
    ) -> &'o [u8] {
        let opcode = match self.kind {
            Kind::Binary => FastOpCode::Binary,
            Kind::Text => FastOpCode::Text,
        };
        let key = next_key(rng);
        let mut frame = FastFrame::new(true, opcode, Some(key), Payload::Borrowed(self.payload));
        let len = frame.write(out).len();
        let frame = &mut out[..len];
        fastwebsockets::unmask(&mut frame[len - self.payload.len()..], key);
        frame
    }

    fn embedded_write(
        &self,
        ws: &mut WebSocketClient<CheapRng<impl FnMut(&mut [u8])>>,
        out: &mut [u8],
    ) -> usize {
        let kind = match self.kind {
            Kind::Binary => WebSocketSendMessageType::Binary,
            Kind::Text => WebSocketSendMessageType::Text,
        };
        ws.write(kind, true, self.payload, out)
            .expect("embedded-websocket write")
    }
}

fn tungstenite_client() -> WebSocket<VecWriter> {
    WebSocket::from_raw_socket(VecWriter::default(), TungsteniteRole::Client, None)
}

fn fastwebsockets_in_place(kind: Kind, key: [u8; 4], body: &mut [u8], head: &mut [u8]) -> usize {
    let opcode = match kind {
        Kind::Binary => FastOpCode::Binary,
        Kind::Text => FastOpCode::Text,
    };
    let mut frame = FastFrame::new(true, opcode, Some(key), Payload::BorrowedMut(body));
    frame.mask();
    frame.fmt_head(head)
}

fn embedded_client() -> WebSocketClient<CheapRng<impl FnMut(&mut [u8])>> {
    let mut ws = WebSocketClient::new_client(CheapRng(cheap_rng()));
    // The handshake is not part of the benchmark: open the connection as a
    // completed handshake would.
    ws.state = WebSocketState::Open;
    ws
}

/// Check once, untimed, that every path writes a frame that decodes back to
/// the payload.
fn verify(send: &Senders<'_>) {
    let expect = |frame: &[u8], who: &str| {
        assert!(
            decode_masked(frame, send.kind) == send.payload,
            "{who}: {} {}",
            send.kind.name(),
            send.payload.len()
        );
    };
    let mut out = vec![0u8; send.payload.len() + MAX_HEADER];
    let mut client = Connection::client(Config::default(), cheap_rng());
    let n = send.wsproto_send(&mut client, &send.event(), &mut out);
    expect(&out[..n], "wsproto-core/send");

    let mut client = Connection::client(Config::default(), cheap_rng());
    let mut body = send.payload.to_vec();
    let mut head = [0u8; MAX_HEADER];
    let start = client
        .send_header(send.message_kind(), body.len(), true, &mut head)
        .expect("send_header");
    apply_mask(&mut body, start.mask.expect("a client masks"), 0);
    let frame = [&head[..start.header_len], &body[..]].concat();
    expect(&frame, "wsproto-core/send_header+apply_mask");

    let mut rng = cheap_rng();
    let mut vec = Vec::new();
    send.tungstenite_frame(&mut rng, &mut vec);
    expect(&vec, "tungstenite/frame");

    let mut ws = tungstenite_client();
    send.tungstenite_websocket(&mut ws);
    expect(&ws.get_ref().0, "tungstenite/websocket");

    let mut vec = Vec::new();
    let frame = send.fastwebsockets_write(&mut rng, &mut vec).to_vec();
    expect(&frame, "fastwebsockets/write");

    let mut body = send.payload.to_vec();
    let key = next_key(&mut rng);
    let n = fastwebsockets_in_place(send.kind, key, &mut body, &mut head);
    let frame = [&head[..n], &body[..]].concat();
    expect(&frame, "fastwebsockets/in-place");

    let mut ws = embedded_client();
    let n = send.embedded_write(&mut ws, &mut out);
    expect(&out[..n], "embedded-websocket/write");
}

fn bench_workload<M: Measurement<Value = Duration>>(
    group: &mut BenchmarkGroup<'_, M>,
    send: &Senders<'_>,
) {
    let label = size_label(send.payload.len());
    let id = |path: &str| BenchmarkId::new(format!("{}/{path}", send.kind.name()), &label);
    let size = send.payload.len();

    // Source and output start on a page boundary, as large allocations do,
    // so the copied body lands `header_len` bytes past the payload's offset
    // in its page, whatever the heap looks like.
    let mut client = Connection::client(Config::default(), cheap_rng());
    let event = send.event();
    let mut out = PageAligned::new(size + MAX_HEADER);
    group.bench_function(id("wsproto-core/send"), |b| {
        b.iter(|| {
            let out = out.as_mut();
            let n = send.wsproto_send(&mut client, black_box(&event), out);
            black_box(&out[..n]);
        });
    });

    let mut rng = cheap_rng();
    let mut vec = Vec::with_capacity(size + MAX_HEADER);
    group.bench_function(id("tungstenite/frame"), |b| {
        b.iter(|| {
            send.tungstenite_frame(&mut rng, &mut vec);
            black_box(&vec[..]);
        });
    });

    let mut ws = tungstenite_client();
    group.bench_function(id("tungstenite/websocket"), |b| {
        b.iter(|| {
            send.tungstenite_websocket(&mut ws);
            black_box(&ws.get_ref().0[..]);
        });
    });

    let mut vec = Vec::with_capacity(size + 16);
    group.bench_function(id("fastwebsockets/write"), |b| {
        b.iter(|| {
            black_box(send.fastwebsockets_write(&mut rng, &mut vec));
        });
    });

    let mut ws = embedded_client();
    group.bench_function(id("embedded-websocket/write"), |b| {
        b.iter(|| {
            let out = out.as_mut();
            let n = send.embedded_write(&mut ws, out);
            black_box(&out[..n]);
        });
    });

    let mut client = Connection::client(Config::default(), cheap_rng());
    let mut head = [0u8; MAX_HEADER];
    let mut body = PageAligned::new(size);
    body.as_mut().copy_from_slice(send.payload);
    let kind = send.message_kind();
    group.bench_function(id("wsproto-core/send_header+apply_mask"), |b| {
        b.iter(|| {
            let body = body.as_mut();
            let start = client
                .send_header(kind, body.len(), true, &mut head)
                .expect("send_header");
            if let Some(key) = start.mask {
                apply_mask(black_box(&mut *body), key, 0);
            }
            black_box((&head[..start.header_len], &*body));
        });
    });

    group.bench_function(id("fastwebsockets/in-place"), |b| {
        b.iter(|| {
            let key = next_key(&mut rng);
            let n = fastwebsockets_in_place(send.kind, key, body.as_mut(), &mut head);
            black_box((&head[..n], body.as_ref()));
        });
    });

    let mut source = PageAligned::new(size);
    source.as_mut().copy_from_slice(send.payload);
    group.bench_function(id("memcpy"), |b| {
        b.iter(|| {
            let out = &mut out.as_mut()[MAX_HEADER..];
            out.copy_from_slice(black_box(source.as_ref()));
            black_box(&out[..]);
        });
    });
}

fn send<M: Measurement<Value = Duration>>(c: &mut Criterion<M>) {
    let payloads: Vec<(Kind, Vec<u8>)> = [Kind::Binary, Kind::Text]
        .into_iter()
        .flat_map(|kind| {
            SIZES.map(|size| {
                let payload = match kind {
                    Kind::Binary => binary_payload(size),
                    Kind::Text => text_payload(size),
                };
                (kind, payload)
            })
        })
        .collect();
    let senders: Vec<Senders<'_>> = payloads
        .iter()
        .map(|(kind, payload)| Senders::new(*kind, payload))
        .collect();
    for send in &senders {
        verify(send);
    }
    warm_up(&senders, WARM_UP);

    let mut group = c.benchmark_group("send");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for send in &senders {
        group.throughput(Throughput::BytesDecimal(send.payload.len() as u64));
        bench_workload(&mut group, send);
    }
    group.finish();
}

/// Run every copying path of every workload in turn until `time` has passed,
/// untimed (see [`WARM_UP`]).
fn warm_up(senders: &[Senders<'_>], time: Duration) {
    let largest = senders.iter().map(|s| s.payload.len()).max().unwrap_or(0);
    let mut out = vec![0u8; largest + MAX_HEADER];
    let mut vec = Vec::with_capacity(largest + MAX_HEADER);
    let mut client = Connection::client(Config::default(), cheap_rng());
    let mut rng = cheap_rng();
    let mut ws = tungstenite_client();
    let mut embedded = embedded_client();
    let start = std::time::Instant::now();
    while start.elapsed() < time {
        for send in senders {
            let rounds = (64 << 10) / send.payload.len().max(1) + 1;
            for _ in 0..rounds {
                black_box(send.wsproto_send(&mut client, &send.event(), &mut out));
                send.tungstenite_frame(&mut rng, &mut vec);
                send.tungstenite_websocket(&mut ws);
                black_box(send.fastwebsockets_write(&mut rng, &mut vec));
                black_box(send.embedded_write(&mut embedded, &mut out));
            }
        }
    }
}

/// Print wsproto-core's figures beside the fastest peer's, for every
/// workload measured in this run: `send` against the peers' copying paths,
/// and the in-place path against fastwebsockets' in-place one.
fn print_ratios(since: SystemTime) {
    println!();
    println!("wsproto-core against the fastest peer, criterion medians of this run:");
    println!(
        "{:<10} {:<13} {:>26} {:>26}  {:<25} {:>7}",
        "path", "workload", "wsproto-core", "best peer", "", "ratio"
    );
    let paths: [(&str, &str, &[&str]); 2] = [
        ("copy", "wsproto-core/send", &COPYING_PEERS),
        (
            "in place",
            "wsproto-core/send_header+apply_mask",
            &["fastwebsockets/in-place"],
        ),
    ];
    for (path, ours, peers) in paths {
        for kind in [Kind::Binary, Kind::Text] {
            for size in SIZES {
                let label = size_label(size);
                let median = |library: &str| {
                    median_since("send", &format!("{}/{library}", kind.name()), &label, since)
                };
                let Some(ours) = median(ours) else {
                    continue;
                };
                let Some((peer, theirs)) = peers
                    .iter()
                    .filter_map(|&peer| Some((peer, median(peer)?)))
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                else {
                    continue;
                };
                let rate = |nanos: f64| {
                    if size <= 125 {
                        format!(
                            "{:.1} M frames/s {:.2} GB/s",
                            1e3 / nanos,
                            size as f64 / nanos
                        )
                    } else {
                        format!("{:.2} GB/s", size as f64 / nanos)
                    }
                };
                println!(
                    "{:<10} {:<13} {:>26} {:>26}  {:<25} {:>6.2}x",
                    path,
                    format!("{} {label}", kind.name()),
                    rate(ours),
                    rate(theirs),
                    peer,
                    theirs / ours
                );
            }
        }
    }
}

/// Rounds of [`print_paired`], and the CPU time of each library in a round.
const PAIRED_ROUNDS: usize = 21;
const PAIRED_SLICE: Duration = Duration::from_millis(40);

/// The copying paths of the frames of up to 125 bytes again, in paired
/// rounds ([`paired_rounds`]): at these sizes a frame takes 5 to 15 ns, and
/// criterion's rows, measured one after another for seconds each, move by a
/// quarter or more from run to run with the machine.
fn print_paired() {
    println!();
    println!(
        "Copying paths at 16 B and 125 B in paired rounds ({PAIRED_ROUNDS} rounds, \
         {} ms of CPU time per library a round; median frames per second, and the median \
         of the rounds' ratios):",
        PAIRED_SLICE.as_millis()
    );
    println!("{}", Paired::header());
    for kind in [Kind::Binary, Kind::Text] {
        for size in SIZES.into_iter().filter(|&size| size <= 125) {
            let payload = match kind {
                Kind::Binary => binary_payload(size),
                Kind::Text => text_payload(size),
            };
            let send = Senders::new(kind, &payload);
            verify(&send);
            let event = send.event();
            let mut client = Connection::client(Config::default(), cheap_rng());
            let mut out = PageAligned::new(size + MAX_HEADER);
            let mut out_embedded = PageAligned::new(size + MAX_HEADER);
            let mut ws = tungstenite_client();
            let mut embedded = embedded_client();
            let (mut rng_frame, mut rng_fast) = (cheap_rng(), cheap_rng());
            let (mut vec_frame, mut vec_fast) = (
                Vec::with_capacity(size + MAX_HEADER),
                Vec::with_capacity(size + MAX_HEADER),
            );
            let send = &send;
            let mut contenders = [
                Contender::new("wsproto-core/send", |n| {
                    for _ in 0..n {
                        let out = out.as_mut();
                        let len = send.wsproto_send(&mut client, black_box(&event), out);
                        black_box(&out[..len]);
                    }
                }),
                Contender::new("tungstenite/frame", |n| {
                    for _ in 0..n {
                        send.tungstenite_frame(&mut rng_frame, &mut vec_frame);
                        black_box(&vec_frame[..]);
                    }
                }),
                Contender::new("tungstenite/websocket", |n| {
                    for _ in 0..n {
                        send.tungstenite_websocket(&mut ws);
                        black_box(&ws.get_ref().0[..]);
                    }
                }),
                Contender::new("fastwebsockets/write", |n| {
                    for _ in 0..n {
                        black_box(send.fastwebsockets_write(&mut rng_fast, &mut vec_fast));
                    }
                }),
                Contender::new("embedded-websocket/write", |n| {
                    for _ in 0..n {
                        let out = out_embedded.as_mut();
                        let len = send.embedded_write(&mut embedded, out);
                        black_box(&out[..len]);
                    }
                }),
            ];
            let paired = paired_rounds(&mut contenders, PAIRED_ROUNDS, PAIRED_SLICE);
            let workload = format!("{} {}", kind.name(), size_label(size));
            println!("{}", paired.row(&workload, &contenders, 1.0));
        }
    }
}

fn run<M: Measurement<Value = Duration>>(mut criterion: Criterion<M>) {
    let since = SystemTime::now();
    send(&mut criterion);
    criterion.final_summary();
    print_ratios(since);
    print_paired();
}

/// Times are per-thread CPU time unless `WSPROTO_BENCH_CLOCK=wall` asks for
/// wall-clock time.
fn main() {
    if std::env::var("WSPROTO_BENCH_CLOCK").as_deref() == Ok("wall") {
        run(Criterion::default()
            .configure_from_args()
            .with_measurement(WallTime));
    } else {
        let criterion = Criterion::default()
            .with_measurement(ThreadCpuTime)
            .configure_from_args();
        run(criterion);
    }
}
