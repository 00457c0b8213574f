//! The standard services beside tessera's own: gRPC health checking and
//! server reflection on the gateway and on a city node, over mutual TLS, as
//! grpcurl or grpc_health_probe would call them.

use std::collections::BTreeSet;

use futures::StreamExt;
use tessera_gateway::config::RelaySettings;
use tessera_tests::harness::{RunningGateway, RunningNode, raw_channel};
use tessera_tests::{TestPki, unix_now};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1 as reflection;
use tonic_reflection::pb::v1alpha as reflection_alpha;

async fn health(channel: &Channel, service: &str) -> Result<ServingStatus, tonic::Code> {
    HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .map(|r| r.into_inner().status())
        .map_err(|s| s.code())
}

/// The services reflection lists, through v1 and through v1alpha (which
/// must agree).
async fn listed(channel: &Channel) -> BTreeSet<String> {
    use reflection::server_reflection_client::ServerReflectionClient;
    use reflection::server_reflection_request::MessageRequest;
    use reflection::server_reflection_response::MessageResponse;
    let request = reflection::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(channel.clone())
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        answers.next().await.unwrap().unwrap().message_response
    else {
        panic!("reflection did not list services");
    };
    let v1: BTreeSet<String> = list.service.into_iter().map(|s| s.name).collect();

    use reflection_alpha::server_reflection_client::ServerReflectionClient as AlphaClient;
    use reflection_alpha::server_reflection_request::MessageRequest as AlphaRequest;
    use reflection_alpha::server_reflection_response::MessageResponse as AlphaResponse;
    let request = reflection_alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(AlphaRequest::ListServices(String::new())),
    };
    let mut answers = AlphaClient::new(channel.clone())
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(AlphaResponse::ListServicesResponse(list)) =
        answers.next().await.unwrap().unwrap().message_response
    else {
        panic!("v1alpha reflection did not list services");
    };
    let alpha: BTreeSet<String> = list.service.into_iter().map(|s| s.name).collect();
    assert_eq!(v1, alpha, "v1 and v1alpha reflection disagree");
    v1
}

/// The descriptor of the file defining `symbol`, through reflection.
async fn file_defining(channel: &Channel, symbol: &str) -> Vec<Vec<u8>> {
    use reflection::server_reflection_client::ServerReflectionClient;
    use reflection::server_reflection_request::MessageRequest;
    use reflection::server_reflection_response::MessageResponse;
    let request = reflection::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(symbol.into())),
    };
    let mut answers = ServerReflectionClient::new(channel.clone())
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    match answers.next().await.unwrap().unwrap().message_response {
        Some(MessageResponse::FileDescriptorResponse(files)) => files.file_descriptor_proto,
        other => panic!("no descriptor for {symbol}: {other:?}"),
    }
}

#[tokio::test]
async fn health_and_reflection_answer_on_the_gateway_and_a_node() {
    let mut pki = TestPki::new(unix_now()).unwrap();
    let hz = pki.add_city(330_100, "Hangzhou", "127.0.0.1:1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let list = pki.trust_list(1).unwrap();
    let gw = RunningGateway::start(
        &pki,
        &dir.path().join("gw"),
        Some(&list),
        RelaySettings::default(),
    )
    .await
    .unwrap();
    let node = RunningNode::start(&pki, hz, &dir.path().join("hz"))
        .await
        .unwrap();
    let checkpoint = pki.verifier(330_000).unwrap();

    for (addr, own, other) in [
        (gw.addr, "tessera.v1.Gateway", "tessera.v1.CityNode"),
        (node.addr, "tessera.v1.CityNode", "tessera.v1.Gateway"),
    ] {
        let channel = raw_channel(&pki, addr, Some(&checkpoint));
        assert_eq!(health(&channel, "").await, Ok(ServingStatus::Serving));
        assert_eq!(health(&channel, own).await, Ok(ServingStatus::Serving));
        assert_eq!(health(&channel, other).await, Err(tonic::Code::NotFound));

        let services = listed(&channel).await;
        let expected: BTreeSet<String> = [own, "grpc.health.v1.Health"]
            .into_iter()
            .map(String::from)
            .collect();
        // Exactly what is served: not the other role's service, not the
        // benchmark's echo service that shares the descriptor set.
        assert_eq!(services, expected, "{addr}");
        let files = file_defining(&channel, own).await;
        assert!(!files.is_empty(), "no descriptor for {own}");

        // Without a client certificate, neither is reachable.
        let anonymous = raw_channel(&pki, addr, None);
        assert!(health(&anonymous, "").await.is_err());
    }
    node.stop().await.unwrap();
    gw.stop().await.unwrap();
}
