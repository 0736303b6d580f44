//! The echo server and the blocking client against each other on loopback.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use wsproto_std::events::{BytesMessage, CloseConnection, Event, Ping, TextMessage};
use wsproto_std::{CloseCode, ConnectionState, Settings};

use crate::echo_server::{EchoServer, StopHandle, INDEX_HTML};
use crate::session::{Session, IO_TIMEOUT};
use crate::url::WsUrl;

struct Running {
    url: WsUrl,
    stop: StopHandle,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    fn start() -> Self {
        let server = EchoServer::bind("127.0.0.1:0").unwrap();
        let url = format!("ws://{}/", server.local_addr()).parse().unwrap();
        let stop = server.stop_handle();
        let thread = Some(std::thread::spawn(move || server.run()));
        Self { url, stop, thread }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap().unwrap();
        }
    }
}

/// Receive chunks until a whole message of the expected kind arrived.
fn receive_message(session: &mut Session) -> (bool, Vec<u8>) {
    let mut data = Vec::new();
    loop {
        match session.next_event().unwrap() {
            Some(Ok(Event::TextMessage(m))) => {
                data.extend_from_slice(m.data.as_bytes());
                if m.message_finished {
                    return (true, data);
                }
            }
            Some(Ok(Event::BytesMessage(m))) => {
                data.extend_from_slice(&m.data);
                if m.message_finished {
                    return (false, data);
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn echo_round_trips(settings: Settings) {
    let server = Running::start();
    let mut session = Session::connect(&server.url, settings, IO_TIMEOUT).unwrap();

    session.send(TextMessage::new("hello, wsproto")).unwrap();
    session.flush().unwrap();
    assert_eq!(
        receive_message(&mut session),
        (true, b"hello, wsproto".to_vec())
    );

    // 1 MiB in fragments, echoed as one message.
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    for (i, part) in big.chunks(100_000).enumerate() {
        session
            .send(BytesMessage {
                data: part.to_vec().into(),
                frame_finished: true,
                message_finished: (i + 1) * 100_000 >= big.len(),
            })
            .unwrap();
    }
    session.flush().unwrap();
    assert_eq!(receive_message(&mut session), (false, big));

    session.send(Ping::new(&b"are you there"[..])).unwrap();
    session.flush().unwrap();
    match session.next_event().unwrap() {
        Some(Ok(Event::Pong(pong))) => assert_eq!(&pong.payload[..], b"are you there"),
        other => panic!("unexpected {other:?}"),
    }

    session
        .send(CloseConnection::with_reason(
            CloseCode::NORMAL_CLOSURE,
            "bye",
        ))
        .unwrap();
    match session.next_event().unwrap() {
        Some(Ok(Event::CloseConnection(close))) => {
            assert_eq!(close.code, CloseCode::NORMAL_CLOSURE);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(session.connection().state(), ConnectionState::Closed);
    session.finish().unwrap();
}

#[test]
fn echo_with_deflate() {
    echo_round_trips(Settings::default());
}

#[test]
fn echo_without_deflate() {
    let mut settings = Settings::default();
    settings.permessage_deflate = None;
    echo_round_trips(settings);
}

#[test]
fn protocol_error_gets_its_close_code() {
    let server = Running::start();
    let session = Session::connect(&server.url, Settings::default(), IO_TIMEOUT).unwrap();
    // An unmasked frame from a client: the server must close with 1002.
    let mut stream = session.stream().try_clone().unwrap();
    stream.write_all(&[0x81, 0x02, b'h', b'i']).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    assert_eq!(reply[0], 0x88, "{reply:?}");
    assert_eq!(&reply[2..4], &1002u16.to_be_bytes());
}

#[test]
fn plain_get_serves_the_page_and_upgrades_still_work() {
    let server = Running::start();
    let mut stream = TcpStream::connect(server.url.socket_addr()).unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with(INDEX_HTML));

    let mut session = Session::connect(&server.url, Settings::default(), IO_TIMEOUT).unwrap();
    session.send(TextMessage::new("still a WebSocket")).unwrap();
    session.flush().unwrap();
    assert_eq!(receive_message(&mut session).1, b"still a WebSocket");
}

#[test]
fn stop_ends_idle_connections() {
    let server = Running::start();
    let mut session = Session::connect(&server.url, Settings::default(), IO_TIMEOUT).unwrap();
    drop(server);
    // The server shut the stream down: the client sees the end at once.
    match session.next_event().unwrap() {
        Some(Ok(Event::CloseConnection(close))) => {
            assert_eq!(close.code, CloseCode::ABNORMAL_CLOSURE);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_peer_that_writes_a_whole_big_message_before_reading() {
    // Echoing chunk by chunk, the server writes while this client is still
    // writing and not reading: past the socket buffers, only a server that
    // keeps reading while its output waits avoids a deadlock.
    use wsproto_std::{ConnectionType, WSConnection};
    let server = Running::start();
    let mut stream = TcpStream::connect(server.url.socket_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut settings = Settings::default();
    settings.permessage_deflate = None;
    let mut ws = WSConnection::with_settings(ConnectionType::Client, settings);
    let request = wsproto_std::events::Request::new(server.url.host_header(), "/");
    stream.write_all(&ws.send(request).unwrap()).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    while !matches!(ws.events().next(), Some(Ok(Event::AcceptConnection(_)))) {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed during the handshake");
        ws.receive_data(Some(&buf[..n])).unwrap();
    }
    let big = vec![b'x'; 20 << 20];
    let message = ws.send(BytesMessage::new(big)).unwrap();
    stream.write_all(&message).unwrap();
    let mut echoed = 0;
    while echoed < 20 << 20 {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {echoed} bytes");
        ws.receive_data(Some(&buf[..n])).unwrap();
        while let Some(event) = ws.events().next() {
            match event.unwrap() {
                Event::BytesMessage(m) => echoed += m.data.len(),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(echoed, 20 << 20);
}
