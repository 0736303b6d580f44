//! The programs that test themselves, run as a user would: a server on a
//! free loopback port and a client against it, each bounded by the
//! program's own time limit.

use std::process::Command;

fn passes(program: &str) {
    let out = Command::new(program)
        .output()
        .unwrap_or_else(|err| panic!("cannot run {program}: {err}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{program}: {out:?}");
    assert!(stdout.contains("self-test passed"), "{program}: {stdout}");
}

#[test]
fn async_echo_passes_its_self_test() {
    passes(env!("CARGO_BIN_EXE_async-echo"));
}

#[test]
fn hyper_upgrade_passes_its_self_test() {
    passes(env!("CARGO_BIN_EXE_hyper-upgrade"));
}
