//! Throughput of [`Connection`] on both ends of a connection, beside its
//! peers (tungstenite, fastwebsockets and, for small frames,
//! embedded-websocket) on the same wire bytes, and beside the best case of
//! unmasking.
//!
//! Groups:
//!
//! - `receive`: a server receives masked binary and text frames of 16 B,
//!   125 B, 4 KiB, 64 KiB and 1 MiB (throughput in payload bytes);
//! - `receive_frames`: the small sizes again, in frames per second;
//! - `ceiling`: an in-place `u64` XOR over as many payload bytes (the least
//!   unmasking can cost), and a copy of the wire bytes (the cost of moving
//!   them into the receive buffer, which `receive` leaves out);
//!
//! Sending is measured by `benches/send.rs`.
//!
//! Every receive iteration starts from a fresh copy of the same pre-built wire
//! bytes (untimed: unmasking happens in place), then receives every frame of
//! the buffer. tungstenite and fastwebsockets get the same bytes, the same
//! frame count and the same untimed copy, and read them through an in-memory
//! stream (their reads from that stream are timed: they are how they take
//! bytes in); fastwebsockets is async and runs on a current-thread tokio
//! runtime. embedded-websocket reads from the pristine wire bytes where they
//! lie and writes each unmasked payload into an output buffer; it does not
//! validate UTF-8, so its text payloads go through `core::str::from_utf8`
//! in the timed loop. Every frame is checked once, for every library and
//! through the same code that is timed, before anything is timed.
//!
//! After the run, the median of every receive benchmark measured in it is
//! read back from criterion's output and a table of ratios (wsproto-core
//! against the fastest peer of the same workload) is printed.
//!
//! Times are the CPU time of the benchmark thread, so time spent descheduled
//! on a busy machine is left out; `WSPROTO_BENCH_CLOCK=wall` measures
//! wall-clock time instead.
//!
//! Run with `cargo bench -p wsproto-core --bench receive`; results are in
//! `BENCHMARKS.md` at the top of the repository.

use std::cell::RefCell;
use std::hint::black_box;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use criterion::measurement::{Measurement, WallTime};
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};
use embedded_websocket::{WebSocketReceiveMessageType, WebSocketServer, WebSocketState};
use fastwebsockets::{OpCode, Role as FastRole, WebSocket as FastWebSocket};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::runtime::Runtime;
use tungstenite::protocol::{Message, Role as TungsteniteRole, WebSocket, WebSocketConfig};
use wsproto_core::event::ConnectionEvent;
use wsproto_core::{Config, Connection, Received};

mod common;
use common::{
    binary_payload, median_since, paired_rounds, size_label, text_payload, Contender, Kind, Paired,
    ThreadCpuTime, Timer, WARM_UP,
};

/// Payload sizes of the frames.
const SIZES: [usize; 5] = [16, 125, 4 << 10, 64 << 10, 1 << 20];

/// Each receive buffer holds at least this many payload bytes.
const TOTAL_PAYLOAD: usize = 1 << 20;

/// The frame and message limit given to every library.
const LIMIT: usize = 64 << 20;

/// A buffer of masked frames as a client sends them.
struct Workload {
    kind: Kind,
    size: usize,
    frames: usize,
    /// The payload of every frame, unmasked.
    payload: Vec<u8>,
    /// The frames, each masked with its own key.
    wire: Vec<u8>,
}

impl Workload {
    fn new(kind: Kind, size: usize) -> Self {
        let frames = TOTAL_PAYLOAD.div_ceil(size).max(1);
        let payload = match kind {
            Kind::Binary => binary_payload(size),
            Kind::Text => text_payload(size),
        };
        let mut wire = Vec::with_capacity(frames * (size + 14));
        let mut key = 0x9e37_79b9_u32;
        for _ in 0..frames {
            key = key.rotate_left(5) ^ 0x7f4a_7c15;
            encode_masked_frame(&mut wire, kind.opcode(), &payload, key.to_le_bytes());
        }
        Self {
            kind,
            size,
            frames,
            payload,
            wire,
        }
    }

    fn payload_bytes(&self) -> u64 {
        (self.frames * self.size) as u64
    }

    /// Check once, untimed, that both libraries decode the buffer.
    fn verify(&self) {
        let mut conn = Connection::server(Config::default());
        let mut buf = self.wire.clone();
        let mut pos = 0;
        let mut frames = 0;
        while pos < buf.len() {
            let Received {
                consumed, event, ..
            } = conn.receive(&mut buf[pos..]);
            let data = match event {
                Ok(Some(ConnectionEvent::BytesMessage(m))) if self.kind == Kind::Binary => m.data,
                Ok(Some(ConnectionEvent::TextMessage(m))) if self.kind == Kind::Text => {
                    m.data.as_bytes()
                }
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(data, &self.payload[..]);
            pos += consumed;
            frames += 1;
        }
        assert_eq!(frames, self.frames);

        let mut ws = tungstenite_server(&self.wire);
        for _ in 0..self.frames {
            match ws.read().expect("tungstenite read") {
                Message::Binary(data) if self.kind == Kind::Binary => {
                    assert_eq!(data, self.payload);
                }
                Message::Text(text) if self.kind == Kind::Text => {
                    assert_eq!(text.as_bytes(), &self.payload[..]);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(ws.get_ref().pos, self.wire.len());

        let runtime = current_thread_runtime();
        let input = SharedInput::default();
        input.refill(&self.wire);
        let mut ws = fastwebsockets_server(&input);
        let mut frames = 0;
        fastwebsockets_read(&runtime, &mut ws, self.kind, self.frames, |data| {
            assert_eq!(data, &self.payload[..]);
            frames += 1;
        });
        assert_eq!(frames, self.frames);
        assert_eq!(input.0.borrow().pos, self.wire.len());

        if self.size <= EMBEDDED_MAX_SIZE {
            let mut ws = embedded_websocket_server();
            let mut out = vec![0u8; self.size];
            let mut frames = 0;
            embedded_websocket_read(&mut ws, &self.wire, &mut out, self.kind, |data| {
                assert_eq!(data, &self.payload[..]);
                frames += 1;
            });
            assert_eq!(frames, self.frames);
        }
    }
}

/// Append one final frame with the masking bit set, written out by hand so
/// the input does not depend on the code being measured.
fn encode_masked_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], key: [u8; 4]) {
    out.push(0x80 | opcode);
    match payload.len() {
        len @ 0..=125 => out.push(0x80 | len as u8),
        len @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
}

/// Receive every frame of `buf` (whole frames only), consuming each event.
fn receive_all(conn: &mut Connection, buf: &mut [u8]) -> usize {
    let mut pos = 0;
    let mut frames = 0;
    while pos < buf.len() {
        let Received {
            consumed, event, ..
        } = conn.receive(&mut buf[pos..]);
        match event {
            Ok(Some(ConnectionEvent::BytesMessage(m))) => {
                black_box(m.data);
            }
            Ok(Some(ConnectionEvent::TextMessage(m))) => {
                black_box(m.data);
            }
            other => panic!("unexpected {other:?}"),
        }
        pos += consumed;
        frames += 1;
    }
    frames
}

/// An in-memory transport for tungstenite: reads from `input`, discards
/// writes.
#[derive(Default)]
struct MemoryStream {
    input: Vec<u8>,
    pos: usize,
}

impl Read for MemoryStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = &self.input[self.pos..];
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for MemoryStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn tungstenite_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(LIMIT))
        .max_frame_size(Some(LIMIT))
}

fn tungstenite_server(wire: &[u8]) -> WebSocket<MemoryStream> {
    let stream = MemoryStream {
        input: wire.to_vec(),
        pos: 0,
    };
    WebSocket::from_raw_socket(stream, TungsteniteRole::Server, Some(tungstenite_config()))
}

/// embedded-websocket takes part for payloads up to this size.
const EMBEDDED_MAX_SIZE: usize = 125;

/// An in-memory async transport for fastwebsockets: reads from the shared
/// input, discards writes. fastwebsockets' `WebSocket` does not lend its
/// stream back, so the benchmark keeps a handle to the input to refill it.
#[derive(Clone, Default)]
struct SharedInput(Rc<RefCell<MemoryStream>>);

impl SharedInput {
    /// Make `wire` the bytes to read, from the start.
    fn refill(&self, wire: &[u8]) {
        let mut stream = self.0.borrow_mut();
        if stream.input.len() == wire.len() {
            stream.input.copy_from_slice(wire);
        } else {
            stream.input = wire.to_vec();
        }
        stream.pos = 0;
    }
}

impl AsyncRead for SharedInput {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut stream = self.0.borrow_mut();
        let pos = stream.pos;
        let rest = &stream.input[pos..];
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        stream.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for SharedInput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn current_thread_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime")
}

/// A fastwebsockets server that does the same work as the others: it
/// unmasks every payload and validates text (`read_frame` checks every final
/// text frame, with `std::str::from_utf8` since its `simd` feature is off),
/// answers nothing by itself and accepts frames up to [`LIMIT`].
fn fastwebsockets_server(input: &SharedInput) -> FastWebSocket<SharedInput> {
    let mut ws = FastWebSocket::after_handshake(input.clone(), FastRole::Server);
    ws.set_auto_close(false);
    ws.set_auto_pong(false);
    ws.set_auto_apply_mask(true);
    ws.set_max_message_size(LIMIT);
    ws
}

/// Read `frames` frames of `kind` with fastwebsockets, handing each payload
/// to `on_payload`.
fn fastwebsockets_read(
    runtime: &Runtime,
    ws: &mut FastWebSocket<SharedInput>,
    kind: Kind,
    frames: usize,
    mut on_payload: impl FnMut(&[u8]),
) {
    let opcode = match kind {
        Kind::Binary => OpCode::Binary,
        Kind::Text => OpCode::Text,
    };
    runtime.block_on(async {
        for _ in 0..frames {
            let frame = ws.read_frame().await.expect("fastwebsockets read");
            assert!(frame.fin && frame.opcode == opcode, "unexpected frame");
            on_payload(&frame.payload);
        }
    });
}

fn embedded_websocket_server() -> WebSocketServer {
    let mut ws = WebSocketServer::new_server();
    // The handshake is not part of the benchmark: open the connection as a
    // completed handshake would.
    ws.state = WebSocketState::Open;
    ws
}

/// Read every frame of `wire` with embedded-websocket, unmasking each payload
/// into `out`, validating text with `core::str::from_utf8` (the library
/// does not), and handing each payload to `on_payload`.
fn embedded_websocket_read(
    ws: &mut WebSocketServer,
    wire: &[u8],
    out: &mut [u8],
    kind: Kind,
    mut on_payload: impl FnMut(&[u8]),
) {
    let mut pos = 0;
    while pos < wire.len() {
        let read = ws.read(&wire[pos..], out).expect("embedded-websocket read");
        assert!(read.end_of_message, "a frame larger than the output buffer");
        let data = &out[..read.len_to];
        match (kind, read.message_type) {
            (Kind::Binary, WebSocketReceiveMessageType::Binary) => on_payload(data),
            (Kind::Text, WebSocketReceiveMessageType::Text) => {
                on_payload(core::str::from_utf8(data).expect("UTF-8").as_bytes());
            }
            (_, other) => panic!("unexpected {other:?}"),
        }
        pos += read.len_from;
    }
}
/// Each library's receiver for one workload, with its buffers: every
/// `time_*` method receives the whole buffer of frames `iters` times, each
/// after an untimed refill, and returns the time of the receiving alone.
struct Receivers<'w> {
    work: &'w Workload,
    conn: Connection,
    buf: Vec<u8>,
    tungstenite: WebSocket<MemoryStream>,
    runtime: Runtime,
    input: SharedInput,
    fast: FastWebSocket<SharedInput>,
    embedded: WebSocketServer,
    out: Vec<u8>,
}

impl<'w> Receivers<'w> {
    fn new(work: &'w Workload) -> Self {
        let input = SharedInput::default();
        input.refill(&work.wire);
        Self {
            work,
            conn: Connection::server(Config::default()),
            buf: work.wire.clone(),
            tungstenite: tungstenite_server(&work.wire),
            runtime: current_thread_runtime(),
            fast: fastwebsockets_server(&input),
            input,
            embedded: embedded_websocket_server(),
            out: vec![0u8; work.size],
        }
    }

    fn time_wsproto<M: Measurement<Value = Duration>>(
        &mut self,
        timer: &Timer<M>,
        iters: u64,
    ) -> Duration {
        let (work, conn) = (self.work, &mut self.conn);
        timer.time_iters(
            iters,
            &mut self.buf,
            |buf| buf.copy_from_slice(&work.wire),
            |buf| {
                black_box(receive_all(conn, buf));
            },
        )
    }

    fn time_tungstenite<M: Measurement<Value = Duration>>(
        &mut self,
        timer: &Timer<M>,
        iters: u64,
    ) -> Duration {
        let work = self.work;
        timer.time_iters(
            iters,
            &mut self.tungstenite,
            |ws| {
                let stream = ws.get_mut();
                stream.input.copy_from_slice(&work.wire);
                stream.pos = 0;
            },
            |ws| {
                for _ in 0..work.frames {
                    black_box(ws.read().expect("tungstenite read"));
                }
            },
        )
    }

    fn time_fastwebsockets<M: Measurement<Value = Duration>>(
        &mut self,
        timer: &Timer<M>,
        iters: u64,
    ) -> Duration {
        let (work, runtime, input) = (self.work, &self.runtime, &self.input);
        timer.time_iters(
            iters,
            &mut self.fast,
            |_| input.refill(&work.wire),
            |ws| {
                fastwebsockets_read(runtime, ws, work.kind, work.frames, |data| {
                    black_box(data);
                });
            },
        )
    }

    /// embedded-websocket reads the wire bytes without changing them and
    /// needs no fresh copy; the setup is empty.
    fn time_embedded<M: Measurement<Value = Duration>>(
        &mut self,
        timer: &Timer<M>,
        iters: u64,
    ) -> Duration {
        let work = self.work;
        timer.time_iters(
            iters,
            &mut (&mut self.embedded, &mut self.out),
            |_| {},
            |(ws, out)| {
                embedded_websocket_read(ws, &work.wire, out, work.kind, |data| {
                    black_box(data);
                });
            },
        )
    }
}

/// wsproto-core and its peers receiving the whole buffer of `work`.
fn bench_receive_peers<M: Measurement<Value = Duration>>(
    group: &mut BenchmarkGroup<'_, M>,
    timer: &Timer<M>,
    work: &Workload,
) {
    let label = size_label(work.size);
    let id = |library: &str| BenchmarkId::new(format!("{}/{library}", work.kind.name()), &label);
    let mut receivers = Receivers::new(work);
    group.bench_function(id("wsproto-core"), |b| {
        b.iter_custom(|iters| receivers.time_wsproto(timer, iters));
    });
    group.bench_function(id("tungstenite"), |b| {
        b.iter_custom(|iters| receivers.time_tungstenite(timer, iters));
    });
    group.bench_function(id("fastwebsockets"), |b| {
        b.iter_custom(|iters| receivers.time_fastwebsockets(timer, iters));
    });
    if work.size <= EMBEDDED_MAX_SIZE {
        group.bench_function(id("embedded-websocket"), |b| {
            b.iter_custom(|iters| receivers.time_embedded(timer, iters));
        });
    }
}

fn receive<M: Measurement<Value = Duration>>(c: &mut Criterion<M>, timer: &Timer<M>) {
    let workloads: Vec<Workload> = [Kind::Binary, Kind::Text]
        .into_iter()
        .flat_map(|kind| SIZES.map(|size| Workload::new(kind, size)))
        .collect();
    for work in &workloads {
        work.verify();
    }
    // Every library on every workload again, untimed, until `WARM_UP` has
    // passed.
    let start = std::time::Instant::now();
    while start.elapsed() < WARM_UP {
        for work in &workloads {
            work.verify();
        }
    }

    let mut group = c.benchmark_group("receive");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4));
    for work in &workloads {
        group.throughput(Throughput::BytesDecimal(work.payload_bytes()));
        bench_receive_peers(&mut group, timer, work);
    }
    group.finish();

    let mut group = c.benchmark_group("receive_frames");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for work in workloads.iter().filter(|w| w.size <= 125) {
        group.throughput(Throughput::Elements(work.frames as u64));
        bench_receive_peers(&mut group, timer, work);
    }
    group.finish();
}

/// XOR `buf` in place with a repeated 8-byte word.
fn xor_u64(buf: &mut [u8], word: u64) {
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    for (byte, k) in chunks.into_remainder().iter_mut().zip(word.to_ne_bytes()) {
        *byte ^= k;
    }
}

fn ceiling<M: Measurement<Value = Duration>>(c: &mut Criterion<M>, timer: &Timer<M>) {
    let mut group = c.benchmark_group("ceiling");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for size in SIZES {
        let work = Workload::new(Kind::Binary, size);
        let label = size_label(size);
        group.throughput(Throughput::BytesDecimal(work.payload_bytes()));

        // The same number of payload bytes, contiguous, after the same kind of
        // untimed copy.
        let pristine = binary_payload(work.payload_bytes() as usize);
        let mut buf = pristine.clone();
        group.bench_function(BenchmarkId::new("xor_u64", &label), |b| {
            b.iter_custom(|iters| {
                timer.time_iters(
                    iters,
                    &mut buf,
                    |buf| buf.copy_from_slice(&pristine),
                    |buf| {
                        xor_u64(black_box(&mut buf[..]), black_box(0x3d21_fa37_3d21_fa37));
                        black_box(&buf[..]);
                    },
                )
            });
        });

        // The copy that `receive` leaves out: the wire bytes into the buffer.
        let mut buf = work.wire.clone();
        group.bench_function(BenchmarkId::new("copy_wire", &label), |b| {
            b.iter(|| {
                buf.copy_from_slice(black_box(&work.wire));
                black_box(&buf[..]);
            });
        });
    }
    group.finish();
}

/// Print wsproto-core's receive figures beside the fastest peer's, for every
/// workload measured in this run.
fn print_ratios(since: SystemTime) {
    const PEERS: [&str; 3] = ["tungstenite", "fastwebsockets", "embedded-websocket"];
    println!();
    println!("wsproto-core against the fastest peer, criterion medians of this run:");
    println!(
        "{:<15} {:<12} {:>16} {:>16}  {:<19} {:>7}",
        "group", "workload", "wsproto-core", "best peer", "", "ratio"
    );
    for group in ["receive", "receive_frames"] {
        for kind in [Kind::Binary, Kind::Text] {
            for size in SIZES {
                let label = size_label(size);
                let median = |library: &str| {
                    median_since(group, &format!("{}/{library}", kind.name()), &label, since)
                };
                let Some(ours) = median("wsproto-core") else {
                    continue;
                };
                let Some((peer, theirs)) = PEERS
                    .iter()
                    .filter_map(|&peer| Some((peer, median(peer)?)))
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                else {
                    continue;
                };
                let frames = TOTAL_PAYLOAD.div_ceil(size).max(1) as f64;
                let rate = |nanos: f64| {
                    if group == "receive_frames" {
                        format!("{:.1} M frames/s", frames / nanos * 1e3)
                    } else {
                        format!("{:.2} GB/s", frames * size as f64 / nanos)
                    }
                };
                println!(
                    "{:<15} {:<12} {:>16} {:>16}  {:<19} {:>6.2}x",
                    group,
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

/// The frames of up to 125 bytes again, in paired rounds
/// ([`paired_rounds`]): every library in turn, round after round, each
/// call receiving the workload's whole buffer of frames after an untimed
/// refill, as in `receive_frames`.
fn print_paired<M: Measurement<Value = Duration>>(timer: &Timer<M>) {
    println!();
    println!(
        "Frames of 16 B and 125 B in paired rounds ({PAIRED_ROUNDS} rounds, \
         {} ms of CPU time per library a round; median frames per second, and the \
         median of the rounds' ratios):",
        PAIRED_SLICE.as_millis()
    );
    println!("{}", Paired::header());
    for kind in [Kind::Binary, Kind::Text] {
        for size in SIZES.into_iter().filter(|&size| size <= EMBEDDED_MAX_SIZE) {
            let work = Workload::new(kind, size);
            work.verify();
            let frames = work.frames;
            // One library's receiver at a time is borrowed by its contender.
            let receivers = RefCell::new(Receivers::new(&work));
            let mut contenders = [
                Contender::timed("wsproto-core", |n| {
                    receivers.borrow_mut().time_wsproto(timer, n)
                }),
                Contender::timed("tungstenite", |n| {
                    receivers.borrow_mut().time_tungstenite(timer, n)
                }),
                Contender::timed("fastwebsockets", |n| {
                    receivers.borrow_mut().time_fastwebsockets(timer, n)
                }),
                Contender::timed("embedded-websocket", |n| {
                    receivers.borrow_mut().time_embedded(timer, n)
                }),
            ];
            let paired = paired_rounds(&mut contenders, PAIRED_ROUNDS, PAIRED_SLICE);
            let workload = format!("{} {}", kind.name(), size_label(size));
            println!("{}", paired.row(&workload, &contenders, frames as f64));
        }
    }
}

fn run<M: Measurement<Value = Duration>>(mut criterion: Criterion<M>, clock: M) {
    let since = SystemTime::now();
    let timer = Timer::new(clock);
    receive(&mut criterion, &timer);
    ceiling(&mut criterion, &timer);
    criterion.final_summary();
    print_ratios(since);
    print_paired(&timer);
}

/// Times are per-thread CPU time unless `WSPROTO_BENCH_CLOCK=wall` asks for
/// wall-clock time.
fn main() {
    if std::env::var("WSPROTO_BENCH_CLOCK").as_deref() == Ok("wall") {
        run(Criterion::default().configure_from_args(), WallTime);
    } else {
        let criterion = Criterion::default()
            .with_measurement(ThreadCpuTime)
            .configure_from_args();
        run(criterion, ThreadCpuTime);
    }
}
