//! The gateway's public copy (issue 23) with the real binary: a client with
//! no certificate at all, trusting only the national root, reads the signed
//! trust list and a city's policies over HTTPS, verifies them with
//! tessera-core, reads the city's page in English and Chinese (each rule in
//! force, the announced change), and finds the superseded version in the
//! history after a new one takes effect. Anything but a bodiless GET is
//! refused, and the gRPC port still demands a client certificate.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Authority, free_port, ok, stop};
use rustls_pki_types::{CertificateDer, ServerName};
use tessera_core::policy::Policy;
use tessera_core::{CheckedTrustList, TrustAnchor, policy_doc};
use tessera_gateway::public_page::escape;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DEFAULT: &str = include_str!("../../core/policy/default.toml");

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A TLS client that trusts the root alone and presents no certificate.
fn anonymous(root: &[u8]) -> tokio_rustls::TlsConnector {
    tessera_runtime::tls::install_default_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(root.to_vec())).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(tessera_runtime::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

/// Sends `request` (a whole HTTP/1.1 request) over HTTPS to `port`.
fn send(tls: &tokio_rustls::TlsConnector, port: u16, request: &[u8]) -> Answer {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let mut stream = tls.connect(name, tcp).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut raw = vec![];
        // The server may close without close_notify after refusing.
        let _ = stream.read_to_end(&mut raw).await;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no response head: {:?}", String::from_utf8_lossy(&raw)));
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        Answer {
            status,
            head,
            body: raw[split + 4..].to_vec(),
        }
    })
}

fn get(tls: &tokio_rustls::TlsConnector, port: u16, path: &str) -> Answer {
    send(
        tls,
        port,
        format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n").as_bytes(),
    )
}

fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[test]
fn anyone_reads_and_verifies_every_citys_policies_and_their_history_without_a_certificate() {
    let a = Authority::new();
    let (port, gw) = a.enrol_gateway();
    let public = free_port();
    let config = a.dir.join("gateways/national/gateway.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    // Notice 0 (a test federation) lets a new version come into force
    // within the test; the public copy on its own port.
    text.push_str(&format!(
        "\n[policy]\nnotice_hours = 0\n\n[public]\nlisten = \"127.0.0.1:{public}\"\n"
    ));
    std::fs::write(&config, text).unwrap();
    let gateway = a.start_gateway(port);
    a.publish_to(&gw);

    let work = tempfile::tempdir().unwrap();
    let city = a.dir.join("cities/330100");
    let (key, cert) = (city.join("badge-signer.key"), city.join("badge-signer.crt"));
    let v3_text = DEFAULT
        .replace("version = 2", "version = 3")
        .replace("score = -100", "score = -90");
    let v4_text = v3_text
        .replace("version = 3", "version = 4")
        .replace("score = -40", "score = -35");
    let sign_and_publish = |name: &str, rules: &str, when: &str| {
        let rules_file = work.path().join(format!("{name}.toml"));
        std::fs::write(&rules_file, rules).unwrap();
        let out = work.path().join(format!("{name}.signed"));
        ok(&[
            "policy",
            "sign",
            "--key",
            key.to_str().unwrap(),
            "--certificate",
            cert.to_str().unwrap(),
            "--rules",
            rules_file.to_str().unwrap(),
            "--effective-from",
            when,
            "--out",
            out.to_str().unwrap(),
        ]);
        ok(&[
            "policy",
            "publish",
            "--config",
            &a.config(),
            "--gateway",
            &gw,
            out.to_str().unwrap(),
        ]);
    };
    // Version 2 in force at once (the city's first), version 3 a few
    // seconds later, version 4 announced two days ahead.
    sign_and_publish("v2", DEFAULT, "+0h");
    let v3_from = now() + 8;
    sign_and_publish("v3", &v3_text, &rfc3339(v3_from));
    sign_and_publish("v4", &v4_text, "+49h");

    let root_path = a.dir.join("root/root.crt");
    let root_der = tessera_certs::keys::read_cert(&root_path).unwrap();
    let root = TrustAnchor::from_der(&root_der).unwrap();
    let tls = anonymous(&root_der);

    // The trust material, verified by the reader.
    let list = get(&tls, public, "/trust-list");
    assert_eq!(list.status, 200, "{}", list.head);
    assert!(list.head.contains("cache-control: public"), "{}", list.head);
    let list = CheckedTrustList::verify(&list.body, &root, now()).unwrap();
    let served_root = get(&tls, public, "/root.crt");
    assert_eq!(
        served_root.text(),
        std::fs::read_to_string(&root_path).unwrap()
    );

    // Poll (bounded) until version 3 is in force.
    let deadline = Instant::now() + Duration::from_secs(60);
    let history = loop {
        let h = get(&tls, public, "/cities/330100/policies");
        assert_eq!(h.status, 200, "{}", h.head);
        let h: serde_json::Value = serde_json::from_slice(&h.body).unwrap();
        if h["versions"][1]["standing"] == "in_force" {
            break h;
        }
        assert!(
            Instant::now() < deadline,
            "version 3 never came into force: {h}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let versions = history["versions"].as_array().unwrap();
    let numbers: Vec<u64> = versions
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [2, 3, 4]);
    let standings: Vec<&str> = versions
        .iter()
        .map(|v| v["standing"].as_str().unwrap())
        .collect();
    assert_eq!(standings, ["superseded", "in_force", "announced"]);
    assert_eq!(versions[0]["in_force_until"].as_i64(), Some(v3_from));
    assert_eq!(versions[1]["effective_from"].as_i64(), Some(v3_from));

    // Every version's signed bytes verify against the public trust list.
    let mut files = vec![];
    for v in versions {
        let got = get(&tls, public, v["url"].as_str().unwrap());
        assert_eq!(got.status, 200, "{}", got.head);
        assert!(got.head.contains("immutable"), "{}", got.head);
        let signed = policy_doc::decode_signed(&got.body).unwrap();
        let verified = policy_doc::verify_with_trust_list(&signed, &list).unwrap();
        assert_eq!(
            u64::from(verified.policy_version()),
            v["version"].as_u64().unwrap()
        );
        let file = work
            .path()
            .join(format!("downloaded-v{}.signed", verified.policy_version()));
        std::fs::write(&file, &got.body).unwrap();
        files.push(file);
    }

    // ... and with the command, with no enrolment: the list and root as served.
    let list_file = work.path().join("trust-list");
    std::fs::write(&list_file, list.signed_bytes()).unwrap();
    let root_file = work.path().join("root.crt");
    std::fs::write(&root_file, served_root.text()).unwrap();
    let shown = ok(&[
        "policy",
        "show",
        "--file",
        files[1].to_str().unwrap(),
        "--trust-list",
        list_file.to_str().unwrap(),
        "--root",
        root_file.to_str().unwrap(),
    ]);
    assert!(shown.contains("policy version 3 "), "{shown}");
    assert!(
        shown.contains("signature checked against trust list"),
        "{shown}"
    );
    // A tampered file is refused.
    let mut bad = std::fs::read(&files[1]).unwrap();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    std::fs::write(&files[1], bad).unwrap();
    let refused = common::tessera(&[
        "policy",
        "show",
        "--file",
        files[1].to_str().unwrap(),
        "--trust-list",
        list_file.to_str().unwrap(),
        "--root",
        root_file.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());

    // The pages: each rule in force, the announced version and its change.
    let v3 = Policy::parse(&v3_text).unwrap();
    let en = get(&tls, public, "/cities/330100?lang=en");
    assert_eq!(en.status, 200, "{}", en.head);
    assert!(en.head.contains("text/html"), "{}", en.head);
    let en = en.text();
    let announced_at = en.find("Announced: version 4").expect(&en);
    let in_force = &en[..announced_at];
    assert!(in_force.contains("In force: version 3"), "{en}");
    for (id, sentence) in v3.rule_sentences() {
        assert!(
            in_force.contains(&escape(&sentence)),
            "rule {id} missing: {en}"
        );
    }
    assert!(
        en[announced_at..].contains(&escape(
            "becomes \u{201c}A close contact within the last 14 days"
        )),
        "{en}"
    );
    assert!(en[announced_at..].contains("score \u{2212}35"), "{en}");
    assert!(
        en.contains(
            "tessera policy show --file policy-v4.signed --trust-list trust-list --root root.crt"
        ),
        "{en}"
    );
    assert!(
        en.contains("/cities/330100/policies/2"),
        "the history links version 2: {en}"
    );

    let zh = get(&tls, public, "/cities/330100?lang=zh").text();
    let announced_at = zh.find("已公告：第 4 版").expect(&zh);
    assert!(zh[..announced_at].contains("现行：第 3 版"), "{zh}");
    for (id, sentence) in v3.rule_sentences_zh() {
        assert!(
            zh[..announced_at].contains(&escape(&sentence)),
            "rule {id} missing: {zh}"
        );
    }
    assert!(
        zh[announced_at..].contains("规则 [close-contact-14d] 变更")
            && zh[announced_at..].contains("扣 35 分"),
        "{zh}"
    );
    assert!(zh.contains("lang=\"zh\""), "{zh}");

    let index = get(&tls, public, "/?lang=zh").text();
    assert!(index.contains("/cities/330100?lang=zh"), "{index}");
    assert!(index.contains("Hangzhou"), "{index}");

    // Read-only and bounded.
    let post = send(
        &tls,
        public,
        b"POST /trust-list HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 3\r\nconnection: close\r\n\r\nabc",
    );
    assert_eq!(post.status, 405, "{}", post.head);
    assert!(
        post.head.to_lowercase().contains("allow: get, head"),
        "{}",
        post.head
    );
    let with_body = send(
        &tls,
        public,
        b"GET /trust-list HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 3\r\nconnection: close\r\n\r\nabc",
    );
    assert_eq!(with_body.status, 413, "{}", with_body.head);
    let huge = format!(
        "GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nx-filler: {}\r\nconnection: close\r\n\r\n",
        "a".repeat(16 * 1024)
    );
    let huge = send(&tls, public, huge.as_bytes());
    assert_eq!(huge.status, 431, "{}", huge.head);
    let head = send(
        &tls,
        public,
        b"HEAD /trust-list HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n",
    );
    assert_eq!(head.status, 200, "{}", head.head);
    assert!(head.body.is_empty(), "HEAD answered with a body");
    assert_eq!(get(&tls, public, "/cities/999999").status, 404);
    assert_eq!(get(&tls, public, "/cities/330100/policies/99").status, 404);

    // The gateway's gRPC port still wants a client certificate: the same
    // anonymous client gets nothing back there.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let got = rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let Ok(mut stream) = tls.connect(name, tcp).await else {
            return Ok(0);
        };
        let _ = stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
        let mut buf = [0u8; 64];
        tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf))
            .await
            .unwrap()
    });
    assert!(
        !matches!(got, Ok(n) if n > 0),
        "the private endpoint answered a client without a certificate: {got:?}"
    );
    stop(gateway);
}
