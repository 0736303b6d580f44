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
//! Each connection has its own thread and a 60 s read and write timeout.
//! A plain HTTP `GET /` gets the demo page. Ctrl-C (SIGINT) or SIGTERM
//! stops the server. This is also the server the Autobahn TestSuite checks
//! (`scripts/autobahn.sh server`).
//!
//! Options: `--addr ADDR` (default `127.0.0.1:8765`; port 0 picks a free
//! one), `--verbose` (a line per connection on standard error; off by
//! default).

use std::process::ExitCode;

use clap::Parser;
use wsproto_examples::cli::{bind_hint, exit_code, Failure};
use wsproto_examples::echo_server::EchoServer;

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
        .verbose(cli.verbose);
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
