//! A stock TLS stack that offers no Ed25519 connects: the system `openssl
//! s_client`, offering only ECDSA with SHA-256 in TLS 1.3 and presenting a
//! checkpoint's or an operator's bundle files as they are, completes a
//! mutual-TLS handshake with a running gateway and with a running city node
//! (`tessera federation up`). The same client offering only Ed25519 does
//! not: tessera's TLS keys are ECDSA P-256. A city whose keys and requests
//! OpenSSL made is enrolled by request, and `tessera keygen`'s requests pass
//! `openssl req -verify`.
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
        // The certificate file holds the certificate, then its issuing CA:
        // s_client sends the first with -cert and the rest with -cert_chain.
        .args([
            "-cert",
            &cert,
            "-cert_chain",
            &cert,
            "-key",
            &key,
            "-CAfile",
        ])
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

/// Runs `openssl args` in `dir`, asserting success; returns standard output.
fn openssl_ok(openssl: &str, dir: &Path, args: &[&str]) -> String {
    let out = Command::new(openssl)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A city that makes its keys and requests with OpenSSL instead of
/// `tessera keygen` is enrolled by request, and each certificate carries
/// exactly its key; the requests `tessera keygen` makes pass `openssl req
/// -verify`.
#[test]
fn requests_made_by_openssl_are_enrolled_and_keygen_requests_verify_with_openssl() {
    let Some(openssl) = openssl() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let authority = dir.join("authority");
    let d = authority.to_str().unwrap();
    common::ok(&["authority", "init", "--dir", d]);
    openssl_ok(
        openssl,
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "node.key",
        ],
    );
    openssl_ok(
        openssl,
        dir,
        &[
            "genpkey",
            "-algorithm",
            "ed25519",
            "-out",
            "badge-signer.key",
        ],
    );
    for stem in ["node", "badge-signer"] {
        openssl_ok(
            openssl,
            dir,
            &[
                "req",
                "-new",
                "-key",
                &format!("{stem}.key"),
                "-subj",
                "/CN=anything",
                "-out",
                &format!("{stem}.csr"),
            ],
        );
    }
    let node_csr = dir.join("node.csr");
    let signer_csr = dir.join("badge-signer.csr");
    let enrolled = common::ok(&[
        "authority",
        "enrol-city",
        "--dir",
        d,
        "--code",
        "330100",
        "--name",
        "Hangzhou",
        "--endpoint",
        "127.0.0.1:7101",
        "--csr",
        node_csr.to_str().unwrap(),
        signer_csr.to_str().unwrap(),
    ]);
    // The fingerprint printed is SHA-256 of the DER public key, as OpenSSL
    // computes it.
    for stem in ["node", "badge-signer"] {
        openssl_ok(
            openssl,
            dir,
            &[
                "pkey",
                "-in",
                &format!("{stem}.key"),
                "-pubout",
                "-outform",
                "DER",
                "-out",
                &format!("{stem}.pub.der"),
            ],
        );
        let digest = openssl_ok(
            openssl,
            dir,
            &["dgst", "-sha256", "-c", &format!("{stem}.pub.der")],
        );
        let fingerprint = digest.split_whitespace().last().unwrap().to_lowercase();
        assert!(
            enrolled.contains(&fingerprint),
            "{fingerprint} not in {enrolled}"
        );
    }
    let bundle = authority.join("cities/330100");
    for stem in ["node", "badge-signer"] {
        let cert = bundle.join(format!("{stem}.crt"));
        let certified = openssl_ok(
            openssl,
            dir,
            &["x509", "-in", cert.to_str().unwrap(), "-noout", "-pubkey"],
        );
        let own = openssl_ok(
            openssl,
            dir,
            &["pkey", "-in", &format!("{stem}.key"), "-pubout"],
        );
        assert_eq!(
            certified, own,
            "{stem}.crt does not carry the key of {stem}.key"
        );
        assert!(!bundle.join(format!("{stem}.key")).exists());
    }

    let keys = dir.join("keygen");
    common::ok(&["keygen", "--role", "city", "--out", keys.to_str().unwrap()]);
    for stem in ["node", "badge-signer"] {
        let out = Command::new(openssl)
            .args(["req", "-verify", "-noout", "-in"])
            .arg(keys.join(format!("{stem}.csr")))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains("verify OK"),
            "{stem}.csr: {text}"
        );
    }
}
