//! A city's badge-signer key in a real PKCS#11 token (SoftHSM2) with the
//! real `tessera` binary: `tessera keygen --pkcs11-module …` makes the key
//! inside the token and a request the token signs, the authority enrols
//! the city by request, `tessera node run` signs with the token key, and a
//! checkpoint finds the badge VALID through the gateway. No badge-signer
//! key file exists anywhere.
//!
//! Skipped when `softhsm2-util` is not installed, unless
//! `TESSERA_REQUIRE_SOFTHSM=1` (as in `.ci/run`), where it fails instead.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{free_port, id, ok, spawn_listening, stop, tessera, wait_until};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Runs `tessera args` with `SOFTHSM2_CONF` set.
fn with_conf(conf: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .env("SOFTHSM2_CONF", conf)
        .output()
        .unwrap()
}

/// A fresh SoftHSM2 token labelled `label` under `dir`, its PIN in
/// `dir/pin` (0600); the configuration file, or `None` when SoftHSM2 is
/// not installed and not required.
fn token(dir: &Path, label: &str) -> Option<std::path::PathBuf> {
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
        return None;
    }
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let init = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", label])
        .args(["--pin", "1234-city", "--so-pin", "1234-so"])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    use std::os::unix::fs::PermissionsExt;
    let pin = dir.join("pin");
    std::fs::write(&pin, "1234-city\n").unwrap();
    std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).unwrap();
    Some(conf)
}

async fn ingest_negative_test(node: &str, operator: &Path, resident: u32) {
    common::ingest_pcr(node, operator, &format!("hsm-{resident}"), resident, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_with_its_badge_signer_key_in_a_token_issues_badges_that_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(conf) = token(&tmp.path().join("hsm"), "hangzhou") else {
        return;
    };
    let pin = tmp.path().join("hsm/pin");
    let authority = tmp.path().join("authority");
    let d = s(&authority);
    ok(&["authority", "init", "--dir", d]);

    // The city makes its TLS key in a file and its badge-signer key in the
    // token, with a request for each.
    let city = tmp.path().join("hangzhou");
    let node_port = free_port();
    let node = format!("127.0.0.1:{node_port}");
    let keygen = [
        "keygen",
        "--role",
        "city",
        "--city",
        "330100",
        "--name",
        "Hangzhou",
        "--endpoint",
        &node,
        "--out",
        s(&city),
        "--pkcs11-module",
        MODULE,
        "--token",
        "hangzhou",
        "--key-label",
        "hz-badge-signer",
        "--pin-file",
        s(&pin),
    ];
    let out = with_conf(&conf, &keygen);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(city.join("node.key").exists());
    assert!(!city.join("badge-signer.key").exists(), "{stdout}");
    assert!(
        stdout.contains("pkcs11 = { module = \"/usr/lib/softhsm/libsofthsm2.so\", token = \"hangzhou\", key = \"hz-badge-signer\""),
        "{stdout}"
    );
    let fingerprints: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.split_once("fingerprint SHA-256 "))
        .map(|(_, f)| f.trim().to_owned())
        .collect();
    // The same label again is refused: the token keeps the first key.
    let again = with_conf(
        &conf,
        &[
            &keygen[..10],
            &[s(&tmp.path().join("again"))],
            &keygen[11..],
        ]
        .concat(),
    );
    assert!(!again.status.success());
    let again = String::from_utf8_lossy(&again.stderr);
    assert!(
        again.contains("already holds a key labelled \"hz-badge-signer\""),
        "{again}"
    );
    assert!(!tmp.path().join("again/node.key").exists());

    // The authority certifies both requests; the token signed the
    // badge-signer's, so the authority checked possession of that key.
    let out = ok(&[
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
    assert_eq!(fingerprints.len(), 2, "{fingerprints:?}");
    for fingerprint in &fingerprints {
        assert!(
            out.contains(fingerprint.as_str()),
            "{fingerprint} not in {out}"
        );
    }
    let operator = authority.join("operators/330100-hangzhou-cdc");
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

    // The city puts the certificates beside its key and names the token.
    let bundle = authority.join("cities/330100");
    for entry in std::fs::read_dir(&bundle).unwrap() {
        let path = entry.unwrap().path();
        let to = city.join(path.file_name().unwrap());
        if path.extension().is_some_and(|e| e == "csr") || to.exists() {
            continue;
        }
        std::fs::copy(&path, &to).unwrap();
    }
    let config = city.join("node.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("key = \"badge-signer.key\""), "{text}");
    let text = text.replace(
        "key = \"badge-signer.key\"",
        &format!(
            "pkcs11 = {{ module = \"{MODULE}\", token = \"hangzhou\", key = \"hz-badge-signer\", pin_file = \"{}\" }}",
            s(&pin)
        ),
    );
    std::fs::write(&config, text).unwrap();

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
        .env("SOFTHSM2_CONF", &conf)
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
    ingest_negative_test(&node, &operator, 5).await;
    let issued = ok(&[
        "badge",
        "issue",
        "--node",
        &node,
        "--bundle",
        s(&operator),
        "--id",
        &id(5),
        "--name",
        "王芳",
    ]);
    let qr = issued
        .lines()
        .find(|l| l.starts_with("TB1:"))
        .unwrap_or_else(|| panic!("no TB1: line in\n{issued}"));
    let station = authority.join("verifiers/420000-wuhan-station");
    let out = tessera(&["verify", "--gateway", &gateway, "--bundle", s(&station), qr]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("VALID"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stop(node_process);
    stop(gateway_process);
    // No badge-signer key file anywhere: the key is only in the token.
    for dir in [&city, &authority] {
        let found = Command::new("find")
            .args([s(dir), "-name", "badge-signer.key"])
            .output()
            .unwrap();
        assert!(
            found.stdout.is_empty(),
            "{}",
            String::from_utf8_lossy(&found.stdout)
        );
    }
}
