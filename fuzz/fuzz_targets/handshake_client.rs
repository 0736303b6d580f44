//! The client handshake parser: after a request with a fixed nonce, any
//! response bytes give the same verdict, events and bytes used whether they
//! arrive at once or in pieces.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsproto_core::event::Request;
use wsproto_core::handshake::{Handshake, HandshakeConfig, Tokens};
use wsproto_fuzz::feed_handshake;

fn client() -> Handshake<wsproto_core::handshake::Client<impl FnMut(&mut [u8])>> {
    // RFC 6455 §1.3 sample nonce "the sample nonce": the accept token is
    // s3pPLMBiTxaQ9kYGzzhZRbK+xOo=.
    let mut hs = Handshake::client(HandshakeConfig::default(), |dest: &mut [u8]| {
        dest.copy_from_slice(&b"the sample nonce"[..dest.len()])
    });
    let request = Request {
        host: "server.example.com",
        target: "/chat",
        subprotocols: Tokens::new(&["chat", "superchat"]),
        ..Request::default()
    };
    let mut out = [0u8; 1024];
    hs.send(&request.into(), &mut out).expect("request fits");
    hs
}

fuzz_target!(|data: &[u8]| {
    let [a, b, input @ ..] = data else {
        return;
    };
    let capacity = 16 << 10;
    let whole = feed_handshake(&mut client(), input, &[], capacity);
    let lengths = [usize::from(*a), usize::from(*b)];
    let pieces = feed_handshake(&mut client(), input, &lengths, capacity);
    assert_eq!(whole, pieces);
});
