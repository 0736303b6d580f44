//! Payloads the caller keeps do not pin the receive buffer: measured with
//! a counting allocator, alone in this test binary, which runs without the
//! test harness so that no other thread allocates meanwhile.

mod common;

use common::{open_pair, plain};
use std::alloc::System;

use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use wsproto_std::events::{BytesMessage, Event};

/// Counts the bytes allocated and not yet freed.
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn live() -> isize {
    let stats = GLOBAL.stats();
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize + stats.bytes_reallocated
}

/// Small payloads kept after the connection is gone do not keep blocks of
/// the receive buffer alive: 2,000 one-byte messages behind a 60 KiB one
/// keep about 63 KB alive whatever their number (sharing the buffer they
/// came from, about 125 KB).
fn kept_payloads_do_not_pin_the_receive_buffer() {
    let (mut client, mut server) = open_pair(plain(), plain());
    let big = client.send(BytesMessage::new(vec![7u8; 60 << 10])).unwrap();
    let small: Vec<Vec<u8>> = (0..2000u32)
        .map(|i| client.send(BytesMessage::new(vec![i as u8])).unwrap())
        .collect();
    let mut kept = Vec::with_capacity(2000);
    let before = live();
    // Each message arrives in a read of its own, as from a socket.
    server.receive_data(Some(&big)).unwrap();
    while let Some(event) = server.next_event() {
        assert!(matches!(event.unwrap(), Event::BytesMessage(_)));
    }
    for frame in &small {
        server.receive_data(Some(frame)).unwrap();
        while let Some(event) = server.next_event() {
            match event.unwrap() {
                Event::BytesMessage(m) => kept.push(m.data),
                other => panic!("{other:?}"),
            }
        }
    }
    drop(server);
    drop(client);
    assert_eq!(kept.len(), 2000);
    let held = live() - before;
    // Each payload costs its own small allocation; none keeps a block of
    // the receive buffer alive.
    assert!(
        held < 100 << 10,
        "2,000 one-byte payloads keep {held} bytes alive"
    );
}

/// Run without the test harness, whose threads could allocate while the
/// count runs.
fn main() {
    kept_payloads_do_not_pin_the_receive_buffer();
    println!("test kept_payloads_do_not_pin_the_receive_buffer ... ok");
}
