//! `tessera checkpoint serve` (issue 17) with the real binary, against a
//! real federation: a device pairs with a one-time code (a wrong or reused
//! code is refused), its online checks are relayed over the station's
//! mutual-TLS connection to the gateway (a valid badge is VALID, one its
//! city revoked REVOKED), requests without a paired token, too large or not
//! JSON are refused with 401, 413 and 400 (an unknown path 404, a long one
//! 414, an oversized head 431), the trust list served is the gateway's byte
//! for byte (a newly published one too, kept on disk), an unpaired device is
//! refused at once, and with the gateway gone a check is 503 (the app then
//! shows its offline verdict).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{
    checkpoint_serve, federation_up, issue_hangzhou_badge, ok, pairing_code, tessera, wait_until,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tessera_core::{Role, TrustAnchor};
use tessera_proto::v1 as pb;
use tessera_runtime::tls::{self, TrustState};
use tessera_runtime::{TlsIdentity, grpc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The station, reached over HTTPS trusting only its own certificate.
struct Station {
    port: u16,
    tls: tokio_rustls::TlsConnector,
    rt: tokio::runtime::Runtime,
}

struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{e}: {}\n{}",
                self.head,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

impl Station {
    fn new(data: &Path, port: u16) -> Self {
        tls::install_default_provider();
        let mut roots = rustls::RootCertStore::empty();
        let cert = CertificateDer::from_pem_file(data.join("station.crt")).unwrap();
        roots.add(cert).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self {
            port,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    fn send(&self, request: &[u8]) -> Answer {
        self.rt.block_on(async {
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .unwrap();
            let name = ServerName::try_from("127.0.0.1").unwrap();
            let mut stream = self.tls.connect(name, tcp).await.unwrap();
            stream.write_all(request).await.unwrap();
            let mut raw = vec![];
            let _ = stream.read_to_end(&mut raw).await;
            let split = raw
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .unwrap_or_else(|| panic!("no head: {:?}", String::from_utf8_lossy(&raw)));
            let head = String::from_utf8_lossy(&raw[..split]).into_owned();
            Answer {
                status: head.split(' ').nth(1).unwrap().parse().unwrap(),
                head,
                body: raw[split + 4..].to_vec(),
            }
        })
    }

    fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
        self.send(
            format!("GET {path} HTTP/1.1\r\nhost: x\r\n{auth}connection: close\r\n\r\n").as_bytes(),
        )
    }

    fn post(&self, path: &str, token: Option<&str>, body: &[u8]) -> Answer {
        let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        self.send(&request)
    }

    fn pair(&self, code: &str) -> Answer {
        self.post(
            "/api/pair",
            None,
            serde_json::json!({ "code": code }).to_string().as_bytes(),
        )
    }

    fn verify(&self, token: Option<&str>, qr: &str) -> Answer {
        self.post(
            "/api/verify",
            token,
            serde_json::json!({ "qr_text": qr }).to_string().as_bytes(),
        )
    }
}

/// The gateway's own trust list bytes, asked as the checkpoint.
fn gateways_list(layout: &serde_json::Value) -> Vec<u8> {
    let bundle = Path::new(layout["checkpoint"].as_str().unwrap());
    let root = tessera_certs::keys::read_cert(&bundle.join("root.crt")).unwrap();
    let trust = Arc::new(TrustState::new(TrustAnchor::from_der(&root).unwrap()).unwrap());
    let identity =
        TlsIdentity::from_files(&bundle.join("verifier.crt"), &bundle.join("verifier.key"))
            .unwrap();
    let config = tls::client_config(&identity, trust, Role::Gateway).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let channel = grpc::channel(layout["gateway"].as_str().unwrap(), config).unwrap();
        let mut client = pb::gateway_client::GatewayClient::new(channel);
        let answer = client
            .fetch_trust_list(pb::FetchTrustListRequest { known_sequence: 0 })
            .await
            .unwrap()
            .into_inner();
        prost::Message::encode_to_vec(&answer.list.unwrap())
    })
}

#[test]
fn a_paired_device_gets_the_gateways_verdicts_and_nobody_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let (mut federation, layout) =
        federation_up(&dir.path().join("fed"), &dir.path().join("fed.log"));
    let data = dir.path().join("station");
    let (_station_process, port) =
        checkpoint_serve(&layout, &data, &dir.path().join("station.log"));
    let station = Station::new(&data, port);

    // The trust list, once followed, is the gateway's byte for byte.
    let served = wait_until("the station's trust list", Duration::from_secs(30), || {
        let a = station.get("/api/trust-list", None);
        (a.status == 200).then_some(a)
    });
    assert_eq!(served.body, gateways_list(&layout));
    assert!(
        served.head.contains("x-tessera-sequence: 1"),
        "{}",
        served.head
    );
    assert!(served.head.contains("etag: \"1\""), "{}", served.head);
    let root = station.get("/api/root.der", None);
    assert_eq!(root.status, 200);
    assert!(TrustAnchor::from_der(&root.body).is_ok());

    // Pairing: a wrong code, a good one, the good one again.
    let wrong = station.pair("00112233445566778899aabb");
    assert_eq!(wrong.status, 403, "{}", wrong.head);
    assert!(
        wrong.json()["error"]
            .as_str()
            .unwrap()
            .contains("unknown or was used")
    );
    let code = pairing_code(&data, port);
    let paired = station.pair(&code);
    assert_eq!(paired.status, 200, "{}", paired.head);
    let token = paired.json()["token"].as_str().unwrap().to_owned();
    let device = paired.json()["device"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 43);
    assert_eq!(station.pair(&code).status, 403);

    // Refusals, each with its status.
    let badge = issue_hangzhou_badge(&layout);
    assert_eq!(station.verify(None, &badge).status, 401);
    assert_eq!(station.verify(Some(&"A".repeat(43)), &badge).status, 401);
    let big = format!("{{\"qr_text\":\"{}\"}}", "A".repeat(5000));
    assert_eq!(
        station
            .post("/api/verify", Some(&token), big.as_bytes())
            .status,
        413
    );
    let bad = station.post("/api/verify", Some(&token), b"{\"qr_text\": ");
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"].as_str().unwrap().contains("JSON"));
    assert_eq!(station.post("/api/verify", Some(&token), b"{}").status, 400);
    assert_eq!(station.get("/api/verify", Some(&token)).status, 405);
    assert_eq!(station.get("/api/station", None).status, 401);
    assert_eq!(station.get("/api/nothing", None).status, 404);
    assert_eq!(
        station.get(&format!("/{}", "a".repeat(600)), None).status,
        414
    );
    assert_eq!(station.post("/index.html", None, b"{}").status, 405);
    let huge_head = format!(
        "GET / HTTP/1.1\r\nhost: x\r\nx-filler: {}\r\nconnection: close\r\n\r\n",
        "a".repeat(9000)
    );
    assert_eq!(station.send(huge_head.as_bytes()).status, 431);

    // A valid badge, relayed.
    let valid = station.verify(Some(&token), &badge);
    assert_eq!(valid.status, 200, "{}", valid.head);
    let v = valid.json();
    assert_eq!(v["outcome"], "VALID", "{v}");
    assert_eq!(v["issuer_city"], 330_100);
    assert_eq!(v["signature_valid"], true);
    assert!(v["valid_until"].as_i64().unwrap() > 0);
    let s = station.get("/api/station", Some(&token)).json();
    assert_eq!(s["gateway"], "connected", "{s}");
    assert_eq!(s["station"], "Wuhan railway station", "{s}");
    assert_eq!(s["trust_list_sequence"], 1);
    // Text that is no badge: MALFORMED, as everywhere else.
    assert_eq!(
        station.verify(Some(&token), "TB1:%%").json()["outcome"],
        "MALFORMED"
    );

    // The city revokes the badge: the next checks say so (the gateway
    // caches a status for a few seconds).
    common::positive_test(&layout, 7);
    wait_until(
        "REVOKED through the station",
        Duration::from_secs(30),
        || station.verify(Some(&token), &badge).json()["outcome"] == "REVOKED",
    );

    // A list published at the gateway reaches the station (its watch shares
    // the checks' connection), byte for byte again.
    ok(&[
        "authority",
        "trust-list",
        "publish",
        "--dir",
        layout["authority"].as_str().unwrap(),
        "--gateway",
        layout["gateway"].as_str().unwrap(),
    ]);
    let newer = wait_until(
        "trust list 2 at the station",
        Duration::from_secs(30),
        || {
            let a = station.get("/api/trust-list", None);
            a.head.contains("x-tessera-sequence: 2").then_some(a)
        },
    );
    assert_eq!(newer.body, gateways_list(&layout));
    assert_eq!(
        std::fs::read(data.join("trust-list.tsl")).unwrap(),
        newer.body
    );

    // Unpairing takes effect at the next request.
    let d = data.to_str().unwrap();
    assert!(ok(&["checkpoint", "devices", "--data", d]).contains(&device));
    assert!(ok(&["checkpoint", "unpair", "--data", d, &device]).contains(&device));
    assert_eq!(station.verify(Some(&token), &badge).status, 401);
    assert_eq!(
        tessera(&["checkpoint", "unpair", "--data", d, &device])
            .status
            .code(),
        Some(2)
    );

    // With the gateway gone, a check is 503: the app shows its offline
    // verdict with the status not asked.
    let token = station.pair(&pairing_code(&data, port)).json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut gone = federation.0.take().unwrap();
    gone.kill().unwrap();
    gone.wait().unwrap();
    let down = wait_until(
        "503 once the gateway is gone",
        Duration::from_secs(30),
        || {
            let a = station.verify(Some(&token), &badge);
            (a.status == 503).then_some(a)
        },
    );
    assert!(down.json()["error"].as_str().unwrap().contains("not asked"));
    let s = station.get("/api/station", Some(&token)).json();
    assert_eq!(s["gateway"], "unreachable", "{s}");
    // The list kept is still served for offline checks.
    assert_eq!(station.get("/api/trust-list", None).status, 200);
}
