//! The std layer of wsproto: `WSConnection` with owned events and OS
//! randomness, over the sans-I/O core in [`wsproto_core`].

pub use wsproto_core as core;
