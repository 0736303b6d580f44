//! What the example programs share on the command line: a failure that
//! prints as a sentence with a hint rather than as a `Debug` dump, and the
//! `main` wrapper that prints it and exits with status 1.
//!
//! ```
//! use std::process::ExitCode;
//! use wsproto_examples::cli::{exit_code, Failure};
//!
//! fn run() -> Result<(), Failure> {
//!     let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
//!     Err(Failure::new("cannot connect to 127.0.0.1:8765", refused).hint("is the server running?"))
//! }
//!
//! let failure = run().unwrap_err();
//! assert_eq!(
//!     failure.to_string(),
//!     "cannot connect to 127.0.0.1:8765: connection refused (is the server running?)"
//! );
//! assert_eq!(exit_code(Ok(())), ExitCode::SUCCESS);
//! ```

use std::error::Error;
use std::fmt;
use std::io;
use std::process::ExitCode;

/// The command that starts the README's echo server on `addr`, for hints.
///
/// ```
/// use wsproto_examples::cli::echo_server_command;
/// assert_eq!(
///     echo_server_command("127.0.0.1:8765"),
///     "cargo run --release -p wsproto-examples --bin echo-server -- --addr 127.0.0.1:8765"
/// );
/// ```
#[must_use]
pub fn echo_server_command(addr: &str) -> String {
    format!("cargo run --release -p wsproto-examples --bin echo-server -- --addr {addr}")
}

/// Why a program gave up: what it was doing, the cause, and what the user
/// could try.
///
/// Any error converts into one with `?`, so a program's `run` function can
/// return `Result<(), Failure>`; [`Failure::new`] adds what was being done.
#[derive(Debug)]
pub struct Failure {
    context: Option<String>,
    cause: String,
    hint: Option<String>,
}

impl Failure {
    /// `context` failed because of `cause`.
    pub fn new(context: impl Into<String>, cause: impl Error + 'static) -> Self {
        Self {
            context: Some(context.into()),
            ..Self::from(cause)
        }
    }

    /// A failure described by `message` alone.
    pub fn msg(message: impl Into<String>) -> Self {
        Self {
            context: None,
            cause: message.into(),
            hint: None,
        }
    }

    /// Add what the user could try, printed in parentheses.
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Add `hint` when there is one.
    #[must_use]
    pub fn with_hint(mut self, hint: Option<String>) -> Self {
        if hint.is_some() {
            self.hint = hint;
        }
        self
    }
}

impl<E: Error + 'static> From<E> for Failure {
    fn from(err: E) -> Self {
        let mut cause = describe(&err);
        let mut source = err.source();
        while let Some(inner) = source {
            cause.push_str(": ");
            cause.push_str(&describe(inner));
            source = inner.source();
        }
        Self {
            context: None,
            cause,
            hint: None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(context) = &self.context {
            write!(f, "{context}: ")?;
        }
        f.write_str(&self.cause)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

/// The `Display` text of `err`, without the `(os error N)` suffix that
/// operating-system errors carry: the number adds nothing for a reader.
fn describe(err: &(dyn Error + 'static)) -> String {
    let text = err.to_string();
    match err
        .downcast_ref::<io::Error>()
        .and_then(io::Error::raw_os_error)
    {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .map_or_else(|| text.clone(), str::to_owned),
        None => text,
    }
}

/// The end of a program's `main`: print a failure as `error: ...` on
/// standard error and exit with status 1, or exit with 0.
#[must_use]
pub fn exit_code(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::FAILURE
        }
    }
}

/// The hint for a client that could not reach its server: whether the
/// `server` (such as "echo server") is running, and the `command` that
/// starts it.
#[must_use]
pub fn connect_hint(err: &io::Error, server: &str, command: &str) -> Option<String> {
    match err.kind() {
        io::ErrorKind::ConnectionRefused | io::ErrorKind::TimedOut => {
            Some(format!("is the {server} running? start it with: {command}"))
        }
        io::ErrorKind::NotFound | io::ErrorKind::InvalidInput => {
            Some("check the host name in the URL".to_owned())
        }
        _ => None,
    }
}

/// The hint for a server that could not listen on its address.
#[must_use]
pub fn bind_hint(err: &io::Error) -> Option<String> {
    match err.kind() {
        io::ErrorKind::AddrInUse => Some(
            "another program listens on this port; pick another with --addr, \
             or port 0 for a free one"
                .to_owned(),
        ),
        io::ErrorKind::AddrNotAvailable => {
            Some("the address is not one of this machine's; try 127.0.0.1".to_owned())
        }
        io::ErrorKind::PermissionDenied => Some("ports below 1024 need privileges".to_owned()),
        _ => None,
    }
}
