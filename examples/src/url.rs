//! `ws://` URLs for the example clients, parsed by the `url` crate: a host,
//! a port and a request target. There is no TLS in the examples, so
//! `wss://` is refused.

use std::fmt;

use ::url::{Host, Url};

/// A parsed `ws://host[:port][/path][?query]` URL.
///
/// ```
/// use wsproto_examples::url::WsUrl;
///
/// let url: WsUrl = "ws://127.0.0.1:9001/runCase?case=1".parse()?;
/// assert_eq!(url.host, "127.0.0.1");
/// assert_eq!(url.port, 9001);
/// assert_eq!(url.target, "/runCase?case=1");
/// assert_eq!(url.host_header(), "127.0.0.1:9001");
/// assert_eq!(url.to_string(), "ws://127.0.0.1:9001/runCase?case=1");
///
/// let url: WsUrl = "ws://[::1]".parse()?;
/// assert_eq!((url.host.as_str(), url.port, url.target.as_str()), ("::1", 80, "/"));
/// assert_eq!(url.host_header(), "[::1]");
/// # Ok::<(), wsproto_examples::url::UrlError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsUrl {
    /// The host name or address, without the brackets of an IPv6 literal.
    pub host: String,
    /// The port (80 when the URL gives none).
    pub port: u16,
    /// The request target: path and query, at least `/`.
    pub target: String,
}

/// Why a string is not a `ws://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlError(String);

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UrlError {}

impl WsUrl {
    /// The value of the `Host` header: the host, and the port unless it is
    /// the default one.
    #[must_use]
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The same server with another request target.
    #[must_use]
    pub fn with_target(&self, target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            ..self.clone()
        }
    }

    /// `host:port`, as `TcpStream::connect` takes it.
    #[must_use]
    pub fn socket_addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for WsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ws://{}{}", self.host_header(), self.target)
    }
}

impl std::str::FromStr for WsUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let url = Url::parse(s).map_err(|err| UrlError(format!("{s:?} is not a URL: {err}")))?;
        match url.scheme() {
            "ws" => {}
            "wss" => {
                return Err(UrlError(
                    "wss:// needs TLS, which the examples do not have; use ws://".to_owned(),
                ))
            }
            other => {
                return Err(UrlError(format!(
                    "the URL must start with ws://, not {other}://"
                )))
            }
        }
        // RFC 6455 §3: a WebSocket URI has no fragment.
        if url.fragment().is_some() {
            return Err(UrlError("a ws:// URL has no #fragment".to_owned()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError("the examples send no credentials".to_owned()));
        }
        let host = match url.host() {
            Some(Host::Domain(name)) => name.to_owned(),
            Some(Host::Ipv4(ip)) => ip.to_string(),
            Some(Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(UrlError("the URL has no host".to_owned())),
        };
        // `ws` is one of the URL standard's special schemes: port 80 by
        // default, and the path is at least `/`.
        let port = url.port_or_known_default().unwrap_or(80);
        let target = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        Ok(Self { host, port, target })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        let url: WsUrl = "ws://localhost:8765".parse().unwrap();
        assert_eq!(url.target, "/");
        assert_eq!(url.socket_addr(), "localhost:8765");
        let url: WsUrl = "ws://h?x=1".parse().unwrap();
        assert_eq!(url.target, "/?x=1");
        let url: WsUrl = "ws://[::1]:9/a".parse().unwrap();
        assert_eq!(url.socket_addr(), "[::1]:9");
        assert_eq!(url.host_header(), "[::1]:9");
        let url: WsUrl = "ws://127.0.0.1:80/".parse().unwrap();
        assert_eq!((url.port, url.host_header().as_str()), (80, "127.0.0.1"));
        for bad in [
            "http://h/",
            "wss://h/",
            "ws://",
            "ws://:80/",
            "ws://h:x/",
            "ws://[::1/",
            "ws://h/#top",
            "ws://user@h/",
            "127.0.0.1:8765",
        ] {
            assert!(bad.parse::<WsUrl>().is_err(), "{bad}");
        }
    }

    #[test]
    fn explains_refusals() {
        let err = "wss://h/".parse::<WsUrl>().unwrap_err().to_string();
        assert!(err.contains("TLS"), "{err}");
        let err = "http://h/".parse::<WsUrl>().unwrap_err().to_string();
        assert!(err.contains("ws://"), "{err}");
    }
}
