//! The async echo server (`async-echo --serve`) under attack, run as a
//! child process on a free loopback port with small limits: slowloris heads
//! against the connection cap, a peer that never reads, the per-address
//! limit, a head with bare LF line ends, and an idle peer that does not
//! answer pings. Every loop is bounded in count and time, and every server
//! is killed by the test that started it.

mod common;

use common::{connect, echo_once, read_all};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use wsproto_examples::session::Session;
use wsproto_std::events::{BytesMessage, Event, Request};
use wsproto_std::{ConnectionType, Settings, WSConnection};

/// A running `async-echo --serve`, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Start the server with `flags` and wait for its address.
    fn start(flags: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_async-echo"))
            .args(["--serve", "127.0.0.1:0"])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start async-echo");
        let stdout = child.stdout.take().expect("piped stdout");
        // Kill the child even if it never prints its address.
        let mut server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("no output from async-echo");
        server.addr = line
            .trim()
            .strip_prefix("listening on ws://")
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        server
    }

    /// The server's resident memory now and at its peak, in bytes.
    fn rss(&self) -> (usize, usize) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
                .map_or(0, |kb| kb * 1024)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

/// 64 slowloris heads against a cap of 32: the excess gets 503 at once,
/// the rest 408 when the head deadline passes, and a fresh client is served
/// within that deadline (plus a margin for this machine).
#[test]
fn slowloris_heads_do_not_lock_out_fresh_clients() {
    let head_timeout = Duration::from_secs(1);
    let server = Server::start(&[
        "--max-connections",
        "32",
        "--max-per-address",
        "1000",
        "--head-timeout",
        "1",
    ]);
    let mut slow = Vec::new();
    for _ in 0..64 {
        let mut stream = connect(server.addr);
        let _ = stream.write_all(b"GET / HTTP/1.1\r\nHost: slow\r\nX-A");
        slow.push(stream);
    }
    // Keep dripping a byte now and then, as slowloris does.
    let started = Instant::now();
    for _ in 0..3 {
        thread::sleep(Duration::from_millis(200));
        for stream in &mut slow {
            let _ = stream.write_all(b"a");
        }
    }
    let mut served = None;
    for _ in 0..100 {
        if echo_once(server.addr).is_ok() {
            served = Some(started.elapsed());
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let served = served.expect("no fresh client was served");
    eprintln!("slowloris (async): a fresh client was served after {served:?}");
    assert!(
        served < head_timeout + Duration::from_secs(3),
        "a fresh client waited {served:?}"
    );
    // Every slow client got a reason: 503 (over the cap) or 408.
    let mut statuses = [0usize; 2];
    for stream in &mut slow {
        let reply = read_all(stream, 1 << 16);
        if reply.starts_with(b"HTTP/1.1 503") {
            statuses[0] += 1;
        } else if reply.starts_with(b"HTTP/1.1 408") {
            statuses[1] += 1;
        } else {
            panic!("{:?}", String::from_utf8_lossy(&reply));
        }
    }
    assert!(statuses[0] >= 32, "{statuses:?}");
    assert!(statuses[1] >= 1, "{statuses:?}");
}

/// A peer that sends as fast as it can and never reads its echoes: the
/// server holds a bounded amount for it (its peak RSS grows by less than
/// 8 MiB with a 256 KiB bound and 256 KiB messages) and drops it once nothing drained for the drain deadline.
#[test]
fn a_peer_that_never_reads_is_dropped_in_time() {
    let server = Server::start(&["--max-queued", "262144", "--drain-timeout", "1"]);
    let mut stream = connect(server.addr);
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut settings = Settings::default();
    settings.permessage_deflate = None;
    let mut ws = WSConnection::with_settings(ConnectionType::Client, settings);
    let request = ws.send(Request::new("hostile", "/")).unwrap();
    stream.write_all(&request).unwrap();
    let mut buf = [0u8; 4096];
    for _ in 0..100 {
        let n = stream.read(&mut buf).unwrap();
        ws.receive_data(Some(&buf[..n])).unwrap();
        if let Some(event) = ws.next_event() {
            assert!(matches!(event.unwrap(), Event::AcceptConnection(_)));
            break;
        }
    }
    let frame = ws.send(BytesMessage::new(vec![0x5a; 256 << 10])).unwrap();
    let (before, _) = server.rss();
    let started = Instant::now();
    let mut sent = 0usize;
    let mut dropped = None;
    // At most 30 s and 4 GiB: the server must drop us well before either.
    while started.elapsed() < Duration::from_secs(30) && sent < 4 << 30 {
        match stream.write_all(&frame) {
            Ok(()) => sent += frame.len(),
            Err(err)
                if err.kind() == std::io::ErrorKind::WouldBlock
                    || err.kind() == std::io::ErrorKind::TimedOut =>
            {
                // Our writes stall once the server stopped reading; has
                // the server given up on us? Its side is closed then.
                stream.set_nonblocking(true).unwrap();
                let closed = matches!(stream.read(&mut buf), Ok(0))
                    || matches!(stream.read(&mut buf), Err(ref e) if e.kind() != std::io::ErrorKind::WouldBlock);
                stream.set_nonblocking(false).unwrap();
                if closed {
                    dropped = Some(started.elapsed());
                    break;
                }
            }
            Err(_) => {
                dropped = Some(started.elapsed());
                break;
            }
        }
    }
    let dropped = dropped.expect("the server kept a peer that never reads");
    let (after, peak) = server.rss();
    let grown = peak.saturating_sub(before);
    eprintln!(
        "non-reading peer (async): dropped after {dropped:?}, {sent} bytes sent, \
         server RSS {before} B before, peak {peak} B, {after} B after"
    );
    assert!(
        dropped < Duration::from_secs(10),
        "dropped after {dropped:?}"
    );
    assert!(
        grown < 8 << 20,
        "the server's peak RSS grew by {grown} bytes"
    );
}

/// More connections from one address than allowed: 503 with a reason.
#[test]
fn the_per_address_limit_answers_503() {
    let server = Server::start(&["--max-per-address", "2"]);
    let first = Session::connect(
        &format!("ws://{}/", server.addr).parse().unwrap(),
        Settings::default(),
        Duration::from_secs(5),
    )
    .unwrap();
    let second = connect(server.addr);
    thread::sleep(Duration::from_millis(100));
    let mut third = connect(server.addr);
    let reply = read_all(&mut third, 1 << 16);
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 503"), "{reply}");
    assert!(
        reply.contains("too many connections from your address"),
        "{reply}"
    );
    drop((first, second));
}

/// A handshake with bare LF line ends is accepted, as the library accepts
/// it: no head reader of the server's own waits for CRLFCRLF.
#[test]
fn a_bare_lf_head_is_accepted() {
    let server = Server::start(&[]);
    let mut stream = connect(server.addr);
    let started = Instant::now();
    stream
        .write_all(
            b"GET / HTTP/1.1\nHost: x\nUpgrade: websocket\nConnection: Upgrade\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nSec-WebSocket-Version: 13\n\n",
        )
        .unwrap();
    let mut reply = [0u8; 12];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"HTTP/1.1 101");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// An idle peer gets a ping; one that does not answer is dropped.
#[test]
fn an_idle_peer_is_pinged_then_dropped() {
    let server = Server::start(&["--keepalive-interval", "0.3", "--keepalive-timeout", "0.3"]);
    let mut stream = connect(server.addr);
    let mut ws = WSConnection::new(ConnectionType::Client);
    stream
        .write_all(&ws.send(Request::new("idle", "/")).unwrap())
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let mut pinged = None;
    let mut closed = None;
    for _ in 0..1000 {
        let n = stream.read(&mut buf).unwrap_or(0);
        if n == 0 {
            closed = Some(started.elapsed());
            break;
        }
        ws.receive_data(Some(&buf[..n])).unwrap();
        while let Some(event) = ws.next_event() {
            if let Ok(Event::Ping(_)) = event {
                pinged.get_or_insert(started.elapsed());
            }
        }
    }
    eprintln!("idle peer (async): pinged after {pinged:?}, dropped after {closed:?}");
    let pinged = pinged.expect("no keepalive ping");
    let closed = closed.expect("the silent peer was not dropped");
    assert!(pinged >= Duration::from_millis(250), "{pinged:?}");
    assert!(closed >= Duration::from_millis(550), "{closed:?}");
    assert!(closed < Duration::from_secs(5), "{closed:?}");
}
