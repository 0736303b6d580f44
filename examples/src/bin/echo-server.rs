//! A WebSocket echo server over blocking `std::net` sockets, with a small
//! web page to try it from a browser.
//!
//! ```sh
//! cargo run --release -p wsproto-examples --bin echo-server -- --addr 127.0.0.1:8765
//! ```
//!
//! then open <http://127.0.0.1:8765/>. Every text and binary message is
//! echoed unchanged, chunk by chunk as it arrives (a message of any size
//! passes through without being buffered whole); pings are answered; the
//! closing handshake is completed; a protocol violation is answered with the
//! close code it calls for. permessage-deflate is accepted when offered.
//! Each connection has its own thread. Every wait has a deadline and every
//! buffer a bound (the whole request head within 10 s, else 408; a ping
//! after 30 s of silence, dropped without a pong in 10 s; at most a bound held
//! for a peer that does not read (64 MiB, the largest message), dropped if it
//! stays undrained for 10 s;
//! 503 past 512 connections or 64 from one address); `--help` lists the
//! flags that change them.
//! A plain HTTP `GET /` gets the demo page. Ctrl-C (SIGINT) or SIGTERM
//! stops the server. This is also the server the Autobahn TestSuite checks
//! (`scripts/autobahn.sh server`).
//!
//! Options: `--addr ADDR` (default `127.0.0.1:8765`; port 0 picks a free
//! one), `--verbose` (a line per connection on standard error; off by
//! default).

#![forbid(unsafe_code)]
use std::process::ExitCode;

use clap::Parser;
use std::time::Duration;
use wsproto_examples::cli::{bind_hint, exit_code, Failure};

use wsproto_examples::echo_server::{EchoServer, Limits};

/// A WebSocket echo server with a demo web page: every text and binary
/// message is echoed unchanged as it arrives, pings are answered, the
/// closing handshake is completed, and permessage-deflate is accepted when
/// offered. A plain HTTP GET / gets a page to try it from a browser. One
/// thread per connection; Ctrl-C or SIGTERM stops the server.
#[derive(Parser, Debug)]
#[command(
    name = "echo-server",
    after_help = "Example:\n  \
        cargo run --release -p wsproto-examples --bin echo-server -- --addr 127.0.0.1:8765\n\
        then open http://127.0.0.1:8765/ in a browser, or run the client:\n  \
        cargo run -p wsproto-examples --bin client"
)]
struct Cli {
    /// The address to listen on (port 0 picks a free one)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8765")]
    addr: String,
    /// Print a line per connection on standard error [default: off]
    #[arg(long)]
    verbose: bool,
    /// Connections served at once; more get a 503 at once
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_connections)]
    max_connections: usize,
    /// Connections from one IP address at once; more get a 503 at once
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_per_address)]
    max_per_address: usize,
    /// Seconds a client has to send its whole request head (then 408)
    #[arg(long, value_name = "SECS", default_value_t = secs(Limits::default().head_timeout))]
    head_timeout: f64,
    /// Seconds of silence from a peer before it gets a ping
    #[arg(long, value_name = "SECS", default_value_t = secs(Limits::default().keepalive_interval))]
    keepalive_interval: f64,
    /// Seconds a ping waits for its pong before the peer is dropped
    #[arg(long, value_name = "SECS", default_value_t = secs(Limits::default().keepalive_timeout))]
    keepalive_timeout: f64,
    /// Bytes of output held for a peer that does not read
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_queued)]
    max_queued: usize,
    /// Seconds held output may wait for the peer to read it (then the peer is dropped)
    #[arg(long, value_name = "SECS", default_value_t = secs(Limits::default().drain_timeout))]
    drain_timeout: f64,
    /// Seconds the peer has to answer our close frame
    #[arg(long, value_name = "SECS", default_value_t = secs(Limits::default().close_timeout))]
    close_timeout: f64,
}

fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

impl Cli {
    fn limits(&self) -> Result<Limits, Failure> {
        let duration = |name: &str, secs: f64| {
            Duration::try_from_secs_f64(secs)
                .map_err(|err| Failure::new(format!("--{name} {secs} is not a duration"), err))
        };
        Ok(Limits {
            max_connections: self.max_connections,
            max_per_address: self.max_per_address,
            head_timeout: duration("head-timeout", self.head_timeout)?,
            keepalive_interval: duration("keepalive-interval", self.keepalive_interval)?,
            keepalive_timeout: duration("keepalive-timeout", self.keepalive_timeout)?,
            max_queued: self.max_queued,
            drain_timeout: duration("drain-timeout", self.drain_timeout)?,
            close_timeout: duration("close-timeout", self.close_timeout)?,
        })
    }
}

fn main() -> ExitCode {
    exit_code(run(&Cli::parse()))
}

fn run(cli: &Cli) -> Result<(), Failure> {
    let addr = &cli.addr;
    let server = EchoServer::bind(addr)
        .map_err(|err| {
            let hint = bind_hint(&err);
            Failure::new(format!("cannot listen on {addr}"), err).with_hint(hint)
        })?
        .verbose(cli.verbose)
        .with_limits(cli.limits()?);
    let stop = server.stop_handle();
    ctrlc::set_handler(move || stop.stop())
        .map_err(|err| Failure::new("cannot handle Ctrl-C", err))?;
    let local = server.local_addr();
    println!("listening on ws://{local}");
    println!("open http://{local}/ in a browser for the demo page; Ctrl-C stops");
    server
        .run()
        .map_err(|err| Failure::new("the server failed", err))?;
    println!("stopped");
    Ok(())
}
