//! The post-handshake connection.

use crate::error::RemoteProtocolError;
use crate::event::Event;
use crate::random::{NoRandom, RandomSource};

/// Which end of the connection this is (`ConnectionType` in Python).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The end that sent the opening request; masks every frame it sends.
    Client,
    /// The end that accepted the opening request.
    Server,
}

/// Where a connection is in its lifetime (RFC 6455 §4, §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// The opening handshake is running.
    Connecting,
    /// Messages flow both ways.
    Open,
    /// The peer sent a close frame; answer it with one.
    RemoteClosing,
    /// A close frame was sent; waiting for the peer's.
    LocalClosing,
    /// The closing handshake finished, or the transport ended.
    Closed,
    /// The server is refusing the opening handshake.
    Rejecting,
}

/// Limits and settings of a [`Connection`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The largest frame payload accepted (1009 beyond).
    pub max_frame_size: u64,
    /// The largest message accepted (1009 beyond).
    pub max_message_size: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_frame_size: 64 << 20,
            max_message_size: 64 << 20,
        }
    }
}

/// The result of one call to [`Connection::receive`].
#[derive(Debug)]
#[must_use]
pub struct Received<'a> {
    /// How many bytes at the front of the buffer were used; discard them.
    pub consumed: usize,
    /// The event, `Ok(None)` when more input is needed, or the peer's
    /// violation.
    pub event: Result<Option<Event<'a>>, RemoteProtocolError>,
}

/// The post-handshake WebSocket state machine.
#[derive(Debug)]
pub struct Connection<R = NoRandom> {
    role: Role,
    state: ConnectionState,
    config: Config,
    rng: R,
}

impl Connection<NoRandom> {
    /// A server-side connection.
    #[must_use]
    pub fn server(config: Config) -> Self {
        Self {
            role: Role::Server,
            state: ConnectionState::Open,
            config,
            rng: NoRandom,
        }
    }
}

impl<R: RandomSource> Connection<R> {
    /// A client-side connection masking with keys from `rng`.
    #[must_use]
    pub fn client(config: Config, rng: R) -> Self {
        Self {
            role: Role::Client,
            state: ConnectionState::Open,
            config,
            rng,
        }
    }

    /// The current state.
    #[must_use]
    pub fn state(&self) -> ConnectionState {
        self.state
    }

    /// The role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Parse the next event from the front of `buf`.
    pub fn receive<'a>(&'a mut self, buf: &'a mut [u8]) -> Received<'a> {
        let mut key = [0u8; 4];
        self.rng.fill(&mut key);
        let _ = buf;
        Received {
            consumed: 0,
            event: Ok(None),
        }
    }
}
