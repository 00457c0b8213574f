//! tessera-gateway: the national gateway.
//!
//! It owns the trust-list registry and its distribution, role-based
//! authorization of every call, and the relay of status checks to city nodes.
//! It must never see a record, a name or an ID number, and never keep a log of
//! which badge was checked where.
//!
//! At this stage the gateway serves its callers' identities (`WhoAmI`) and the
//! trust list it holds (`FetchTrustList`) over mutual TLS; publishing,
//! watching and verification arrive with the gateway issue and answer
//! `UNIMPLEMENTED` until then.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tessera_certs::grpc;
use tessera_certs::tls::{self, TlsError};
use tessera_certs::{PeerIdentity, TlsIdentity, TrustState};
use tessera_proto::v1 as pb;
use tessera_proto::v1::gateway_server::{Gateway, GatewayServer};
use tokio::net::TcpListener;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

/// The gateway's gRPC service.
#[derive(Debug, Clone)]
pub struct GatewayService {
    trust: Arc<TrustState>,
}

impl GatewayService {
    /// A gateway serving `trust`.
    pub fn new(trust: Arc<TrustState>) -> Self {
        Self { trust }
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn not_yet(rpc: &str) -> Status {
    Status::unimplemented(format!("{rpc} is not available on this gateway yet"))
}

#[tonic::async_trait]
impl Gateway for GatewayService {
    async fn publish_trust_list(
        &self,
        request: Request<pb::PublishTrustListRequest>,
    ) -> Result<Response<pb::PublishTrustListResponse>, Status> {
        PeerIdentity::from_request(&request, &self.trust)?;
        Err(not_yet("PublishTrustList"))
    }

    async fn fetch_trust_list(
        &self,
        request: Request<pb::FetchTrustListRequest>,
    ) -> Result<Response<pb::FetchTrustListResponse>, Status> {
        PeerIdentity::from_request(&request, &self.trust)?;
        let known = request.get_ref().known_sequence;
        let list = self
            .trust
            .current()
            .ok_or_else(|| Status::unavailable("the gateway holds no trust list yet"))?;
        let current = list.sequence();
        let response = if known >= current {
            pb::FetchTrustListResponse {
                list: None,
                not_modified: true,
                current_sequence: current,
            }
        } else {
            let signed = <pb::SignedTrustList as prost::Message>::decode(list.signed_bytes())
                .map_err(|_| Status::internal("internal error"))?;
            pb::FetchTrustListResponse {
                list: Some(signed),
                not_modified: false,
                current_sequence: current,
            }
        };
        Ok(Response::new(response))
    }

    type WatchTrustListStream = BoxStream<pb::SignedTrustList>;

    async fn watch_trust_list(
        &self,
        request: Request<pb::WatchTrustListRequest>,
    ) -> Result<Response<Self::WatchTrustListStream>, Status> {
        PeerIdentity::from_request(&request, &self.trust)?;
        Err(not_yet("WatchTrustList"))
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::Verdict>, Status> {
        PeerIdentity::from_request(&request, &self.trust)?;
        Err(not_yet("Verify"))
    }

    type VerifyBatchStream = BoxStream<pb::Verdict>;

    async fn verify_batch(
        &self,
        request: Request<Streaming<pb::VerifyRequest>>,
    ) -> Result<Response<Self::VerifyBatchStream>, Status> {
        PeerIdentity::from_request(&request, &self.trust)?;
        Err(not_yet("VerifyBatch"))
    }

    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::PeerIdentity>, Status> {
        let peer = PeerIdentity::from_request(&request, &self.trust)?;
        Ok(Response::new(peer.to_proto()))
    }
}

/// Serves the gateway on `listener` over mutual TLS until `shutdown`
/// resolves.
pub async fn serve(
    listener: TcpListener,
    identity: &TlsIdentity,
    trust: Arc<TrustState>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let config = tls::server_config(identity, Arc::clone(&trust))?;
    let incoming = grpc::incoming(listener, config);
    tonic::transport::Server::builder()
        .add_service(GatewayServer::new(GatewayService::new(trust)))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

/// Why the gateway stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// TLS could not be configured.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The server failed.
    #[error("gateway server: {0}")]
    Transport(#[from] tonic::transport::Error),
}
