//! Hostile input against a running gateway and city node: oversized
//! messages, huge repeated fields and batches, garbage on the TLS port,
//! clients hoarding connections, bad QR text, trust lists with duplicate
//! keys or odd certificates. Each gets a precise error, and the service goes
//! on serving everyone else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rand::RngCore;
use tessera_core::{CityCode, Identity, Role, Scope};
use tessera_gateway::config::RelaySettings;
use tessera_proto::v1 as pb;
use tessera_tests::forge::{Forge, forged};
use tessera_tests::harness::{
    RunningGateway, RunningNode, add_top_level, gateway_client, node_client, write_city_bundle,
};
use tessera_tests::wait::wait;
use tessera_tests::{Issued, TestPki, national_id, test_record, unix_now};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tonic::Code;

pub(crate) struct Fed {
    pub(crate) pki: TestPki,
    pub(crate) hz: CityCode,
    pub(crate) gw: RunningGateway,
    pub(crate) node: RunningNode,
    pub(crate) checkpoint: Issued,
    _dir: tempfile::TempDir,
}

/// A gateway and the Hangzhou node, each configured with `top_level` (keys
/// both accept), holding trust list 1.
pub(crate) async fn federation(top_level: &str) -> Fed {
    let mut pki = TestPki::new(unix_now()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node_addr = listener.local_addr().unwrap();
    let hz = pki
        .add_city(330_100, "Hangzhou", &node_addr.to_string())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let list = pki.trust_list(1).unwrap();
    let gw = RunningGateway::start_configured(
        &pki,
        &dir.path().join("gw"),
        Some(&list),
        RelaySettings::default(),
        top_level,
    )
    .await
    .unwrap();
    let config = write_city_bundle(&pki, hz, &dir.path().join("hz"), node_addr).unwrap();
    add_top_level(&config, top_level).unwrap();
    let node = RunningNode::start_with(config, listener).await.unwrap();
    let checkpoint = pki.verifier(330_000).unwrap();
    Fed {
        pki,
        hz,
        gw,
        node,
        checkpoint,
        _dir: dir,
    }
}

impl Fed {
    /// Both services answer a legitimate caller.
    pub(crate) async fn still_serving(&self) {
        let mut g = gateway_client(&self.pki, self.gw.addr, &self.checkpoint).unwrap();
        g.who_am_i(pb::WhoAmIRequest {}).await.unwrap();
        let op = self.pki.operator(self.hz).unwrap();
        let mut n = node_client(&self.pki, self.node.addr, &op).unwrap();
        n.who_am_i(pb::WhoAmIRequest {}).await.unwrap();
    }

    pub(crate) async fn stop(self) {
        self.node.stop().await.unwrap();
        self.gw.stop().await.unwrap();
    }
}

fn envelope(bytes: Vec<u8>) -> pb::VerifyRequest {
    pb::VerifyRequest {
        badge: Some(pb::verify_request::Badge::Envelope(bytes)),
    }
}

#[tokio::test]
async fn messages_over_the_configured_limit_are_refused_and_both_services_go_on() {
    let f = federation("max_message_bytes = 8192").await;
    let mut g = gateway_client(&f.pki, f.gw.addr, &f.checkpoint).unwrap();
    let err = g.verify(envelope(vec![7; 9000])).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert!(err.message().contains("8192"), "{err:?}");
    // Just under the limit, the message reaches the handler, which names
    // what is wrong with the badge.
    let v = g
        .verify(envelope(vec![7; 8000]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.outcome, pb::Outcome::Malformed as i32, "{v:?}");
    assert!(v.detail.contains("exceeds the limit"), "{v:?}");

    let op = f.pki.operator(f.hz).unwrap();
    let mut n = node_client(&f.pki, f.node.addr, &op).unwrap();
    let record = test_record("big", &national_id(f.hz, 1), false, unix_now() - 60);
    let err = n
        .ingest_records(pb::IngestRequest {
            records: vec![record; 200],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert!(err.message().contains("8192"), "{err:?}");
    f.still_serving().await;
    f.stop().await;
}

#[tokio::test]
async fn huge_repeated_fields_and_batches_get_precise_answers() {
    let f = federation("").await;
    // More badge ids in one status check than a node answers.
    let mut as_gateway = node_client(&f.pki, f.node.addr, &f.pki.gateway).unwrap();
    let err = as_gateway
        .check_status(pb::CheckStatusRequest {
            badge_ids: vec![vec![0; 16]; 100_000],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("exceed the limit"), "{err:?}");
    // A long batch stream of junk gets one precise verdict per item, in order.
    let mut g = gateway_client(&f.pki, f.gw.addr, &f.checkpoint).unwrap();
    let n = 20_000;
    let items = (0..n).map(|i| envelope(vec![(i % 251) as u8; 1 + i % 40]));
    let mut verdicts = g
        .verify_batch(tokio_stream::iter(items))
        .await
        .unwrap()
        .into_inner();
    let mut seen = 0;
    while let Some(v) = verdicts.next().await {
        let v = v.unwrap();
        assert_eq!(
            v.outcome,
            pb::Outcome::Malformed as i32,
            "item {seen}: {v:?}"
        );
        assert!(!v.detail.is_empty(), "item {seen} has no reason");
        seen += 1;
    }
    assert_eq!(seen, n);
    f.still_serving().await;
    f.stop().await;
}

/// Writes junk to `addr` and waits for the server to close the connection.
pub(crate) async fn closes_on_garbage(addr: SocketAddr, junk: &[u8]) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    // The server may close while we still write: that is the point.
    let _ = tcp.write_all(junk).await;
    let mut sink = vec![0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match tcp.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "{addr} kept a connection sending garbage open"
    );
}

#[tokio::test]
async fn garbage_on_the_tls_port_is_dropped_and_others_are_served() {
    let f = federation("").await;
    let mut random = vec![0u8; 64 * 1024];
    rand::thread_rng().fill_bytes(&mut random);
    let junk: [&[u8]; 4] = [
        &random,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        // A TLS record header announcing a huge handshake message.
        &[0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0xff, 0xff, 0xff],
    ];
    for addr in [f.gw.addr, f.node.addr] {
        for j in junk {
            closes_on_garbage(addr, j).await;
        }
    }
    f.still_serving().await;
    f.stop().await;
}

/// A TCP connection to `addr` from `from` (a loopback address of its own).
async fn connect_from(from: [u8; 4], addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(addr).await
}

/// Whether a TLS handshake from `from` with `cert` completes.
async fn handshake_from(pki: &TestPki, from: [u8; 4], addr: SocketAddr, cert: &Issued) -> bool {
    let Ok(tcp) = connect_from(from, addr).await else {
        return false;
    };
    let identity = tessera_runtime::TlsIdentity::new(cert.der.clone(), &cert.tls_key).unwrap();
    let trust = Arc::new(tessera_runtime::tls::TrustState::new(pki.anchor().unwrap()).unwrap());
    let config = tessera_runtime::tls::client_config(&identity, trust, Role::Gateway).unwrap();
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let Ok(mut tls) = connector.connect(name, tcp).await else {
        return false;
    };
    // The server checks the client's certificate after its own Finished:
    // only a server still holding the connection answers the HTTP/2 preface.
    if tls
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .is_err()
    {
        return false;
    }
    let mut frame = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(10), tls.read_exact(&mut frame))
        .await
        .is_ok_and(|r| r.is_ok())
}

#[tokio::test]
async fn connections_are_bounded_per_address_and_other_addresses_are_served() {
    let f = federation("max_connections_per_peer = 4").await;
    let hoarder = [127, 0, 0, 2];
    // Four connections that never start a handshake fill the address's share.
    let mut held = vec![];
    for _ in 0..4 {
        held.push(connect_from(hoarder, f.gw.addr).await.unwrap());
    }
    // Wait until the gateway has taken all four (accept is asynchronous).
    wait(
        "a fifth connection from one address to be refused",
        Duration::from_secs(10),
    )
    .every(Duration::from_millis(100))
    .until_async(async || !handshake_from(&f.pki, hoarder, f.gw.addr, &f.checkpoint).await)
    .await;
    // Another address is served meanwhile.
    assert!(handshake_from(&f.pki, [127, 0, 0, 3], f.gw.addr, &f.checkpoint).await);
    f.still_serving().await;
    // Closing the hoarded connections gives the address its share back.
    drop(held);
    wait(
        "the address to get its connections back",
        Duration::from_secs(10),
    )
    .every(Duration::from_millis(100))
    .until_async(async || handshake_from(&f.pki, hoarder, f.gw.addr, &f.checkpoint).await)
    .await;
    f.stop().await;
}

#[tokio::test]
async fn qr_text_with_invalid_characters_is_malformed_with_the_reason() {
    let f = federation("").await;
    let mut g = gateway_client(&f.pki, f.gw.addr, &f.checkpoint).unwrap();
    let cases: [(String, &str); 7] = [
        ("".into(), "must start with tb1:"),
        ("hello".into(), "must start with tb1:"),
        ("TB1:abc".into(), "is not base45"),
        ("TB1:ÄÖÜ✓".into(), "is not base45"),
        ("TB1:AB\u{0}CD".into(), "is not base45"),
        ("TB9:ABCD".into(), "version"),
        (format!("TB1:{}", "A".repeat(100_000)), "exceeds the limit"),
    ];
    for (text, reason) in cases {
        let v = g
            .verify(pb::VerifyRequest {
                badge: Some(pb::verify_request::Badge::QrText(text.clone())),
            })
            .await
            .unwrap()
            .into_inner();
        let shown: String = text.chars().take(20).collect();
        assert_eq!(v.outcome, pb::Outcome::Malformed as i32, "{shown:?}: {v:?}");
        assert!(
            v.detail.to_lowercase().contains(reason),
            "{shown:?}: expected {reason:?} in {:?}",
            v.detail
        );
    }
    f.still_serving().await;
    f.stop().await;
}

/// A trust-list entry for any certificate, without parsing it first.
fn raw_entry(cert: &Issued, role: Role, code: u32, now: i64) -> pb::TrustEntry {
    pb::TrustEntry {
        code,
        name: "Odd".into(),
        role: role.to_proto() as i32,
        certificate_der: cert.der.clone(),
        endpoint: String::new(),
        status: pb::EntryStatus::Active as i32,
        not_before: now - 86_400,
        not_after: now + 86_400,
        revoked_at: 0,
    }
}

#[tokio::test]
async fn trust_lists_with_duplicate_keys_or_odd_certificates_are_refused_and_the_list_stays() {
    let f = federation("").await;
    let now = unix_now();
    let authority = f
        .pki
        .issue(Identity::new(Role::Authority, Scope::Nation).unwrap(), &[])
        .unwrap();
    let mut g = gateway_client(&f.pki, f.gw.addr, &authority).unwrap();
    let hz_signer = Identity::new(Role::BadgeSigner, Scope::City(f.hz)).unwrap();
    let odd = |how: Forge| forged(&f.pki, hz_signer, how).unwrap();

    let mut duplicate = f.pki.trust_list_message(2).unwrap();
    let twice = duplicate.entries[0].clone();
    duplicate.entries.push(twice);
    let mut absurd = f.pki.trust_list_message(3).unwrap();
    absurd.entries.push(raw_entry(
        &odd(Forge {
            absurd_validity: true,
            ..Forge::default()
        }),
        Role::BadgeSigner,
        330_100,
        now,
    ));
    let mut critical = f.pki.trust_list_message(4).unwrap();
    critical.entries.push(raw_entry(
        &odd(Forge {
            unknown_critical_extension: true,
            ..Forge::default()
        }),
        Role::BadgeSigner,
        330_100,
        now,
    ));
    let mut self_signed = f.pki.trust_list_message(5).unwrap();
    self_signed.entries.push(raw_entry(
        &odd(Forge {
            self_signed: true,
            ..Forge::default()
        }),
        Role::BadgeSigner,
        330_100,
        now,
    ));
    for (what, list, reason) in [
        ("duplicate key", duplicate, "twice"),
        ("absurd validity", absurd, "valid for"),
        ("unknown critical extension", critical, "critical extension"),
        (
            "self-signed entry",
            self_signed,
            "not issued by the national root",
        ),
    ] {
        let bytes = f.pki.sign(&list).unwrap();
        let err = g
            .publish_trust_list(pb::PublishTrustListRequest {
                list: Some(prost::Message::decode(bytes.as_slice()).unwrap()),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
        assert!(
            err.message().contains(reason),
            "{what}: expected {reason:?} in {:?}",
            err.message()
        );
    }
    let held = g
        .fetch_trust_list(pb::FetchTrustListRequest { known_sequence: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        held.current_sequence, 1,
        "a refused list replaced the one in force"
    );
    f.still_serving().await;
    f.stop().await;
}
