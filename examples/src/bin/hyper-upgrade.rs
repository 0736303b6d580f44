//! A hyper 1.x HTTP/1.1 server whose `GET /ws` requests upgrade to a
//! WebSocket that echoes every message; other requests get a short text.
//!
//! ```sh
//! # A server on a free loopback port, a client's self-test against it,
//! # then exit (status 0 if every echo matched).
//! cargo run -p wsproto-examples --bin hyper-upgrade
//! # Only the server, until Ctrl-C:
//! cargo run -p wsproto-examples --bin hyper-upgrade -- --serve 127.0.0.1:8080
//! ```
//!
//! hyper parses the request; `WSConnection::initiate_upgrade_connection`
//! checks it is a valid opening handshake and negotiates
//! permessage-deflate; the connection's `AcceptConnection` head gives the
//! 101 response's headers for hyper to send. After the 101, the upgraded
//! transport (`hyper::upgrade::on`, wrapped in hyper-util's `TokioIo`) and
//! the connection become a `WebSocketStream`.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use wsproto_examples::cli::{bind_hint, exit_code, Failure};
use wsproto_std::events::{AcceptConnection, Event};
use wsproto_std::stream::{client, Error, Message, WebSocketConfig, WebSocketStream};
use wsproto_std::{ConnectionType, WSConnection};

/// A hyper HTTP/1.1 server that upgrades `GET /ws` to a WebSocket echoing
/// every message. With no option it starts on a free loopback port, runs a
/// client's self-test against it, and exits with status 0 if every echo
/// matched.
#[derive(Parser, Debug)]
#[command(
    name = "hyper-upgrade",
    after_help = "Examples:\n  \
        cargo run -p wsproto-examples --bin hyper-upgrade\n  \
        cargo run -p wsproto-examples --bin hyper-upgrade -- --serve 127.0.0.1:8080"
)]
struct Cli {
    /// Only serve, on ADDR, until Ctrl-C [default: off; a server on a free
    /// port for the self-test]
    #[arg(long, value_name = "ADDR")]
    serve: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.serve {
        Some(addr) => serve_until_ctrl_c(addr).await.map_err(|err| {
            let hint = bind_hint(&err);
            Failure::new(format!("cannot serve on {addr}"), err).with_hint(hint)
        }),
        None => serve_and_test()
            .await
            .map_err(|err| Failure::new("the self-test failed", err)),
    };
    exit_code(result)
}

async fn serve_until_ctrl_c(addr: &str) -> io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!(
        "listening on http://{}/ (WebSocket at /ws)",
        listener.local_addr()?
    );
    tokio::select! {
        () = serve(listener) => {}
        _ = tokio::signal::ctrl_c() => println!("stopped"),
    }
    Ok(())
}

async fn serve_and_test() -> Result<(), Error> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}/ (WebSocket at /ws)");
    let server = tokio::spawn(serve(listener));
    let result = timeout(Duration::from_secs(30), self_test(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the self-test took too long"));
    server.abort();
    result?
}

/// Serve HTTP/1.1 with upgrades, a task per connection.
async fn serve(listener: TcpListener) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                eprintln!("accept failed: {err}");
                continue;
            }
        };
        tokio::spawn(async move {
            let http = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service_fn(handle))
                .with_upgrades();
            if let Err(err) = http.await {
                eprintln!("{peer}: {err}");
            }
        });
    }
}

/// Answer one request: upgrade `GET /ws`, describe the server otherwise.
async fn handle(mut request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() != "/ws" {
        return Ok(text(StatusCode::OK, "a WebSocket echo is at /ws\n"));
    }
    if request.method() != Method::GET {
        return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n"));
    }
    let headers: Vec<(&str, &[u8])> = request
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_bytes()))
        .collect();
    let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut ws = WSConnection::new(ConnectionType::Server);
    if let Err(err) = ws.initiate_upgrade_connection(&headers, target) {
        return Ok(text(StatusCode::BAD_REQUEST, &format!("{err}\n")));
    }
    let Some(Ok(Event::Request(_))) = ws.next_event() else {
        return Ok(text(StatusCode::BAD_REQUEST, "not an opening handshake\n"));
    };
    // The connection writes the 101 head; hyper sends its headers.
    let response = match ws.send(AcceptConnection::default()) {
        Ok(head) => switching_protocols(&head),
        Err(err) => return Ok(text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{err}\n"))),
    };
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => {
                let io = TokioIo::new(upgraded);
                let ws = WebSocketStream::from_connection(io, ws, WebSocketConfig::default());
                if let Err(err) = echo(ws).await {
                    eprintln!("websocket: {err}");
                }
            }
            Err(err) => eprintln!("upgrade failed: {err}"),
        }
    });
    Ok(response)
}

/// Echo every message until the peer closes.
async fn echo<S>(mut ws: WebSocketStream<S>) -> Result<(), Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_text() || message.is_binary() {
            ws.send(message).await?;
        }
    }
    Ok(())
}

/// The 101 response whose headers are those of the connection's head.
fn switching_protocols(head: &[u8]) -> Response<Full<Bytes>> {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut parsed = httparse::Response::new(&mut headers);
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    if parsed.parse(head).is_ok() {
        for header in parsed.headers.iter() {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(header.name.as_bytes()),
                HeaderValue::from_bytes(header.value),
            ) {
                response.headers_mut().append(name, value);
            }
        }
    }
    response
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
}

/// A client through the upgrade: a few echoes, then the closing handshake.
async fn self_test(addr: SocketAddr) -> Result<(), Error> {
    let tcp = TcpStream::connect(addr).await?;
    let (mut ws, _) = client(tcp, &addr.to_string(), "/ws").await?;
    println!(
        "upgraded, permessage-deflate: {}",
        ws.connection().deflate_enabled()
    );
    for message in [
        Message::text("hello through hyper"),
        Message::binary(vec![7; 100_000]),
    ] {
        ws.send(message.clone()).await?;
        if ws.next().await.transpose()?.as_ref() != Some(&message) {
            return Err(io::Error::other("echo mismatch").into());
        }
        println!("echoed a message of {} bytes", message.len());
    }
    ws.close(None).await?;
    println!("closed; self-test passed");
    Ok(())
}
