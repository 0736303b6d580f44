//! Shared helpers of the tests that run Python peers: a virtual environment
//! with `wsproto` and `websockets`, and child processes with deadlines.
#![allow(dead_code, unreachable_pub)]

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use wsproto_std::events::{AcceptConnection, Event, Request};
use wsproto_std::{ConnectionType, Settings, WSConnection};

/// The packages installed into the venv. Pinned: the differential test's
/// table of differences describes this version of `wsproto`.
pub const PACKAGES: &[&str] = &["wsproto==1.3.2", "websockets==17.4"];

/// How long creating the venv and installing the packages may take.
const INSTALL_DEADLINE: Duration = Duration::from_secs(600);

/// The directory of the Python helpers.
pub fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

/// The interpreter of a venv with [`PACKAGES`] installed, made once per
/// target directory (guarded across threads and test processes). `None`,
/// after printing `skipped: python3 not found` to stderr, when there is no
/// `python3`.
///
/// # Panics
///
/// When the venv cannot be created or pip fails: that is a failure, not a
/// reason to skip.
pub fn python() -> Option<PathBuf> {
    static VENV: OnceLock<Result<Option<PathBuf>, String>> = OnceLock::new();
    match VENV.get_or_init(setup_venv) {
        Ok(Some(python)) => Some(python.clone()),
        Ok(None) => {
            // Straight to the process's stderr, past the test harness's
            // capture, so that the skip is visible.
            let _ = writeln!(std::io::stderr(), "skipped: python3 not found");
            None
        }
        Err(err) => panic!("setting up the Python venv failed: {err}"),
    }
}

fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

fn setup_venv() -> Result<Option<PathBuf>, String> {
    match Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(format!("running python3: {err}")),
        Ok(status) if !status.success() => return Err(format!("python3 --version: {status}")),
        Ok(_) => {}
    }
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let venv = tmp.join("interop-venv");
    let marker = venv.join(".wsproto-std-ready");
    let wanted = PACKAGES.join("\n");
    let ready = || fs::read_to_string(&marker).is_ok_and(|m| m == wanted);
    if ready() {
        return Ok(Some(venv_python(&venv)));
    }
    let _lock = DirLock::acquire(&tmp.join("interop-venv.lock"))?;
    if ready() {
        return Ok(Some(venv_python(&venv)));
    }
    let deadline = Instant::now() + INSTALL_DEADLINE;
    if !venv_python(&venv).exists() {
        run_to_end(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            deadline,
            "python3 -m venv",
        )?;
    }
    let mut pip = Command::new(venv_python(&venv));
    pip.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--quiet",
    ])
    .args(PACKAGES);
    run_to_end(&mut pip, deadline, "pip install")?;
    run_to_end(
        Command::new(venv_python(&venv)).args(["-c", "import wsproto, websockets"]),
        deadline,
        "importing wsproto and websockets",
    )?;
    fs::write(&marker, &wanted).map_err(|e| format!("writing {}: {e}", marker.display()))?;
    Ok(Some(venv_python(&venv)))
}

fn run_to_end(command: &mut Command, deadline: Instant, what: &str) -> Result<(), String> {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    let out = Proc::new(child).finish(deadline);
    if out.status.is_some_and(|s| s.success()) {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({:?}):\n{}\n{}",
            out.status, out.stdout, out.stderr
        ))
    }
}

/// A lock shared by test processes: a directory, created atomically.
/// A lock older than the install deadline is taken to be stale.
struct DirLock(PathBuf);

impl DirLock {
    fn acquire(path: &Path) -> Result<Self, String> {
        let give_up = Instant::now() + INSTALL_DEADLINE + Duration::from_secs(60);
        loop {
            match fs::create_dir(path) {
                Ok(()) => return Ok(Self(path.to_owned())),
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok());
                    if age.is_some_and(|age| age > INSTALL_DEADLINE) {
                        let _ = fs::remove_dir(path);
                        continue;
                    }
                    if Instant::now() > give_up {
                        return Err(format!("timed out waiting for {}", path.display()));
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(err) => return Err(format!("creating {}: {err}", path.display())),
            }
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.0);
    }
}

/// What a finished child printed, and how it ended (`None`: killed at the
/// deadline).
#[derive(Debug)]
pub struct Finished {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }
}

/// A child process whose output is collected by threads (so a full pipe
/// never blocks it), killed and reaped when dropped.
pub struct Proc {
    child: Child,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

fn collect(stream: Option<impl Read + Send + 'static>) -> Option<JoinHandle<String>> {
    stream.map(|mut stream| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stream.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    })
}

impl Proc {
    /// Take over `child`, collecting its piped stdout and stderr.
    pub fn new(mut child: Child) -> Self {
        let stdout = collect(child.stdout.take());
        let stderr = collect(child.stderr.take());
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// Spawn `python` with `args` (stdin piped if `stdin`).
    pub fn python(python: &Path, args: &[&str], stdin: bool) -> (Self, Option<ChildStdin>) {
        let mut child = Command::new(python)
            .args(args)
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", python.display()));
        let input = child.stdin.take();
        (Self::new(child), input)
    }

    /// Whether the child has exited.
    pub fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Wait for the child until `deadline`, killing it if it overruns.
    pub fn finish(mut self, deadline: Instant) -> Finished {
        let mut status = None;
        for _ in 0..100_000 {
            match self.child.try_wait() {
                Ok(Some(s)) => {
                    status = Some(s);
                    break;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => break,
            }
        }
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let stdout = self.stdout.take().map(|h| h.join().unwrap_or_default());
        let stderr = self.stderr.take().map(|h| h.join().unwrap_or_default());
        Finished {
            status,
            stdout: stdout.unwrap_or_default(),
            stderr: stderr.unwrap_or_default(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Run `python script args` with `input` on stdin; return its stdout.
///
/// # Panics
///
/// If it fails or does not finish by `timeout`.
pub fn run_python(python: &Path, args: &[&str], input: &[u8], timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let (proc, stdin) = Proc::python(python, args, true);
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(&input);
        }
    });
    let out = proc.finish(deadline);
    let _ = writer.join();
    assert!(
        out.success(),
        "python {args:?} failed ({:?}):\n{}",
        out.status,
        out.stderr
    );
    out.stdout
}

/// Settings without permessage-deflate.
pub fn plain() -> Settings {
    let mut settings = Settings::default();
    settings.permessage_deflate = None;
    settings
}

/// A client and a server past the handshake.
pub fn open_pair(client: Settings, server: Settings) -> (WSConnection, WSConnection) {
    let mut c = WSConnection::with_settings(ConnectionType::Client, client);
    let mut s = WSConnection::with_settings(ConnectionType::Server, server);
    s.receive_data(Some(&c.send(Request::new("example.com", "/")).unwrap()))
        .unwrap();
    assert!(matches!(s.next_event(), Some(Ok(Event::Request(_)))));
    c.receive_data(Some(&s.send(AcceptConnection::default()).unwrap()))
        .unwrap();
    assert!(matches!(
        c.next_event(),
        Some(Ok(Event::AcceptConnection(_)))
    ));
    (c, s)
}
