//! Shared helpers of the wsproto example programs.
//!
//! The programs live in `src/bin/`; `examples/README.md` says what each one
//! shows and how to run it, and each prints its options with `--help`. What
//! several of them need is here:
//!
//! - [`cli`]: failures printed as a sentence with a hint, for `main`;
//! - [`url`]: `ws://` URLs;
//! - [`session`]: a [`WSConnection`](wsproto_std::WSConnection) over a
//!   blocking `TcpStream`, and the echo loop;
//! - [`echo_server`]: the echo server with the demo page.

#![forbid(unsafe_code)]
pub mod cli;
pub mod echo_server;
pub mod session;
pub mod url;
mod writer;

#[cfg(test)]
mod tests;
