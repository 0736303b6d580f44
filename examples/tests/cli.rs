//! The programs as a user meets them: `--help`, wrong options, and errors.

use std::net::TcpListener;
use std::process::{Command, Output};

/// Every program, with words its description must contain and the options
/// it takes (besides `--help`).
const PROGRAMS: &[(&str, &str, &[&str])] = &[
    (
        env!("CARGO_BIN_EXE_client"),
        "A blocking WebSocket client",
        &["--url"],
    ),
    (
        env!("CARGO_BIN_EXE_server"),
        "A blocking WebSocket echo server",
        &["--addr", "--connections"],
    ),
    (
        env!("CARGO_BIN_EXE_echo-server"),
        "A WebSocket echo server with a demo web page",
        &[
            "--addr",
            "--verbose",
            "--max-connections",
            "--max-per-address",
            "--head-timeout",
            "--keepalive-interval",
            "--keepalive-timeout",
            "--max-queued",
            "--drain-timeout",
            "--close-timeout",
        ],
    ),
    (
        env!("CARGO_BIN_EXE_async-echo"),
        "A WebSocket echo server and client on tokio",
        &[
            "--serve",
            "--connect",
            "--max-connections",
            "--max-per-address",
            "--head-timeout",
            "--keepalive-interval",
            "--keepalive-timeout",
            "--max-queued",
            "--drain-timeout",
            "--close-timeout",
        ],
    ),
    (
        env!("CARGO_BIN_EXE_hyper-upgrade"),
        "A hyper HTTP/1.1 server that upgrades",
        &["--serve"],
    ),
    (
        env!("CARGO_BIN_EXE_idle-connections"),
        "Open --connections idle WebSocket connections",
        &[
            "--url",
            "--server-pid",
            "--connections",
            "--batch",
            "--echo-bytes",
            "--deflate",
        ],
    ),
    (
        env!("CARGO_BIN_EXE_autobahn-client"),
        "The client the Autobahn TestSuite checks",
        &["--url", "--agent", "--cases"],
    ),
    (
        env!("CARGO_BIN_EXE_h2-websocket"),
        "WebSockets over HTTP/2 (RFC 8441)",
        &[],
    ),
];

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("cannot run {program}: {err}"))
}

fn name(program: &str) -> &str {
    let file = program.rsplit(['/', '\\']).next().unwrap_or(program);
    file.strip_suffix(".exe").unwrap_or(file)
}

/// The entries of the `Options:` section: each option with its help text.
fn options(help: &str) -> Vec<String> {
    let mut entries: Vec<String> = Vec::new();
    let section = help
        .split_once("Options:\n")
        .unwrap_or_else(|| panic!("no options section in:\n{help}"))
        .1;
    for line in section.lines() {
        if !line.is_empty() && !line.starts_with(' ') {
            break;
        }
        if line.trim_start().starts_with('-') {
            entries.push(line.trim().to_owned());
        } else if let Some(entry) = entries.last_mut() {
            entry.push(' ');
            entry.push_str(line.trim());
        }
    }
    entries
}

#[test]
fn help_describes_each_program_and_every_default() {
    for &(program, description, flags) in PROGRAMS {
        for help_flag in ["--help", "-h"] {
            let out = run(program, &[help_flag]);
            let help = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{program} {help_flag}: {out:?}");
            assert!(
                help.starts_with(description),
                "{program}: no description:\n{help}"
            );
            assert!(
                help.contains(&format!("Usage: {}", name(program))),
                "{help}"
            );
            let entries = options(&help);
            for flag in flags {
                let entry = entries
                    .iter()
                    .find(|e| e.starts_with(&format!("{flag} ")) || e == flag)
                    .unwrap_or_else(|| panic!("{program}: {flag} missing from:\n{help}"));
                assert!(
                    entry.contains("[default: "),
                    "{program}: {flag} has no default: {entry}"
                );
            }
            // Nothing undocumented: the listed options and help only.
            assert_eq!(entries.len(), flags.len() + 1, "{program}:\n{help}");
        }
    }
}

#[test]
fn h2_websocket_help_does_not_run_the_demo() {
    let out = run(env!("CARGO_BIN_EXE_h2-websocket"), &["--help"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(!stdout.contains("HTTP/2 server on"), "{stdout}");
    assert!(out.stderr.is_empty(), "{out:?}");
}

#[test]
fn defaults_line_up_with_the_readme() {
    let readme = include_str!("../../README.md");
    assert!(readme.contains("--bin echo-server -- --addr 127.0.0.1:8765"));
    let help = run(env!("CARGO_BIN_EXE_client"), &["--help"]).stdout;
    assert!(String::from_utf8_lossy(&help).contains("[default: ws://127.0.0.1:8765/]"));
    for server in [
        env!("CARGO_BIN_EXE_server"),
        env!("CARGO_BIN_EXE_echo-server"),
    ] {
        let help = run(server, &["--help"]).stdout;
        assert!(String::from_utf8_lossy(&help).contains("[default: 127.0.0.1:8765]"));
    }
}

#[test]
fn every_program_is_in_the_examples_readme() {
    let readme = include_str!("../README.md");
    let bins = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/src/bin")).unwrap();
    let mut count = 0;
    for entry in bins {
        let file = entry.unwrap().file_name().into_string().unwrap();
        let bin = file.strip_suffix(".rs").unwrap();
        assert!(
            readme.contains(&format!("--bin {bin}")),
            "examples/README.md does not say how to run {bin}"
        );
        assert!(
            PROGRAMS.iter().any(|&(program, _, _)| name(program) == bin),
            "{bin} is not checked here"
        );
        count += 1;
    }
    assert_eq!(count, PROGRAMS.len());
    assert!(!readme.contains("Getting Started"));
}

/// A loopback port nothing listens on (for a moment).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn assert_readable_error(out: &Output, starts: &str, hint: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr.starts_with(starts), "{stderr}");
    assert!(stderr.contains(hint), "{stderr}");
    for debug in ["Os {", "kind:", "Custom {"] {
        assert!(!stderr.contains(debug), "a Debug dump: {stderr}");
    }
}

#[test]
fn an_unreachable_server_is_explained_with_a_hint() {
    let port = closed_port();
    let url = format!("ws://127.0.0.1:{port}/");
    let out = run(env!("CARGO_BIN_EXE_client"), &["--url", &url]);
    assert_readable_error(
        &out,
        &format!("error: cannot connect to 127.0.0.1:{port}: "),
        "(is the echo server running? start it with: cargo run --release -p wsproto-examples --bin echo-server",
    );

    let out = run(env!("CARGO_BIN_EXE_autobahn-client"), &["--url", &url]);
    assert_readable_error(
        &out,
        "error: cannot get the case count from ",
        "is the fuzzing server running?",
    );

    let out = run(env!("CARGO_BIN_EXE_async-echo"), &["--connect", &url]);
    assert_readable_error(&out, "error: the self-test against ", "--bin echo-server");
}

#[test]
fn a_taken_port_is_explained_with_a_hint() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for server in [
        env!("CARGO_BIN_EXE_server"),
        env!("CARGO_BIN_EXE_echo-server"),
    ] {
        let out = run(server, &["--addr", &addr]);
        assert_readable_error(&out, &format!("error: cannot listen on {addr}: "), "--addr");
    }
}

#[test]
fn bad_options_are_refused_before_anything_runs() {
    for (program, args, says) in [
        (
            env!("CARGO_BIN_EXE_client"),
            &["--url", "http://127.0.0.1/"][..],
            "must start with ws://",
        ),
        (
            env!("CARGO_BIN_EXE_client"),
            &["--url", "wss://127.0.0.1/"][..],
            "TLS",
        ),
        (
            env!("CARGO_BIN_EXE_server"),
            &["--connections", "many"][..],
            "--connections",
        ),
        (
            env!("CARGO_BIN_EXE_async-echo"),
            &["--serve", "127.0.0.1:0", "--connect", "ws://127.0.0.1/"][..],
            "cannot be used with",
        ),
        (
            env!("CARGO_BIN_EXE_h2-websocket"),
            &["--port"][..],
            "--port",
        ),
    ] {
        let out = run(program, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{program} {args:?}: {out:?}");
        assert!(stderr.contains(says), "{program} {args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{program} {args:?} ran: {out:?}");
    }
}
