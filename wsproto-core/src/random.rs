//! Injected randomness for masking keys and handshake nonces.
//!
//! The core never reads OS entropy: a client is given a [`RandomSource`] by
//! its caller, so tests can pin the wire bytes and firmware can plug in its
//! hardware generator. RFC 6455 §5.3 requires masking keys to be
//! unpredictable, so production sources must be cryptographically strong.

/// A source of random bytes for masking keys (RFC 6455 §5.3) and the
/// `Sec-WebSocket-Key` nonce (§4.1).
///
/// Any `FnMut(&mut [u8])` closure is a source:
///
/// ```
/// use wsproto_core::RandomSource;
/// let mut counter = 0u8;
/// let mut source = |dest: &mut [u8]| {
///     for b in dest {
///         counter = counter.wrapping_add(1);
///         *b = counter;
///     }
/// };
/// let mut key = [0u8; 4];
/// source.fill(&mut key);
/// assert_eq!(key, [1, 2, 3, 4]);
/// ```
pub trait RandomSource {
    /// Fill `dest` entirely with random bytes.
    fn fill(&mut self, dest: &mut [u8]);
}

impl<F: FnMut(&mut [u8])> RandomSource for F {
    fn fill(&mut self, dest: &mut [u8]) {
        self(dest)
    }
}

/// The random source of a server, which never masks and never makes a nonce.
///
/// Filling from it writes zeros; the server role never asks it for bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NoRandom;

impl RandomSource for NoRandom {
    fn fill(&mut self, dest: &mut [u8]) {
        dest.fill(0);
    }
}
