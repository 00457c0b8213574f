//! A stock TLS stack that offers no Ed25519 connects: the system `openssl
//! s_client`, offering only ECDSA with SHA-256 in TLS 1.3 and presenting a
//! checkpoint's or an operator's bundle files as they are, completes a
//! mutual-TLS handshake with a running gateway and with a running city node
//! (`tessera federation up`). The same client offering only Ed25519 does
//! not: tessera's TLS keys are ECDSA P-256.
//!
//! It needs `openssl` on PATH (OpenSSL 3). Without it the test says it is
//! skipped, unless `TESSERA_REQUIRE_OPENSSL=1` (as in `.ci/run`), where it
//! fails instead.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::federation_up;

fn openssl() -> Option<&'static str> {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|out| out.status.success());
    let required = std::env::var("TESSERA_REQUIRE_OPENSSL").is_ok_and(|v| v == "1");
    match (found, required) {
        (true, _) => Some("openssl"),
        (false, true) => {
            panic!("TESSERA_REQUIRE_OPENSSL=1 but no openssl on PATH (apt-get install openssl)")
        }
        (false, false) => {
            eprintln!("skipped: no openssl on PATH");
            None
        }
    }
}

/// The certificate (not root.crt) and key of a bundle.
fn credentials(bundle: &Path) -> (String, String) {
    let cert = std::fs::read_dir(bundle)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "crt")
                && p.file_name().is_some_and(|n| n != "root.crt")
                && p.with_extension("key").exists()
        })
        .unwrap_or_else(|| panic!("no certificate and key in {}", bundle.display()));
    (
        cert.display().to_string(),
        cert.with_extension("key").display().to_string(),
    )
}

/// `openssl s_client` to `addr` with the bundle's certificate and key,
/// offering only `sigalgs`; stdin stays open a moment so that the server's
/// answer to the client certificate (an alert, if it refused it) is read.
fn s_client(openssl: &str, addr: &str, bundle: &Path, sigalgs: &str) -> Output {
    let (cert, key) = credentials(bundle);
    let root = bundle.join("root.crt");
    let ip = addr.rsplit_once(':').unwrap().0;
    let mut child = Command::new(openssl)
        .args(["s_client", "-connect", addr, "-tls1_3", "-sigalgs", sigalgs])
        .args(["-cert", &cert, "-key", &key, "-CAfile"])
        .arg(&root)
        .args(["-verify_return_error", "-verify_ip", ip, "-alpn", "h2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let _ = stdin.write_all(b"");
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_connected(out: &Output, what: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ok = out.status.success()
        && stdout.contains("New, TLSv1.3")
        && stdout.contains("Peer signature type: ECDSA")
        && stdout.contains("ALPN protocol: h2")
        && stdout.contains("Verify return code: 0 (ok)")
        && !stderr.contains("alert")
        && !stdout.contains("alert");
    assert!(ok, "{what}: {}", describe(out));
}

fn assert_refused(out: &Output, what: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() || !stdout.contains("Verify return code: 0 (ok)"),
        "{what} should not connect: {}",
        describe(out)
    );
}

#[test]
fn openssl_offering_only_ecdsa_connects_to_the_gateway_and_a_node() {
    let Some(openssl) = openssl() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (mut running, layout) = federation_up(&tmp.path().join("fed"), &tmp.path().join("fed.log"));
    let gateway = layout["gateway"].as_str().unwrap();
    let checkpoint = Path::new(layout["checkpoint"].as_str().unwrap());
    let hangzhou = &layout["cities"][0];
    let node = hangzhou["node"].as_str().unwrap();
    let operator = Path::new(hangzhou["operator"].as_str().unwrap());

    let out = s_client(openssl, gateway, checkpoint, "ECDSA+SHA256");
    assert_connected(&out, "checkpoint to gateway");
    let out = s_client(openssl, node, operator, "ECDSA+SHA256");
    assert_connected(&out, "operator to node");

    // The same clients offering only Ed25519 find no scheme in common.
    let out = s_client(openssl, gateway, checkpoint, "ed25519");
    assert_refused(&out, "an Ed25519-only client to the gateway");
    let out = s_client(openssl, node, operator, "ed25519");
    assert_refused(&out, "an Ed25519-only client to the node");

    common::stop(running.0.take().unwrap());
}
