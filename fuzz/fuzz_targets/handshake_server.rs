//! The server handshake parser: any request bytes give the same verdict,
//! event and bytes used whether they arrive at once or in pieces.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsproto_core::handshake::{Handshake, HandshakeConfig};
use wsproto_fuzz::feed_handshake;

fuzz_target!(|data: &[u8]| {
    let [a, b, input @ ..] = data else {
        return;
    };
    let capacity = 16 << 10;
    let whole = feed_handshake(
        &mut Handshake::server(HandshakeConfig::default()),
        input,
        &[],
        capacity,
    );
    let lengths = [usize::from(*a), usize::from(*b)];
    let pieces = feed_handshake(
        &mut Handshake::server(HandshakeConfig::default()),
        input,
        &lengths,
        capacity,
    );
    assert_eq!(whole, pieces);
});
