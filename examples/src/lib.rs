//! Shared helpers of the wsproto example programs.
//!
//! The programs live in `src/bin/`; each starts with a comment saying what
//! it does and how to run it. What several of them need is here:
//!
//! - [`url`]: `ws://` URLs;
//! - [`session`]: a [`WSConnection`](wsproto_std::WSConnection) over a
//!   blocking `TcpStream`, and the echo loop;
//! - [`echo_server`]: the echo server with the demo page;
//! - [`args`]: command-line options of the form `--name value`.

pub mod args;
pub mod echo_server;
pub mod session;
pub mod url;
mod writer;

#[cfg(test)]
mod tests;
