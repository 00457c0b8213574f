//! The baseline E: an echo service behind exactly the gateway's TLS set-up
//! (its certificate, mutual TLS 1.3, the same accept loop with TCP_NODELAY),
//! with nothing behind it. What the gateway reaches beside it is what its own
//! work costs.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tessera_core::Role;
use tessera_proto::bench::EchoMessage;
use tessera_proto::bench::echo_client::EchoClient;
use tessera_proto::bench::echo_server::{Echo, EchoServer};
use tessera_runtime::{TlsIdentity, TrustState, grpc, tls};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::creds;

struct EchoService;

#[tonic::async_trait]
impl Echo for EchoService {
    async fn echo(&self, request: Request<EchoMessage>) -> Result<Response<EchoMessage>, Status> {
        Ok(Response::new(request.into_inner()))
    }
}

/// A running echo server.
pub struct EchoServerHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl EchoServerHandle {
    /// Starts one on 127.0.0.1 with the gateway's certificate and key from
    /// its bundle, trusting the national root.
    pub async fn start(gateway_bundle: &Path) -> anyhow::Result<Self> {
        let identity = TlsIdentity::from_files(
            &gateway_bundle.join("gateway.crt"),
            &gateway_bundle.join("gateway.key"),
        )?;
        let trust = Arc::new(TrustState::new(creds::root(
            &gateway_bundle.join("root.crt"),
        )?)?);
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let incoming = grpc::incoming(
            listener,
            tls::server_config(&identity, trust)?,
            grpc::ConnectionLimits::default(),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(EchoServer::new(EchoService))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                }),
        );
        Ok(Self { addr, stop, task })
    }

    /// Stops it.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }
}

/// A client of the echo server presenting the bundle's identity (the
/// server presents a gateway certificate).
pub fn client(bundle: &Path, addr: SocketAddr) -> anyhow::Result<EchoClient<Channel>> {
    let (identity, trust) = creds::bundle(bundle)?;
    let config = tls::client_config(&identity, trust, Role::Gateway)?;
    Ok(EchoClient::new(grpc::channel(&addr.to_string(), config)?))
}
