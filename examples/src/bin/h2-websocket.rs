//! WebSockets over HTTP/2 (RFC 8441): a server and a client in one program,
//! over loopback, with the `h2` crate's extended CONNECT.
//!
//! ```sh
//! cargo run -p wsproto-examples --bin h2-websocket
//! ```
//!
//! The client opens an HTTP/2 stream with `:method = CONNECT` and
//! `:protocol = websocket`, offering permessage-deflate in
//! `sec-websocket-extensions`; the server, which announced
//! `SETTINGS_ENABLE_CONNECT_PROTOCOL`, answers 200 with the extension it
//! accepted. There is no HTTP/1.1 upgrade, so no `Handshake`: each side
//! builds a `wsproto_core::Connection` directly (`Connection::server`,
//! `Connection::client` with a random source for the masking keys), applies
//! the negotiated extensions (`ExtensionSet::apply`), and moves WebSocket frames in
//! the stream's DATA frames. The server echoes; the client sends a few
//! messages and a ping, checks the echoes, closes, and the program exits
//! (status 0 if every echo matched). Closing the WebSocket ends the stream;
//! the HTTP/2 connection ends with the client.

#![forbid(unsafe_code)]
use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use h2::ext::Protocol;
use h2::{RecvStream, SendStream};
use http::{Method, Request, Response, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use wsproto_core::event::{
    BytesMessage, CloseConnection, ConnectionEvent, Event, Ping, TextMessage,
};
use wsproto_core::extension::deflate::PerMessageDeflate;
use wsproto_core::extension::Extension;
use wsproto_core::handshake::{
    client_extensions_handshake, server_extensions_handshake, ExtensionSet,
};
use wsproto_core::{CloseCode, Config, Connection, ConnectionState, RandomSource};
use wsproto_examples::cli::{exit_code, Failure};
use wsproto_std::OsRng;

type BoxError = Box<dyn Error + Send + Sync>;

/// How long the whole exchange may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// WebSockets over HTTP/2 (RFC 8441), a server and a client in one program
/// over loopback. The client opens an HTTP/2 stream with an extended CONNECT
/// (:protocol = websocket) offering permessage-deflate; the server accepts;
/// each side runs a wsproto Connection over the stream's DATA frames. The
/// client sends text, 300 000 bytes of binary data and a ping, checks the
/// echoes, and closes. Exits with status 0 if every echo matched, within
/// 30 s.
#[derive(Parser, Debug)]
#[command(
    name = "h2-websocket",
    after_help = "It takes no options. Example:\n  \
        cargo run -p wsproto-examples --bin h2-websocket"
)]
struct Cli {}

#[tokio::main]
async fn main() -> ExitCode {
    let Cli {} = Cli::parse();
    let result = match timeout(RUN_TIMEOUT, run()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(Failure::msg(err.to_string())),
        Err(_) => Err(Failure::msg(format!(
            "the exchange took more than {} s",
            RUN_TIMEOUT.as_secs()
        ))),
    };
    exit_code(result)
}

async fn run() -> Result<(), BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("HTTP/2 server on {addr}");
    let server = tokio::spawn(serve_one_connection(listener));
    let client = run_client(addr).await;
    // The server ends when the client's HTTP/2 connection does.
    let server = server.await?;
    client?;
    server
}

// ---------------------------------------------------------------------------
// A WebSocket connection over one HTTP/2 stream.

/// A `Connection` whose bytes travel in the DATA frames of an HTTP/2 stream.
struct StreamWs<R> {
    conn: Connection<R>,
    recv: RecvStream,
    send: SendStream<Bytes>,
    /// Received bytes not yet consumed by the connection.
    rx: Vec<u8>,
    /// Output space for decompressed data (permessage-deflate).
    inflated: Vec<u8>,
    eof: bool,
}

impl<R: RandomSource> StreamWs<R> {
    fn new(conn: Connection<R>, recv: RecvStream, send: SendStream<Bytes>) -> Self {
        Self {
            conn,
            recv,
            send,
            rx: Vec::new(),
            inflated: vec![0; 16 << 10],
            eof: false,
        }
    }

    /// Hand the next event to `handle`, reading DATA frames as needed;
    /// `None` at the end of the stream or once the connection is closed.
    ///
    /// The event borrows the receive buffers only, so `handle` gets the
    /// connection too and encodes any reply into the output it is given
    /// while the event is alive: nothing is copied out first. The output
    /// goes out in a DATA frame. A peer's violation is answered with its
    /// close frame and ends the stream with an error.
    async fn with_next_event<T>(
        &mut self,
        mut handle: impl FnMut(&mut Connection<R>, ConnectionEvent<'_>, &mut Vec<u8>) -> T,
    ) -> Result<Option<T>, BoxError> {
        // Each pass consumes bytes, yields an event or reads; bound it anyway.
        for _ in 0..1_000_000 {
            let received = self.conn.receive_into(&mut self.rx, &mut self.inflated);
            let consumed = received.consumed;
            let mut out = Vec::new();
            let result = match received.event {
                Ok(Some(event)) => Some(handle(&mut self.conn, event, &mut out)),
                Ok(None) => None,
                Err(err) => {
                    self.conn.send_into(&err.event_hint(), &mut out)?;
                    self.send.send_data(Bytes::from(out), false)?;
                    return Err(err.into());
                }
            };
            self.rx.drain(..consumed);
            if !out.is_empty() {
                self.send.send_data(Bytes::from(out), false)?;
            }
            if result.is_some() {
                return Ok(result);
            }
            if self.eof || self.conn.state() == ConnectionState::Closed {
                return Ok(None);
            }
            match self.recv.data().await {
                Some(chunk) => {
                    let chunk = chunk?;
                    // Let the peer send more: HTTP/2 flow control.
                    self.recv.flow_control().release_capacity(chunk.len())?;
                    self.rx.extend_from_slice(&chunk);
                }
                None => {
                    self.eof = true;
                    if let Some(event) = self.conn.receive_eof() {
                        let mut out = Vec::new();
                        return Ok(Some(handle(&mut self.conn, event, &mut out)));
                    }
                }
            }
        }
        Err("no progress".into())
    }

    /// Send one event in a DATA frame.
    fn send(&mut self, event: &Event<'_>) -> Result<(), BoxError> {
        let mut out = Vec::new();
        self.conn.send_into(event, &mut out)?;
        self.send.send_data(Bytes::from(out), false)?;
        Ok(())
    }

    /// End our half of the stream (END_STREAM, the HTTP/2 counterpart of
    /// a TCP FIN), then wait a few seconds for the peer to end its half:
    /// dropping a stream the peer still sends on would reset it.
    async fn finish(mut self) -> Result<(), BoxError> {
        self.send.send_data(Bytes::new(), true)?;
        let rest = async {
            while let Some(chunk) = self.recv.data().await {
                let chunk = chunk?;
                self.recv.flow_control().release_capacity(chunk.len())?;
            }
            Ok::<(), h2::Error>(())
        };
        timeout(Duration::from_secs(5), rest).await??;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The server.

/// Accept one TCP connection and serve its HTTP/2 streams until the client
/// closes it.
async fn serve_one_connection(listener: TcpListener) -> Result<(), BoxError> {
    let (socket, peer) = listener.accept().await?;
    let mut h2 = h2::server::Builder::new()
        .enable_connect_protocol()
        .handshake::<_, Bytes>(socket)
        .await?;
    println!("server: HTTP/2 connection from {peer}");
    let mut streams = tokio::task::JoinSet::new();
    // `accept` also drives the connection; it returns None once it is closed.
    while let Some(request) = h2.accept().await {
        let (request, respond) = request?;
        streams.spawn(async move {
            if let Err(err) = serve_stream(request, respond).await {
                eprintln!("server: stream failed: {err}");
            }
        });
    }
    while streams.join_next().await.is_some() {}
    println!("server: HTTP/2 connection closed");
    Ok(())
}

/// Check an extended CONNECT for `websocket`, accept it, and echo.
async fn serve_stream(
    request: Request<RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
) -> Result<(), BoxError> {
    let is_websocket = request.method() == Method::CONNECT
        && request
            .extensions()
            .get::<Protocol>()
            .is_some_and(|p| p.as_str() == "websocket");
    let version_13 = request
        .headers()
        .get("sec-websocket-version")
        .is_some_and(|v| v.as_bytes() == b"13");
    if !is_websocket || !version_13 {
        let refusal = Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(())?;
        respond.send_response(refusal, true)?;
        return Ok(());
    }
    println!("server: extended CONNECT for {}", request.uri().path());

    // The same extension negotiation as over HTTP/1.1 (RFC 8441 §5).
    let mut deflate = Some(PerMessageDeflate::new());
    let offers: Vec<&str> = request
        .headers()
        .get_all("sec-websocket-extensions")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let mut accepted = String::new();
    let negotiated = server_extensions_handshake(offers, &mut deflate, &mut accepted);
    let mut response = Response::builder().status(StatusCode::OK);
    if let Ok(true) = negotiated {
        response = response.header("sec-websocket-extensions", accepted.as_str());
    }
    let send = respond.send_response(response.body(())?, false)?;

    // The extensions negotiated, applied to the connection.
    let conn = deflate.apply(Connection::server(Config::default()));
    if conn.deflate_enabled() {
        println!("server: permessage-deflate accepted: {accepted}");
    }
    let mut ws = StreamWs::new(conn, request.into_body(), send);
    loop {
        let go_on = ws.with_next_event(|conn, event, out| {
            let echo = match event {
                // A chunk goes back as a frame of the same message.
                ConnectionEvent::TextMessage(m) => Some(Event::TextMessage(TextMessage {
                    frame_finished: true,
                    ..m
                })),
                ConnectionEvent::BytesMessage(m) => Some(Event::BytesMessage(BytesMessage {
                    frame_finished: true,
                    ..m
                })),
                // The pong for a ping, the close reply to a close: when due.
                ref other => conn.reply_to(other),
            };
            if let Some(echo) = echo {
                // A reply the state no longer allows is not sent.
                let _ = conn.send_into(&echo, out);
            }
            !matches!(event, ConnectionEvent::CloseConnection(_))
        });
        match go_on.await {
            Ok(Some(true)) => {}
            Ok(Some(false) | None) => break,
            Err(err) => {
                println!("server: {err}");
                break;
            }
        }
    }
    ws.finish().await?;
    println!("server: WebSocket closed");
    Ok(())
}

// ---------------------------------------------------------------------------
// The client.

async fn run_client(addr: SocketAddr) -> Result<(), BoxError> {
    let socket = TcpStream::connect(addr).await?;
    let (client, connection) = h2::client::handshake(socket).await?;
    // The connection future does the I/O; it ends when every handle is gone.
    let driver = tokio::spawn(connection);
    let mut client = client.ready().await?;

    // Extended CONNECT needs the server's SETTINGS_ENABLE_CONNECT_PROTOCOL,
    // which arrives with its first SETTINGS frame.
    for _ in 0..200 {
        if client.is_extended_connect_protocol_enabled() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if !client.is_extended_connect_protocol_enabled() {
        return Err("the server does not support extended CONNECT".into());
    }

    let mut deflate = Some(PerMessageDeflate::new());
    let mut offer = String::new();
    if let Some(d) = &deflate {
        d.offer(&mut offer)?;
    }
    let mut request = Request::builder()
        .method(Method::CONNECT)
        .uri(format!("http://{addr}/chat"))
        .header("sec-websocket-version", "13")
        .header("sec-websocket-extensions", offer.as_str())
        .body(())?;
    request
        .extensions_mut()
        .insert(Protocol::from_static("websocket"));
    let (response, send) = client.send_request(request, false)?;
    let response = response.await?;
    if response.status() != StatusCode::OK {
        return Err(format!("the server refused: {}", response.status()).into());
    }
    let answers: Vec<&str> = response
        .headers()
        .get_all("sec-websocket-extensions")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    client_extensions_handshake(answers, &mut deflate)?;
    let conn = deflate.apply(Connection::client(Config::default(), OsRng::new()));
    println!(
        "client: WebSocket open over HTTP/2, permessage-deflate: {}",
        conn.deflate_enabled()
    );
    let recv = response.into_body();
    let mut ws = StreamWs::new(conn, recv, send);

    let long_text = "over HTTP/2 ".repeat(10_000);
    let texts = [
        "Hello over HTTP/2",
        "h\u{e9}llo, w\u{f6}rld \u{2713}",
        &long_text,
    ];
    for text in texts {
        ws.send(&Event::TextMessage(TextMessage::new(text)))?;
        let echo = receive_text(&mut ws).await?;
        if echo != text {
            return Err(format!("echo mismatch for a text of {} bytes", text.len()).into());
        }
        println!("client: text of {} bytes echoed", text.len());
    }
    let data: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    ws.send(&Event::BytesMessage(BytesMessage::new(&data)))?;
    if receive_binary(&mut ws).await? != data {
        return Err("binary echo mismatch".into());
    }
    println!("client: {} bytes of binary data echoed", data.len());

    ws.send(&Event::Ping(Ping { payload: b"h2" }))?;
    let pong = ws
        .with_next_event(
            |_, event, _| matches!(event, ConnectionEvent::Pong(p) if p.payload == b"h2"),
        )
        .await?;
    if pong != Some(true) {
        return Err("expected the pong".into());
    }
    println!("client: pong");

    ws.send(&Event::CloseConnection(CloseConnection {
        code: CloseCode::NORMAL_CLOSURE,
        reason: "done",
    }))?;
    let closed = ws
        .with_next_event(|_, event, _| match event {
            ConnectionEvent::CloseConnection(close) => {
                println!("client: closed with {} {:?}", close.code, close.reason);
                true
            }
            _ => false,
        })
        .await?;
    if closed != Some(true) {
        return Err("expected the close frame".into());
    }
    ws.finish().await?;
    drop(client);
    driver.await??;
    println!("client: done");
    Ok(())
}

async fn receive_text<R: RandomSource>(ws: &mut StreamWs<R>) -> Result<String, BoxError> {
    let mut text = String::new();
    loop {
        let step = ws
            .with_next_event(|_, event, _| match event {
                ConnectionEvent::TextMessage(m) => {
                    text.push_str(m.data);
                    Ok(m.message_finished)
                }
                other => Err(format!("expected text, got {other:?}")),
            })
            .await?;
        match step {
            Some(Ok(true)) => return Ok(text),
            Some(Ok(false)) => {}
            Some(Err(err)) => return Err(err.into()),
            None => return Err("the stream ended".into()),
        }
    }
}

async fn receive_binary<R: RandomSource>(ws: &mut StreamWs<R>) -> Result<Vec<u8>, BoxError> {
    let mut data = Vec::new();
    loop {
        let step = ws
            .with_next_event(|_, event, _| match event {
                ConnectionEvent::BytesMessage(m) => {
                    data.extend_from_slice(m.data);
                    Ok(m.message_finished)
                }
                other => Err(format!("expected binary data, got {other:?}")),
            })
            .await?;
        match step {
            Some(Ok(true)) => return Ok(data),
            Some(Ok(false)) => {}
            Some(Err(err)) => return Err(err.into()),
            None => return Err("the stream ended".into()),
        }
    }
}
