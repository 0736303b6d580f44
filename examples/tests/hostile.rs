//! The echo server under attack, on loopback, every loop bounded in count
//! and time, every server stopped by the test that started it: slowloris
//! heads against the connection cap, a peer that never reads, the
//! per-address limit, heads with bare LF line ends, a TLS ClientHello, and
//! an idle peer that does not answer pings.

mod common;

use common::{connect, echo_once, read_all};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use wsproto_examples::echo_server::{EchoServer, Limits, StopHandle};
use wsproto_examples::session::Session;
use wsproto_std::events::{BytesMessage, Event};
use wsproto_std::{ConnectionType, Settings, WSConnection};

/// A running echo server, stopped when dropped.
struct Running {
    addr: SocketAddr,
    stop: StopHandle,
    thread: Option<thread::JoinHandle<std::io::Result<()>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn start(limits: Limits) -> Running {
    let server = EchoServer::bind("127.0.0.1:0").unwrap().with_limits(limits);
    let addr = server.local_addr();
    let stop = server.stop_handle();
    let thread = Some(thread::spawn(move || server.run()));
    Running { addr, stop, thread }
}

/// 64 slowloris heads against a cap of 32: the excess gets 503 at once,
/// the rest 408 when the head deadline passes, and a fresh client is served
/// within that deadline (plus a margin for this machine).
#[test]
fn slowloris_heads_do_not_lock_out_fresh_clients() {
    let head_timeout = Duration::from_secs(1);
    let server = start(Limits {
        max_connections: 32,
        max_per_address: 1000,
        head_timeout,
        ..Limits::default()
    });
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
    eprintln!("slowloris: a fresh client was served after {served:?}");
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

/// Resident memory of this process, in bytes.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A peer that sends as fast as it can and never reads its echoes: the
/// server holds at most its bound for it and drops it once that has not
/// drained for the drain deadline.
#[test]
fn a_peer_that_never_reads_is_dropped_in_time() {
    let drain_timeout = Duration::from_secs(1);
    let server = start(Limits {
        max_queued: 256 << 10,
        drain_timeout,
        ..Limits::default()
    });
    let mut stream = connect(server.addr);
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut settings = Settings::default();
    settings.permessage_deflate = None;
    let mut ws = WSConnection::with_settings(ConnectionType::Client, settings);
    let request = ws
        .send(wsproto_std::events::Request::new("hostile", "/"))
        .unwrap();
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
    let before = rss();
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
                // the server given up on us? Its side of the stream is
                // closed then.
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
    let grown = rss().saturating_sub(before);
    assert!(
        dropped < Duration::from_secs(20),
        "dropped after {dropped:?}"
    );
    assert!(grown < 32 << 20, "the process grew by {grown} bytes");
    eprintln!(
        "non-reading peer: dropped after {dropped:?}, {sent} bytes sent, RSS grew {grown} bytes"
    );
}

/// More connections from one address than allowed: 503 with a reason.
#[test]
fn the_per_address_limit_answers_503() {
    let server = start(Limits {
        max_per_address: 2,
        ..Limits::default()
    });
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

/// A head with bare LF line ends is read as the library reads it (here the
/// demo page), and a TLS ClientHello gets a 400 at once rather than a wait.
#[test]
fn bare_lf_heads_and_tls_get_an_answer() {
    let server = start(Limits::default());
    let mut stream = connect(server.addr);
    stream.write_all(b"GET / HTTP/1.1\nHost: x\n\n").unwrap();
    let reply = read_all(&mut stream, 1 << 20);
    assert!(
        reply.starts_with(b"HTTP/1.1 200 OK"),
        "{:?}",
        &reply[..20.min(reply.len())]
    );

    let mut stream = connect(server.addr);
    let started = Instant::now();
    // The start of a TLS 1.2 ClientHello record.
    stream
        .write_all(&[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ])
        .unwrap();
    let reply = read_all(&mut stream, 1 << 16);
    assert!(
        reply.starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// An idle peer gets a ping; one that does not answer is closed.
#[test]
fn an_idle_peer_is_pinged_then_dropped() {
    let server = start(Limits {
        keepalive_interval: Duration::from_millis(300),
        keepalive_timeout: Duration::from_millis(300),
        ..Limits::default()
    });
    let mut stream = connect(server.addr);
    let mut ws = WSConnection::new(ConnectionType::Client);
    stream
        .write_all(
            &ws.send(wsproto_std::events::Request::new("idle", "/"))
                .unwrap(),
        )
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let mut pinged = false;
    let mut closed = false;
    for _ in 0..1000 {
        let n = stream.read(&mut buf).unwrap_or(0);
        if n == 0 {
            closed = true;
            break;
        }
        ws.receive_data(Some(&buf[..n])).unwrap();
        while let Some(event) = ws.next_event() {
            if let Ok(Event::Ping(_)) = event {
                pinged = true;
            }
        }
    }
    assert!(pinged, "no keepalive ping");
    assert!(closed, "the silent peer was not dropped");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
