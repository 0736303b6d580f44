//! Links the `firmware` binary with cortex-m-rt's `link.x` and our
//! `memory.x`, only when it is built for a bare-metal target.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
    let target = env::var("TARGET").unwrap_or_default();
    let firmware = env::var_os("CARGO_FEATURE_FIRMWARE").is_some();
    if !(firmware && target.starts_with("thumb") && target.ends_with("-none-eabihf")) {
        return;
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("memory.x"), include_bytes!("memory.x")).expect("OUT_DIR is writable");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
}
