//! Mutual TLS on 127.0.0.1, asserted on the RPC result (a refused client
//! certificate shows up on the first call, not on connect).

use std::net::SocketAddr;
use std::sync::Arc;

use tessera_core::{CertInfo, Identity, Role, Scope};
use tessera_gateway::config::RelaySettings;
use tessera_proto::v1 as pb;
use tessera_proto::v1::gateway_client::GatewayClient;
use tessera_runtime::TlsIdentity;
use tessera_runtime::grpc;
use tessera_runtime::tls::{self, TrustState};
use tessera_tests::harness::RunningGateway;
use tessera_tests::{DAY, Issued, NOW, TestPki};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

struct Running {
    addr: SocketAddr,
    gateway: RunningGateway,
    _dir: tempfile::TempDir,
}

async fn start_gateway(pki: &TestPki) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let list = pki.trust_list(1).unwrap();
    let gateway = RunningGateway::start(pki, dir.path(), Some(&list), RelaySettings::default())
        .await
        .unwrap();
    Running {
        addr: gateway.addr,
        gateway,
        _dir: dir,
    }
}

async fn who_am_i(
    pki: &TestPki,
    addr: SocketAddr,
    client: &Issued,
) -> Result<pb::PeerIdentity, tonic::Status> {
    let trust = Arc::new(TrustState::new(pki.anchor().unwrap()).unwrap());
    let identity = TlsIdentity::new(client.der.clone(), &client.tls_key).unwrap();
    let config = tls::client_config(&identity, trust, Role::Gateway).unwrap();
    let channel = grpc::channel(&addr.to_string(), config).unwrap();
    GatewayClient::new(channel)
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .map(tonic::Response::into_inner)
}

fn raw_client(pki: &TestPki, cert: Option<&Issued>) -> Arc<rustls::ClientConfig> {
    tessera_tests::harness::raw_client_config(pki, cert)
}

fn pki() -> TestPki {
    TestPki::new(now()).unwrap()
}

#[tokio::test]
async fn a_valid_checkpoint_is_accepted_and_the_handler_sees_its_role_and_province() {
    let pki = pki();
    let gw = start_gateway(&pki).await;
    let verifier = pki.verifier(420_000).unwrap();
    let me = who_am_i(&pki, gw.addr, &verifier).await.unwrap();
    assert_eq!(me.role, pb::Role::Verifier as u32);
    assert_eq!(me.code, 420_000);
    assert_eq!(
        me.serial,
        tessera_core::cert::hex_string(CertInfo::parse(&verifier.der).unwrap().serial())
    );
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let pki = pki();
    let gw = start_gateway(&pki).await;
    let config = raw_client(&pki, None);
    let channel = grpc::channel(&gw.addr.to_string(), config).unwrap();
    let result = GatewayClient::new(channel)
        .who_am_i(pb::WhoAmIRequest {})
        .await;
    assert!(
        result.is_err(),
        "a client without a certificate got in: {result:?}"
    );
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let pki = pki();
    let gw = start_gateway(&pki).await;
    let foreign = TestPki::new(now()).unwrap().verifier(420_000).unwrap();
    let result = who_am_i(&pki, gw.addr, &foreign).await;
    assert!(
        result.is_err(),
        "a foreign CA's checkpoint got in: {result:?}"
    );
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    let pki = pki();
    let gw = start_gateway(&pki).await;
    let id = Identity::new(Role::Verifier, Scope::Province("420000".parse().unwrap())).unwrap();
    let expired = pki
        .issue_window(id, &[], now() - 30 * DAY, now() - DAY)
        .unwrap();
    let result = who_am_i(&pki, gw.addr, &expired).await;
    assert!(result.is_err(), "an expired checkpoint got in: {result:?}");
    let _ = NOW;
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_from_its_next_call_on() {
    let pki = pki();
    let gw = start_gateway(&pki).await;
    let verifier = pki.verifier(420_000).unwrap();
    let other = pki.verifier(420_000).unwrap();

    // Connected and accepted before the revocation.
    let trust = Arc::new(TrustState::new(pki.anchor().unwrap()).unwrap());
    let identity = TlsIdentity::new(verifier.der.clone(), &verifier.tls_key).unwrap();
    let config = tls::client_config(&identity, trust, Role::Gateway).unwrap();
    let mut client = GatewayClient::new(grpc::channel(&gw.addr.to_string(), config).unwrap());
    client.who_am_i(pb::WhoAmIRequest {}).await.unwrap();

    let mut msg = pki.trust_list_message(2).unwrap();
    msg.issued_at = now();
    msg.next_update = now() + DAY;
    msg.revoked_serials
        .push(CertInfo::parse(&verifier.der).unwrap().serial().to_vec());
    gw.gateway
        .registry
        .publish(&pki.sign(&msg).unwrap(), now())
        .await
        .unwrap();

    // The open connection's next call is refused...
    let status = client.who_am_i(pb::WhoAmIRequest {}).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    // ...a new connection is refused at the handshake...
    assert!(who_am_i(&pki, gw.addr, &verifier).await.is_err());
    // ...and other checkpoints are unaffected.
    assert!(who_am_i(&pki, gw.addr, &other).await.is_ok());
}

#[tokio::test]
async fn a_certificate_that_expires_on_an_open_connection_is_cut_off_like_a_revoked_one() {
    let pki = pki();
    let gw = start_gateway(&pki).await;
    let id = Identity::new(Role::Verifier, Scope::Province("420000".parse().unwrap())).unwrap();
    // Valid for a few seconds: accepted at the handshake.
    let short = pki.issue_window(id, &[], now() - DAY, now() + 3).unwrap();
    let trust = Arc::new(TrustState::new(pki.anchor().unwrap()).unwrap());
    let identity = TlsIdentity::new(short.der.clone(), &short.tls_key).unwrap();
    let config = tls::client_config(&identity, trust, Role::Gateway).unwrap();
    let mut client = GatewayClient::new(grpc::channel(&gw.addr.to_string(), config).unwrap());
    client.who_am_i(pb::WhoAmIRequest {}).await.unwrap();
    let mut watch = client
        .watch_trust_list(pb::WatchTrustListRequest { known_sequence: 0 })
        .await
        .unwrap()
        .into_inner();

    // The open stream ends with the expiry (bounded wait: the certificate
    // lives 3 s).
    let ended = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        loop {
            match watch.message().await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("the stream ended without a status"),
                Err(status) => return status,
            }
        }
    })
    .await
    .expect("the watch stream outlived the certificate");
    assert_eq!(ended.code(), tonic::Code::Unauthenticated, "{ended:?}");
    assert!(ended.message().contains("expired"), "{ended:?}");
    assert!(now() > CertInfo::parse(&short.der).unwrap().not_after());

    // The open connection's next call is refused too.
    let status = client.who_am_i(pb::WhoAmIRequest {}).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("expired"), "{status:?}");
}

#[tokio::test]
async fn a_badge_signer_certificate_cannot_be_used_for_tls() {
    let pki = pki();
    let gw = start_gateway(&pki).await;
    let hz = "330100".parse().unwrap();
    let signer = pki
        .issue(
            Identity::new(Role::BadgeSigner, Scope::City(hz)).unwrap(),
            &[],
        )
        .unwrap();
    assert!(TlsIdentity::new(signer.der.clone(), &signer.tls_key).is_err());
    // Even forced through rustls directly, the gateway refuses it.
    let config = raw_client(&pki, Some(&signer));
    let channel = grpc::channel(&gw.addr.to_string(), config).unwrap();
    let result = GatewayClient::new(channel)
        .who_am_i(pb::WhoAmIRequest {})
        .await;
    assert!(
        result.is_err(),
        "a badge-signer certificate got in: {result:?}"
    );
}

#[tokio::test]
async fn a_client_refuses_a_server_of_the_wrong_role() {
    // A city node answering where the gateway was expected.
    let mut pki = pki();
    let hz = pki.add_city(330_100, "Hangzhou", "127.0.0.1:1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = tessera_tests::harness::RunningNode::start(&pki, hz, dir.path())
        .await
        .unwrap();
    let verifier = pki.verifier(420_000).unwrap();
    let mut client = tessera_tests::harness::gateway_client(&pki, node.addr, &verifier).unwrap();
    let result = client.who_am_i(pb::WhoAmIRequest {}).await;
    assert!(
        result.is_err(),
        "a node posing as the gateway was trusted: {result:?}"
    );
    // The same node is trusted by a client that expects a node.
    let mut as_node = tessera_tests::harness::node_client(&pki, node.addr, &verifier).unwrap();
    as_node.who_am_i(pb::WhoAmIRequest {}).await.unwrap();
    node.stop().await.unwrap();
}
