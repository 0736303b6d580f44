//! Inflate through a connection: any compressed payload either decompresses
//! or fails with 1007 (or with 1009 at the message limit); feeding the frame
//! in pieces, through any output space, gives the same bytes and the same
//! verdict as feeding it at once, and so does a connection that borrows
//! its decompressor from a `DeflatePool` (reset, not freed, after each
//! message) and whose pool served a message before.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsproto_core::event::ConnectionEvent;
use wsproto_core::extension::deflate::{DeflateParams, DeflatePool};
use wsproto_core::{Config, Connection, RandomSource};

/// One compressed binary message from a server, its payload `payload`.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut wire = vec![0xC2];
    match payload.len() {
        n @ 0..=125 => wire.push(n as u8),
        n @ 126..=0xFFFF => {
            wire.push(126);
            wire.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            wire.push(127);
            wire.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    wire.extend_from_slice(payload);
    wire
}

/// The bytes of the message and the close code of the verdict (0: none),
/// fed `piece` bytes at a time through `room` bytes of output space; with
/// `pool`, the connection (whose peer resets its context) borrows it.
fn inflate(
    wire: &[u8],
    piece: usize,
    room: usize,
    pool: Option<&mut DeflatePool>,
) -> (Vec<u8>, u16) {
    let config = Config::default().max_message_size(1 << 20);
    let params = DeflateParams {
        server_no_context_takeover: pool.is_some(),
        ..DeflateParams::default()
    };
    let mut conn = Connection::client(config, |d: &mut [u8]| d.fill(0)).with_deflate(params);
    let Some(pool) = pool else {
        return drive(&mut conn, wire, piece, room);
    };
    conn.borrow_deflate_state(pool);
    let result = drive(&mut conn, wire, piece, room);
    conn.return_deflate_state(pool);
    result
}

fn drive<R: RandomSource>(
    conn: &mut Connection<R>,
    wire: &[u8],
    piece: usize,
    room: usize,
) -> (Vec<u8>, u16) {
    let mut buf = Vec::new();
    let mut out = vec![0u8; room];
    let mut message = Vec::new();
    let mut fed = 0;
    for _ in 0..10_000_000 {
        let received = conn.receive_into(&mut buf, &mut out);
        let consumed = received.consumed;
        let event = match received.event {
            Ok(event) => event,
            Err(err) => {
                let code = err.close_code().map_or(0, |c| c.as_u16());
                assert!(code == 1007 || code == 1009, "close code {code}");
                return (message, code);
            }
        };
        let (progressed, done) = match event {
            Some(ConnectionEvent::BytesMessage(m)) => {
                assert!(m.data.len() <= room);
                message.extend_from_slice(m.data);
                (true, m.message_finished)
            }
            Some(other) => panic!("unexpected {other:?}"),
            None => (consumed > 0, false),
        };
        buf.drain(..consumed);
        if done {
            return (message, 0);
        }
        if progressed {
            continue;
        }
        assert!(fed < wire.len(), "stalled with the whole frame given");
        let n = piece.min(wire.len() - fed);
        buf.extend_from_slice(&wire[fed..fed + n]);
        fed += n;
    }
    panic!("no progress");
}

fuzz_target!(|data: &[u8]| {
    let [piece, room, input @ ..] = data else {
        return;
    };
    let wire = frame(input);
    let whole = inflate(&wire, wire.len(), 1 << 16, None);
    let pieces = inflate(
        &wire,
        usize::from(*piece).max(1),
        usize::from(*room).max(4),
        None,
    );
    // A pool whose decompressor served a valid message first.
    let mut pool = DeflatePool::new();
    let hello = frame(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    assert_eq!(
        inflate(&hello, hello.len(), 64, Some(&mut pool)),
        (b"Hello".to_vec(), 0)
    );
    let pooled = inflate(
        &wire,
        usize::from(*piece).max(1),
        usize::from(*room).max(4),
        Some(&mut pool),
    );
    assert_eq!(whole.1, pooled.1, "verdicts differ with a pool");
    let n = whole.0.len().min(pooled.0.len());
    assert_eq!(whole.0[..n], pooled.0[..n], "bytes differ with a pool");
    // The verdict does not depend on the pieces; the bytes handed out agree
    // as far as both went (a violation may cut a chunk at another place).
    assert_eq!(whole.1, pieces.1, "verdicts differ");
    let n = whole.0.len().min(pieces.0.len());
    assert_eq!(whole.0[..n], pieces.0[..n], "bytes differ");
    if whole.1 == 0 {
        assert_eq!(whole.0, pieces.0, "bytes differ");
    }
});
