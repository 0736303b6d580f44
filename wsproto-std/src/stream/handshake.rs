//! The opening handshake over an async transport.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::Poll;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::{poll_fill, ticks, Error, WebSocketConfig, WebSocketStream};
use crate::events::{AcceptConnection, Event, RejectConnection, Request};
use crate::{ConnectionType, Expired, WSConnection};

/// What a server sends when the request head did not come in time.
const REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\
    Content-Length: 0\r\n\r\n";

/// Open a WebSocket as a client over `stream` (already connected to the
/// server): send the request for `path` on `host`, wait for the server's
/// answer. The default [`WebSocketConfig`] applies.
///
/// ```no_run
/// use futures_util::{SinkExt, StreamExt};
/// use wsproto_std::stream::{client, Message};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tcp = tokio::net::TcpStream::connect("127.0.0.1:8765").await?;
/// let (mut ws, _accept) = client(tcp, "127.0.0.1:8765", "/").await?;
/// ws.send(Message::text("hello")).await?;
/// println!("{:?}", ws.next().await);
/// ws.close(None).await?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// The transport failed, the server refused ([`Error::Rejected`]) or
/// answered with an invalid head ([`Error::Protocol`]).
pub async fn client<S>(
    stream: S,
    host: &str,
    path: &str,
) -> Result<(WebSocketStream<S>, AcceptConnection), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    client_with_config(stream, Request::new(host, path), WebSocketConfig::default()).await
}

/// [`client`] with a whole [`Request`] (subprotocols, extra headers) and a
/// [`WebSocketConfig`].
///
/// ```no_run
/// use wsproto_std::events::Request;
/// use wsproto_std::stream::{client_with_config, WebSocketConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tcp = tokio::net::TcpStream::connect("127.0.0.1:8765").await?;
/// let request = Request::new("127.0.0.1:8765", "/chat").with_subprotocols(["chat"]);
/// let config = WebSocketConfig::default().permessage_deflate(false);
/// let (ws, accept) = client_with_config(tcp, request, config).await?;
/// println!("subprotocol: {:?}", accept.subprotocol);
/// # drop(ws);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// As for [`client`].
pub async fn client_with_config<S>(
    mut stream: S,
    request: Request,
    config: WebSocketConfig,
) -> Result<(WebSocketStream<S>, AcceptConnection), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let mut ws = WSConnection::with_settings(ConnectionType::Client, config.connection_settings());
    let head = ws.send(request)?;
    stream.write_all(&head).await?;
    stream.flush().await?;
    drop(head);
    let mut eof = false;
    loop {
        match ws.next_event() {
            Some(Ok(Event::AcceptConnection(accept))) => {
                return Ok((WebSocketStream::started(stream, ws, &config, start), accept));
            }
            Some(Ok(Event::RejectConnection(reject))) => {
                return Err(Error::Rejected(reject.status_code));
            }
            Some(Ok(_)) => {}
            Some(Err(err)) => return Err(Error::Protocol(err)),
            None if eof => return Err(ended_early()),
            None => eof = fill_in_time(&mut stream, &mut ws, start).await?,
        }
    }
}

/// Accept a WebSocket as a server over `stream`: read the client's
/// request and accept it (permessage-deflate too when offered). The
/// default [`WebSocketConfig`] applies.
///
/// ```no_run
/// use futures_util::{SinkExt, StreamExt};
/// use wsproto_std::stream::accept;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8765").await?;
/// let (tcp, _) = listener.accept().await?;
/// let mut ws = accept(tcp).await?;
/// while let Some(message) = ws.next().await {
///     let message = message?;
///     if message.is_text() || message.is_binary() {
///         ws.send(message).await?;
///     }
/// }
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// The transport failed, or the request is not a valid opening handshake
/// ([`Error::Protocol`]; the HTTP refusal it calls for was sent).
pub async fn accept<S>(stream: S) -> Result<WebSocketStream<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    accept_with_config(stream, WebSocketConfig::default()).await
}

/// [`accept`] with a [`WebSocketConfig`].
///
/// ```no_run
/// use wsproto_std::stream::{accept_with_config, WebSocketConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8765").await?;
/// let (tcp, _) = listener.accept().await?;
/// let config = WebSocketConfig::default().max_message_size(1 << 20);
/// let ws = accept_with_config(tcp, config).await?;
/// # drop(ws);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// As for [`accept`].
pub async fn accept_with_config<S>(
    stream: S,
    config: WebSocketConfig,
) -> Result<WebSocketStream<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    accept_request(stream, config, |_| Ok(AcceptConnection::default())).await
}

/// [`accept_with_config`] where `decide` sees the client's [`Request`]
/// (target, subprotocols offered, headers) and accepts it, choosing a
/// subprotocol or adding headers, or refuses it with an HTTP status.
///
/// ```
/// use wsproto_std::events::{AcceptConnection, RejectConnection, Request};
/// use wsproto_std::stream::{accept_request, client, client_with_config, Error, WebSocketConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Error> {
/// let (a, b) = tokio::io::duplex(4096);
/// let server = tokio::spawn(accept_request(b, WebSocketConfig::default(), |request| {
///     if request.target != "/chat" {
///         return Err(RejectConnection { status_code: 404, ..RejectConnection::default() });
///     }
///     let chat = request.subprotocols.iter().any(|p| p == "chat");
///     Ok(AcceptConnection { subprotocol: chat.then(|| "chat".into()), ..AcceptConnection::default() })
/// }));
/// let request = Request::new("localhost", "/chat").with_subprotocols(["chat"]);
/// let (ws, accept) = client_with_config(a, request, WebSocketConfig::default()).await?;
/// assert_eq!(accept.subprotocol.as_deref(), Some("chat"));
/// assert_eq!(server.await.unwrap()?.connection().subprotocol(), Some("chat"));
///
/// let (a, b) = tokio::io::duplex(4096);
/// let server = tokio::spawn(accept_request(b, WebSocketConfig::default(), |_| {
///     Err(RejectConnection { status_code: 403, ..RejectConnection::default() })
/// }));
/// assert!(matches!(client(a, "localhost", "/").await, Err(Error::Rejected(403))));
/// assert!(matches!(server.await.unwrap(), Err(Error::Rejected(403))));
/// # drop(ws);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// As for [`accept`]; [`Error::Rejected`] when `decide` refused (the
/// refusal was sent).
pub async fn accept_request<S, F>(
    mut stream: S,
    config: WebSocketConfig,
    decide: F,
) -> Result<WebSocketStream<S>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(&Request) -> Result<AcceptConnection, RejectConnection>,
{
    let start = Instant::now();
    let mut ws = WSConnection::with_settings(ConnectionType::Server, config.connection_settings());
    let mut eof = false;
    let mut decide = Some(decide);
    loop {
        match ws.next_event() {
            Some(Ok(Event::Request(request))) => {
                let Some(decide) = decide.take() else {
                    continue;
                };
                let answer = decide(&request);
                let status = answer.as_ref().err().map(|reject| reject.status_code);
                let head = match answer {
                    Ok(accept) => ws.send(accept)?,
                    Err(reject) => ws.send(RejectConnection {
                        has_body: false,
                        ..reject
                    })?,
                };
                stream.write_all(&head).await?;
                stream.flush().await?;
                if let Some(status) = status {
                    let _ = stream.shutdown().await;
                    return Err(Error::Rejected(status));
                }
                return Ok(WebSocketStream::started(stream, ws, &config, start));
            }
            Some(Ok(_)) => {}
            Some(Err(err)) => {
                let mut refusal = Vec::new();
                if ws.send_core(&err.event_hint(), &mut refusal).is_ok() {
                    // The peer may be gone; the error says what happened.
                    let _ = stream.write_all(&refusal).await;
                    let _ = stream.shutdown().await;
                }
                return Err(Error::Protocol(err));
            }
            None if eof => return Err(ended_early()),
            None => match fill_in_time(&mut stream, &mut ws, start).await {
                Err(Error::Timeout) => {
                    // The client may be gone or not reading; it gets one try.
                    write_without_waiting(&mut stream, REQUEST_TIMEOUT).await;
                    return Err(Error::Timeout);
                }
                filled => eof = filled?,
            },
        }
    }
}

/// Read once into `ws`, within the handshake deadline of its timers (if
/// one is set); [`Error::Timeout`] when it passes. `true` at the end of
/// the transport.
async fn fill_in_time<S: AsyncRead + Unpin>(
    stream: &mut S,
    ws: &mut WSConnection,
    start: Instant,
) -> Result<bool, Error> {
    loop {
        if let Some(Expired::Handshake) = ws.handle_timeout(ticks(start)) {
            return Err(Error::Timeout);
        }
        let Some(deadline) = ws.poll_timeout() else {
            return Ok(poll_fn(|cx| poll_fill(stream, ws, cx)).await?);
        };
        let at = start + std::time::Duration::from_millis(deadline);
        if let Ok(filled) =
            tokio::time::timeout_at(at, poll_fn(|cx| poll_fill(stream, ws, cx))).await
        {
            return Ok(filled?);
        }
    }
}

/// Write a short answer to a peer that may not read: one write that waits
/// for nothing, then shut the write side down if it all went.
async fn write_without_waiting<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) {
    let written = poll_fn(|cx| match Pin::new(&mut *stream).poll_write(cx, bytes) {
        Poll::Pending => Poll::Ready(Ok(0)),
        ready => ready,
    })
    .await;
    if matches!(written, Ok(n) if n == bytes.len()) {
        let _ = poll_fn(|cx| match Pin::new(&mut *stream).poll_shutdown(cx) {
            Poll::Pending => Poll::Ready(Ok(())),
            ready => ready,
        })
        .await;
    }
}

fn ended_early() -> Error {
    Error::Io(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the peer closed the transport during the opening handshake",
    ))
}
