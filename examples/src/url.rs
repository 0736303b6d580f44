//! `ws://` URLs, just enough for the example clients: a host, a port and a
//! request target. There is no TLS in the examples, so `wss://` is refused.

use std::fmt;

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
pub struct UrlError(&'static str);

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
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
        if s.starts_with("wss://") {
            return Err(UrlError("wss:// needs TLS, which the examples do not have"));
        }
        let rest = s
            .strip_prefix("ws://")
            .ok_or(UrlError("the URL must start with ws://"))?;
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let target = match target {
            "" => "/".to_owned(),
            t if t.starts_with('?') => format!("/{t}"),
            t => t.to_owned(),
        };
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or(UrlError("unclosed [ in the host"))?;
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(p.strip_prefix(':').ok_or(UrlError("junk after ]"))?),
                ),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(UrlError("the URL has no host"));
        }
        let port = match port {
            None => 80,
            Some(p) => p.parse().map_err(|_| UrlError("invalid port"))?,
        };
        Ok(Self {
            host: host.to_owned(),
            port,
            target,
        })
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
        for bad in [
            "http://h/",
            "wss://h/",
            "ws://",
            "ws://:80/",
            "ws://h:x/",
            "ws://[::1/",
        ] {
            assert!(bad.parse::<WsUrl>().is_err(), "{bad}");
        }
    }
}
