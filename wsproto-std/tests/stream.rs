//! The async adapter over loopback TCP and in-memory pipes: echoes, split
//! halves, a peer that floods while we write, back-pressure, coalesced
//! pongs and the closing handshake. Every wait is bounded by a timeout.
#![cfg(feature = "tokio")]

use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use futures_util::{FutureExt, Sink, SinkExt, StreamExt};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use wsproto_std::events::Request;
use wsproto_std::stream::{
    accept, accept_with_config, client, client_with_config, CloseFrame, Error, Message,
    WebSocketConfig, WebSocketStream,
};
use wsproto_std::{CloseCode, ConnectionState};

const LIMIT: Duration = Duration::from_secs(30);

/// An echo server for one connection on loopback; the task ends with the
/// connection.
async fn echo_server() -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<Result<(), Error>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut ws = accept(tcp).await?;
        while let Some(message) = ws.next().await {
            let message = message?;
            if message.is_text() || message.is_binary() {
                ws.send(message).await?;
            }
        }
        Ok(())
    });
    (addr, server)
}

/// A connected pair over an in-memory pipe of `capacity` bytes.
async fn pair(
    capacity: usize,
    config: WebSocketConfig,
) -> (WebSocketStream<DuplexStream>, WebSocketStream<DuplexStream>) {
    let (a, b) = tokio::io::duplex(capacity);
    let server_config = config.clone();
    let server = tokio::spawn(async move { accept_with_config(b, server_config).await });
    let (client, _) = client_with_config(a, Request::new("localhost", "/"), config)
        .await
        .unwrap();
    (client, server.await.unwrap().unwrap())
}

async fn next(
    ws: &mut WebSocketStream<impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>,
) -> Option<Message> {
    timeout(LIMIT, ws.next()).await.unwrap().map(Result::unwrap)
}

#[tokio::test]
async fn echo_round_trip_over_tcp() {
    let (addr, server) = echo_server().await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut ws, accept) = client(tcp, &addr.to_string(), "/").await.unwrap();
    assert_eq!(accept.subprotocol, None);
    assert!(ws.connection().deflate_enabled());

    let big_text = "wsproto ".repeat(128 * 1024);
    let big_binary: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
    let messages = [
        Message::text("hello"),
        Message::text("h\u{e9}llo \u{2713}"),
        Message::binary(vec![0, 1, 2, 255]),
        Message::text(big_text),
        Message::binary(big_binary),
        Message::text(""),
    ];
    for message in messages {
        ws.send(message.clone()).await.unwrap();
        assert_eq!(next(&mut ws).await, Some(message));
    }
    ws.send(Message::Ping((&b"are you there"[..]).into()))
        .await
        .unwrap();
    assert_eq!(
        next(&mut ws).await,
        Some(Message::Pong((&b"are you there"[..]).into()))
    );

    ws.close(Some(CloseFrame {
        code: CloseCode::NORMAL_CLOSURE,
        reason: "done".into(),
    }))
    .await
    .unwrap();
    assert_eq!(ws.state(), ConnectionState::Closed);
    assert!(ws.next().await.is_none());
    timeout(LIMIT, server).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn echo_without_deflate_and_fragmented_messages_are_whole() {
    let config = WebSocketConfig::default().permessage_deflate(false);
    let (mut client, mut server) = pair(1024, config).await;
    assert!(!client.connection().deflate_enabled());
    // 200 KiB through a 1 KiB pipe and 4 KiB reads: many chunks, one message.
    let data: Vec<u8> = (0..200 * 1024).map(|i| (i % 253) as u8).collect();
    let writer = tokio::spawn(async move {
        client.send(Message::binary(data)).await.unwrap();
        client
    });
    let received = next(&mut server).await.unwrap();
    assert_eq!(received.len(), 200 * 1024);
    assert!(received.is_binary());
    let mut client = writer.await.unwrap();
    server.send(Message::text("ok")).await.unwrap();
    assert_eq!(next(&mut client).await, Some(Message::text("ok")));
}

#[tokio::test]
async fn split_halves_work_concurrently() {
    let (addr, server) = echo_server().await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (ws, _) = client(tcp, &addr.to_string(), "/").await.unwrap();
    let (mut write, mut read) = ws.split();
    const N: usize = 200;
    let writer = tokio::spawn(async move {
        for i in 0..N {
            write.send(Message::text(format!("message {i}"))).await?;
        }
        Ok::<_, Error>(write)
    });
    for i in 0..N {
        let message = timeout(LIMIT, read.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(message, Message::text(format!("message {i}")));
    }
    let write = timeout(LIMIT, writer).await.unwrap().unwrap().unwrap();
    let mut ws = write.reunite(read).unwrap();
    ws.close(None).await.unwrap();
    timeout(LIMIT, server).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn a_peer_that_floods_while_we_write_does_not_deadlock() {
    const MESSAGES: usize = 64;
    const SIZE: usize = 128 * 1024;
    let config = WebSocketConfig::default()
        .permessage_deflate(false)
        .max_write_buffer_size(16 * 1024);
    let (mut peer, ours) = pair(16 * 1024, config).await;
    let run = async move {
        // Our side: one task writes 8 MiB while the read half takes the
        // peer's 8 MiB and its pings.
        let (mut write, mut read) = ours.split();
        let writer = tokio::spawn(async move {
            for _ in 0..MESSAGES {
                write.send(Message::binary(vec![7u8; SIZE])).await?;
            }
            Ok::<_, Error>(write)
        });
        let reader = tokio::spawn(async move {
            let (mut bytes, mut pings) = (0, 0);
            while bytes < MESSAGES * SIZE || pings < MESSAGES {
                match read.next().await.unwrap()? {
                    Message::Binary(data) => bytes += data.len(),
                    Message::Ping(_) => pings += 1,
                    other => panic!("unexpected {other:?}"),
                }
            }
            Ok::<_, Error>((read, pings))
        });
        // The peer writes everything, pings between messages, before it
        // reads anything.
        for i in 0..MESSAGES {
            peer.send(Message::binary(vec![9u8; SIZE])).await.unwrap();
            peer.send(Message::Ping(vec![i as u8].into()))
                .await
                .unwrap();
        }
        let (mut bytes, mut pongs) = (0, 0);
        while bytes < MESSAGES * SIZE {
            match peer.next().await.unwrap().unwrap() {
                Message::Binary(data) => bytes += data.len(),
                Message::Pong(_) => pongs += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        let write = writer.await.unwrap().unwrap();
        let (read, pings) = reader.await.unwrap().unwrap();
        (peer, write.reunite(read).unwrap(), pings, pongs)
    };
    let (mut peer, mut ours, pings, pongs) = timeout(LIMIT, run).await.expect("deadlock");
    assert_eq!(pings, MESSAGES);
    // Pongs written while our output was backed up were coalesced.
    assert!(
        pongs >= 1 && pongs <= pings,
        "{pongs} pongs for {pings} pings"
    );
    // The latest ping was answered: the last pong (maybe still in flight)
    // carries its payload.
    let closer = tokio::spawn(async move { ours.close(None).await });
    let mut last_pong = None;
    while let Some(message) = next(&mut peer).await {
        match message {
            Message::Pong(payload) => last_pong = Some(payload),
            Message::Close(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    timeout(LIMIT, closer).await.unwrap().unwrap().unwrap();
    assert!(last_pong.is_some() || pongs >= 1);
}

#[tokio::test]
async fn the_sink_waits_while_output_is_over_its_limit() {
    let config = WebSocketConfig::default()
        .permessage_deflate(false)
        .max_write_buffer_size(8 * 1024);
    let (mut ours, mut peer) = pair(4 * 1024, config).await;
    // The peer does not read: the pipe fills, then our buffer.
    let mut sent = 0;
    loop {
        let ready = poll_fn(|cx| Pin::new(&mut ours).poll_ready(cx)).now_or_never();
        match ready {
            Some(result) => result.unwrap(),
            None => break,
        }
        Pin::new(&mut ours)
            .start_send(Message::binary(vec![1u8; 1000]))
            .unwrap();
        sent += 1;
        assert!(sent < 100, "no back-pressure after {sent} messages");
    }
    assert!(sent >= 8, "only {sent} messages before back-pressure");
    // Once the peer reads, everything arrives.
    let flush = tokio::spawn(async move {
        ours.flush().await.unwrap();
        ours
    });
    for _ in 0..sent {
        assert_eq!(next(&mut peer).await.map(|m| m.len()), Some(1000));
    }
    timeout(LIMIT, flush).await.unwrap().unwrap();
}

#[tokio::test]
async fn pongs_coalesce_while_the_peer_does_not_read() {
    let config = WebSocketConfig::default()
        .permessage_deflate(false)
        .max_write_buffer_size(1024);
    let (mut ours, mut peer) = pair(2048, config).await;
    const PINGS: usize = 2000;
    // The peer pings without reading; our reader keeps reading (its pongs
    // back up, then coalesce) and stays within its buffers.
    let pinger = tokio::spawn(async move {
        for i in 0..PINGS {
            peer.send(Message::Ping(format!("{i:0>100}").into_bytes().into()))
                .await
                .unwrap();
        }
        peer.send(Message::text("end")).await.unwrap();
        peer
    });
    let mut pings = 0;
    loop {
        match next(&mut ours).await.unwrap() {
            Message::Ping(_) => pings += 1,
            Message::Text(text) if &*text == "end" => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(pings, PINGS);
    let mut peer = timeout(LIMIT, pinger).await.unwrap().unwrap();
    // Now the peer reads: far fewer pongs than pings, the last one for the
    // last ping.
    let closer = tokio::spawn(async move { ours.close(None).await });
    let mut pongs = Vec::new();
    while let Some(message) = next(&mut peer).await {
        if let Message::Pong(payload) = message {
            pongs.push(payload);
        }
    }
    timeout(LIMIT, closer).await.unwrap().unwrap().unwrap();
    assert!(pongs.len() < PINGS / 10, "{} pongs", pongs.len());
    assert_eq!(
        &pongs.last().unwrap()[..],
        format!("{:0>100}", PINGS - 1).as_bytes()
    );
}

#[tokio::test]
async fn close_handshake_started_by_either_side() {
    // We close: the peer sees our frame, answers, and both streams end.
    let (mut ours, mut peer) = pair(4096, WebSocketConfig::default()).await;
    let closer = tokio::spawn(async move {
        let frame = CloseFrame {
            code: CloseCode::GOING_AWAY,
            reason: "bye".into(),
        };
        ours.close(Some(frame)).await.map(|()| ours)
    });
    assert_eq!(
        next(&mut peer).await,
        Some(Message::Close(Some(CloseFrame {
            code: CloseCode::GOING_AWAY,
            reason: "bye".into()
        })))
    );
    assert_eq!(next(&mut peer).await, None);
    let mut ours = timeout(LIMIT, closer).await.unwrap().unwrap().unwrap();
    assert!(ours.next().await.is_none());
    assert!(matches!(
        ours.send(Message::text("late")).await,
        Err(Error::ConnectionClosed)
    ));

    // The peer closes through the sink: we get its frame, reply, and end.
    let (mut ours, mut peer) = pair(4096, WebSocketConfig::default()).await;
    SinkExt::close(&mut peer).await.unwrap();
    assert_eq!(
        next(&mut ours).await,
        Some(Message::Close(Some(CloseFrame {
            code: CloseCode::NORMAL_CLOSURE,
            reason: String::new()
        })))
    );
    assert_eq!(next(&mut ours).await, None);
    assert!(matches!(next(&mut peer).await, Some(Message::Close(_))));
    assert_eq!(next(&mut peer).await, None);
    assert_eq!(peer.state(), ConnectionState::Closed);

    // A close frame without a status code, and sending after it.
    let (mut ours, mut peer) = pair(4096, WebSocketConfig::default()).await;
    peer.send(Message::Close(None)).await.unwrap();
    assert!(matches!(
        peer.send(Message::text("late")).await,
        Err(Error::AlreadyClosed)
    ));
    assert_eq!(next(&mut ours).await, Some(Message::Close(None)));
    assert_eq!(next(&mut ours).await, None);
    assert_eq!(next(&mut peer).await, Some(Message::Close(None)));
    assert_eq!(next(&mut peer).await, None);
}

#[tokio::test]
async fn close_times_out_when_the_peer_does_not_answer() {
    let config = WebSocketConfig::default().close_timeout(Duration::from_millis(200));
    let (mut ours, _peer) = pair(4096, config).await;
    let result = timeout(LIMIT, ours.close(None)).await.unwrap();
    assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
}

#[tokio::test]
async fn a_protocol_error_is_reported_once_with_its_close_frame() {
    let (mut peer, mut ours) = pair(4096, WebSocketConfig::default()).await;
    // An unmasked frame from a client breaks RFC 6455 §5.1.
    peer.get_mut()
        .write_all(&[0x81, 0x02, b'h', b'i'])
        .await
        .unwrap();
    match timeout(LIMIT, ours.next()).await.unwrap() {
        Some(Err(Error::Protocol(err))) => assert!(!err.to_string().is_empty()),
        other => panic!("expected a protocol error, got {other:?}"),
    }
    // The close frame went out with the error, before any further poll.
    match next(&mut peer).await {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::PROTOCOL_ERROR),
        other => panic!("expected close 1002, got {other:?}"),
    }
    assert!(next(&mut ours).await.is_none());
}

#[tokio::test]
async fn a_message_over_the_limit_fails_with_1009() {
    let config = WebSocketConfig::default().permessage_deflate(false);
    let (a, b) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(accept_with_config(b, config.clone().max_message_size(1000)));
    let (mut client_ws, _) = client_with_config(a, Request::new("h", "/"), config)
        .await
        .unwrap();
    let mut ours = server.await.unwrap().unwrap();
    client_ws
        .send(Message::binary(vec![0u8; 1001]))
        .await
        .unwrap();
    assert!(matches!(
        timeout(LIMIT, ours.next()).await.unwrap(),
        Some(Err(Error::Protocol(_)))
    ));
    assert!(next(&mut ours).await.is_none());
    match next(&mut client_ws).await {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::MESSAGE_TOO_BIG),
        other => panic!("expected close 1009, got {other:?}"),
    }
}

#[tokio::test]
async fn the_end_of_the_transport_without_a_close_frame_is_an_error() {
    let (ours, peer) = pair(4096, WebSocketConfig::default()).await;
    drop(peer);
    let mut ours = ours;
    assert!(matches!(
        timeout(LIMIT, ours.next()).await.unwrap(),
        Some(Err(Error::AbnormalClosure))
    ));
    assert!(next(&mut ours).await.is_none());
}

#[tokio::test]
async fn a_bad_request_is_refused() {
    let (mut a, b) = tokio::io::duplex(4096);
    let server = tokio::spawn(accept(b));
    a.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let result = timeout(LIMIT, server).await.unwrap().unwrap();
    assert!(matches!(result, Err(Error::Protocol(_))), "{result:?}");
    let mut answer = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut a, &mut answer)
        .await
        .unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 4"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

/// Keepalive: a peer that goes silent gets a ping, and the stream ends
/// with `Error::Timeout` when no pong comes; a peer that answers pings
/// stays connected through many intervals.
#[tokio::test]
async fn keepalive_pings_a_silent_peer_then_times_out() {
    let interval = Duration::from_millis(100);
    let config = WebSocketConfig::default().keepalive(interval, interval);

    // A peer that never reads: the ping goes unanswered.
    let (a, b) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(accept_with_config(b, config.clone()));
    let (mut silent, _) = client(a, "localhost", "/").await.unwrap();
    let mut server = server.await.unwrap().unwrap();
    let started = std::time::Instant::now();
    let ended = timeout(LIMIT, server.next()).await.unwrap();
    let waited = started.elapsed();
    assert!(matches!(ended, Some(Err(Error::Timeout))), "{ended:?}");
    assert!(waited >= 2 * interval, "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert!(timeout(LIMIT, server.next()).await.unwrap().is_none());
    // The ping had reached the peer.
    let ping = timeout(LIMIT, silent.next()).await.unwrap();
    assert!(matches!(ping, Some(Ok(Message::Ping(_)))), "{ping:?}");

    // A peer that reads (so its adapter answers the pings) stays.
    let (a, b) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(accept_with_config(b, config));
    let (mut lively, _) = client(a, "localhost", "/").await.unwrap();
    let mut server = server.await.unwrap().unwrap();
    let reader = tokio::spawn(async move {
        let mut pings = 0;
        while let Some(Ok(message)) = lively.next().await {
            pings += usize::from(matches!(message, Message::Ping(_)));
        }
        pings
    });
    // Only the pongs of the keepalive pings come in for 10 intervals.
    let until = tokio::time::Instant::now() + 10 * interval;
    let mut pongs = 0;
    while let Ok(message) = tokio::time::timeout_at(until, server.next()).await {
        assert!(matches!(message, Some(Ok(Message::Pong(_)))), "{message:?}");
        pongs += 1;
    }
    assert!(pongs >= 3, "{pongs} pongs in 10 intervals");
    server.close(None).await.unwrap();
    let pings = timeout(LIMIT, reader).await.unwrap().unwrap();
    assert!(pings >= 3, "{pings} pings in 10 intervals");
}

/// The handshake deadline: a client that sends half a request head gets a
/// 408 and the server's `accept` fails with `Error::Timeout`.
#[tokio::test]
async fn a_slow_request_head_gets_408() {
    use tokio::io::AsyncReadExt;
    let config = WebSocketConfig::default().handshake_timeout(Duration::from_millis(200));
    let (mut a, b) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(accept_with_config(b, config));
    a.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let result = timeout(LIMIT, server).await.unwrap().unwrap();
    assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
    let mut reply = Vec::new();
    timeout(LIMIT, a.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap();
    assert!(
        reply.starts_with(b"HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
}

/// The closing-handshake timer of the connection's settings: after our
/// close frame, a peer that never answers ends the read half with
/// `Error::Timeout` once `settings.timers.close_timeout` passes.
#[tokio::test]
async fn an_unanswered_close_times_out_on_the_read_half() {
    let mut config = WebSocketConfig::default();
    config.settings.timers = wsproto_std::TimerConfig::default().close_timeout(200);
    let (a, b) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(accept_with_config(b, config));
    // The client stays silent once the handshake is done: no close reply.
    let (silent, _) = client(a, "localhost", "/").await.unwrap();
    let server = server.await.unwrap().unwrap();
    let (mut write, mut read) = server.split();
    write.close().await.unwrap();
    let started = std::time::Instant::now();
    let ended = timeout(LIMIT, read.next()).await.unwrap();
    assert!(matches!(ended, Some(Err(Error::Timeout))), "{ended:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
    assert!(timeout(LIMIT, read.next()).await.unwrap().is_none());
    drop(silent);
}
