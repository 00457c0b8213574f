//! Running the real `tessera` binary from the CLI's tests.

#![allow(dead_code, clippy::expect_used, clippy::panic)] // test code, not every file uses every helper

use std::process::{Command, Output};

/// Runs `tessera args`.
pub fn tessera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .output()
        .expect("run tessera")
}

/// Runs `tessera args`, asserting success; returns standard output.
pub fn ok(args: &[&str]) -> String {
    let out = tessera(args);
    assert!(
        out.status.success(),
        "tessera {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
