//! Command-line options of the form `--name value` and `--flag`, enough for
//! the example programs without an argument-parsing dependency.

use std::collections::HashMap;
use std::fmt;

/// Parsed options.
///
/// ```
/// use wsproto_examples::args::Args;
///
/// let args = Args::parse(["--addr", "127.0.0.1:9001", "--verbose"], &["addr"], &["verbose"])?;
/// assert_eq!(args.value("addr"), Some("127.0.0.1:9001"));
/// assert!(args.flag("verbose"));
/// assert!(Args::parse(["stray"], &[], &[]).is_err());
/// assert!(Args::parse(["--port", "1"], &["addr"], &[]).is_err());
/// assert!(Args::parse(["--addr"], &["addr"], &[]).is_err());
/// # Ok::<(), wsproto_examples::args::ArgsError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Args {
    values: HashMap<String, String>,
    flags: Vec<String>,
}

/// A malformed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgsError(String);

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgsError {}

impl Args {
    /// Parse `args` (without the program name): `options` take a value,
    /// `flags` take none.
    ///
    /// # Errors
    ///
    /// A word that is not a known option, or an option without its value.
    pub fn parse<I, S>(args: I, options: &[&str], flags: &[&str]) -> Result<Self, ArgsError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut parsed = Self::default();
        let mut args = args.into_iter().map(Into::into);
        while let Some(arg) = args.next() {
            let name = arg
                .strip_prefix("--")
                .ok_or_else(|| ArgsError(format!("unexpected argument {arg:?}")))?;
            if flags.contains(&name) {
                parsed.flags.push(name.to_owned());
            } else if !options.contains(&name) {
                return Err(ArgsError(format!("unknown option --{name}")));
            } else {
                let value = args
                    .next()
                    .ok_or_else(|| ArgsError(format!("--{name} needs a value")))?;
                parsed.values.insert(name.to_owned(), value);
            }
        }
        Ok(parsed)
    }

    /// The command line of this process, or exit with `usage` on a
    /// malformed one or on `--help`.
    #[must_use]
    pub fn from_env(options: &[&str], flags: &[&str], usage: &str) -> Self {
        let words: Vec<String> = std::env::args().skip(1).collect();
        if words.iter().any(|w| w == "--help" || w == "-h") {
            println!("{usage}");
            std::process::exit(0);
        }
        match Self::parse(words, options, flags) {
            Ok(args) => args,
            Err(err) => {
                eprintln!("{err}\n{usage}");
                std::process::exit(2);
            }
        }
    }

    /// The value of `--name`.
    #[must_use]
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Whether `--name` was given.
    #[must_use]
    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }
}
