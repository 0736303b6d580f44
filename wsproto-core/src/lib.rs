//! A sans-I/O WebSocket protocol stack: RFC 6455 framing and handshakes,
//! RFC 7692 permessage-deflate, and the pieces RFC 8441 needs for WebSockets
//! over HTTP/2.
//!
//! The crate performs no I/O, reads no clock and no OS randomness. The caller
//! moves bytes between the network and the library:
//!
//! 1. feed received bytes to [`Connection::receive`] (or to a
//!    [`handshake::Handshake`] while the opening handshake runs);
//! 2. handle the event it returns ([`ConnectionEvent`], or an [`Event`] from
//!    the handshake), borrowed from the caller's buffer;
//! 3. discard the bytes it reports as consumed;
//! 4. send events with [`Connection::send`] into a caller-provided buffer.
//!
//! `#![no_std]` always; `alloc` (default) adds growable output, `deflate`
//! (default) adds permessage-deflate, `std` adds runtime SIMD detection and
//! `std::error::Error`.
#![no_std]
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "alloc")]
#[allow(unused_extern_crates)]
extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

pub mod close;
pub mod connection;
pub mod error;
pub mod event;
pub mod extension;
mod fields;
pub mod frame;
pub mod handshake;
mod list;
mod message;
pub mod random;
mod role;
pub mod timer;
mod utf8;

pub use close::CloseCode;
pub use connection::{
    Config, Connection, ConnectionState, Needed, Received, Role, MIN_RECEIVE_BUFFER,
};
pub use error::{BufferTooSmall, LocalProtocolError, RemoteProtocolError, SendError};
pub use event::{ConnectionEvent, Event};
pub use handshake::{Handshake, HandshakeConfig, Headers, Tokens, Upgraded};
pub use random::{NoRandom, RandomSource};

/// The crate README's example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
