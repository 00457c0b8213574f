//! A real mutual-TLS connection on 127.0.0.1 served through
//! [`crate::grpc::incoming`] and [`crate::authz::AuthzLayer`], with the
//! bench echo service behind them: several calls on one connection see the
//! peer read once, a revocation still refuses the next call on it.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tessera_certs::authority::{AuthorityDir, InitOptions, RevokeTarget};
use tessera_core::{Identity, ProvinceCode, Role, Scope, TrustAnchor};
use tessera_proto::bench::EchoMessage;
use tessera_proto::bench::echo_client::EchoClient;
use tessera_proto::bench::echo_server::{Echo, EchoServer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::{Code, Request, Response, Status};

use super::*;
use crate::authz::{Allowed, AuthzLayer, Table, caller, peer_from_extensions};
use crate::tls::{self, TlsIdentity, TrustState};

const DAY: i64 = 86_400;
const ECHO: &str = "/tessera.bench.v1.Echo/Echo";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// What the handler saw of each call: the admitted caller and the
/// connection info tonic handed to the request.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<(PeerIdentity, PeerConnectInfo)>>>,
}

#[tonic::async_trait]
impl Echo for Recorder {
    async fn echo(&self, request: Request<EchoMessage>) -> Result<Response<EchoMessage>, Status> {
        let peer = caller(&request)?.clone();
        let info = request
            .extensions()
            .get::<PeerConnectInfo>()
            .unwrap()
            .clone();
        self.seen.lock().unwrap().push((peer, info));
        Ok(Response::new(request.into_inner()))
    }
}

struct Federation {
    _dir: tempfile::TempDir,
    authority: AuthorityDir,
    anchor: TrustAnchor,
    gateway: TlsIdentity,
    verifier: TlsIdentity,
    verifier_serial: String,
}

fn federation() -> Federation {
    let dir = tempfile::tempdir().unwrap();
    let now = now();
    let options = InitOptions {
        name: "Test federation".into(),
        sunset_at: now + 365 * DAY,
    };
    let mut authority = AuthorityDir::init(&dir.path().join("ca"), &options, now).unwrap();
    let gateway = authority
        .enrol_gateway("gw", "127.0.0.1:7443", now)
        .unwrap();
    let verifier = authority
        .enrol_verifier(ProvinceCode::new(330_000).unwrap(), "checkpoint", now)
        .unwrap();
    let anchor = TrustAnchor::from_der(authority.root_der()).unwrap();
    Federation {
        gateway: TlsIdentity::from_files(
            &gateway.dir.join("gateway.crt"),
            &gateway.dir.join("gateway.key"),
        )
        .unwrap(),
        verifier: TlsIdentity::from_files(
            &verifier.dir.join("verifier.crt"),
            &verifier.dir.join("verifier.key"),
        )
        .unwrap(),
        verifier_serial: verifier.enrolments[0].serial.clone(),
        authority,
        anchor,
        _dir: dir,
    }
}

#[tokio::test]
async fn calls_on_one_connection_share_the_peer_read_at_handshake_and_revocation_is_per_call() {
    let mut fed = federation();
    let trust = Arc::new(TrustState::new(fed.anchor.clone()).unwrap());
    let (_, list) = fed.authority.publish(now(), DAY).unwrap();
    trust.update(&list, now()).unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = crate::grpc::incoming(
        listener,
        tls::server_config(&fed.gateway, Arc::clone(&trust)).unwrap(),
        crate::grpc::ConnectionLimits::default(),
    );
    let recorder = Recorder::default();
    let table = Table {
        entries: &[(ECHO, Allowed::AnyEnrolled)],
        city: None,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(AuthzLayer::new(Arc::clone(&trust), table))
            .add_service(EchoServer::new(recorder.clone()))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            }),
    );

    let client_trust = Arc::new(TrustState::new(fed.anchor.clone()).unwrap());
    let config = tls::client_config(&fed.verifier, client_trust, Role::Gateway).unwrap();
    let connect =
        || EchoClient::new(crate::grpc::channel(&addr.to_string(), Arc::clone(&config)).unwrap());
    let echo = |payload: &[u8]| EchoMessage {
        payload: payload.to_vec(),
    };

    // One channel is one connection: three calls on it.
    let mut client = connect();
    for n in 0..3u8 {
        let reply = client.echo(echo(&[n])).await.unwrap().into_inner();
        assert_eq!(reply.payload, [n]);
    }
    // A second connection from the same client.
    connect().echo(echo(b"other")).await.unwrap();

    let seen = recorder.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    let expected = Identity::new(
        Role::Verifier,
        Scope::Province(ProvinceCode::new(330_000).unwrap()),
    )
    .unwrap();
    for (peer, _) in &seen {
        assert_eq!(peer.identity, expected);
        assert_eq!(peer.serial_hex(), fed.verifier_serial.to_lowercase());
    }
    // The calls on the first connection were handed the one peer read at its
    // handshake, not one parsed per call; the second connection read its own.
    let first = &seen[0].1.peer;
    assert!(
        seen[1..3]
            .iter()
            .all(|(_, info)| Arc::ptr_eq(&info.peer, first))
    );
    assert!(!Arc::ptr_eq(&seen[3].1.peer, first));
    assert_eq!(seen[0].0.remote, seen[2].0.remote);
    assert_ne!(seen[0].0.remote, seen[3].0.remote);

    // Revoked while the connection is open: its next call is refused.
    fed.authority
        .revoke(&RevokeTarget::Serial(fed.verifier_serial.clone()), now())
        .unwrap();
    let (_, list) = fed.authority.publish(now(), DAY).unwrap();
    trust.update(&list, now()).unwrap();
    let refused = client.echo(echo(b"late")).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert_eq!(recorder.seen.lock().unwrap().len(), 4);

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[test]
fn a_peer_that_cannot_be_read_is_refused_as_unauthenticated() {
    let trust = TrustState::new(federation().anchor).unwrap();
    let refusal = |info: Option<PeerConnectInfo>| {
        let mut extensions = http::Extensions::new();
        if let Some(info) = info {
            extensions.insert(info);
        }
        let status = peer_from_extensions(&extensions, &trust).unwrap_err();
        (status.code(), status.message().to_owned())
    };

    let none = PeerConnectInfo::read(None, None);
    assert_eq!(none.peer(), Err(PeerError::NoCertificate));
    assert_eq!(
        refusal(Some(none)),
        (Code::Unauthenticated, "no client certificate".into())
    );
    assert_eq!(
        refusal(Some(PeerConnectInfo::read(None, Some(&[])))),
        (Code::Unauthenticated, "no client certificate".into())
    );

    let garbage = [CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01])];
    let not_ours = PeerConnectInfo::read(None, Some(&garbage));
    assert_eq!(not_ours.peer(), Err(PeerError::NotTessera));
    assert_eq!(
        refusal(Some(not_ours)),
        (
            Code::Unauthenticated,
            "client certificate is not a tessera certificate".into()
        )
    );

    assert_eq!(
        refusal(None),
        (Code::Unauthenticated, "no TLS connection".into())
    );
}

#[tokio::test]
async fn a_client_that_never_finishes_its_handshake_gives_its_place_back_after_the_timeout() {
    let fed = federation();
    let trust = Arc::new(TrustState::new(fed.anchor.clone()).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = crate::grpc::ConnectionLimits {
        per_peer: 1,
        handshake_timeout: std::time::Duration::from_millis(300),
        ..crate::grpc::ConnectionLimits::default()
    };
    let mut incoming = crate::grpc::incoming(
        listener,
        tls::server_config(&fed.gateway, Arc::clone(&trust)).unwrap(),
        limits,
    );
    // Hold every connection that completes its handshake.
    let held = tokio::spawn(async move {
        use tokio_stream::StreamExt;
        let mut open = vec![];
        while let Some(stream) = incoming.next().await {
            open.push(stream);
        }
    });
    let config = tls::client_config(&fed.verifier, Arc::clone(&trust), Role::Gateway).unwrap();
    let handshake = || {
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&config));
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
            let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
            connector.connect(name, tcp).await.ok()
        }
    };

    // A client that connects and says nothing takes the address's one place.
    let silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut refused = false;
    for _ in 0..20 {
        if handshake().await.is_none() {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(refused, "a second connection from the address was served");
    // The silent client's handshake times out and its place is given back,
    // though it never closes its end.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let served = loop {
        if let Some(tls) = handshake().await {
            break tls;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the silent client still holds the place 10 s after a 300 ms handshake timeout"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    drop((served, silent));
    held.abort();
}

#[tokio::test]
async fn accepted_sockets_have_the_configured_tcp_keepalive() {
    let fed = federation();
    let trust = Arc::new(TrustState::new(fed.anchor.clone()).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let keepalive = std::time::Duration::from_secs(37);
    let limits = crate::grpc::ConnectionLimits {
        tcp_keepalive: keepalive,
        ..crate::grpc::ConnectionLimits::default()
    };
    let mut incoming = crate::grpc::incoming(
        listener,
        tls::server_config(&fed.gateway, Arc::clone(&trust)).unwrap(),
        limits,
    );
    let config = tls::client_config(&fed.verifier, Arc::clone(&trust), Role::Gateway).unwrap();
    let client = tokio::spawn(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .unwrap()
    });
    let accepted = {
        use tokio_stream::StreamExt;
        incoming.next().await.unwrap().unwrap()
    };
    let socket = socket2::SockRef::from(accepted.tcp());
    assert!(socket.keepalive().unwrap());
    assert_eq!(socket.tcp_keepalive_time().unwrap(), keepalive);
    assert_eq!(socket.tcp_keepalive_interval().unwrap(), keepalive);
    assert_eq!(
        socket.tcp_keepalive_retries().unwrap(),
        crate::grpc::TCP_KEEPALIVE_PROBES
    );
    drop(client.await.unwrap());
}
