//! The gateway's authorization matrix: every RPC against every kind of
//! caller, expected outcomes written out here independently of the table in
//! the code, plus callers TLS must refuse outright.

use std::sync::Arc;

use futures::StreamExt;
use tessera_certs::grpc;
use tessera_certs::tls;
use tessera_core::{CertInfo, Identity, Role, Scope};
use tessera_gateway::config::RelaySettings;
use tessera_proto::v1 as pb;
use tessera_proto::v1::gateway_client::GatewayClient;
use tessera_tests::harness::RunningGateway;
use tessera_tests::{DAY, Issued, TestPki, unix_now};
use tonic::Code;
use tonic::transport::Channel;

const RPCS: [&str; 6] = [
    "PublishTrustList",
    "FetchTrustList",
    "WatchTrustList",
    "Verify",
    "VerifyBatch",
    "WhoAmI",
];

/// Calls one RPC with harmless arguments; `Ok` if the call was let through
/// (whatever the handler then answered), the refusal code otherwise.
async fn call(client: &mut GatewayClient<Channel>, rpc: &str) -> Result<(), Code> {
    let admitted = |r: Result<(), tonic::Status>| match r {
        Ok(()) => Ok(()),
        Err(s)
            if matches!(
                s.code(),
                Code::PermissionDenied | Code::Unauthenticated | Code::Unavailable | Code::Unknown
            ) =>
        {
            Err(s.code())
        }
        Err(_) => Ok(()),
    };
    let r = match rpc {
        "PublishTrustList" => client
            .publish_trust_list(pb::PublishTrustListRequest { list: None })
            .await
            .map(|_| ()),
        "FetchTrustList" => client
            .fetch_trust_list(pb::FetchTrustListRequest { known_sequence: 0 })
            .await
            .map(|_| ()),
        "WatchTrustList" => client
            .watch_trust_list(pb::WatchTrustListRequest {
                known_sequence: u64::MAX,
            })
            .await
            .map(|_| ()),
        "Verify" => client
            .verify(pb::VerifyRequest {
                badge: Some(pb::verify_request::Badge::Envelope(vec![1, 2, 3])),
            })
            .await
            .map(|_| ()),
        "VerifyBatch" => match client
            .verify_batch(tokio_stream::iter(Vec::<pb::VerifyRequest>::new()))
            .await
        {
            Ok(stream) => {
                let _ = stream.into_inner().next().await;
                Ok(())
            }
            Err(s) => Err(s),
        },
        "WhoAmI" => client.who_am_i(pb::WhoAmIRequest {}).await.map(|_| ()),
        other => panic!("unknown rpc {other}"),
    };
    admitted(r)
}

fn client(pki: &TestPki, addr: std::net::SocketAddr, who: &Issued) -> GatewayClient<Channel> {
    tessera_tests::harness::gateway_client(pki, addr, who).unwrap()
}

#[tokio::test]
async fn every_rpc_against_every_caller() {
    let now = unix_now();
    let mut pki = TestPki::new(now).unwrap();
    let hz = pki.add_city(330_100, "Hangzhou", "127.0.0.1:1").unwrap();
    let revoked = pki.verifier(420_000).unwrap();
    let mut msg = pki.trust_list_message(1).unwrap();
    msg.revoked_serials
        .push(CertInfo::parse(&revoked.der).unwrap().serial().to_vec());
    let list = pki.sign(&msg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = RunningGateway::start(&pki, dir.path(), Some(&list), RelaySettings::default())
        .await
        .unwrap();

    let nation = |role| Identity::new(role, Scope::Nation).unwrap();
    let authority = pki.issue(nation(Role::Authority), &[]).unwrap();
    let node = pki.city(hz).unwrap().node.clone();
    let operator = pki.operator(hz).unwrap();
    let verifier = pki.verifier(420_000).unwrap();
    let gateway = pki.gateway.clone();

    // Who the standard says may call what (docs/PKI.md).
    let expected: [(&str, &Issued, [bool; 6]); 5] = [
        //                         Publish Fetch  Watch  Verify Batch  WhoAmI
        (
            "authority",
            &authority,
            [true, true, true, false, false, true],
        ),
        ("gateway", &gateway, [false, true, true, false, false, true]),
        ("city node", &node, [false, true, true, true, true, true]),
        (
            "operator",
            &operator,
            [false, true, true, false, false, true],
        ),
        (
            "checkpoint",
            &verifier,
            [false, true, true, true, true, true],
        ),
    ];
    for (who, cert, allowed) in expected {
        let mut c = client(&pki, gw.addr, cert);
        for (rpc, allow) in RPCS.iter().zip(allowed) {
            let got = call(&mut c, rpc).await;
            assert_eq!(got.is_ok(), allow, "{who} calling {rpc}: {got:?}");
            if !allow {
                assert_eq!(got, Err(Code::PermissionDenied), "{who} calling {rpc}");
            }
        }
    }

    // Callers refused at the handshake or before any handler, for every RPC.
    let stranger = TestPki::new(now).unwrap();
    let foreign = stranger.verifier(420_000).unwrap();
    let province = "420000".parse().unwrap();
    let expired = pki
        .issue_window(
            Identity::new(Role::Verifier, Scope::Province(province)).unwrap(),
            &[],
            now - 30 * DAY,
            now - DAY,
        )
        .unwrap();
    let not_yet = pki
        .issue_window(
            Identity::new(Role::Verifier, Scope::Province(province)).unwrap(),
            &[],
            now + DAY,
            now + 30 * DAY,
        )
        .unwrap();
    for (who, cert) in [
        ("foreign CA", &foreign),
        ("expired", &expired),
        ("not yet valid", &not_yet),
        ("revoked", &revoked),
    ] {
        let mut c = client(&pki, gw.addr, cert);
        for rpc in RPCS {
            assert!(
                call(&mut c, rpc).await.is_err(),
                "{who} got through to {rpc}"
            );
        }
    }
    // No certificate at all.
    tls::install_default_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from(
            pki.root.der().to_vec(),
        ))
        .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let mut anonymous =
        GatewayClient::new(grpc::channel(&gw.addr.to_string(), Arc::new(config)).unwrap());
    for rpc in RPCS {
        assert!(
            call(&mut anonymous, rpc).await.is_err(),
            "a caller without a certificate got through to {rpc}"
        );
    }

    // The matrix above covers every RPC in the gateway's table.
    let mut in_table: Vec<&str> = tessera_gateway::authz::TABLE
        .iter()
        .map(|(path, _)| path.trim_start_matches("/tessera.v1.Gateway/"))
        .collect();
    in_table.sort_unstable();
    let mut tested = RPCS.to_vec();
    tested.sort_unstable();
    assert_eq!(in_table, tested);
    gw.stop().await.unwrap();
}
