//! Open many idle WebSocket connections to a server and report the
//! server's resident memory per connection, read from `/proc/PID/status`
//! (Linux). `scripts/idle-memory.sh` runs it against `async-echo`.
//!
//! ```sh
//! cargo run --release -p wsproto-examples --bin async-echo -- --serve 127.0.0.1:9003 &
//! cargo run --release -p wsproto-examples --bin idle-connections -- \
//!     --url ws://127.0.0.1:9003/ --server-pid $! --connections 1000
//! ```

use std::io;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use wsproto_examples::cli::{exit_code, Failure};
use wsproto_examples::url::WsUrl;
use wsproto_std::events::Request;
use wsproto_std::stream::{client_with_config, Error, Message, WebSocketConfig, WebSocketStream};

/// Open --connections idle WebSocket connections (without
/// permessage-deflate unless --deflate) to the server at --url, and print the growth of the
/// resident memory (VmRSS) of the server's process --server-pid per
/// connection. Needs a file descriptor limit above the connection count
/// (ulimit -n) in both processes.
#[derive(Parser, Debug)]
#[command(name = "idle-connections")]
struct Cli {
    /// The echo server
    #[arg(long, value_name = "URL", default_value = "ws://127.0.0.1:9003/")]
    url: WsUrl,
    /// The process id of the server, whose memory is read [default: none;
    /// required]
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// How many connections to open
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    connections: usize,
    /// How many handshakes run at once
    #[arg(long, value_name = "N", default_value_t = 256)]
    batch: usize,
    /// Before going idle, each connection sends a binary message of this
    /// many bytes and reads its echo (0: none)
    #[arg(long, value_name = "BYTES", default_value_t = 0)]
    echo_bytes: usize,
    /// Offer permessage-deflate (the server accepts it) [default: off]
    #[arg(long)]
    deflate: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    exit_code(run(&cli).await)
}

async fn run(cli: &Cli) -> Result<(), Failure> {
    let pid = cli.server_pid.ok_or_else(|| {
        Failure::msg("no server to measure").hint("give its process id with --server-pid")
    })?;
    measure(cli, pid)
        .await
        .map_err(|err| Failure::new(format!("measuring against {}", cli.url), err))
}

async fn measure(cli: &Cli, pid: u32) -> Result<(), Error> {
    // One connection first, so that what every server allocates once is
    // in the baseline.
    let warm_up = connect(&cli.url, cli.deflate).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = vm_rss_kib(pid)?;
    let mut open = Vec::with_capacity(cli.connections);
    while open.len() < cli.connections {
        let mut batch = JoinSet::new();
        for _ in 0..cli.batch.min(cli.connections - open.len()) {
            let url = cli.url.clone();
            let (echo_bytes, deflate) = (cli.echo_bytes, cli.deflate);
            batch.spawn(async move {
                let mut ws = connect(&url, deflate).await?;
                if echo_bytes > 0 {
                    ws.send(Message::binary(vec![1u8; echo_bytes])).await?;
                    ws.next().await.transpose()?;
                }
                Ok::<_, Error>(ws)
            });
        }
        while let Some(joined) = batch.join_next().await {
            open.push(joined.map_err(io::Error::other)??);
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = vm_rss_kib(pid)?;
    let per_connection = (after.saturating_sub(before)) as f64 * 1024.0 / open.len() as f64;
    println!(
        "{} idle connections (deflate: {}, echo of {} bytes each first): server VmRSS {before} KiB before, {after} KiB after, {:.0} bytes ({:.2} KiB) per connection",
        open.len(),
        cli.deflate,
        cli.echo_bytes,
        per_connection,
        per_connection / 1024.0
    );
    drop(open);
    drop(warm_up);
    Ok(())
}

async fn connect(url: &WsUrl, deflate: bool) -> Result<WebSocketStream<TcpStream>, Error> {
    let tcp = TcpStream::connect(url.socket_addr()).await?;
    let config = WebSocketConfig::default().permessage_deflate(deflate);
    let request = Request::new(url.host_header(), &url.target);
    let (ws, _) = client_with_config(tcp, request, config).await?;
    Ok(ws)
}

/// The resident set size of process `pid`, in KiB.
fn vm_rss_kib(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::other("no VmRSS line"))
}
