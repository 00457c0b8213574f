//! The standard from other stacks. A checkpoint vendor writes a client from
//! `proto/tessera/v1` and PROTOCOL.md alone, on their ecosystem's stock gRPC
//! and TLS. Two such clients live in `examples/`, and here they run against a
//! live federation (`tessera federation up`) with a badge its Hangzhou node
//! issued:
//!
//! - Python, stock `grpcio` from PyPI (BoringSSL inside), with
//!   `grpc.ssl_channel_credentials` and the checkpoint bundle's files, online
//!   through `Gateway.Verify` and offline: the trust list fetched with
//!   `FetchTrustList` and checked, with the badge, by `tessera_offline.py`
//!   (`cryptography` plus PROTOCOL.md's rules);
//! - Node.js, `@grpc/grpc-js` from npm (Node's OpenSSL): `Verify`, and
//!   `FetchTrustList` into a file that `tessera verify --offline` then reads.
//!
//! Every run must connect, verify, and write nothing on standard error.
//!
//! They need a Python with the example's requirements (`TESSERA_PYTHON`)
//! and Node.js with `examples/node/node_modules` (`npm ci` there). Without
//! them a test says it is skipped, unless `TESSERA_REQUIRE_PYTHON=1` or
//! `TESSERA_REQUIRE_NODE=1` (as in `.ci/run`), where it fails instead.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{describe, federation_up};

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

const HOW_PYTHON: &str = "python3 -m venv .ci/venv && \
    .ci/venv/bin/pip install -r examples/python/requirements.txt && \
    export TESSERA_PYTHON=$PWD/.ci/venv/bin/python (from the repository root; .ci/run does this)";

const HOW_NODE: &str = "(cd examples/node && npm ci) with Node.js 20 or newer on PATH \
    (from the repository root; .ci/run does this)";

fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

/// The Python to run the example with, or `None` when the test is skipped.
fn python() -> Option<PathBuf> {
    match std::env::var_os("TESSERA_PYTHON").filter(|p| !p.is_empty()) {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(
                p.exists(),
                "TESSERA_PYTHON={} does not exist; {HOW_PYTHON}",
                p.display()
            );
            Some(p)
        }
        None if required("TESSERA_REQUIRE_PYTHON") => {
            panic!("TESSERA_REQUIRE_PYTHON=1 but TESSERA_PYTHON is not set: {HOW_PYTHON}")
        }
        None => {
            eprintln!(
                "skipped: set TESSERA_PYTHON to a python with the example's requirements: {HOW_PYTHON}"
            );
            None
        }
    }
}

/// Whether Node.js and the example's packages are there; `false` when the
/// test is skipped.
fn node() -> bool {
    let modules = Path::new(REPO).join("examples/node/node_modules/@grpc/grpc-js");
    let runs = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if runs && modules.is_dir() {
        return true;
    }
    let what = if runs {
        "examples/node/node_modules is missing"
    } else {
        "no node on PATH"
    };
    assert!(
        !required("TESSERA_REQUIRE_NODE"),
        "TESSERA_REQUIRE_NODE=1 but {what}: {HOW_NODE}"
    );
    eprintln!("skipped: {what}: {HOW_NODE}");
    false
}

/// Asserts the run exited with `code`, printed `first` as its first line,
/// and wrote nothing on standard error; returns its standard output.
fn expect(out: &Output, code: i32, first: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(code), "{}", describe(out));
    assert_eq!(stdout.lines().next(), Some(first), "{}", describe(out));
    assert!(out.stderr.is_empty(), "wrote on stderr: {}", describe(out));
    stdout
}

fn python_checkpoint(python: &Path, args: &[&str]) -> Output {
    Command::new(python)
        .arg(Path::new(REPO).join("examples/python/checkpoint.py"))
        .args(args)
        .output()
        .expect("run the Python checkpoint")
}

fn node_checkpoint(args: &[&str]) -> Output {
    Command::new("node")
        .arg(Path::new(REPO).join("examples/node/checkpoint.mjs"))
        .args(args)
        .output()
        .expect("run the Node.js checkpoint")
}

/// The badge with one base45 character changed near its end (inside the
/// signature): a verdict, not a failed call.
fn tampered(text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    let i = bytes.len() - 10;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

fn assert_not_valid(out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    match out.status.code() {
        Some(15) => assert!(stdout.starts_with("BAD_SIGNATURE\n"), "{}", describe(out)),
        Some(18) => assert!(stdout.starts_with("MALFORMED\n"), "{}", describe(out)),
        _ => panic!("tampered badge: {}", describe(out)),
    }
    assert!(out.stderr.is_empty(), "wrote on stderr: {}", describe(out));
}

#[test]
fn python_and_node_checkpoints_verify_a_badge_through_a_running_federation() {
    let python = python();
    let node = node();
    if python.is_none() && !node {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (mut running, layout) = federation_up(&tmp.path().join("fed"), &tmp.path().join("fed.log"));
    let gateway = layout["gateway"].as_str().unwrap();
    let bundle = layout["checkpoint"].as_str().unwrap();
    let text = common::issue_hangzhou_badge(&layout);
    let bad = tampered(&text);
    let envelope = tmp.path().join("badge.bin");
    std::fs::write(
        &envelope,
        tessera_core::text::from_text(&text, 512).unwrap(),
    )
    .unwrap();
    let envelope = envelope.to_str().unwrap();
    let online = ["--gateway", gateway, "--bundle", bundle];

    if let Some(python) = &python {
        // Online, grpcio's own TLS: the QR text and the envelope bytes.
        let out = python_checkpoint(python, &[&online[..], &[&text]].concat());
        let stdout = expect(&out, 0, "VALID");
        assert!(
            stdout.contains("issued by    Hangzhou (330100)"),
            "{}",
            describe(&out)
        );
        assert!(stdout.contains("colour       green"), "{}", describe(&out));
        let out = python_checkpoint(python, &[&online[..], &["--envelope", envelope]].concat());
        expect(&out, 0, "VALID");
        assert_not_valid(&python_checkpoint(python, &[&online[..], &[&bad]].concat()));

        // Offline: the list fetched over grpcio, verified in Python, then the
        // badge, with no call to Verify.
        let list = tmp.path().join("python.tsl");
        let offline = [
            &online[..],
            &["--offline", "--save-trust-list", list.to_str().unwrap()],
        ]
        .concat();
        let out = python_checkpoint(python, &[&offline[..], &[&text]].concat());
        let stdout = expect(&out, 0, "VALID");
        assert!(
            stdout.contains("the city's status was not asked"),
            "{}",
            describe(&out)
        );
        assert!(
            stdout.contains("issued by    Hangzhou (330100)"),
            "{}",
            describe(&out)
        );
        assert_not_valid(&python_checkpoint(
            python,
            &[&offline[..], &[&bad]].concat(),
        ));
    }

    if node {
        let out = node_checkpoint(&[&["verify"], &online[..], &[&text]].concat());
        let stdout = expect(&out, 0, "VALID");
        assert!(
            stdout.contains("issued by    Hangzhou (330100)"),
            "{}",
            describe(&out)
        );
        let out = node_checkpoint(&[&["verify"], &online[..], &["--envelope", envelope]].concat());
        expect(&out, 0, "VALID");
        assert_not_valid(&node_checkpoint(
            &[&["verify"], &online[..], &[&bad]].concat(),
        ));

        // The list grpc-js fetched is the gateway's signed list: tessera's own
        // offline check accepts it and verifies the badge with it.
        let list = tmp.path().join("node.tsl");
        let list = list.to_str().unwrap();
        let out = node_checkpoint(&[&["trust-list"], &online[..], &["--out", list]].concat());
        assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
        assert!(out.stderr.is_empty(), "wrote on stderr: {}", describe(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.starts_with("trust list "), "{}", describe(&out));
        assert!(stdout.contains("written to"), "{}", describe(&out));
        let root = format!("{bundle}/root.crt");
        let checked = common::tessera(&[
            "verify",
            "--offline",
            "--trust-list",
            list,
            "--root",
            &root,
            &text,
        ]);
        assert_eq!(checked.status.code(), Some(0), "{}", describe(&checked));

        if let Some(python) = &python {
            // And the Python verifier reads the list Node fetched.
            let out = python_checkpoint(
                python,
                &["--offline", "--trust-list", list, "--root", &root, &text],
            );
            expect(&out, 0, "VALID");
        }
    }

    common::stop(running.0.take().unwrap());
}

/// The Python offline verifier, written from PROTOCOL.md with `cryptography`
/// and its own Ed25519 arithmetic, agrees with every conformance vector.
#[test]
fn the_python_verifier_agrees_with_every_conformance_vector() {
    let Some(python) = python() else { return };
    let out = Command::new(&python)
        .arg(Path::new(REPO).join("examples/python/conformance.py"))
        .output()
        .expect("run the Python conformance runner");
    common::assert_every_vector_passed(&out);
}
