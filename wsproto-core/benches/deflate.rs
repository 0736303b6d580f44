//! permessage-deflate throughput: compressing (send) and decompressing
//! (receive) JSON-like messages of 1 KiB and 64 KiB through a `Connection`,
//! and the heap an idle connection holds with and without context takeover.
//!
//! `cargo bench -p wsproto-core --bench deflate`

#![allow(missing_docs)] // `criterion_group!` defines an undocumented public function.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use wsproto_core::event::{Event, TextMessage};
use wsproto_core::extension::deflate::DeflateParams;
use wsproto_core::{Config, Connection};

/// JSON-like text of `len` bytes: records with varying numbers and names.
fn json(len: usize) -> String {
    let mut out = String::with_capacity(len + 128);
    let mut i = 0u64;
    out.push('[');
    while out.len() < len {
        let x = i.wrapping_mul(2654435761) % 100_000;
        out.push_str(&format!(
            "{{\"id\":{i},\"name\":\"user{x}\",\"score\":{}.{},\"tags\":[\"a{}\",\"b\"],\"active\":{}}},",
            x % 997,
            x % 89,
            x % 13,
            x.is_multiple_of(2)
        ));
        i += 1;
    }
    out.truncate(len);
    out
}

fn params(no_context_takeover: bool) -> DeflateParams {
    DeflateParams {
        client_no_context_takeover: no_context_takeover,
        server_no_context_takeover: no_context_takeover,
        ..DeflateParams::default()
    }
}

fn bench(c: &mut Criterion) {
    for size in [1usize << 10, 64 << 10] {
        let text = json(size);
        let label = if size == 1024 { "1KiB" } else { "64KiB" };
        for nct in [false, true] {
            let mode = if nct {
                "no_context_takeover"
            } else {
                "context_takeover"
            };
            let mut group = c.benchmark_group(format!("deflate/{mode}"));
            group.throughput(Throughput::Bytes(size as u64));
            group.measurement_time(Duration::from_secs(3));
            group.warm_up_time(Duration::from_secs(1));

            // Compress: a server sending the message.
            let mut server = Connection::server(Config::default()).with_deflate(params(nct));
            let mut out = vec![0u8; size * 2 + 1024];
            let event: Event<'_> = TextMessage::new(&text).into();
            group.bench_function(format!("compress/{label}"), |b| {
                b.iter(|| black_box(server.send(&event, &mut out).unwrap()))
            });

            // Decompress: a client receiving a stream of such messages.
            let mut sender = Connection::server(Config::default()).with_deflate(params(nct));
            let mut wire = Vec::new();
            let count = (4 << 20) / size;
            for _ in 0..count {
                sender.send_into(&event, &mut wire).unwrap();
            }
            group.throughput(Throughput::Bytes((size * count) as u64));
            group.bench_function(format!("decompress/{label}"), |b| {
                b.iter_batched_ref(
                    || {
                        let client =
                            Connection::client(Config::default(), |d: &mut [u8]| d.fill(1))
                                .with_deflate(params(nct));
                        (client, wire.clone())
                    },
                    |(client, buf)| {
                        let mut pos = 0;
                        let mut total = 0usize;
                        let mut out = [0u8; 16 << 10];
                        while pos < buf.len() {
                            let r = client.receive_into(&mut buf[pos..], &mut out);
                            pos += r.consumed;
                            match r.event {
                                Ok(Some(Event::TextMessage(m))) => total += m.data.len(),
                                Ok(None) => break,
                                other => panic!("unexpected {other:?}"),
                            }
                        }
                        assert_eq!(total, size * count);
                        black_box(total)
                    },
                    BatchSize::LargeInput,
                )
            });
            group.finish();
        }
    }
    idle_heap();
}

/// The heap a connection keeps between messages, printed for BENCHMARKS.md.
fn idle_heap() {
    let text = json(64 << 10);
    for nct in [false, true] {
        let mut client = Connection::client(Config::default(), |d: &mut [u8]| d.fill(1))
            .with_deflate(params(nct));
        let mut server = Connection::server(Config::default()).with_deflate(params(nct));
        let mut wire = Vec::new();
        client
            .send_into(&TextMessage::new(&text).into(), &mut wire)
            .unwrap();
        let mut pos = 0;
        let mut out = vec![0u8; 16 << 10];
        loop {
            let r = server.receive_into(&mut wire[pos..], &mut out);
            pos += r.consumed;
            if r.event.unwrap().is_none() {
                break;
            }
        }
        let mut reply = Vec::new();
        server
            .send_into(&TextMessage::new(&text).into(), &mut reply)
            .unwrap();
        println!(
            "idle heap after one 64 KiB message each way ({}): server {} bytes, client {} bytes",
            if nct {
                "no context takeover"
            } else {
                "context takeover"
            },
            server.deflate_heap_size(),
            client.deflate_heap_size()
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
