//! The authority's keys in a real PKCS#11 token (SoftHSM2) with the real
//! `tessera` binary: `authority init --pkcs11-module …` makes the root and
//! trust-list signer keys in the authority's token; the city makes its
//! badge-signer key in its own token and enrols by request; enrolment,
//! `trust-list publish` to a running gateway and `revoke` sign through the
//! authority's token; the node signs badges through the city's token and
//! a checkpoint finds one VALID through the gateway, still VALID after the
//! trust-list signer is rotated (its new key made in the token), then
//! SIGNER_REVOKED once the city is revoked. No root or trust-list signer key file exists
//! in the authority directory, and the token refuses to reveal the keys.
//!
//! Skipped when `softhsm2-util` is not installed, unless
//! `TESSERA_REQUIRE_SOFTHSM=1` (as in `.ci/run`), where it fails instead.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` once per process, and a test may not set
//! its own environment: the test makes the tokens, then runs itself again
//! as a child process with `SOFTHSM2_CONF` set, which every `tessera` it
//! starts inherits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, id, ok, spawn_listening, stop, tessera, wait_until};
use tessera_certs::pkcs11::ec::TokenCaKey;
use tessera_certs::pkcs11::{TokenKey, TokenKeyRef};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// Set in the child: the directory holding the tokens and PIN files.
const CHILD: &str = "TESSERA_SOFTHSM_DIR";

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Runs `body` in a child process of this test binary whose SoftHSM2
/// configuration holds two fresh tokens, `authority` (PIN in
/// `dir/authority.pin`) and `hangzhou` (`dir/hangzhou.pin`).
fn with_tokens(test: &str, body: impl FnOnce(&Path)) {
    if let Ok(dir) = std::env::var(CHILD) {
        body(Path::new(&dir));
        return;
    }
    let present = Command::new("softhsm2-util")
        .arg("--version")
        .output()
        .is_ok()
        && Path::new(MODULE).exists();
    if !present {
        let required = std::env::var("TESSERA_REQUIRE_SOFTHSM").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "TESSERA_REQUIRE_SOFTHSM=1 but softhsm2-util or {MODULE} is missing (apt-get install softhsm2)"
        );
        eprintln!("skipped: softhsm2-util or {MODULE} not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    for (label, pin) in [
        ("authority", "1234-auth"),
        ("root", "1234-root"),
        ("hangzhou", "1234-city"),
    ] {
        let init = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", label])
            .args(["--pin", pin, "--so-pin", "1234-so"])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .unwrap();
        assert!(init.status.success(), "{init:?}");
        write_private(&dir.path().join(format!("{label}.pin")), pin);
    }
    let run = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads", "1"])
        .env("SOFTHSM2_CONF", &conf)
        .env(CHILD, dir.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "child failed:\n{out}\n{err}");
    assert!(
        out.contains("1 passed"),
        "the child ran no test:\n{out}\n{err}"
    );
}

fn key_ref(tokens: &Path, token: &str, key: &str) -> TokenKeyRef {
    TokenKeyRef {
        module: MODULE.into(),
        token: token.into(),
        key: key.into(),
        pin_file: tokens.join(format!("{token}.pin")),
    }
}

/// Every file under `dir` whose name ends with `.key`.
fn key_files(dir: &Path) -> Vec<PathBuf> {
    let found = Command::new("find")
        .args([s(dir), "-name", "*.key"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&found.stdout)
        .lines()
        .map(PathBuf::from)
        .collect()
}

/// The city's keys: its node's in a file, its badge signer's in its token.
fn city_keygen(tokens: &Path, city: &Path, node: &str) {
    ok(&[
        "keygen",
        "--role",
        "city",
        "--city",
        "330100",
        "--name",
        "Hangzhou",
        "--endpoint",
        node,
        "--out",
        s(city),
        "--pkcs11-module",
        MODULE,
        "--token",
        "hangzhou",
        "--key-label",
        "hz-badge-signer",
        "--pin-file",
        s(&tokens.join("hangzhou.pin")),
    ]);
}

/// Copies the city's certificates beside its keys and points node.toml
/// at the badge-signer key in the city's token.
fn city_bundle(tokens: &Path, authority: &Path, city: &Path) -> PathBuf {
    for entry in std::fs::read_dir(authority.join("cities/330100")).unwrap() {
        let path = entry.unwrap().path();
        let to = city.join(path.file_name().unwrap());
        if path.extension().is_some_and(|e| e == "csr") || to.exists() {
            continue;
        }
        std::fs::copy(&path, &to).unwrap();
    }
    let config = city.join("node.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "key = \"badge-signer.key\"",
        &format!(
            "pkcs11 = {{ module = \"{MODULE}\", token = \"hangzhou\", key = \"hz-badge-signer\", pin_file = \"{}\" }}",
            s(&tokens.join("hangzhou.pin"))
        ),
    );
    std::fs::write(&config, text).unwrap();
    config
}

fn verify(gateway: &str, station: &Path, qr: &str) -> (bool, String) {
    let out = tessera(&["verify", "--gateway", gateway, "--bundle", s(station), qr]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_authority_signs_through_its_token_and_a_node_through_its_own() {
    with_tokens(
        "the_authority_signs_through_its_token_and_a_node_through_its_own",
        |tokens| {
            let tmp = tempfile::tempdir().unwrap();
            let authority = tmp.path().join("authority");
            let d = s(&authority);
            // A PIN the token refuses: nothing is made.
            let wrong = tmp.path().join("wrong.pin");
            write_private(&wrong, "0000");
            let refused = tessera(&[
                "authority",
                "init",
                "--dir",
                d,
                "--pkcs11-module",
                MODULE,
                "--token",
                "authority",
                "--pin-file",
                s(&wrong),
            ]);
            assert!(!refused.status.success());
            let why = String::from_utf8_lossy(&refused.stderr);
            assert!(
                why.contains("token \"authority\" refused the PIN from")
                    && why.contains("wrong.pin"),
                "{why}"
            );
            assert!(!authority.exists());
            let out = ok(&[
                "authority",
                "init",
                "--dir",
                d,
                "--pkcs11-module",
                MODULE,
                "--token",
                "authority",
                "--pin-file",
                s(&tokens.join("authority.pin")),
                "--root-token",
                "root",
                "--root-pin-file",
                s(&tokens.join("root.pin")),
            ]);
            assert!(out.contains("keys in tokens"), "{out}");
            let custody = std::fs::read_to_string(authority.join("authority.toml")).unwrap();
            assert!(
                custody.contains("root = \"tessera-root\"")
                    && custody.contains("[root_pkcs11]")
                    && custody.contains("token = \"root\"")
                    && custody.contains("issuing_ca = \"tessera-issuing-ca\"")
                    && custody.contains("trust_list_signer = \"tessera-trust-list-signer\"")
                    && !custody.contains("1234-auth")
                    && !custody.contains("1234-root"),
                "{custody}"
            );
            // Again on the same token: the labels are taken, nothing written.
            let again = tessera(&[
                "authority",
                "init",
                "--dir",
                s(&tmp.path().join("again")),
                "--pkcs11-module",
                MODULE,
                "--token",
                "authority",
                "--pin-file",
                s(&tokens.join("authority.pin")),
            ]);
            assert!(!again.status.success());
            assert!(
                String::from_utf8_lossy(&again.stderr)
                    .contains("already holds a key labelled \"tessera-issuing-ca\""),
                "{again:?}"
            );
            assert!(!tmp.path().join("again").exists());

            let city = tmp.path().join("hangzhou");
            let node_port = free_port();
            let node = format!("127.0.0.1:{node_port}");
            city_keygen(tokens, &city, &node);
            ok(&[
                "authority",
                "enrol-city",
                "--dir",
                d,
                "--code",
                "330100",
                "--name",
                "Hangzhou",
                "--endpoint",
                &node,
                "--csr",
                s(&city.join("node.csr")),
                s(&city.join("badge-signer.csr")),
            ]);
            ok(&[
                "authority",
                "enrol-operator",
                "--dir",
                d,
                "--city",
                "330100",
                "--name",
                "Hangzhou CDC",
            ]);
            ok(&[
                "authority",
                "enrol-verifier",
                "--dir",
                d,
                "--province",
                "420000",
                "--name",
                "Wuhan station",
            ]);
            let gateway_port = free_port();
            let gateway = format!("127.0.0.1:{gateway_port}");
            ok(&[
                "authority",
                "enrol-gateway",
                "--dir",
                d,
                "--name",
                "national",
                "--endpoint",
                &gateway,
            ]);
            let config = city_bundle(tokens, &authority, &city);

            let gateway_process = spawn_listening(
                &[
                    "gateway",
                    "run",
                    "--config",
                    s(&authority.join("gateways/national/gateway.toml")),
                ],
                gateway_port,
            );
            ok(&[
                "authority",
                "trust-list",
                "publish",
                "--dir",
                d,
                "--gateway",
                &gateway,
            ]);
            let node_process = Command::new(env!("CARGO_BIN_EXE_tessera"))
                .args(["node", "run", "--config", s(&config)])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let addr: SocketAddr = node.parse().unwrap();
            wait_until(
                "the node to listen with its key in the token",
                Duration::from_secs(20),
                || TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok(),
            );
            let operator = authority.join("operators/330100-hangzhou-cdc");
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(common::ingest_pcr(&node, &operator, "hsm-7", 7, false));
            let issued = ok(&[
                "badge",
                "issue",
                "--node",
                &node,
                "--bundle",
                s(&operator),
                "--id",
                &id(7),
                "--name",
                "李娜",
            ]);
            let qr = issued
                .lines()
                .find(|l| l.starts_with("TB1:"))
                .unwrap_or_else(|| panic!("no TB1: line in\n{issued}"))
                .to_owned();
            let station = authority.join("verifiers/420000-wuhan-station");
            let (valid, text) = verify(&gateway, &station, &qr);
            assert!(valid && text.contains("VALID"), "{text}");

            // A new trust-list signer, made in the token under a new label;
            // the gateway takes the list it signs, and the badge stays VALID.
            let out = ok(&["authority", "rotate-list-signer", "--dir", d]);
            assert!(out.contains("the key in the token"), "{out}");
            let custody = std::fs::read_to_string(authority.join("authority.toml")).unwrap();
            assert!(
                custody.contains("trust_list_signer = \"tessera-trust-list-signer.2\""),
                "{custody}"
            );
            ok(&[
                "authority",
                "trust-list",
                "publish",
                "--dir",
                d,
                "--gateway",
                &gateway,
            ]);
            let (valid, text) = verify(&gateway, &station, &qr);
            assert!(valid && text.contains("VALID"), "{text}");

            // Revoked and published (through the token): the same badge
            // is refused.
            ok(&["authority", "revoke", "--dir", d, "--city", "330100"]);
            ok(&[
                "authority",
                "trust-list",
                "publish",
                "--dir",
                d,
                "--gateway",
                &gateway,
            ]);
            let (valid, text) = verify(&gateway, &station, &qr);
            assert!(!valid && text.contains("SIGNER_REVOKED"), "{text}");
            stop(node_process);
            stop(gateway_process);

            // No root or trust-list signer key file anywhere in the
            // authority directory (the key files left are the TLS keys of
            // the parties enrolled all in one), no badge-signer key file
            // with the city.
            let keys = key_files(&authority);
            assert!(!keys.is_empty(), "the search found nothing");
            let names: Vec<String> = keys
                .iter()
                .map(|k| k.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
            assert!(
                names.iter().all(|n| n != "root.key"
                    && !n.starts_with("signer.")
                    && !n.contains("issuing")),
                "{keys:?}"
            );
            assert!(!authority.join("root/root.key").exists());
            assert!(!authority.join("issuing-ca/issuing-ca.key").exists());
            assert!(!authority.join("trust-list-signer/signer.key").exists());
            let city_keys = key_files(&city);
            assert!(
                city_keys.iter().all(|k| !k.ends_with("badge-signer.key")),
                "{city_keys:?}"
            );
            assert!(!key_files(&city).is_empty(), "the search found nothing");

            // The tokens refuse to reveal CKA_VALUE of any of the keys.
            let root = TokenCaKey::open(&key_ref(tokens, "root", "tessera-root")).unwrap();
            assert!(root.value_is_hidden().unwrap());
            drop(root);
            let ica =
                TokenCaKey::open(&key_ref(tokens, "authority", "tessera-issuing-ca")).unwrap();
            assert!(ica.value_is_hidden().unwrap());
            drop(ica);
            for label in ["tessera-trust-list-signer", "tessera-trust-list-signer.2"] {
                let signer = TokenKey::open(&key_ref(tokens, "authority", label)).unwrap();
                assert!(signer.value_is_hidden().unwrap(), "{label}");
            }
            let badge = TokenKey::open(&key_ref(tokens, "hangzhou", "hz-badge-signer")).unwrap();
            assert!(badge.value_is_hidden().unwrap());
        },
    );
}
