//! Files made before tessera's TLS keys moved from Ed25519 to ECDSA P-256
//! are refused at load, with a message that says so and names what to run
//! (`tessera authority init` into a new directory, then re-enrolment): an
//! authority directory, and a city node's bundle (its root, its TLS key).
//! There is no migration: docs/PKI.md says why.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Authority, ok, tessera};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, PKCS_ED25519,
    SanType,
};

const MADE_BEFORE: &str = "made before tessera's TLS keys moved from Ed25519 to ECDSA P-256";

/// An Ed25519 national root as `tessera authority init` made it before the
/// change: its certificate and key PEM.
fn ed25519_root() -> (String, String) {
    let key = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "tessera");
    dn.push(DnType::CommonName, "old national root");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.subject_alt_names = vec![SanType::URI(
        "tessera:nation:000000:root".try_into().unwrap(),
    )];
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn ed25519_key_pem() -> String {
    KeyPair::generate_for(&PKCS_ED25519)
        .unwrap()
        .serialize_pem()
}

fn assert_refused_as_old(out: &Output, file: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {stderr}");
    assert!(stderr.contains(file), "names no {file}: {stderr}");
    assert!(stderr.contains(MADE_BEFORE), "{stderr}");
    assert!(stderr.contains("tessera authority init"), "{stderr}");
    assert!(stderr.contains("re-enrol"), "{stderr}");
}

#[test]
fn an_authority_directory_with_an_ed25519_root_is_refused_with_what_to_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("authority");
    let d = dir.to_str().unwrap();
    ok(&["authority", "init", "--dir", d]);
    let (cert, key) = ed25519_root();
    std::fs::write(dir.join("root/root.crt"), cert).unwrap();
    std::fs::write(dir.join("root/root.key"), key).unwrap();
    let out = tessera(&[
        "authority",
        "enrol-gateway",
        "--dir",
        d,
        "--endpoint",
        "127.0.0.1:7000",
    ]);
    assert_refused_as_old(&out, "root.crt");
    // Nothing was issued from it.
    assert!(
        !dir.join("gateways").exists() || dir.join("gateways").read_dir().unwrap().next().is_none()
    );
}

/// Runs `tessera node run` and waits (bounded) for it to exit.
fn node_run(config: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["node", "run", "--config", config])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ended = common::wait("the node to refuse its old files", Duration::from_secs(30))
        .poll(|| child.try_wait().unwrap());
    if ended.is_err() {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!(
            "the node started with old files: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    child.wait_with_output().unwrap()
}

fn bundle_file(authority: &Authority, name: &str) -> std::path::PathBuf {
    Path::new(&authority.config()).with_file_name(name)
}

#[test]
fn a_node_with_an_ed25519_root_or_tls_key_does_not_start_and_says_what_to_run() {
    let authority = Authority::new();
    let root = bundle_file(&authority, "root.crt");
    let current_root = std::fs::read(&root).unwrap();

    // A bundle whose root predates the change.
    std::fs::write(&root, ed25519_root().0).unwrap();
    assert_refused_as_old(&node_run(&authority.config()), "root.crt");

    // A current root but an Ed25519 TLS key.
    std::fs::write(&root, current_root).unwrap();
    std::fs::write(bundle_file(&authority, "node.key"), ed25519_key_pem()).unwrap();
    let out = node_run(&authority.config());
    assert_refused_as_old(&out, "node.key");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("holds an Ed25519 key, but an ECDSA P-256 key is needed here"),
        "{stderr}"
    );
}
