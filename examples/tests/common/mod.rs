//! Client helpers shared by the attack tests of both echo servers.
#![allow(dead_code, unreachable_pub)]

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use wsproto_examples::session::Session;
use wsproto_std::events::{Event, TextMessage};
use wsproto_std::Settings;

/// A connection to `addr` with a 10 s read timeout.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Read what the server sends until it closes, at most `limit` bytes.
pub fn read_all(stream: &mut TcpStream, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < limit {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

/// An echo round trip through a fresh WebSocket client.
pub fn echo_once(addr: SocketAddr) -> Result<(), String> {
    let url = format!("ws://{addr}/")
        .parse()
        .map_err(|e| format!("{e:?}"))?;
    let mut session = Session::connect(&url, Settings::default(), Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    session
        .send(TextMessage::new("fresh"))
        .map_err(|e| e.to_string())?;
    session.flush().map_err(|e| e.to_string())?;
    match session.next_event().map_err(|e| e.to_string())? {
        Some(Ok(Event::TextMessage(m))) if &*m.data == "fresh" => Ok(()),
        other => Err(format!("{other:?}")),
    }
}
