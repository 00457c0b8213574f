//! The standard is language-neutral: the Python checkpoint in
//! `examples/python`, built on grpcio and the `.proto` files alone, verifies a
//! badge through the gateway of a running federation over mutual TLS, as a
//! city IT team would set it up: `tessera federation up`, `tessera badge
//! issue`, and the checkpoint's bundle.
//!
//! It needs a Python with grpcio and grpcio-tools: `TESSERA_PYTHON`. Without
//! it the test says it is skipped, unless `TESSERA_REQUIRE_PYTHON=1` (as in
//! `.ci/run`), where it fails instead.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::federation_up;

const HOW: &str = "python3 -m venv .ci/venv && \
    .ci/venv/bin/pip install -r examples/python/requirements.txt && \
    export TESSERA_PYTHON=$PWD/.ci/venv/bin/python (from the repository root; .ci/run does this)";

/// The Python to run the example with, or `None` when the test is skipped.
fn python() -> Option<PathBuf> {
    let required = std::env::var("TESSERA_REQUIRE_PYTHON").is_ok_and(|v| v == "1");
    match std::env::var_os("TESSERA_PYTHON").filter(|p| !p.is_empty()) {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(
                p.exists(),
                "TESSERA_PYTHON={} does not exist; {HOW}",
                p.display()
            );
            Some(p)
        }
        None if required => panic!("TESSERA_REQUIRE_PYTHON=1 but TESSERA_PYTHON is not set: {HOW}"),
        None => {
            eprintln!(
                "skipped: set TESSERA_PYTHON to a python with grpcio and grpcio-tools: {HOW}"
            );
            None
        }
    }
}

fn checkpoint(python: &Path, gateway: &str, bundle: &str, badge: &[&str]) -> Output {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/python/checkpoint.py"
    );
    Command::new(python)
        .arg(script)
        .args(["--gateway", gateway, "--bundle", bundle])
        .args(badge)
        .output()
        .expect("run the Python checkpoint")
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_python_checkpoint_verifies_a_badge_through_a_running_federation() {
    let Some(python) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (mut running, layout) = federation_up(&tmp.path().join("fed"), &tmp.path().join("fed.log"));
    let gateway = layout["gateway"].as_str().unwrap();
    let bundle = layout["checkpoint"].as_str().unwrap();

    // Hangzhou's app backend asks its node for a badge.
    let text = common::issue_hangzhou_badge(&layout);

    // The QR text, checked from Python: VALID, exit 0.
    let out = checkpoint(&python, gateway, bundle, &[&text]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(stdout.starts_with("VALID\n"), "{}", describe(&out));
    assert!(
        stdout.contains("issued by    Hangzhou (330100)"),
        "{}",
        describe(&out)
    );
    assert!(stdout.contains("colour       green"), "{}", describe(&out));

    // The same badge as envelope bytes from a file.
    let envelope = tmp.path().join("badge.bin");
    std::fs::write(
        &envelope,
        tessera_core::text::from_text(&text, 512).unwrap(),
    )
    .unwrap();
    let out = checkpoint(
        &python,
        gateway,
        bundle,
        &["--envelope", envelope.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(out.stdout.starts_with(b"VALID\n"), "{}", describe(&out));

    // A tampered badge: a verdict (not a failed call), not VALID, exit 15 or 18.
    let mut tampered = text.clone().into_bytes();
    let i = tampered.len() - 10;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let out = checkpoint(&python, gateway, bundle, &[&tampered]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    match out.status.code() {
        Some(15) => assert!(stdout.starts_with("BAD_SIGNATURE\n"), "{}", describe(&out)),
        Some(18) => assert!(stdout.starts_with("MALFORMED\n"), "{}", describe(&out)),
        _ => panic!("tampered badge: {}", describe(&out)),
    }

    common::stop(running.0.take().unwrap());
}
