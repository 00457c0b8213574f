//! A city's badge-signer key in a real PKCS#11 token (SoftHSM2): generated
//! inside the token, enrolled by a request the token signs, used by a
//! running node to sign badges that verify offline; the private key cannot
//! be read out; a wrong PIN, a missing key or a key the certificate does
//! not name stops the start with a precise error.
//!
//! Skipped when `softhsm2-util` is not installed, unless
//! `TESSERA_REQUIRE_SOFTHSM=1` (as in `.ci/run`), where it fails instead.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` when the module is initialised, once per
//! process, and the tests may not set the environment of their own process:
//! each test makes a fresh token directory and configuration, then runs
//! itself again as a child process with `SOFTHSM2_CONF` pointing there.

use std::path::{Path, PathBuf};
use std::process::Command;

use tessera_certs::pkcs11::{self, TokenKey, TokenKeyRef};
use tessera_certs::profile::CertRequest;
use tessera_certs::request::{CheckedRequest, make_held_key_request};
use tessera_core::badge::BadgeKey as _;
use tessera_core::trust::CheckedTrustList;
use tessera_core::{CityCode, Colour, Identity, Role, Scope, verify};
use tessera_proto::v1 as pb;
use tessera_tests::harness::{RunningNode, node_client, write_city_bundle};
use tessera_tests::{TestPki, national_id, test_record, unix_now};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "tessera-test";
const PIN: &str = "4711-pin";
/// Set in the child: the directory holding the token and its PIN file.
const CHILD: &str = "TESSERA_SOFTHSM_DIR";

/// A SoftHSM2 token made for one test.
struct Token {
    dir: PathBuf,
}

impl Token {
    fn key(&self, label: &str) -> TokenKeyRef {
        TokenKeyRef {
            module: MODULE.into(),
            token: TOKEN.into(),
            key: label.into(),
            pin_file: self.dir.join("pin"),
        }
    }
}

/// Runs `body` in a child process of this test binary whose SoftHSM2
/// configuration points at a fresh token; in the child, runs `body`.
fn with_token(test: &str, body: impl FnOnce(&Token)) {
    if let Ok(dir) = std::env::var(CHILD) {
        body(&Token { dir: dir.into() });
        return;
    }
    let util = Command::new("softhsm2-util").arg("--version").output();
    if util.is_err() || !Path::new(MODULE).exists() {
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
    let init = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", TOKEN, "--pin", PIN])
        .args(["--so-pin", "4711-so-pin"])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    write_private(&dir.path().join("pin"), PIN);
    let exe = std::env::current_exe().unwrap();
    let run = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads", "1"])
        .env("SOFTHSM2_CONF", &conf)
        .env(CHILD, dir.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "child failed:\n{out}\n{err}");
    // The child ran this very test, not nothing.
    assert!(
        out.contains("1 passed"),
        "the child ran no test:\n{out}\n{err}"
    );
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A certificate for the token key `label` of city `code`, issued from the
/// request the token signed, as `tessera enrol --request` does.
fn enrol(pki: &TestPki, code: CityCode, key: &TokenKey) -> Vec<u8> {
    let pem = make_held_key_request(key, "Hangzhou badge signer").unwrap();
    let request = CheckedRequest::parse(pem.as_bytes(), Path::new("badge-signer.csr")).unwrap();
    let subject = request.key_for(Role::BadgeSigner).unwrap();
    let identity = Identity::new(Role::BadgeSigner, Scope::City(code)).unwrap();
    pki.root
        .issue(
            &CertRequest {
                identity,
                common_name: identity.to_uri(),
                hosts: vec![],
                not_before: pki.now - 86_400,
                not_after: pki.now + 365 * 86_400,
                serial: None,
            },
            subject,
        )
        .unwrap()
}

/// The city's bundle with the badge-signer certificate `der` and the key
/// in the token under `label`; returns the configuration file.
fn bundle_with_token(
    pki: &TestPki,
    code: CityCode,
    dir: &Path,
    der: &[u8],
    token: &Token,
    label: &str,
) -> PathBuf {
    let listen = "127.0.0.1:0".parse().unwrap();
    let config = write_city_bundle(pki, code, dir, listen).unwrap();
    std::fs::write(
        dir.join("badge-signer.crt"),
        tessera_certs::keys::cert_to_pem(der),
    )
    .unwrap();
    std::fs::remove_file(dir.join("badge-signer.key")).unwrap();
    let key = token.key(label);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "key = \"badge-signer.key\"",
        &format!(
            "pkcs11 = {{ module = \"{}\", token = \"{}\", key = \"{}\", pin_file = \"{}\" }}",
            key.module.display(),
            key.token,
            key.key,
            key.pin_file.display()
        ),
    );
    std::fs::write(&config, text).unwrap();
    config
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_node_signs_badges_with_its_key_in_a_token() {
    with_token(
        "pkcs11::a_node_signs_badges_with_its_key_in_a_token",
        |token| {
            let mut pki = TestPki::new(unix_now()).unwrap();
            let hz = pki.add_city(330_100, "Hangzhou", "127.0.0.1:1").unwrap();
            let public = pkcs11::generate(&token.key("hz-badge-signer")).unwrap();
            let key = TokenKey::open(&token.key("hz-badge-signer")).unwrap();
            assert_eq!(key.public_key(), public);
            // Sensitive and not extractable: the token will not reveal it.
            assert!(key.value_is_hidden().unwrap());
            let der = enrol(&pki, hz, &key);
            drop(key);
            // The trust list names the token's key for the city.
            pki.cities[0].signer.der = der.clone();
            let dir = tempfile::tempdir().unwrap();
            let config = bundle_with_token(&pki, hz, dir.path(), &der, token, "hz-badge-signer");
            runtime().block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let node = RunningNode::start_with(config, listener).await.unwrap();
                let now = unix_now();
                let op = pki.operator(hz).unwrap();
                let mut client = node_client(&pki, node.addr, &op).unwrap();
                let resident = national_id(hz, 1);
                client
                    .ingest_records(pb::IngestRequest {
                        records: vec![test_record("lab-1", &resident, false, now - 3600)],
                    })
                    .await
                    .unwrap();
                let badge = client
                    .issue_badge(pb::IssueBadgeRequest {
                        national_id: resident.clone(),
                        name: "张三丰".into(),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                let list = CheckedTrustList::verify(
                    &pki.trust_list(1).unwrap(),
                    &pki.anchor().unwrap(),
                    now,
                )
                .unwrap();
                let verified = verify(&badge.badge, &list, now).unwrap();
                assert_eq!(verified.claims().colour, Colour::Green);
                node.stop().await.unwrap();
            });
        },
    );
}

/// Starts the node of `config` and returns why it refused.
fn refusal(config: PathBuf) -> String {
    runtime().block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        match RunningNode::start_with(config, listener).await {
            Ok(_) => String::from("started"),
            Err(e) => format!("{e:#}"),
        }
    })
}

#[test]
fn a_wrong_pin_a_missing_key_or_another_key_stops_the_start() {
    with_token(
        "pkcs11::a_wrong_pin_a_missing_key_or_another_key_stops_the_start",
        |token| {
            let mut pki = TestPki::new(unix_now()).unwrap();
            let hz = pki.add_city(330_100, "Hangzhou", "127.0.0.1:1").unwrap();
            pkcs11::generate(&token.key("enrolled")).unwrap();
            pkcs11::generate(&token.key("other")).unwrap();
            // A second key with a label in use is refused.
            let again = pkcs11::generate(&token.key("enrolled")).unwrap_err();
            assert!(
                again
                    .to_string()
                    .contains("already holds a key labelled \"enrolled\""),
                "{again}"
            );
            let der = enrol(&pki, hz, &TokenKey::open(&token.key("enrolled")).unwrap());
            pki.cities[0].signer.der = der.clone();
            let dir = tempfile::tempdir().unwrap();

            // The enrolled key with a wrong PIN (first: the login of a
            // process holds while any of its sessions is open).
            let wrong = dir.path().join("wrong-pin");
            write_private(&wrong, "0000");
            let config =
                bundle_with_token(&pki, hz, &dir.path().join("c"), &der, token, "enrolled");
            let text = std::fs::read_to_string(&config).unwrap().replace(
                &token.key("x").pin_file.display().to_string(),
                &wrong.display().to_string(),
            );
            std::fs::write(&config, text).unwrap();
            let why = refusal(config);
            assert!(
                why.contains("refused the PIN from") && why.contains("wrong-pin"),
                "{why}"
            );

            // Another key of the token than the certificate names.
            let config = bundle_with_token(&pki, hz, &dir.path().join("a"), &der, token, "other");
            let why = refusal(config);
            assert!(
                why.contains("the key \"other\" in token \"tessera-test\" is not the key of the badge-signer certificate"),
                "{why}"
            );

            // No key with the label.
            let config = bundle_with_token(&pki, hz, &dir.path().join("b"), &der, token, "absent");
            let why = refusal(config);
            assert!(
                why.contains("holds 0 Ed25519 private key(s) labelled \"absent\""),
                "{why}"
            );
        },
    );
}
