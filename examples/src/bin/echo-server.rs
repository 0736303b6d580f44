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
//! one), `--verbose` (a line per connection on standard error).

use std::process::ExitCode;

use wsproto_examples::args::Args;
use wsproto_examples::echo_server::EchoServer;

const USAGE: &str = "usage: echo-server [--addr 127.0.0.1:8765] [--verbose]";

fn main() -> ExitCode {
    let args = Args::from_env(&["addr"], &["verbose"], USAGE);
    let addr = args.value("addr").unwrap_or("127.0.0.1:8765");
    let server = match EchoServer::bind(addr) {
        Ok(server) => server.verbose(args.flag("verbose")),
        Err(err) => {
            eprintln!("cannot listen on {addr}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let stop = server.stop_handle();
    if let Err(err) = ctrlc::set_handler(move || stop.stop()) {
        eprintln!("cannot handle Ctrl-C: {err}");
        return ExitCode::FAILURE;
    }
    let local = server.local_addr();
    println!("listening on ws://{local}");
    println!("open http://{local}/ in a browser for the demo page; Ctrl-C stops");
    match server.run() {
        Ok(()) => {
            println!("stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("server failed: {err}");
            ExitCode::FAILURE
        }
    }
}
