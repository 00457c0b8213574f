//! Enrolment by certificate request with the real `tessera` binary: every
//! party makes its own keys with `tessera keygen` in its own directory, the
//! authority certifies them with `enrol-… --csr`, the parties run from their
//! own keys and the authority's certificates, and the authority's directory
//! holds none of their private keys. Bad requests are refused and change
//! nothing. A city so enrolled renews its node certificate and rotates its
//! badge signer by request too (`renew --csr`, `rotate-signer --csr`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{free_port, id, ok, spawn_listening, stop, tessera};
use tessera_certs::keys;

/// Every file under `dir`, recursively, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Copies the authority's bundle into the party's own directory, beside the
/// keys `tessera keygen` made there: every file but the requests, none
/// overwriting anything.
fn combine(bundle: &Path, own: &Path) {
    for entry in std::fs::read_dir(bundle).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "csr") {
            continue;
        }
        let to = own.join(path.file_name().unwrap());
        assert!(!to.exists(), "{} would be overwritten", to.display());
        std::fs::copy(&path, &to).unwrap();
    }
}

/// Every byte form a private key file's key could take in another file: the
/// PEM text, its base64 body on one line, the PKCS#8 DER, and the bare
/// secret (P-256 scalar or Ed25519 seed).
fn key_forms(path: &Path) -> Vec<(String, Vec<u8>)> {
    let pem_text = std::fs::read(path).unwrap();
    let der = pem::parse(&pem_text).unwrap().into_contents();
    let body: String = String::from_utf8(pem_text.clone())
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let secret = match keys::read_tls_key(path) {
        Ok(key) => key.ecdsa().to_bytes().to_vec(),
        Err(_) => keys::read_signer_key(path).unwrap().to_bytes().to_vec(),
    };
    let name = path.display().to_string();
    vec![
        (format!("{name} as PEM"), pem_text),
        (format!("{name} as base64"), body.into_bytes()),
        (format!("{name} as PKCS#8 DER"), der),
        (format!("{name} as a bare secret"), secret),
    ]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn ingest_negative_test(node: &str, operator: &Path, resident: u32) {
    common::ingest_pcr(node, operator, &format!("csr-{resident}"), resident, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn parties_enrolled_by_request_serve_a_badge_that_verifies_and_the_authority_holds_none_of_their_keys()
 {
    let tmp = tempfile::tempdir().unwrap();
    let authority = tmp.path().join("authority");
    let d = s(&authority);
    ok(&["authority", "init", "--dir", d]);

    // Each party, on its own machine, makes its keys and requests.
    let city = tmp.path().join("hangzhou");
    let operator = tmp.path().join("hangzhou-cdc");
    let station = tmp.path().join("wuhan-station");
    let national = tmp.path().join("national");
    let node_port = free_port();
    let node = format!("127.0.0.1:{node_port}");
    let gateway_port = free_port();
    let gateway = format!("127.0.0.1:{gateway_port}");
    let out = ok(&[
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
    ]);
    assert!(
        out.contains(&format!(
            "tessera authority enrol-city --dir AUTHORITY --code 330100 --name \"Hangzhou\" --endpoint {node} --csr node.csr badge-signer.csr"
        )),
        "{out}"
    );
    let city_fingerprints: Vec<String> = out
        .lines()
        .filter_map(|l| l.split_once("fingerprint SHA-256 "))
        .map(|(_, f)| f.trim().to_owned())
        .collect();
    ok(&[
        "keygen",
        "--role",
        "operator",
        "--city",
        "330100",
        "--out",
        s(&operator),
    ]);
    ok(&["keygen", "--role", "checkpoint", "--out", s(&station)]);
    ok(&["keygen", "--role", "gateway", "--out", s(&national)]);
    #[cfg(unix)]
    for key in ["node.key", "badge-signer.key"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(city.join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }

    // The authority, on its machine, certifies the requests.
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
    assert!(out.contains("enrolled by request"), "{out}");
    // The fingerprints the city read out are the ones the authority sees.
    assert_eq!(city_fingerprints.len(), 2, "{city_fingerprints:?}");
    for fingerprint in &city_fingerprints {
        assert!(
            out.contains(fingerprint.as_str()),
            "{fingerprint} not in {out}"
        );
    }
    ok(&[
        "authority",
        "enrol-operator",
        "--dir",
        d,
        "--city",
        "330100",
        "--name",
        "Hangzhou CDC",
        "--csr",
        s(&operator.join("operator.csr")),
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
        "--csr",
        s(&station.join("verifier.csr")),
    ]);
    ok(&[
        "authority",
        "enrol-gateway",
        "--dir",
        d,
        "--name",
        "national",
        "--endpoint",
        &gateway,
        "--csr",
        s(&national.join("gateway.csr")),
    ]);

    // No private key of any party is anywhere in the authority's directory.
    let parties: Vec<PathBuf> = [
        city.join("node.key"),
        city.join("badge-signer.key"),
        operator.join("operator.key"),
        station.join("verifier.key"),
        national.join("gateway.key"),
    ]
    .into();
    let files = snapshot(&authority);
    assert!(files.len() > 20, "{files:?}");
    for key in &parties {
        for (form, bytes) in key_forms(key) {
            for (file, contents) in &files {
                assert!(
                    !contains(contents, &bytes),
                    "{} holds {form}",
                    file.display()
                );
            }
        }
    }
    // The only private keys there are the authority's own.
    for (file, contents) in &files {
        if contains(contents, b"PRIVATE KEY") {
            let rel = file.strip_prefix(&authority).unwrap();
            assert!(
                ["root", "issuing-ca", "trust-list-signer", "authority"]
                    .iter()
                    .any(|own| rel.starts_with(own)),
                "{} holds a private key",
                rel.display()
            );
        }
    }

    // Each party puts the certificates beside its own keys and runs.
    combine(&authority.join("cities/330100"), &city);
    combine(&authority.join("operators/330100-hangzhou-cdc"), &operator);
    combine(&authority.join("verifiers/420000-wuhan-station"), &station);
    combine(&authority.join("gateways/national"), &national);
    let gateway_process = spawn_listening(
        &[
            "gateway",
            "run",
            "--config",
            s(&national.join("gateway.toml")),
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
    let node_process = spawn_listening(
        &["node", "run", "--config", s(&city.join("node.toml"))],
        node_port,
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
    let out = tessera(&["verify", "--gateway", &gateway, "--bundle", s(&station), qr]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("VALID"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stop(node_process);
    stop(gateway_process);
}

/// A P-384 request: a key type tessera never certifies.
fn p384_request(path: &Path) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .unwrap();
    std::fs::write(path, csr.pem().unwrap()).unwrap();
}

/// `path`'s request with one letter of its subject changed: the signature
/// no longer covers it.
fn tamper(from: &Path, to: &Path) {
    let text = std::fs::read_to_string(from).unwrap();
    let mut der = pem::parse(&text).unwrap().into_contents();
    let at = der
        .windows(8)
        .position(|w| w == b"Hangzhou")
        .expect("the subject names Hangzhou");
    der[at] = b'X';
    std::fs::write(to, pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der))).unwrap();
}

fn refused(args: &[&str], expected: &str) {
    let out = tessera(args);
    assert!(!out.status.success(), "tessera {args:?} succeeded");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(expected),
        "tessera {args:?}: expected {expected:?} in {stderr}"
    );
}

#[test]
fn wrong_key_types_tampered_requests_and_garbage_are_refused_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let authority = tmp.path().join("authority");
    let d = s(&authority);
    ok(&["authority", "init", "--dir", d]);
    let city = tmp.path().join("hangzhou");
    ok(&[
        "keygen",
        "--role",
        "city",
        "--name",
        "Hangzhou",
        "--out",
        s(&city),
    ]);
    let node_csr = city.join("node.csr");
    let signer_csr = city.join("badge-signer.csr");
    let tampered = tmp.path().join("tampered.csr");
    tamper(&node_csr, &tampered);
    let garbage = tmp.path().join("garbage.csr");
    std::fs::write(&garbage, "not a request\n").unwrap();
    let p384 = tmp.path().join("p384.csr");
    p384_request(&p384);
    let before = snapshot(&authority);

    let city_args = |node: &Path, signer: &Path| -> Vec<String> {
        [
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
            s(node),
            s(signer),
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let run = |args: Vec<String>, expected: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&args, expected);
    };
    // The two requests swapped.
    run(
        city_args(&signer_csr, &node_csr),
        &format!(
            "{}: the request carries an Ed25519 key, but node certificates carry ECDSA P-256 keys",
            signer_csr.display()
        ),
    );
    run(
        city_args(&tampered, &signer_csr),
        &format!(
            "{}: the request's signature does not verify with its own key",
            tampered.display()
        ),
    );
    run(
        city_args(&garbage, &signer_csr),
        &format!("{}: not a certificate signing request", garbage.display()),
    );
    run(
        city_args(&p384, &signer_csr),
        "the request carries an unsupported (1.2.840.10045.2.1 on curve 1.3.132.0.34) key; tessera certifies only ECDSA P-256 and Ed25519 keys",
    );
    refused(
        &[
            "authority",
            "enrol-gateway",
            "--dir",
            d,
            "--endpoint",
            "127.0.0.1:7000",
            "--csr",
            s(&signer_csr),
        ],
        "the request carries an Ed25519 key, but gateway certificates carry ECDSA P-256 keys",
    );
    refused(
        &[
            "authority",
            "enrol-verifier",
            "--dir",
            d,
            "--province",
            "420000",
            "--name",
            "Wuhan station",
            "--csr",
            s(&tampered),
        ],
        "does not verify",
    );
    assert_eq!(
        snapshot(&authority),
        before,
        "a refused enrolment changed the directory"
    );

    // keygen never overwrites a key.
    refused(
        &["keygen", "--role", "node", "--out", s(&city)],
        "node.key already exists",
    );
}

/// Asserts that no form of any of `keys` is in any file under `authority`.
fn holds_none_of(authority: &Path, keys: &[PathBuf]) {
    let files = snapshot(authority);
    for key in keys {
        for (form, bytes) in key_forms(key) {
            for (file, contents) in &files {
                assert!(
                    !contains(contents, &bytes),
                    "{} holds {form}",
                    file.display()
                );
            }
        }
    }
}

/// Moves `from` over `to` by an atomic rename, as a party installs a file.
fn install(from: &Path, to: &Path) {
    let tmp = to.with_extension("new");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

fn serial_of(der: &[u8]) -> String {
    tessera_core::cert::hex_string(tessera_core::CertInfo::parse(der).unwrap().serial())
}

fn key_id_of(path: &Path) -> tessera_core::KeyId {
    tessera_core::KeyId::of_certificate(&keys::read_cert(path).unwrap())
}

fn tls_client(
    own: &Path,
    stem: &str,
    expected: tessera_core::Role,
) -> std::sync::Arc<tokio_rustls::rustls::ClientConfig> {
    use tessera_runtime::tls;
    tls::install_default_provider();
    let root = keys::read_cert(&own.join("root.crt")).unwrap();
    let trust = std::sync::Arc::new(
        tls::TrustState::new(tessera_core::TrustAnchor::from_der(&root).unwrap()).unwrap(),
    );
    let identity = tessera_runtime::TlsIdentity::from_files(
        &own.join(format!("{stem}.crt")),
        &own.join(format!("{stem}.key")),
    )
    .unwrap();
    tls::client_config(&identity, trust, expected).unwrap()
}

/// The serial of the certificate the node at `addr` presents to a new
/// connection of the operator whose files are in `operator`.
async fn presented_serial(operator: &Path, addr: &str) -> String {
    let config = tls_client(operator, "operator", tessera_core::Role::CityNode);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(
            rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    serial_of(stream.get_ref().1.peer_certificates().unwrap()[0].as_ref())
}

/// A badge the node at `node` issues for resident `n`: its QR text and the
/// key id it was signed with.
async fn issue_badge(operator: &Path, node: &str, n: u32) -> (String, tessera_core::KeyId) {
    use prost::Message;
    use tessera_proto::v1 as pb;
    let config = tls_client(operator, "operator", tessera_core::Role::CityNode);
    let mut client = tessera_proto::v1::city_node_client::CityNodeClient::new(
        tessera_runtime::grpc::channel(node, config).unwrap(),
    );
    let badge = client
        .issue_badge(pb::IssueBadgeRequest {
            national_id: id(n),
            name: "王芳".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let envelope = pb::SignedBadge::decode(badge.badge.as_slice()).unwrap();
    (
        badge.qr_text,
        tessera_core::KeyId::from_slice(&envelope.key_id).unwrap(),
    )
}

fn hup(process: &std::process::Child) {
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &process.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_city_enrolled_by_request_renews_its_node_and_rotates_its_signer_by_request() {
    let tmp = tempfile::tempdir().unwrap();
    let authority = tmp.path().join("authority");
    let d = s(&authority);
    ok(&["authority", "init", "--dir", d]);
    let city = tmp.path().join("hangzhou");
    let operator = tmp.path().join("hangzhou-cdc");
    let station = tmp.path().join("wuhan-station");
    let national = tmp.path().join("national");
    let node_port = free_port();
    let node = format!("127.0.0.1:{node_port}");
    let gateway_port = free_port();
    let gateway = format!("127.0.0.1:{gateway_port}");
    ok(&["keygen", "--role", "city", "--out", s(&city)]);
    ok(&["keygen", "--role", "operator", "--out", s(&operator)]);
    ok(&["keygen", "--role", "checkpoint", "--out", s(&station)]);
    ok(&["keygen", "--role", "gateway", "--out", s(&national)]);
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
    #[rustfmt::skip]
    ok(&["authority", "enrol-operator", "--dir", d, "--city", "330100", "--name", "Hangzhou CDC",
        "--csr", s(&operator.join("operator.csr"))]);
    #[rustfmt::skip]
    ok(&["authority", "enrol-verifier", "--dir", d, "--province", "420000", "--name",
        "Wuhan station", "--csr", s(&station.join("verifier.csr"))]);
    #[rustfmt::skip]
    ok(&["authority", "enrol-gateway", "--dir", d, "--name", "national", "--endpoint", &gateway,
        "--csr", s(&national.join("gateway.csr"))]);
    let bundle = authority.join("cities/330100");
    combine(&bundle, &city);
    combine(&authority.join("operators/330100-hangzhou-cdc"), &operator);
    combine(&authority.join("verifiers/420000-wuhan-station"), &station);
    combine(&authority.join("gateways/national"), &national);
    // The node looks at its files only on SIGHUP (reload_secs is an hour),
    // and fetches the trust list from the gateway every second.
    let config = city.join("node.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "root = \"root.crt\"",
        &format!("root = \"root.crt\"\ngateway = \"{gateway}\"\nrefresh_secs = 1"),
    );
    std::fs::write(&config, format!("reload_secs = 3600\n{text}")).unwrap();
    let gateway_process = spawn_listening(
        &[
            "gateway",
            "run",
            "--config",
            s(&national.join("gateway.toml")),
        ],
        gateway_port,
    );
    #[rustfmt::skip]
    ok(&["authority", "trust-list", "publish", "--dir", d, "--gateway", &gateway]);
    let node_process = spawn_listening(&["node", "run", "--config", s(&config)], node_port);
    for n in 1..=3 {
        ingest_negative_test(&node, &operator, n).await;
    }
    let verify = |qr: &str| {
        let out = tessera(&["verify", "--gateway", &gateway, "--bundle", s(&station), qr]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success() && stdout.contains("VALID"),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let old_signer = key_id_of(&city.join("badge-signer.crt"));
    let (before, signed_by) = issue_badge(&operator, &node, 1).await;
    assert_eq!(signed_by, old_signer);
    verify(&before);

    // The node's renewal: the city makes a new key and request.
    let new = tmp.path().join("hangzhou-new");
    let out = ok(&["keygen", "--role", "node", "--out", s(&new)]);
    let fingerprint = out
        .lines()
        .find_map(|l| l.split_once("fingerprint SHA-256 "))
        .map(|(_, f)| f.trim().to_owned())
        .unwrap();
    let tampered = tmp.path().join("tampered.csr");
    ok(&[
        "keygen",
        "--role",
        "node",
        "--name",
        "Hangzhou",
        "--out",
        s(&tmp.path().join("t")),
    ]);
    tamper(&tmp.path().join("t/node.csr"), &tampered);
    let before_refusals = snapshot(&authority);
    let renew = ["authority", "renew", "--dir", d, "--city", "330100"];
    refused(&renew, "--csr");
    refused(
        &[&renew[..], &["--csr", s(&city.join("node.csr"))]].concat(),
        "a renewal must change the key",
    );
    refused(
        &[&renew[..], &["--csr", s(&city.join("badge-signer.csr"))]].concat(),
        "the request carries an Ed25519 key, but node certificates carry ECDSA P-256 keys",
    );
    refused(
        &[&renew[..], &["--csr", s(&tampered)]].concat(),
        "the request's signature does not verify with its own key",
    );
    assert_eq!(
        snapshot(&authority),
        before_refusals,
        "a refused renewal changed the directory"
    );

    let old_serial = presented_serial(&operator, &node).await;
    let out = ok(&[&renew[..], &["--csr", s(&new.join("node.csr"))]].concat());
    assert!(out.contains(&fingerprint), "{out}");
    assert!(out.contains(&format!("old  serial {old_serial}")), "{out}");
    assert!(out.contains("node.2.crt"), "{out}");
    let issued = bundle.join("node.2.crt");
    let new_serial = serial_of(&keys::read_cert(&issued).unwrap());
    assert_ne!(new_serial, old_serial);
    // Nothing was installed: the bundle's live certificate is the old one.
    assert_eq!(
        serial_of(&keys::read_cert(&bundle.join("node.crt")).unwrap()),
        old_serial
    );
    // The city installs it beside its new key (key first) and tells its node.
    let old_keys = tmp.path().join("old-keys");
    std::fs::create_dir(&old_keys).unwrap();
    for key in ["node.key", "badge-signer.key"] {
        std::fs::copy(city.join(key), old_keys.join(key)).unwrap();
    }
    install(&new.join("node.key"), &city.join("node.key"));
    install(&issued, &city.join("node.crt"));
    hup(&node_process);
    common::wait_until_async(
        "the node to present its renewed certificate after SIGHUP",
        std::time::Duration::from_secs(10),
        async || presented_serial(&operator, &node).await == new_serial,
    )
    .await;

    // The badge signer's rotation by request.
    let new_signer = tmp.path().join("hangzhou-signer");
    ok(&["keygen", "--role", "badge-signer", "--out", s(&new_signer)]);
    let rotate = ["authority", "rotate-signer", "--dir", d, "--city", "330100"];
    let before_refusals = snapshot(&authority);
    refused(&rotate, "--csr");
    refused(
        &[&rotate[..], &["--csr", s(&city.join("badge-signer.csr"))]].concat(),
        "a renewal must change the key",
    );
    refused(
        &[&rotate[..], &["--csr", s(&new.join("node.csr"))]].concat(),
        "the request carries an ECDSA P-256 key, but badge-signer certificates carry Ed25519 keys",
    );
    assert_eq!(snapshot(&authority), before_refusals);
    let out = ok(&[
        &rotate[..],
        &["--csr", s(&new_signer.join("badge-signer.csr"))],
    ]
    .concat());
    assert!(out.contains("retired"), "{out}");
    let issued = bundle.join("badge-signer.2.crt");
    let new_key = key_id_of(&issued);
    assert_ne!(new_key, old_signer);
    #[rustfmt::skip]
    ok(&["authority", "trust-list", "publish", "--dir", d, "--gateway", &gateway]);
    // The node switches once it holds a list carrying the new signer: let
    // it fetch that list before it looks at its files.
    let cache = city.join("data/trust-list.tsl");
    common::wait_until_async(
        "the node to fetch list 2",
        std::time::Duration::from_secs(20),
        async || {
            use prost::Message;
            let Ok(bytes) = std::fs::read(&cache) else {
                return false;
            };
            let signed = tessera_proto::v1::SignedTrustList::decode(bytes.as_slice()).unwrap();
            let list = tessera_proto::v1::TrustList::decode(signed.payload.as_slice()).unwrap();
            list.sequence >= 2
        },
    )
    .await;
    install(
        &new_signer.join("badge-signer.key"),
        &city.join("badge-signer.key"),
    );
    install(&issued, &city.join("badge-signer.crt"));
    hup(&node_process);
    let (after, _) = common::wait(
        "the node to sign with the new key",
        std::time::Duration::from_secs(15),
    )
    .every(std::time::Duration::from_millis(200))
    .until_async(async || {
        let badge = issue_badge(&operator, &node, 2).await;
        (badge.1 == new_key).then_some(badge)
    })
    .await;
    verify(&after);
    verify(&before);

    // The authority still holds none of the city's keys, old or new.
    holds_none_of(
        &authority,
        &[
            old_keys.join("node.key"),
            old_keys.join("badge-signer.key"),
            tmp.path().join("t/node.key"),
            new.join("node.key"),
            new_signer.join("badge-signer.key"),
            operator.join("operator.key"),
        ],
    );
    stop(node_process);
    stop(gateway_process);
}
