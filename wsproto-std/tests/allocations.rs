//! Zero allocations per message on the uncompressed path: the core's
//! `Connection` sending and receiving, and `WSConnection::send_into` into a
//! reused buffer; and in `send_into` with permessage-deflate without
//! context takeover, whose state comes from the thread's pool. Counted by a
//! counting allocator, alone in this test binary, which runs without the
//! test harness so that no other thread allocates meanwhile.

use std::alloc::System;

use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use wsproto_std::events::{BytesMessage, Event, TextMessage};
use wsproto_std::wsproto_core::event as core_event;
use wsproto_std::wsproto_core::extension::deflate::PerMessageDeflate;
use wsproto_std::wsproto_core::{Config, Connection};
use wsproto_std::Settings;

// The handshake helpers of the other tests.
mod common;
use common::{open_pair, plain};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn allocations() -> usize {
    let stats = GLOBAL.stats();
    stats.allocations + stats.reallocations
}

fn no_allocation_per_message_without_compression() {
    // The core: a client sends 1,000 messages, a server receives them.
    let mut client = Connection::client(Config::default(), |d: &mut [u8]| d.fill(7));
    let mut server = Connection::server(Config::default());
    let payload = vec![0x42u8; 1000];
    let text = "héllo ".repeat(100);
    let mut wire = vec![0u8; 4096];
    let before = allocations();
    for i in 0..1000 {
        let event: core_event::Event<'_> = if i % 2 == 0 {
            core_event::BytesMessage::new(&payload).into()
        } else {
            core_event::TextMessage::new(&text).into()
        };
        let n = client.send(&event, &mut wire).unwrap();
        let received = server.receive(&mut wire[..n]);
        assert_eq!(received.consumed, n);
        assert!(received.event.unwrap().is_some());
    }
    assert_eq!(allocations() - before, 0, "the core allocated");

    // wsproto-std: send_into a buffer that is reused.
    let (mut ws, _peer) = open_pair(plain(), plain());
    let messages: Vec<Event> = (0..1000)
        .map(|i| {
            if i % 2 == 0 {
                BytesMessage::new(payload.clone()).into()
            } else {
                TextMessage::new(text.clone()).into()
            }
        })
        .collect();
    let mut out = Vec::with_capacity(4096);
    let before = allocations();
    for message in messages {
        out.clear();
        ws.send_into(message, &mut out).unwrap();
    }
    assert_eq!(allocations() - before, 0, "send_into allocated");
}

/// Compressed messages without context takeover: after the first
/// message, `send_into` borrows the thread's pooled compressor and output
/// buffer instead of allocating them, and the idle connection holds none.
fn no_allocation_per_compressed_message_without_context_takeover() {
    let mut deflate = PerMessageDeflate::new();
    deflate.client_no_context_takeover = true;
    deflate.server_no_context_takeover = true;
    let mut settings = Settings::default();
    settings.permessage_deflate = Some(deflate);
    let (mut ws, mut peer) = open_pair(settings.clone(), settings);
    let text = "{\"id\":1,\"name\":\"héllo\",\"tags\":[\"a\",\"b\"]} ".repeat(40);
    let messages: Vec<Event> = (0..1001)
        .map(|_| TextMessage::new(text.clone()).into())
        .collect();
    let mut messages = messages.into_iter();
    let mut out = Vec::with_capacity(8192);
    // The first message fills the pool.
    ws.send_into(messages.next().unwrap(), &mut out).unwrap();
    assert_eq!(out[0] & 0x40, 0x40, "not compressed");
    let before = allocations();
    let mut sent = 0;
    for message in messages {
        out.clear();
        ws.send_into(message, &mut out).unwrap();
        sent += out.len();
    }
    assert_eq!(allocations() - before, 0, "compressed send_into allocated");
    // Compressed, and the peer reads every message back.
    assert!(
        sent < 1000 * text.len() / 4,
        "{sent} bytes for 1000 messages"
    );
    peer.receive_data(Some(&out)).unwrap();
    match peer.next_event() {
        Some(Ok(Event::TextMessage(m))) => assert_eq!(&*m.data, text.as_str()),
        other => panic!("{other:?}"),
    }
}

/// Run without the test harness, whose threads could allocate while the
/// count runs.
fn main() {
    no_allocation_per_message_without_compression();
    println!("test no_allocation_per_message_without_compression ... ok");
    no_allocation_per_compressed_message_without_context_takeover();
    println!("test no_allocation_per_compressed_message_without_context_takeover ... ok");
}
