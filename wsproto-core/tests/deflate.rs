//! permessage-deflate (RFC 7692) through the public API: negotiation, and
//! the heap a connection holds for it, checked against the allocator. The
//! codec itself is tested inside the crate (`src/extension/deflate_tests.rs`).
#![cfg(feature = "deflate")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use wsproto_core::event::{BytesMessage, ConnectionEvent, TextMessage};
use wsproto_core::extension::deflate::{
    DeflateParams, DeflatePool, PerMessageDeflate, NAME, SUPPORTED_EXTENSIONS,
};
use wsproto_core::extension::{parse_extensions, Extension};
use wsproto_core::{CloseCode, Config, Connection, RandomSource, RemoteProtocolError, Role};

// ---------------------------------------------------------------------------
// Heap accounting: live bytes allocated by the current thread.

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    if delta > 0 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    }
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

/// Allocations (and growing reallocations) by this thread so far.
fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// ---------------------------------------------------------------------------
// Helpers.

fn params() -> DeflateParams {
    DeflateParams::default()
}

/// Send `data` as one binary message from `from` and receive it at `to`,
/// through output space of 512 bytes.
fn echo_through<A: RandomSource, B: RandomSource>(
    from: &mut Connection<A>,
    to: &mut Connection<B>,
    data: &[u8],
) -> Vec<u8> {
    let mut wire = Vec::new();
    from.send_into(&BytesMessage::new(data).into(), &mut wire)
        .unwrap();
    receive_all(to, &mut wire, 512)
}

/// Every byte of the binary messages in `wire`, received through `out_len`
/// bytes of output space.
fn receive_all<R: RandomSource>(
    conn: &mut Connection<R>,
    wire: &mut [u8],
    out_len: usize,
) -> Vec<u8> {
    let mut out = vec![0u8; out_len];
    let mut got = Vec::new();
    let mut pos = 0;
    for _ in 0..1_000_000 {
        let received = conn.receive_into(&mut wire[pos..], &mut out);
        pos += received.consumed;
        match received.event.unwrap() {
            Some(ConnectionEvent::BytesMessage(m)) => got.extend_from_slice(m.data),
            Some(other) => panic!("unexpected {other:?}"),
            None => return got,
        }
    }
    panic!("no end of events");
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
// Heap: what `deflate_heap_size` reports is what the allocator holds.

#[test]
fn deflate_heap_size_matches_what_is_allocated() {
    // The compressor comes with the first compressed message sent.
    let mut client =
        Connection::client(Config::default(), |d: &mut [u8]| d.fill(1)).with_deflate(params());
    assert_eq!(client.deflate_heap_size(), 0);
    let mut wire = Vec::with_capacity(1 << 16);
    let base = live_bytes();
    client
        .send_into(&TextMessage::new("Hello").into(), &mut wire)
        .unwrap();
    let held = (live_bytes() - base) as usize;
    let reported = client.deflate_heap_size();
    assert!(reported > 250_000, "compressor {reported}");
    assert!(
        held.abs_diff(reported) <= reported / 50,
        "held {held}, reported {reported}"
    );
    // The decompressor with the first compressed message received.
    let mut server = Connection::server(Config::default()).with_deflate(params());
    let mut out = vec![0u8; 1024];
    let base = live_bytes();
    let received = server.receive_into(&mut wire, &mut out);
    assert!(matches!(
        received.event,
        Ok(Some(ConnectionEvent::TextMessage(_)))
    ));
    let held = (live_bytes() - base) as usize;
    let inflater = server.deflate_heap_size();
    assert!(
        (30_000..60_000).contains(&inflater),
        "decompressor {inflater}"
    );
    assert!(
        held.abs_diff(inflater) <= inflater / 50,
        "held {held}, reported {inflater}"
    );
}

/// 8 MiB of zeros compressed to a few KiB: receiving it never holds more
/// than the decompressor, whatever the message size.
#[test]
fn a_deflate_bomb_never_grows_memory() {
    let mut sender = Connection::server(Config::default()).with_deflate(params());
    let zeros = vec![0u8; 8 << 20];
    let mut bomb = Vec::new();
    sender
        .send_into(&BytesMessage::new(&zeros).into(), &mut bomb)
        .unwrap();
    drop(sender);
    drop(zeros);
    assert!(bomb.len() < 16 * 1024, "{}", bomb.len());
    let config = Config::default().max_message_size(16 << 20);
    let mut receiver = Connection::client(config, |d: &mut [u8]| d.fill(1)).with_deflate(params());
    let mut out = vec![0u8; 16 * 1024];
    let base = reset_peak();
    let mut pos = 0;
    let mut total = 0;
    for _ in 0..100_000 {
        let received = receiver.receive_into(&mut bomb[pos..], &mut out);
        pos += received.consumed;
        match received.event.unwrap() {
            Some(ConnectionEvent::BytesMessage(m)) => {
                total += m.data.len();
                if m.message_finished {
                    break;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(total, 8 << 20);
    let held = peak_bytes() - base;
    assert!(held <= 64_000, "peak heap {held} bytes");
}

/// Without context takeover nothing stays after a message each way; with it
/// the compressor and decompressor do.
#[test]
fn state_is_held_only_with_context_takeover() {
    for no_context_takeover in [false, true] {
        let params = DeflateParams {
            client_no_context_takeover: no_context_takeover,
            server_no_context_takeover: no_context_takeover,
            ..params()
        };
        let mut client =
            Connection::client(Config::default(), |d: &mut [u8]| d.fill(1)).with_deflate(params);
        let mut server = Connection::server(Config::default()).with_deflate(params);
        let base = live_bytes();
        assert_eq!(echo_through(&mut client, &mut server, b"Hello"), b"Hello");
        assert_eq!(echo_through(&mut server, &mut client, b"Hello"), b"Hello");
        let held = live_bytes() - base;
        if no_context_takeover {
            assert_eq!(client.deflate_heap_size() + server.deflate_heap_size(), 0);
            assert!(held <= 0, "{held} bytes held");
        } else {
            assert!(client.deflate_heap_size() > 300_000);
            assert!(held > 600_000, "{held} bytes held");
        }
    }
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

            // And the connections they build talk to each other.
            let mut client_conn =
                Connection::new(Role::Client, Config::default(), |d: &mut [u8]| d.fill(3))
                    .with_deflate(params);
            let mut server_conn = Connection::server(Config::default()).with_deflate(params);
            let text = Rng(3).text(5_000);
            for _ in 0..2 {
                assert_eq!(
                    echo_through(&mut client_conn, &mut server_conn, &text),
                    text
                );
                assert_eq!(
                    echo_through(&mut server_conn, &mut client_conn, &text),
                    text
                );
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
        Ok(Some(ConnectionEvent::TextMessage(m))) => assert_eq!(m.data, text),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Per-message allocation and idle memory.

/// Without context takeover, connections that borrow a `DeflatePool`
/// allocate nothing per message once the pool holds a compressor, a
/// decompressor and a buffer, and hold nothing once they give them back.
#[test]
fn no_allocation_per_message_without_context_takeover_with_a_pool() {
    let params = DeflateParams {
        client_no_context_takeover: true,
        server_no_context_takeover: true,
        ..params()
    };
    let messages: Vec<Vec<u8>> = (0..8)
        .map(|i| {
            let mut rng = Rng(0x1234 + i);
            rng.text(if i % 2 == 0 { 1 << 10 } else { 40 << 10 })
        })
        .collect();
    let mut pool = DeflatePool::new();
    let mut clients: Vec<_> = (0..4)
        .map(|_| {
            Connection::client(Config::default(), |d: &mut [u8]| d.fill(1)).with_deflate(params)
        })
        .collect();
    let mut servers: Vec<_> = (0..4)
        .map(|_| Connection::server(Config::default()).with_deflate(params))
        .collect();
    let mut wire = vec![0u8; 64 << 10];
    let mut out = vec![0u8; 16 << 10];
    let mut round = |pool: &mut DeflatePool, message: &[u8]| {
        for (client, server) in clients.iter_mut().zip(&mut servers) {
            client.borrow_deflate_state(pool);
            server.borrow_deflate_state(pool);
            // Server to client, then client to server.
            let n = server
                .send(&BytesMessage::new(message).into(), &mut wire)
                .unwrap();
            let got = receive_len(client, &mut wire[..n], &mut out);
            assert_eq!(got, message.len());
            let n = client
                .send(&BytesMessage::new(message).into(), &mut wire)
                .unwrap();
            let got = receive_len(server, &mut wire[..n], &mut out);
            assert_eq!(got, message.len());
            client.return_deflate_state(pool);
            server.return_deflate_state(pool);
            assert_eq!(client.deflate_heap_size(), 0);
            assert_eq!(server.deflate_heap_size(), 0);
        }
    };
    // The first round fills the pool.
    round(&mut pool, &messages[0]);
    round(&mut pool, &messages[1]);
    let before = allocations();
    for message in messages.iter().cycle().take(32) {
        round(&mut pool, message);
    }
    assert_eq!(allocations() - before, 0, "allocations per message");
    assert!(pool.heap_size() > 0);
    pool.clear();
    assert_eq!(pool.heap_size(), 0);
}

fn receive_len<R: RandomSource>(to: &mut Connection<R>, wire: &mut [u8], out: &mut [u8]) -> usize {
    let mut pos = 0;
    let mut total = 0;
    loop {
        let received = to.receive_into(&mut wire[pos..], out);
        pos += received.consumed;
        match received.event.unwrap() {
            Some(ConnectionEvent::BytesMessage(m)) => {
                total += m.data.len();
                if m.message_finished {
                    return total;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// With context takeover under windows of 12 bits, an idle connection
/// holds at most 64 KiB: its decompressor (the 32 KiB history it must keep
/// whatever the window) and the last 4 KiB it sent, not a compressor.
#[test]
fn idle_connection_with_context_takeover_at_window_bits_12_holds_at_most_64_kib() {
    let params = DeflateParams {
        client_max_window_bits: 12,
        server_max_window_bits: 12,
        ..params()
    };
    let mut client =
        Connection::client(Config::default(), |d: &mut [u8]| d.fill(1)).with_deflate(params);
    let mut server = Connection::server(Config::default()).with_deflate(params);
    let mut wire = vec![0u8; 160 << 10];
    let mut out = vec![0u8; 16 << 10];
    let mut rng = Rng(77);
    for len in [64 << 10, 100, 5_000, 64 << 10] {
        let data = rng.text(len);
        let n = server
            .send(&BytesMessage::new(&data).into(), &mut wire)
            .unwrap();
        assert_eq!(receive_len(&mut client, &mut wire[..n], &mut out), len);
        let n = client
            .send(&BytesMessage::new(&data).into(), &mut wire)
            .unwrap();
        assert_eq!(receive_len(&mut server, &mut wire[..n], &mut out), len);
        for (who, heap) in [
            ("client", client.deflate_heap_size()),
            ("server", server.deflate_heap_size()),
        ] {
            assert!(heap <= 64 << 10, "{who}: {heap} bytes");
        }
    }
    // What the connections report is what they hold.
    let base = live_bytes();
    let reported = client.deflate_heap_size() + server.deflate_heap_size();
    drop(client);
    drop(server);
    let freed = (base - live_bytes()) as usize;
    assert!(freed >= reported, "freed {freed}, reported {reported}");
    assert!(
        freed - reported < 2_048,
        "freed {freed}, reported {reported}"
    );
}
