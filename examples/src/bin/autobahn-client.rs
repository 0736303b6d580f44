//! The client the Autobahn TestSuite checks: it runs every case a fuzzing
//! server offers, echoing each message back.
//!
//! ```sh
//! kosoku -m fuzzingserver 127.0.0.1:9001 &
//! cargo run --release -p wsproto-examples --bin autobahn-client -- \
//!     --url ws://127.0.0.1:9001 --agent wsproto-rs
//! ```
//!
//! (`scripts/autobahn.sh client` does all of it and summarizes the report.)
//!
//! It asks `/getCaseCount` for the number of cases (a WebSocket connection
//! whose single text message is the count), runs `/runCase?case=N&agent=NAME`
//! for each, and ends with `/updateReports?agent=NAME`, after which the
//! server writes its report. In a case every message is echoed back chunk by
//! chunk, pings are answered, the closing handshake is completed, and a
//! protocol violation is answered with its close code. permessage-deflate is
//! offered as `permessage-deflate; client_max_window_bits;
//! client_no_context_takeover`, which every compression case of the suite
//! can accept. Each case has 60 s socket timeouts and a 120 s deadline. One
//! line is printed per case, numbered as the server numbers them (the case
//! ids, such as 12.1.3, are in the server's report: kosoku has no
//! `/getCaseInfo`, and runs a case for any path it does not know).
//!
//! Options: `--url URL` (default `ws://127.0.0.1:9001`), `--agent NAME`
//! (default `wsproto-rs`), `--cases N` (run only the first N cases; default:
//! all of them).

#![forbid(unsafe_code)]
use std::io;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use wsproto_core::extension::deflate::PerMessageDeflate;
use wsproto_examples::cli::{connect_hint, exit_code, Failure};
use wsproto_examples::session::{echo, Session, IO_TIMEOUT};
use wsproto_examples::url::WsUrl;
use wsproto_std::events::Event;
use wsproto_std::{ConnectionState, Settings};

/// The client the Autobahn TestSuite checks: it asks a fuzzing server for
/// its cases, runs each one (echoing every message back chunk by chunk,
/// answering pings, completing the closing handshake, offering
/// permessage-deflate), prints a line per case, and asks the server to write
/// its report.
#[derive(Parser, Debug)]
#[command(
    name = "autobahn-client",
    after_help = "Example (scripts/autobahn.sh client does all of it):\n  \
        kosoku -m fuzzingserver 127.0.0.1:9001 &\n  \
        cargo run --release -p wsproto-examples --bin autobahn-client -- \
        --url ws://127.0.0.1:9001 --agent wsproto-rs"
)]
struct Cli {
    /// The fuzzing server (ws:// only)
    #[arg(long, value_name = "URL", default_value = "ws://127.0.0.1:9001")]
    url: WsUrl,
    /// The agent name the report files the results under
    #[arg(long, value_name = "NAME", default_value = "wsproto-rs")]
    agent: String,
    /// Run only the first N cases [default: all of them]
    #[arg(long, value_name = "N")]
    cases: Option<u32>,
}

/// The longest a case may take, however the server behaves.
const CASE_DEADLINE: Duration = Duration::from_secs(120);

fn main() -> ExitCode {
    let cli = Cli::parse();
    exit_code(run(&cli.url, &cli.agent, cli.cases))
}

fn run(url: &WsUrl, agent: &str, limit: Option<u32>) -> Result<(), Failure> {
    let agent_query = query_escape(agent);
    let count_url = url.with_target("/getCaseCount");
    let count_text = fetch_text(&count_url).map_err(|err| {
        let hint = connect_hint(
            &err,
            "fuzzing server",
            &format!("kosoku -m fuzzingserver {}", url.socket_addr()),
        );
        Failure::new(format!("cannot get the case count from {count_url}"), err).with_hint(hint)
    })?;
    let mut count: u32 = count_text.trim().parse().map_err(|_| {
        Failure::msg(format!(
            "the case count {count_text:?} from {count_url} is not a number"
        ))
    })?;
    if let Some(limit) = limit {
        count = count.min(limit);
    }
    println!("{count} cases");
    for case in 1..=count {
        let label = format!("case {case}/{count}");
        let target = format!("/runCase?case={case}&agent={agent_query}");
        let started = Instant::now();
        match run_case(&url.with_target(target)) {
            Ok(outcome) => println!("{label}: {outcome} in {:.2?}", started.elapsed()),
            Err(err) => println!("{label}: {err} after {:.2?}", started.elapsed()),
        }
    }
    let report_url = url.with_target(format!("/updateReports?agent={agent_query}"));
    fetch_until_closed(&report_url)
        .map_err(|err| Failure::new(format!("cannot update the reports at {report_url}"), err))?;
    println!("reports updated");
    Ok(())
}

/// The connection settings for every case: permessage-deflate offered with
/// `client_no_context_takeover` and a bare `client_max_window_bits`,
/// compressing at level 1 (speed over ratio).
fn settings() -> Settings {
    let mut deflate = PerMessageDeflate::new();
    deflate.client_no_context_takeover = true;
    deflate.client_max_window_bits = None;
    deflate.compression_level = 1;
    let mut settings = Settings::default();
    settings.permessage_deflate = Some(deflate);
    settings
}

/// Run one case: echo until the server closes.
fn run_case(url: &WsUrl) -> io::Result<String> {
    let mut session = Session::connect(url, settings(), IO_TIMEOUT)?
        .with_deadline(Instant::now() + CASE_DEADLINE);
    let summary = echo(&mut session)?;
    let deflate = session.connection().deflate_enabled();
    session.finish()?;
    let mut outcome = format!("echoed {} messages", summary.messages);
    if deflate {
        outcome.push_str(" (deflate)");
    }
    if let Some(code) = summary.close {
        outcome.push_str(&format!(", closed with {code}"));
    }
    if let Some(err) = summary.error {
        outcome.push_str(&format!(", failed the connection: {err}"));
    }
    Ok(outcome)
}

/// Connect to `url`, take the first text message, and complete the closing
/// handshake the server starts.
fn fetch_text(url: &WsUrl) -> io::Result<String> {
    let mut session = Session::connect(url, settings(), IO_TIMEOUT)?
        .with_deadline(Instant::now() + CASE_DEADLINE);
    let mut text = String::new();
    let mut complete = false;
    while let Some(event) = session.next_event()? {
        match event {
            Ok(Event::TextMessage(m)) if !complete => {
                text.push_str(&m.data);
                complete = m.message_finished;
            }
            Ok(Event::Ping(ping)) => session.send(ping.response())?,
            Ok(Event::CloseConnection(close)) => {
                if session.connection().state() == ConnectionState::RemoteClosing {
                    session.send(close.response())?;
                }
                break;
            }
            Ok(_) => {}
            Err(err) => {
                session.send_hint(&err);
                break;
            }
        }
    }
    session.finish()?;
    if complete {
        Ok(text)
    } else {
        Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{} sent no text message", url.target),
        ))
    }
}

/// Connect to `url` and wait for the server to close the connection.
fn fetch_until_closed(url: &WsUrl) -> io::Result<()> {
    let mut session = Session::connect(url, settings(), IO_TIMEOUT)?
        .with_deadline(Instant::now() + CASE_DEADLINE);
    echo(&mut session)?;
    session.finish()
}

/// Percent-encode everything but unreserved characters (RFC 3986 §2.3).
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(
            query_escape("wsproto-rs 1.0/ü"),
            "wsproto-rs%201.0%2F%C3%BC"
        );
    }

    #[test]
    fn offer_accepted_by_every_compression_case() {
        use wsproto_core::extension::Extension;
        let mut offer = String::new();
        let Some(deflate) = settings().permessage_deflate else {
            panic!("deflate not offered");
        };
        deflate.offer(&mut offer).unwrap();
        assert_eq!(
            offer,
            "permessage-deflate; client_max_window_bits; client_no_context_takeover"
        );
    }
}
