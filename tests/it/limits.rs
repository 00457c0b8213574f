//! Clients that hold what they should not, against a running gateway and
//! city node: more HTTP/2 streams on one connection than announced, more
//! watch streams than a caller may hold, connections left idle or whose peer
//! stopped answering pings, and floods of refused handshakes. Each is
//! refused or closed, counted, and the servers go on serving everyone else.
//!
//! The streams are opened with raw HTTP/2 frames: tonic's client (like any
//! well-behaved client) waits for a free stream instead of opening one past
//! the server's announced limit.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tessera_core::Role;
use tessera_proto::v1 as pb;
use tessera_tests::harness::{RunningGateway, gateway_client};
use tessera_tests::wait::wait;
use tessera_tests::{Issued, TestPki, unix_now};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tonic::Code;

use crate::hostile::{closes_on_garbage, federation};

const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const ENHANCE_YOUR_CALM: u8 = 0xb;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const MAX_CONCURRENT_STREAMS: u16 = 0x3;
const REFUSED_STREAM: u32 = 0x7;

/// One HTTP/2 frame: type, flags, stream id, payload.
type Frame = (u8, u8, u32, Vec<u8>);

/// A mutual-TLS connection spoken to in raw HTTP/2 frames.
struct RawH2(TlsStream<TcpStream>);

impl RawH2 {
    /// Connects to `addr` (a server of role `server`) as `cert`, and sends
    /// the client preface and empty settings.
    async fn connect(pki: &TestPki, addr: SocketAddr, cert: &Issued, server: Role) -> Self {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let identity = tessera_runtime::TlsIdentity::new(cert.der.clone(), &cert.tls_key).unwrap();
        let trust = Arc::new(tessera_runtime::tls::TrustState::new(pki.anchor().unwrap()).unwrap());
        let config = tessera_runtime::tls::client_config(&identity, trust, server).unwrap();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .unwrap();
        let mut raw = Self(tls);
        raw.0
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        raw.send(SETTINGS, 0, 0, &[]).await;
        raw
    }

    async fn send(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        self.0
            .write_all(&frame(kind, flags, stream, payload))
            .await
            .unwrap();
    }

    /// The next frame; `None` once the server has closed the connection.
    async fn frame(&mut self) -> Option<Frame> {
        let mut head = [0u8; 9];
        self.0.read_exact(&mut head).await.ok()?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        self.0.read_exact(&mut payload).await.ok()?;
        Some((head[3], head[4], stream, payload))
    }

    /// Reads frames until one matches `until`, within 20 s; every frame read
    /// is returned, the matching one last.
    async fn read_until(&mut self, until: impl Fn(&Frame) -> bool) -> Vec<Frame> {
        let mut seen = vec![];
        tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(frame) = self.frame().await {
                let done = until(&frame);
                seen.push(frame);
                if done {
                    return;
                }
            }
            panic!("the connection closed before the expected frame: {seen:?}");
        })
        .await
        .unwrap_or_else(|_| panic!("no expected frame within 20 s"));
        seen
    }

    /// Reads frames until the server closes the connection, within 20 s;
    /// returns them.
    async fn read_to_close(&mut self) -> Vec<Frame> {
        let mut seen = vec![];
        let closed = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(frame) = self.frame().await {
                seen.push(frame);
            }
        })
        .await;
        assert!(closed.is_ok(), "the server kept the connection open");
        seen
    }
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut frame = vec![len[1], len[2], len[3], kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// An HPACK header block of literal fields (no indexing, no Huffman) for a
/// gRPC call to `path`.
fn grpc_headers(path: &str) -> Vec<u8> {
    let mut block = vec![];
    for (name, value) in [
        (":method", "POST"),
        (":scheme", "https"),
        (":path", path),
        (":authority", "127.0.0.1"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ] {
        block.push(0);
        for s in [name, value] {
            block.push(u8::try_from(s.len()).unwrap());
            block.extend_from_slice(s.as_bytes());
        }
    }
    block
}

/// Opens `limit + extra` calls to `path` on one connection, none of them
/// finished, and returns the streams the server refused, after checking it
/// announced `limit`.
async fn refused_streams(raw: &mut RawH2, path: &str, limit: u32, extra: u32) -> Vec<(u32, u32)> {
    let seen = raw
        .read_until(|(kind, flags, ..)| *kind == SETTINGS && *flags & ACK == 0)
        .await;
    let Some((_, _, _, settings)) = seen.last() else {
        unreachable!()
    };
    let announced = settings.chunks_exact(6).find_map(|s| {
        (u16::from_be_bytes([s[0], s[1]]) == MAX_CONCURRENT_STREAMS)
            .then(|| u32::from_be_bytes([s[2], s[3], s[4], s[5]]))
    });
    assert_eq!(announced, Some(limit), "SETTINGS_MAX_CONCURRENT_STREAMS");
    raw.send(SETTINGS, ACK, 0, &[]).await;
    let block = grpc_headers(path);
    for i in 0..limit + extra {
        raw.send(HEADERS, END_HEADERS, 2 * i + 1, &block).await;
    }
    // Frames are handled in order: once the ping is answered, every
    // refusal of the streams opened before it has been sent.
    raw.send(PING, 0, 0, b"flooding").await;
    raw.read_until(|(kind, flags, ..)| *kind == PING && *flags & ACK != 0)
        .await
        .into_iter()
        .filter(|(kind, ..)| *kind == RST_STREAM)
        .map(|(_, _, stream, code)| (stream, u32::from_be_bytes(code[..4].try_into().unwrap())))
        .collect()
}

#[tokio::test]
async fn streams_past_the_announced_limit_are_refused_on_both_servers() {
    let f = federation("connections = { max_concurrent_streams = 8 }").await;
    // The last four of twelve streams are refused, and only those.
    let expected: Vec<(u32, u32)> = (8..12).map(|i| (2 * i + 1, REFUSED_STREAM)).collect();
    let mut to_gw = RawH2::connect(&f.pki, f.gw.addr, &f.checkpoint, Role::Gateway).await;
    let refused = refused_streams(&mut to_gw, "/tessera.v1.Gateway/VerifyBatch", 8, 4).await;
    assert_eq!(refused, expected, "gateway");
    let mut to_node = RawH2::connect(&f.pki, f.node.addr, &f.pki.gateway, Role::CityNode).await;
    let refused = refused_streams(&mut to_node, "/tessera.v1.CityNode/CheckStatus", 8, 4).await;
    assert_eq!(refused, expected, "node");
    // The eight streams held on each do not keep anyone else out.
    f.still_serving().await;
    // Closed, the connections no longer hold the servers' shutdown.
    drop((to_gw, to_node));
    f.stop().await;
}

#[tokio::test]
async fn a_connection_that_keeps_opening_streams_past_the_limit_is_closed() {
    let f = federation("connections = { max_concurrent_streams = 8 }").await;
    let mut raw = RawH2::connect(&f.pki, f.gw.addr, &f.checkpoint, Role::Gateway).await;
    raw.read_until(|(kind, flags, ..)| *kind == SETTINGS && *flags & ACK == 0)
        .await;
    raw.send(SETTINGS, ACK, 0, &[]).await;
    let block = grpc_headers("/tessera.v1.Gateway/VerifyBatch");
    let max_resets = u32::try_from(tessera_runtime::grpc::MAX_RESETS_PER_CONNECTION).unwrap();
    let flood: Vec<u8> = (0..8 + max_resets + 50)
        .flat_map(|i| frame(HEADERS, END_HEADERS, 2 * i + 1, &block))
        .collect();
    // The server may close the connection before the last are written.
    let _ = raw.0.write_all(&flood).await;
    let seen = raw.read_to_close().await;
    let refused = seen.iter().filter(|(kind, ..)| *kind == RST_STREAM).count();
    assert_eq!(refused, max_resets as usize);
    // GOAWAY ENHANCE_YOUR_CALM, naming the last stream taken: the eighth.
    let goaway = seen.iter().find(|(kind, ..)| *kind == GOAWAY);
    let Some((_, _, _, payload)) = goaway else {
        panic!("closed without a GOAWAY")
    };
    assert_eq!(payload[..8], [0, 0, 0, 15, 0, 0, 0, ENHANCE_YOUR_CALM]);
    f.still_serving().await;
    f.stop().await;
}

fn watch() -> pb::WatchTrustListRequest {
    pb::WatchTrustListRequest { known_sequence: 0 }
}

/// A gateway alone, configured with `top_level`, holding trust list 1.
async fn gateway(pki: &TestPki, dir: &std::path::Path, top_level: &str) -> RunningGateway {
    RunningGateway::start_configured(
        pki,
        dir,
        Some(&pki.trust_list(1).unwrap()),
        tessera_gateway::config::RelaySettings::default(),
        top_level,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_caller_holds_at_most_its_share_of_watch_streams() {
    // A gateway-only setting: a node refuses it.
    let pki = TestPki::new(unix_now()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(
        &pki,
        dir.path(),
        "connections = { max_watches_per_caller = 2 }",
    )
    .await;
    let checkpoint = pki.verifier(330_000).unwrap();
    let mut g = gateway_client(&pki, gw.addr, &checkpoint).unwrap();
    let mut held = vec![];
    for _ in 0..2 {
        held.push(g.watch_trust_list(watch()).await.unwrap().into_inner());
    }
    // Over a second connection too: the bound is the caller's.
    let mut again = gateway_client(&pki, gw.addr, &checkpoint).unwrap();
    let err = again.watch_trust_list(watch()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("max_watches_per_caller"), "{err:?}");
    // Another checkpoint (another certificate) is not held back.
    let other = pki.verifier(330_000).unwrap();
    let mut o = gateway_client(&pki, gw.addr, &other).unwrap();
    let mut theirs = o.watch_trust_list(watch()).await.unwrap().into_inner();
    assert!(theirs.next().await.is_some(), "the other caller's watch");
    // A closed watch gives its place back.
    drop(held.pop());
    let reopened = wait(
        "a closed watch to give its place back",
        Duration::from_secs(10),
    )
    .every(Duration::from_millis(100))
    .until_async(async || again.watch_trust_list(watch()).await)
    .await;
    g.who_am_i(pb::WhoAmIRequest {}).await.unwrap();
    drop((held, reopened, theirs));
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn idle_connections_are_closed_and_connections_with_an_open_call_are_not() {
    let f = federation("connections = { idle_timeout_secs = 1 }").await;
    let authority = f
        .pki
        .issue(
            tessera_core::Identity::new(Role::Authority, tessera_core::Scope::Nation).unwrap(),
            &[],
        )
        .unwrap();
    let mut g = gateway_client(&f.pki, f.gw.addr, &f.checkpoint).unwrap();
    let mut watching = g.watch_trust_list(watch()).await.unwrap().into_inner();
    let first = watching.next().await.unwrap().unwrap();
    // Connections that make no call are closed, on both servers.
    let mut idle = RawH2::connect(&f.pki, f.gw.addr, &f.checkpoint, Role::Gateway).await;
    idle.read_to_close().await;
    let mut idle = RawH2::connect(&f.pki, f.node.addr, &f.pki.gateway, Role::CityNode).await;
    idle.read_to_close().await;
    // The watch's connection, idle on the wire for as long, stays open: it
    // gets the next list.
    let mut a = gateway_client(&f.pki, f.gw.addr, &authority).unwrap();
    let list = f.pki.trust_list(2).unwrap();
    a.publish_trust_list(pb::PublishTrustListRequest {
        list: Some(prost::Message::decode(list.as_slice()).unwrap()),
    })
    .await
    .unwrap();
    let next = watching.next().await.unwrap().unwrap();
    assert!(
        next != first,
        "the watch did not get the new list over its connection"
    );
    f.still_serving().await;
    f.stop().await;
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_closed() {
    let f = federation("connections = { keepalive_secs = 1, keepalive_timeout_secs = 1 }").await;
    // This client reads but never answers: the server's ping goes
    // unanswered and it closes the connection, long before the idle timeout
    // (300 s).
    let mut silent = RawH2::connect(&f.pki, f.gw.addr, &f.checkpoint, Role::Gateway).await;
    let seen = silent.read_to_close().await;
    assert!(
        seen.iter()
            .any(|(kind, flags, ..)| *kind == PING && *flags & ACK == 0),
        "closed without a ping: {seen:?}"
    );
    f.still_serving().await;
    f.stop().await;
}

#[tokio::test]
async fn refused_handshakes_are_counted() {
    let pki = TestPki::new(unix_now()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let metrics = crate::metrics::free_addr();
    let gw = gateway(
        &pki,
        dir.path(),
        &format!("metrics = {{ listen = \"{metrics}\" }}"),
    )
    .await;
    let attempts = 30;
    for _ in 0..attempts {
        closes_on_garbage(gw.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    }
    let series = "tessera_connections_refused_total{reason=\"tls\"}";
    wait(
        format!("{series} to count {attempts}"),
        Duration::from_secs(10),
    )
    .every(Duration::from_millis(100))
    .until_async(async || {
        let (_, text) = crate::metrics::get(metrics, "/metrics").await;
        match crate::metrics::sample(&text, series) {
            Some(n) if n == f64::from(attempts) => Ok(()),
            other => Err(other),
        }
    })
    .await;
    gw.stop().await.unwrap();
}
