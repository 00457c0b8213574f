//! Request bodies that are not protobuf, sent over real mutual TLS by
//! authorized callers to a few RPCs of the gateway and a city node: each is
//! answered `INVALID_ARGUMENT` (never `INTERNAL`, which operators read as a
//! storage or signing failure) and counted under that code.

use std::sync::Arc;

use tessera_core::{CityCode, Role};
use tessera_gateway::config::RelaySettings;
use tessera_runtime::{TlsIdentity, TrustState, grpc, tls};
use tessera_tests::harness::{
    RunningGateway, RunningNode, write_city_bundle, write_gateway_bundle,
};
use tessera_tests::{Issued, TestPki, unix_now};
use tokio::net::TcpListener;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

use crate::metrics::{free_addr, get, sample, with_metrics};

/// Sends bytes as they are and reads answers as bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        prost::bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = prost::bytes::Buf::remaining(src);
        Ok(Some(prost::bytes::Buf::copy_to_bytes(src, n).to_vec()))
    }
}

/// Not protobuf: a field tag whose varint never ends.
const GARBAGE: &[u8] = &[0xff, 0xff, 0xff, 0xff];

fn channel(pki: &TestPki, addr: std::net::SocketAddr, as_who: &Issued, to: Role) -> Channel {
    tls::install_default_provider();
    let trust = Arc::new(TrustState::new(pki.anchor().unwrap()).unwrap());
    let identity = TlsIdentity::new(as_who.der.clone(), &as_who.tls_key).unwrap();
    let config = tls::client_config(&identity, trust, to).unwrap();
    grpc::channel(&addr.to_string(), config).unwrap()
}

/// Calls `path` on `channel` with `GARBAGE` as the request; the status.
async fn garbage_unary(channel: &Channel, path: &'static str) -> tonic::Status {
    let mut client = tonic::client::Grpc::new(channel.clone());
    client.ready().await.unwrap();
    client
        .unary(
            tonic::Request::new(GARBAGE.to_vec()),
            tonic::codegen::http::uri::PathAndQuery::from_static(path),
            Raw,
        )
        .await
        .unwrap_err()
}

#[tokio::test]
async fn bodies_that_are_not_protobuf_are_invalid_argument_and_counted_so() {
    let mut pki = TestPki::new(unix_now()).unwrap();
    let node_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node_addr = node_listener.local_addr().unwrap();
    let hz: CityCode = pki
        .add_city(330_100, "Hangzhou", &node_addr.to_string())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let list = pki.trust_list(1).unwrap();

    let node_metrics = free_addr();
    let config = write_city_bundle(&pki, hz, &dir.path().join("hz"), node_addr).unwrap();
    with_metrics(&config, node_metrics);
    let node = RunningNode::start_with(config, node_listener)
        .await
        .unwrap();

    let gw_metrics = free_addr();
    let gw_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = write_gateway_bundle(
        &pki,
        &dir.path().join("gw"),
        Some(&list),
        RelaySettings::default(),
        gw_listener.local_addr().unwrap(),
    )
    .unwrap();
    with_metrics(&config, gw_metrics);
    let gw = RunningGateway::start_with(config, gw_listener)
        .await
        .unwrap();

    let checkpoint = pki.verifier(330_000).unwrap();
    let to_gateway = channel(&pki, gw.addr, &checkpoint, Role::Gateway);
    let operator = pki.operator(hz).unwrap();
    let as_operator = channel(&pki, node.addr, &operator, Role::CityNode);
    let as_gateway = channel(&pki, node.addr, &pki.gateway, Role::CityNode);
    let calls = [
        (&to_gateway, "/tessera.v1.Gateway/Verify"),
        (&to_gateway, "/tessera.v1.Gateway/FetchTrustList"),
        (&to_gateway, "/tessera.v1.Gateway/WhoAmI"),
        (&as_operator, "/tessera.v1.CityNode/IngestRecords"),
        (&as_operator, "/tessera.v1.CityNode/IssueBadge"),
        (&as_gateway, "/tessera.v1.CityNode/CheckStatus"),
    ];
    for (channel, path) in calls {
        let status = garbage_unary(channel, path).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{path}: {status:?}");
        assert!(
            status.message().contains("does not decode"),
            "{path}: {status:?}"
        );
    }

    // A batch stream whose second item does not decode: the first gets its
    // verdict, then the stream ends with INVALID_ARGUMENT.
    let valid_request = prost::Message::encode_to_vec(&tessera_proto::v1::VerifyRequest {
        badge: Some(tessera_proto::v1::verify_request::Badge::QrText(
            "TB1:nonsense".into(),
        )),
    });
    let mut client = tonic::client::Grpc::new(to_gateway.clone());
    client.ready().await.unwrap();
    let mut answers = client
        .streaming(
            tonic::Request::new(tokio_stream::iter(vec![valid_request, GARBAGE.to_vec()])),
            tonic::codegen::http::uri::PathAndQuery::from_static("/tessera.v1.Gateway/VerifyBatch"),
            Raw,
        )
        .await
        .unwrap()
        .into_inner();
    let first = answers.message().await.unwrap();
    assert!(first.is_some(), "the first item gets a verdict");
    let end = answers.message().await.unwrap_err();
    assert_eq!(end.code(), Code::InvalidArgument, "{end:?}");

    let (_, node_text) = get(node_metrics, "/metrics").await;
    let (_, gw_text) = get(gw_metrics, "/metrics").await;
    for (text, path) in [
        (&gw_text, "/tessera.v1.Gateway/Verify"),
        (&gw_text, "/tessera.v1.Gateway/FetchTrustList"),
        // Its status came in the trailers, after a verdict.
        (&gw_text, "/tessera.v1.Gateway/VerifyBatch"),
        (&node_text, "/tessera.v1.CityNode/IngestRecords"),
        (&node_text, "/tessera.v1.CityNode/CheckStatus"),
    ] {
        let series =
            format!(r#"tessera_rpc_calls_total{{method="{path}",code="INVALID_ARGUMENT"}}"#);
        assert_eq!(sample(text, &series), Some(1.0), "{series} in\n{text}");
    }
    assert!(
        !gw_text.contains(r#"method="/tessera.v1.Gateway/VerifyBatch",code="OK""#),
        "{gw_text}"
    );
    for text in [&node_text, &gw_text] {
        assert!(!text.contains(r#"code="INTERNAL""#), "{text}");
    }
    node.stop().await.unwrap();
    gw.stop().await.unwrap();
}
