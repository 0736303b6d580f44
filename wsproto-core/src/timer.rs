//! Deadlines, sans-I/O: the opening-handshake deadline, the closing-handshake
//! timeout and keepalive, driven by time the caller passes in.
//!
//! The core reads no clock. Time is an opaque monotonic count of ticks whose
//! unit the caller chooses: milliseconds from `std::time::Instant`, or a
//! firmware tick counter. As in quinn-proto, the caller asks
//! [`Timers::poll_timeout`] when the next deadline is, waits for input or
//! for that moment, and calls [`Timers::handle_timeout`] with the current
//! time, which says what expired.
//!
//! [`Timers`] is kept beside a [`Handshake`](crate::Handshake) and then a
//! [`Connection`](crate::Connection), told what happened through
//! [`handshake_done`](Timers::handshake_done),
//! [`received`](Timers::received), [`pong_received`](Timers::pong_received)
//! and [`close_started`](Timers::close_started). Every timer is off unless
//! configured.
//!
//! ```
//! use wsproto_core::timer::{Expired, TimerConfig, Timers};
//!
//! let config = TimerConfig::default().keepalive(30_000, Some(10_000));
//! let mut timers = Timers::new(config, 0);
//! timers.handshake_done(0);
//! assert_eq!(timers.poll_timeout(), Some(30_000));
//! // Nothing came in for 30 s: send a ping.
//! assert_eq!(timers.handle_timeout(30_000), Some(Expired::PingDue));
//! assert_eq!(timers.poll_timeout(), Some(40_000));
//! // No pong within 10 s: the peer is gone.
//! assert_eq!(timers.handle_timeout(40_000), Some(Expired::Keepalive));
//! ```

/// Which timers run, in ticks (the caller's unit). `None` turns one off;
/// all are off by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct TimerConfig {
    /// The most time the opening handshake may take, from
    /// [`Timers::new`] to [`Timers::handshake_done`]. A server answers a
    /// request head that is not complete by then with 408, or just closes.
    pub handshake_timeout: Option<u64>,
    /// The most time to wait for the peer's close frame after ours (or for
    /// the peer to close the transport after the closing handshake), from
    /// [`Timers::close_started`]; after it the transport may be dropped
    /// (RFC 6455 §7.1.1).
    pub close_timeout: Option<u64>,
    /// Send a ping when nothing was received for this long.
    pub keepalive_interval: Option<u64>,
    /// After a keepalive ping, the most time to wait for its pong; then the
    /// connection is dead: drop the transport and report a closure with
    /// code 1006, as when the transport ends.
    pub keepalive_timeout: Option<u64>,
}

impl TimerConfig {
    /// Set [`handshake_timeout`](Self::handshake_timeout).
    #[must_use]
    pub const fn handshake_timeout(mut self, ticks: u64) -> Self {
        self.handshake_timeout = Some(ticks);
        self
    }

    /// Set [`close_timeout`](Self::close_timeout).
    #[must_use]
    pub const fn close_timeout(mut self, ticks: u64) -> Self {
        self.close_timeout = Some(ticks);
        self
    }

    /// Ping after `interval` ticks without input, and give up `timeout`
    /// ticks after the ping if no pong came.
    #[must_use]
    pub const fn keepalive(mut self, interval: u64, timeout: Option<u64>) -> Self {
        self.keepalive_interval = Some(interval);
        self.keepalive_timeout = timeout;
        self
    }
}

/// What [`Timers::handle_timeout`] found expired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Expired {
    /// The opening handshake did not finish in time: a server may answer
    /// 408 (Request Timeout); then close the transport.
    Handshake,
    /// The closing handshake did not finish in time: drop the transport.
    Close,
    /// Nothing was received for the keepalive interval: send a ping now.
    PingDue,
    /// No pong came after the keepalive ping: drop the transport; the
    /// connection ended abnormally (code 1006).
    Keepalive,
}

/// The deadlines of one connection. Plain counters: 48 bytes, no heap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Timers {
    config: TimerConfig,
    /// The next moment something is due, per timer.
    handshake: Option<u64>,
    close: Option<u64>,
    /// When a ping is due, or, once sent, when its pong is overdue.
    keepalive: Option<u64>,
    /// A keepalive ping was sent and its pong has not come.
    awaiting_pong: bool,
}

impl Timers {
    /// Timers for a connection whose opening handshake starts at `now`.
    #[must_use]
    pub fn new(config: TimerConfig, now: u64) -> Self {
        Self {
            config,
            handshake: config.handshake_timeout.map(|t| now.saturating_add(t)),
            close: None,
            keepalive: None,
            awaiting_pong: false,
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &TimerConfig {
        &self.config
    }

    /// The opening handshake finished at `now`: its deadline stops, and
    /// keepalive starts.
    pub fn handshake_done(&mut self, now: u64) {
        self.handshake = None;
        self.rearm_keepalive(now);
    }

    /// Bytes came from the peer at `now`: the connection is not idle.
    pub fn received(&mut self, now: u64) {
        if !self.awaiting_pong && self.handshake.is_none() {
            self.rearm_keepalive(now);
        }
    }

    /// A pong came at `now`: the peer is alive.
    pub fn pong_received(&mut self, now: u64) {
        self.awaiting_pong = false;
        if self.handshake.is_none() {
            self.rearm_keepalive(now);
        }
    }

    /// The closing handshake began at `now` (a close frame was sent or
    /// received): its timeout starts, keepalive stops.
    pub fn close_started(&mut self, now: u64) {
        if self.close.is_none() {
            self.close = self.config.close_timeout.map(|t| now.saturating_add(t));
        }
        self.keepalive = None;
        self.awaiting_pong = false;
    }

    /// The earliest moment [`handle_timeout`](Self::handle_timeout) has
    /// something to report, if any timer runs.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        [self.handshake, self.close, self.keepalive]
            .into_iter()
            .flatten()
            .min()
    }

    /// What expired at `now`, one thing per call (call again until `None`).
    /// A [`PingDue`](Expired::PingDue) is taken as sent at `now`.
    pub fn handle_timeout(&mut self, now: u64) -> Option<Expired> {
        let due = |deadline: Option<u64>| deadline.is_some_and(|d| d <= now);
        if due(self.handshake) {
            self.handshake = None;
            return Some(Expired::Handshake);
        }
        if due(self.close) {
            self.close = None;
            return Some(Expired::Close);
        }
        if due(self.keepalive) {
            if self.awaiting_pong {
                self.keepalive = None;
                return Some(Expired::Keepalive);
            }
            self.awaiting_pong = true;
            self.keepalive = match self.config.keepalive_timeout {
                Some(timeout) => Some(now.saturating_add(timeout)),
                // Without a timeout, the next ping after another interval.
                None => {
                    self.awaiting_pong = false;
                    self.config
                        .keepalive_interval
                        .map(|i| now.saturating_add(i))
                }
            };
            return Some(Expired::PingDue);
        }
        None
    }

    fn rearm_keepalive(&mut self, now: u64) {
        if self.close.is_none() {
            self.keepalive = self
                .config
                .keepalive_interval
                .map(|i| now.saturating_add(i));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(handshake: u64, close: u64, interval: u64, timeout: u64) -> TimerConfig {
        TimerConfig {
            handshake_timeout: Some(handshake),
            close_timeout: Some(close),
            keepalive_interval: Some(interval),
            keepalive_timeout: Some(timeout),
        }
    }

    #[test]
    fn nothing_runs_by_default() {
        let mut timers = Timers::new(TimerConfig::default(), 5);
        timers.handshake_done(6);
        timers.close_started(7);
        assert_eq!(timers.poll_timeout(), None);
        assert_eq!(timers.handle_timeout(u64::MAX), None);
    }

    #[test]
    fn the_handshake_deadline_runs_from_the_start() {
        let mut timers = Timers::new(all(100, 50, 1000, 10), 10);
        assert_eq!(timers.poll_timeout(), Some(110));
        assert_eq!(timers.handle_timeout(109), None);
        assert_eq!(timers.handle_timeout(110), Some(Expired::Handshake));
        assert_eq!(timers.handle_timeout(110), None);
        // Finished in time: no handshake deadline, keepalive instead.
        let mut timers = Timers::new(all(100, 50, 1000, 10), 10);
        timers.handshake_done(60);
        assert_eq!(timers.poll_timeout(), Some(1060));
    }

    #[test]
    fn received_bytes_postpone_the_ping_and_a_pong_ends_the_wait() {
        let mut timers = Timers::new(all(100, 50, 1000, 10), 0);
        timers.handshake_done(0);
        timers.received(500);
        assert_eq!(timers.poll_timeout(), Some(1500));
        assert_eq!(timers.handle_timeout(1500), Some(Expired::PingDue));
        // Data that is not the pong does not end the wait.
        timers.received(1505);
        assert_eq!(timers.poll_timeout(), Some(1510));
        timers.pong_received(1508);
        assert_eq!(timers.poll_timeout(), Some(2508));
        assert_eq!(timers.handle_timeout(1510), None);
    }

    #[test]
    fn closing_stops_keepalive_and_starts_its_own_timeout() {
        let mut timers = Timers::new(all(100, 50, 1000, 10), 0);
        timers.handshake_done(0);
        timers.close_started(300);
        timers.received(310);
        assert_eq!(timers.poll_timeout(), Some(350));
        assert_eq!(timers.handle_timeout(400), Some(Expired::Close));
        assert_eq!(timers.poll_timeout(), None);
    }

    #[test]
    fn keepalive_without_a_timeout_pings_every_interval() {
        let config = TimerConfig {
            keepalive_interval: Some(10),
            ..TimerConfig::default()
        };
        let mut timers = Timers::new(config, 0);
        timers.handshake_done(0);
        for n in 1..5 {
            assert_eq!(timers.handle_timeout(n * 10), Some(Expired::PingDue));
        }
    }

    #[test]
    fn time_near_the_end_of_the_count_saturates() {
        let mut timers = Timers::new(all(100, 50, 1000, 10), u64::MAX - 1);
        assert_eq!(timers.poll_timeout(), Some(u64::MAX));
        assert_eq!(timers.handle_timeout(u64::MAX), Some(Expired::Handshake));
    }
}
