//! The authorization matrix: every RPC of the city node and of the gateway
//! (their own and the standard health and reflection services)
//! against every kind of caller, over real mutual TLS. The expected outcomes
//! are written out here, independently of the code; they are checked both
//! against live calls and against the one authorization table each service
//! enforces, and the test fails if the standard has an RPC that the table or
//! this matrix does not list.

use std::net::SocketAddr;

use futures::StreamExt;
use tessera_core::{CertInfo, CityCode, Identity, Role, Scope};
use tessera_gateway::config::RelaySettings;
use tessera_proto::v1 as pb;
use tessera_proto::v1::city_node_client::CityNodeClient;
use tessera_proto::v1::gateway_client::GatewayClient;
use tessera_runtime::authz::{Table, rpcs_in_proto};
use tessera_tests::forge::{Forge, forged};
use tessera_tests::harness::{RunningGateway, RunningNode, raw_channel, write_city_bundle};
use tessera_tests::{DAY, Issued, TestPki, national_id, unix_now};
use tonic::Code;
use tonic::transport::Channel;

const NODE_RPCS: [&str; 10] = [
    "IngestRecords",
    "IssueBadge",
    "Explain",
    "CheckStatus",
    "WhoAmI",
    "ExportRecords",
    "EraseResident",
    "AccessLog",
    "BackupStore",
    "CorrectRecord",
];
const GATEWAY_RPCS: [&str; 10] = [
    "PublishTrustList",
    "FetchTrustList",
    "WatchTrustList",
    "Verify",
    "VerifyBatch",
    "WhoAmI",
    "PublishPolicy",
    "FetchPolicies",
    "SubmitAttestation",
    "ListAttestations",
];

/// Enrolled callers and what each may call, in the order of `NODE_RPCS`
/// (on the Hangzhou node) and `GATEWAY_RPCS`: who the standard says may
/// call what (docs/PKI.md), written out by hand.
#[rustfmt::skip]
const ENROLLED: [(&str, [bool; 10], [bool; 10]); 7] = [
    // node:    Ingest Issue Explain Status WhoAmI Export Erase AccessLog Backup Correct
    // gateway: Publish Fetch Watch Verify Batch WhoAmI PublishPolicy FetchPolicies SubmitAttestation ListAttestations
    ("authority",
        [false, false, false, false, true, false, false, false, false, false],
        [true, true, true, false, false, true, false, true, false, true]),
    ("gateway",
        [false, false, false, true, true, false, false, false, false, false],
        [false, true, true, false, false, true, false, true, false, true]),
    ("Hangzhou node",
        [false, false, false, false, true, false, false, false, false, false],
        [false, true, true, true, true, true, true, true, true, false]),
    ("Wuhan node",
        [false, false, false, false, true, false, false, false, false, false],
        [false, true, true, true, true, true, true, true, true, false]),
    ("Hangzhou operator",
        [true, true, true, false, true, true, true, true, true, true],
        [false, true, true, false, false, true, true, true, false, false]),
    ("Wuhan operator",
        [false, false, false, false, true, false, false, false, false, false],
        [false, true, true, false, false, true, true, true, false, false]),
    ("checkpoint",
        [false, false, false, false, true, false, false, false, false, false],
        [false, true, true, true, true, true, false, true, false, false]),
];

fn channel(pki: &TestPki, addr: SocketAddr, cert: Option<&Issued>) -> Channel {
    raw_channel(pki, addr, cert)
}

/// `Ok` if the call got past authorization (whatever the handler then
/// answered), the refusal's code otherwise.
fn admitted(r: Result<(), tonic::Status>) -> Result<(), Code> {
    match r {
        Err(s)
            if matches!(
                s.code(),
                Code::PermissionDenied | Code::Unauthenticated | Code::Unavailable | Code::Unknown
            ) =>
        {
            Err(s.code())
        }
        _ => Ok(()),
    }
}

/// Calls one node RPC with harmless arguments.
async fn call_node(c: &mut CityNodeClient<Channel>, rpc: &str, city: CityCode) -> Result<(), Code> {
    let resident = national_id(city, 7);
    let r = match rpc {
        "IngestRecords" => c
            .ingest_records(pb::IngestRequest { records: vec![] })
            .await
            .map(|_| ()),
        "IssueBadge" => c
            .issue_badge(pb::IssueBadgeRequest {
                national_id: resident,
                name: "Matrix".into(),
            })
            .await
            .map(|_| ()),
        "Explain" => c
            .explain(pb::ExplainRequest {
                national_id: resident,
            })
            .await
            .map(|_| ()),
        "CheckStatus" => c
            .check_status(pb::CheckStatusRequest {
                badge_ids: vec![vec![0; 16]],
            })
            .await
            .map(|_| ()),
        "WhoAmI" => c.who_am_i(pb::WhoAmIRequest {}).await.map(|_| ()),
        "ExportRecords" => c
            .export_records(pb::ExportRequest {
                national_id: resident,
            })
            .await
            .map(|_| ()),
        "EraseResident" => c
            .erase_resident(pb::EraseRequest {
                national_id: resident,
            })
            .await
            .map(|_| ()),
        "AccessLog" => c
            .access_log(pb::AccessLogRequest {
                national_id: resident,
            })
            .await
            .map(|_| ()),
        // The matrix's nodes have no backup_dir: an admitted call is
        // answered FAILED_PRECONDITION and writes nothing.
        "BackupStore" => c
            .backup_store(pb::BackupStoreRequest {
                directory: "matrix".into(),
            })
            .await
            .map(|_| ()),
        "CorrectRecord" => c
            .correct_record(pb::CorrectRecordRequest {
                national_id: resident,
                record_id: "matrix-none".into(),
                correction: Some(pb::correct_record_request::Correction::Retract(
                    pb::Retraction {},
                )),
                reason: pb::CorrectionReason::EntryError as i32,
            })
            .await
            .map(|_| ()),
        other => panic!("the matrix has no call for node rpc {other}"),
    };
    admitted(r)
}

/// Calls one gateway RPC with harmless arguments.
async fn call_gateway(c: &mut GatewayClient<Channel>, rpc: &str) -> Result<(), Code> {
    let r = match rpc {
        "PublishTrustList" => c
            .publish_trust_list(pb::PublishTrustListRequest { list: None })
            .await
            .map(|_| ()),
        "FetchTrustList" => c
            .fetch_trust_list(pb::FetchTrustListRequest { known_sequence: 0 })
            .await
            .map(|_| ()),
        "WatchTrustList" => c
            .watch_trust_list(pb::WatchTrustListRequest {
                known_sequence: u64::MAX,
            })
            .await
            .map(|_| ()),
        "Verify" => c
            .verify(pb::VerifyRequest {
                badge: Some(pb::verify_request::Badge::Envelope(vec![1, 2, 3])),
            })
            .await
            .map(|_| ()),
        "VerifyBatch" => match c
            .verify_batch(tokio_stream::iter(Vec::<pb::VerifyRequest>::new()))
            .await
        {
            Ok(stream) => {
                let _ = stream.into_inner().next().await;
                Ok(())
            }
            Err(s) => Err(s),
        },
        "WhoAmI" => c.who_am_i(pb::WhoAmIRequest {}).await.map(|_| ()),
        "PublishPolicy" => c
            .publish_policy(pb::PublishPolicyRequest { policy: None })
            .await
            .map(|_| ()),
        "FetchPolicies" => c
            .fetch_policies(pb::FetchPoliciesRequest { city: 330_100 })
            .await
            .map(|_| ()),
        "SubmitAttestation" => c
            .submit_attestation(pb::SubmitAttestationRequest { attestation: None })
            .await
            .map(|_| ()),
        "ListAttestations" => c
            .list_attestations(pb::ListAttestationsRequest {})
            .await
            .map(|_| ()),
        other => panic!("the matrix has no call for gateway rpc {other}"),
    };
    admitted(r)
}

/// The standard services every server offers beside its own, by full path:
/// any enrolled caller may use them.
const STANDARD_RPCS: [&str; 4] = [
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// The first message of a server stream, as a call result.
async fn first<T>(
    r: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>,
) -> Result<(), tonic::Status> {
    match r?.into_inner().next().await {
        Some(Err(s)) => Err(s),
        _ => Ok(()),
    }
}

/// Calls one standard RPC with harmless arguments.
async fn call_standard(channel: &Channel, path: &str) -> Result<(), Code> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_reflection::pb::{v1, v1alpha};
    let check = HealthCheckRequest {
        service: String::new(),
    };
    let r = match path {
        "/grpc.health.v1.Health/Check" => HealthClient::new(channel.clone())
            .check(check)
            .await
            .map(|_| ()),
        "/grpc.health.v1.Health/Watch" => {
            first(HealthClient::new(channel.clone()).watch(check).await).await
        }
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo" => {
            let list = v1::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
                    String::new(),
                )),
            };
            first(
                v1::server_reflection_client::ServerReflectionClient::new(channel.clone())
                    .server_reflection_info(tokio_stream::iter([list]))
                    .await,
            )
            .await
        }
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo" => {
            let list = v1alpha::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(
                    v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
                ),
            };
            first(
                v1alpha::server_reflection_client::ServerReflectionClient::new(channel.clone())
                    .server_reflection_info(tokio_stream::iter([list]))
                    .await,
            )
            .await
        }
        other => panic!("the matrix has no call for standard rpc {other}"),
    };
    admitted(r)
}

/// What the code's table says of `identity` calling `rpc` of `service`.
fn table_allows(table: &Table, service: &str, rpc: &str, identity: &Identity) -> bool {
    table
        .check(&format!("/tessera.v1.{service}/{rpc}"), identity)
        .is_ok()
}

#[tokio::test]
async fn every_rpc_of_node_and_gateway_against_every_kind_of_caller() {
    // The matrix lists exactly the RPCs of the standard, and so do the tables.
    let node_proto = include_str!("../../proto/tessera/v1/node.proto");
    let gateway_proto = include_str!("../../proto/tessera/v1/gateway.proto");
    let hz: CityCode = "330100".parse().unwrap();
    let node_table = tessera_node::authz::table(hz);
    let gateway_table = tessera_gateway::authz::table();
    let paths = |service: &str, rpcs: &[&str]| {
        let mut p: Vec<String> = rpcs
            .iter()
            .map(|r| format!("/tessera.v1.{service}/{r}"))
            .collect();
        p.sort();
        p
    };
    assert_eq!(rpcs_in_proto(node_proto, "CityNode"), node_table.paths());
    assert_eq!(
        rpcs_in_proto(node_proto, "CityNode"),
        paths("CityNode", &NODE_RPCS)
    );
    assert_eq!(
        rpcs_in_proto(gateway_proto, "Gateway"),
        gateway_table.paths()
    );
    assert_eq!(
        rpcs_in_proto(gateway_proto, "Gateway"),
        paths("Gateway", &GATEWAY_RPCS)
    );
    let mut standard: Vec<&str> = tessera_runtime::standard::ENTRIES
        .iter()
        .map(|(path, _)| *path)
        .collect();
    standard.sort_unstable();
    let mut matrix = STANDARD_RPCS.to_vec();
    matrix.sort_unstable();
    assert_eq!(
        standard, matrix,
        "the standard services' entries and the matrix differ"
    );

    // A federation: the gateway, and the Hangzhou node, both holding a list
    // that revokes one checkpoint.
    let now = unix_now();
    let mut pki = TestPki::new(now).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node_addr = listener.local_addr().unwrap();
    pki.add_city(330_100, "Hangzhou", &node_addr.to_string())
        .unwrap();
    let wuhan = pki.add_city(420_100, "Wuhan", "127.0.0.1:1").unwrap();
    let revoked = pki.verifier(420_000).unwrap();
    let mut msg = pki.trust_list_message(1).unwrap();
    msg.revoked_serials
        .push(CertInfo::parse(&revoked.der).unwrap().serial().to_vec());
    let list = pki.sign(&msg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = RunningGateway::start(
        &pki,
        &dir.path().join("gw"),
        Some(&list),
        RelaySettings::default(),
    )
    .await
    .unwrap();
    let node_dir = dir.path().join("hz");
    let config = write_city_bundle(&pki, hz, &node_dir, node_addr).unwrap();
    std::fs::write(node_dir.join("trust-list.tsl"), &list).unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "root = \"root.crt\"",
        "root = \"root.crt\"\ntrust_list = \"trust-list.tsl\"",
    );
    std::fs::write(&config, text).unwrap();
    let node = RunningNode::start_with(config, listener).await.unwrap();

    // Enrolled callers, in the order of ENROLLED.
    let nation = |role| Identity::new(role, Scope::Nation).unwrap();
    let province = "420000".parse().unwrap();
    let enrolled = [
        pki.issue(nation(Role::Authority), &[]).unwrap(),
        pki.gateway.clone(),
        pki.city(hz).unwrap().node.clone(),
        pki.city(wuhan).unwrap().node.clone(),
        pki.operator(hz).unwrap(),
        pki.operator(wuhan).unwrap(),
        pki.verifier(420_000).unwrap(),
    ];
    for ((who, node_allowed, gateway_allowed), cert) in ENROLLED.iter().zip(&enrolled) {
        let identity = CertInfo::parse(&cert.der).unwrap().identity();
        for (service, table, addr) in [
            ("node", &node_table, node.addr),
            ("gateway", &gateway_table, gw.addr),
        ] {
            let ch = channel(&pki, addr, Some(cert));
            for path in STANDARD_RPCS {
                assert!(
                    table.check(path, &identity).is_ok(),
                    "the {service}'s table refuses {who} calling {path}"
                );
                let got = call_standard(&ch, path).await;
                assert_eq!(got, Ok(()), "{who} calling the {service}'s {path}");
            }
        }
        let mut n = CityNodeClient::new(channel(&pki, node.addr, Some(cert)));
        for (rpc, allow) in NODE_RPCS.iter().zip(node_allowed) {
            assert_eq!(
                table_allows(&node_table, "CityNode", rpc, &identity),
                *allow,
                "the node's table disagrees with the matrix on {who} calling {rpc}"
            );
            let got = call_node(&mut n, rpc, hz).await;
            let want = if *allow {
                Ok(())
            } else {
                Err(Code::PermissionDenied)
            };
            assert_eq!(got, want, "{who} calling the node's {rpc}");
        }
        let mut g = GatewayClient::new(channel(&pki, gw.addr, Some(cert)));
        for (rpc, allow) in GATEWAY_RPCS.iter().zip(gateway_allowed) {
            assert_eq!(
                table_allows(&gateway_table, "Gateway", rpc, &identity),
                *allow,
                "the gateway's table disagrees with the matrix on {who} calling {rpc}"
            );
            let got = call_gateway(&mut g, rpc).await;
            let want = if *allow {
                Ok(())
            } else {
                Err(Code::PermissionDenied)
            };
            assert_eq!(got, want, "{who} calling the gateway's {rpc}");
        }
    }

    // Callers refused before any handler, on every RPC of both services.
    let checkpoint = || Identity::new(Role::Verifier, Scope::Province(province)).unwrap();
    let odd = |how: Forge| Some(forged(&pki, checkpoint(), how).unwrap());
    let refused: [(&str, Option<Issued>); 10] = [
        ("no certificate", None),
        (
            "self-signed",
            Some(
                forged(
                    &pki,
                    checkpoint(),
                    Forge {
                        self_signed: true,
                        ..Forge::default()
                    },
                )
                .unwrap(),
            ),
        ),
        (
            "foreign CA",
            Some(TestPki::new(now).unwrap().verifier(420_000).unwrap()),
        ),
        (
            "expired",
            Some(
                pki.issue_window(checkpoint(), &[], now - 30 * DAY, now - DAY)
                    .unwrap(),
            ),
        ),
        (
            "not yet valid",
            Some(
                pki.issue_window(checkpoint(), &[], now + DAY, now + 30 * DAY)
                    .unwrap(),
            ),
        ),
        ("revoked", Some(revoked.clone())),
        (
            "absurd validity (1950 to 9999)",
            odd(Forge {
                absurd_validity: true,
                ..Forge::default()
            }),
        ),
        (
            "unknown critical extension",
            odd(Forge {
                unknown_critical_extension: true,
                ..Forge::default()
            }),
        ),
        (
            "wrong key usage (a badge signer's certificate)",
            Some(pki.city(hz).unwrap().signer.clone()),
        ),
        (
            "wrong key usage (server authentication only)",
            Some(
                forged(
                    &pki,
                    checkpoint(),
                    Forge {
                        server_auth_only: true,
                        ..Forge::default()
                    },
                )
                .unwrap(),
            ),
        ),
    ];
    for (who, cert) in &refused {
        for (service, addr) in [("node", node.addr), ("gateway", gw.addr)] {
            let ch = channel(&pki, addr, cert.as_ref());
            for path in STANDARD_RPCS {
                let got = call_standard(&ch, path).await;
                assert!(got.is_err(), "{who} got through to the {service}'s {path}");
            }
        }
        let mut n = CityNodeClient::new(channel(&pki, node.addr, cert.as_ref()));
        for rpc in NODE_RPCS {
            let got = call_node(&mut n, rpc, hz).await;
            assert!(got.is_err(), "{who} got through to the node's {rpc}");
        }
        let mut g = GatewayClient::new(channel(&pki, gw.addr, cert.as_ref()));
        for rpc in GATEWAY_RPCS {
            let got = call_gateway(&mut g, rpc).await;
            assert!(got.is_err(), "{who} got through to the gateway's {rpc}");
        }
    }

    // Both services still serve a legitimate caller afterwards.
    let mut g = GatewayClient::new(channel(&pki, gw.addr, Some(&enrolled[6])));
    assert_eq!(call_gateway(&mut g, "WhoAmI").await, Ok(()));
    let mut n = CityNodeClient::new(channel(&pki, node.addr, Some(&enrolled[4])));
    assert_eq!(call_node(&mut n, "WhoAmI", hz).await, Ok(()));
    node.stop().await.unwrap();
    gw.stop().await.unwrap();
}
