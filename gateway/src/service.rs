//! The `tessera.v1.Gateway` gRPC service. Callers are authorized before any
//! handler runs (`authz.rs`); errors become statuses here.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use prost::Message;
use tessera_core::policy_doc::PolicyDocError;
use tessera_proto::v1 as pb;
use tessera_proto::v1::gateway_server::Gateway;
use tessera_runtime::authz::caller;
use tessera_runtime::clock::unix_now;
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use tonic::{Request, Response, Status, Streaming};

use crate::attestations::{Attestations, SubmitError};
use crate::policies::{Policies, PolicyPublishError};
use crate::registry::{PublishError, Registry, is_disk_full};
use crate::verdict::Verifier;

/// Badges of one VerifyBatch stream verified together at most.
pub const BATCH_CHUNK: usize = 64;
/// Chunks of one VerifyBatch stream in progress at once.
pub const BATCH_CHUNKS_IN_FLIGHT: usize = 4;

/// What an upload refused on a full disk is answered: the caller may send
/// it again once the gateway's writes read SERVING (the gateway reopens its
/// database by itself once there is room).
fn disk_full(what: &str) -> Status {
    Status::resource_exhausted(format!(
        "the gateway's disk is full: the {what} was not stored; send it again once the \
         gateway reports SERVING for tessera.v1.Gateway.Writes"
    ))
}

impl From<SubmitError> for Status {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::DiskFull => disk_full("attestation"),
            SubmitError::Storage(ref inner) if is_disk_full(inner) => disk_full("attestation"),
            SubmitError::Invalid(_) => Status::invalid_argument(e.to_string()),
            SubmitError::SignerRevoked | SubmitError::NotTheCaller { .. } => {
                Status::permission_denied(e.to_string())
            }
            SubmitError::Older { .. } => Status::failed_precondition(e.to_string()),
            SubmitError::Storage(inner) => {
                tracing::error!(error = %inner, "attestation storage failure");
                Status::internal("internal error")
            }
        }
    }
}

impl From<PublishError> for Status {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::Invalid(_) => Status::invalid_argument(e.to_string()),
            PublishError::NotNewer { .. } => Status::failed_precondition(e.to_string()),
            PublishError::DiskFull(_) => disk_full("trust list"),
            PublishError::Storage(ref inner) if is_disk_full(inner) => disk_full("trust list"),
            PublishError::Files(inner) => {
                tracing::error!(error = %inner, "trust registry files");
                Status::internal("internal error")
            }
            PublishError::Storage(inner) => {
                tracing::error!(error = %inner, "trust registry storage failure");
                Status::internal("internal error")
            }
        }
    }
}

impl From<PolicyPublishError> for Status {
    fn from(e: PolicyPublishError) -> Self {
        match e {
            // The gateway's list does not carry the signer (yet): a node
            // enrolled moments ago retries on this code, never on the text.
            PolicyPublishError::DiskFull => disk_full("policy"),
            PolicyPublishError::Storage(ref inner) if is_disk_full(inner) => disk_full("policy"),
            PolicyPublishError::Invalid(PolicyDocError::UnknownSigner(_)) => {
                Status::not_found(e.to_string())
            }
            PolicyPublishError::Invalid(_) => Status::invalid_argument(e.to_string()),
            PolicyPublishError::WrongCity { .. } => Status::permission_denied(e.to_string()),
            PolicyPublishError::NoTrustList => Status::unavailable(e.to_string()),
            PolicyPublishError::TooSoon { .. }
            | PolicyPublishError::NotNewer { .. }
            | PolicyPublishError::EarlierThanHeld { .. } => {
                Status::failed_precondition(e.to_string())
            }
            PolicyPublishError::Storage(inner) => {
                tracing::error!(error = %inner, "policy storage failure");
                Status::internal("internal error")
            }
        }
    }
}

/// The gateway's gRPC service.
#[derive(Debug, Clone)]
pub struct GatewayService {
    registry: Arc<Registry>,
    verifier: Arc<Verifier>,
    stopping: watch::Receiver<bool>,
    policies: Option<Arc<Policies>>,
}

impl GatewayService {
    /// Serves `registry` and verifies with `verifier`; watch streams end when
    /// `stopping` turns true.
    pub fn new(
        registry: Arc<Registry>,
        verifier: Arc<Verifier>,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        Self {
            registry,
            verifier,
            stopping,
            policies: None,
        }
    }

    /// Serves published scoring policies from `policies` (without it,
    /// PublishPolicy and FetchPolicies answer UNAVAILABLE).
    pub fn with_policies(mut self, policies: Arc<Policies>) -> Self {
        self.policies = Some(policies);
        self
    }

    fn policies(&self) -> Result<&Policies, Status> {
        self.policies
            .as_deref()
            .ok_or_else(|| Status::unavailable("this gateway serves no policies"))
    }
}

impl GatewayService {
    /// The attestation tree of the gateway's database (opening an open tree
    /// is a map look-up).
    fn attestations(&self) -> Result<Attestations, Status> {
        Attestations::open(&self.registry.db(), self.registry.disk().clone()).map_err(|e| {
            tracing::error!(error = %e, "attestation storage failure");
            Status::internal("internal error")
        })
    }
}

/// Passes items through up to and including the first error, then ends the
/// stream (for `StreamExt::scan`).
fn end_after_error<T>(
    ended: &mut bool,
    item: Result<T, Status>,
) -> std::future::Ready<Option<Result<T, Status>>> {
    if *ended {
        return std::future::ready(None);
    }
    *ended = item.is_err();
    std::future::ready(Some(item))
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn signed(list: &tessera_core::CheckedTrustList) -> Result<pb::SignedTrustList, Status> {
    pb::SignedTrustList::decode(list.signed_bytes()).map_err(|_| Status::internal("internal error"))
}

#[tonic::async_trait]
impl Gateway for GatewayService {
    async fn publish_trust_list(
        &self,
        request: Request<pb::PublishTrustListRequest>,
    ) -> Result<Response<pb::PublishTrustListResponse>, Status> {
        let list = request
            .into_inner()
            .list
            .ok_or_else(|| Status::invalid_argument("no trust list in the request"))?;
        let next = self
            .registry
            .publish(&list.encode_to_vec(), unix_now())
            .await?;
        Ok(Response::new(pb::PublishTrustListResponse {
            sequence: next.sequence(),
        }))
    }

    async fn fetch_trust_list(
        &self,
        request: Request<pb::FetchTrustListRequest>,
    ) -> Result<Response<pb::FetchTrustListResponse>, Status> {
        let known = request.get_ref().known_sequence;
        let list = self
            .registry
            .trust()
            .current()
            .ok_or_else(|| Status::unavailable("the gateway holds no trust list yet"))?;
        let current = list.sequence();
        Ok(Response::new(if known >= current {
            pb::FetchTrustListResponse {
                list: None,
                not_modified: true,
                current_sequence: current,
            }
        } else {
            pb::FetchTrustListResponse {
                list: Some(signed(&list)?),
                not_modified: false,
                current_sequence: current,
            }
        }))
    }

    type WatchTrustListStream = BoxStream<pb::SignedTrustList>;

    async fn watch_trust_list(
        &self,
        request: Request<pb::WatchTrustListRequest>,
    ) -> Result<Response<Self::WatchTrustListStream>, Status> {
        let peer = caller(&request)?.clone();
        let mut last = request.get_ref().known_sequence;
        let expiry = peer.clone();
        let stream = WatchStream::new(self.registry.subscribe())
            .map(move |list| {
                let items = match list {
                    // A watcher revoked by a new list gets no more lists. One
                    // refused for its issuing CA gets that list first: it is
                    // what lets the party take up its certificate re-certified
                    // by the new issuing CA (rotate-issuing-ca), which its
                    // reload waits for, and the list is public anyway.
                    Some(list) => match tessera_runtime::authz::refused_by(&list, &peer) {
                        Some(status)
                            if list.sequence() > last
                                && !list.revokes(&peer.serial, &peer.key_id) =>
                        {
                            last = list.sequence();
                            vec![signed(&list), Err(status)]
                        }
                        Some(status) => vec![Err(status)],
                        None if list.sequence() > last => {
                            last = list.sequence();
                            vec![signed(&list)]
                        }
                        None => vec![],
                    },
                    None => vec![],
                };
                futures::stream::iter(items)
            })
            .flatten()
            .scan(false, end_after_error);
        let mut stopping = self.stopping.clone();
        let stop = async move {
            let _ = stopping.wait_for(|s| *s).await;
        };
        let stream = tessera_runtime::authz::end_at_expiry(Box::pin(stream), &expiry);
        Ok(Response::new(Box::pin(stream.take_until(stop))))
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::Verdict>, Status> {
        Ok(Response::new(
            self.verifier.verify(request.get_ref(), unix_now()).await,
        ))
    }

    type VerifyBatchStream = BoxStream<pb::Verdict>;

    async fn verify_batch(
        &self,
        request: Request<Streaming<pb::VerifyRequest>>,
    ) -> Result<Response<Self::VerifyBatchStream>, Status> {
        let verifier = Arc::clone(&self.verifier);
        let peer = caller(&request)?.clone();
        let expiry = peer.clone();
        let trust = Arc::clone(self.registry.trust());
        // Whatever has arrived (up to a chunk) is verified together: one
        // batch signature check and concurrent status checks per chunk, a
        // few chunks in flight; verdicts leave in request order.
        let stream = request
            .into_inner()
            .ready_chunks(BATCH_CHUNK)
            .map(move |items| {
                let verifier = Arc::clone(&verifier);
                // Revocation applies to each badge of an open stream too.
                let revoked = trust
                    .current()
                    .and_then(|list| tessera_runtime::authz::refused_by(&list, &peer));
                async move {
                    if let Some(status) = revoked {
                        return vec![Err(status)];
                    }
                    let mut requests = Vec::with_capacity(items.len());
                    let mut failed = None;
                    for item in items {
                        match item {
                            Ok(request) => requests.push(request),
                            Err(status) => {
                                // An item that does not decode is the
                                // caller's fault: INVALID_ARGUMENT.
                                failed = Some(tessera_runtime::status::request_status(status));
                                break;
                            }
                        }
                    }
                    let mut out: Vec<Result<pb::Verdict, Status>> = verifier
                        .verify_all(&requests, unix_now())
                        .await
                        .into_iter()
                        .map(Ok)
                        .collect();
                    out.extend(failed.map(Err));
                    out
                }
            })
            .buffered(BATCH_CHUNKS_IN_FLIGHT)
            .flat_map(futures::stream::iter)
            .scan(false, end_after_error);
        let stream = tessera_runtime::authz::end_at_expiry(Box::pin(stream), &expiry);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::PeerIdentity>, Status> {
        Ok(Response::new(caller(&request)?.to_proto()))
    }

    async fn publish_policy(
        &self,
        request: Request<pb::PublishPolicyRequest>,
    ) -> Result<Response<pb::PublishPolicyResponse>, Status> {
        let peer = caller(&request)?.clone();
        let signed = request
            .into_inner()
            .policy
            .ok_or_else(|| Status::invalid_argument("no policy in the request"))?;
        let trust = self.registry.trust().current();
        let policy = self
            .policies()?
            .publish(
                &signed,
                peer.identity.city(),
                &peer.identity.to_uri(),
                trust.as_deref(),
                unix_now(),
            )
            .await?;
        Ok(Response::new(pb::PublishPolicyResponse {
            effective_from: policy.effective_from(),
        }))
    }

    async fn fetch_policies(
        &self,
        request: Request<pb::FetchPoliciesRequest>,
    ) -> Result<Response<pb::FetchPoliciesResponse>, Status> {
        let city = request.get_ref().city;
        tessera_core::CityCode::new(city)
            .map_err(|e| Status::invalid_argument(format!("city {city}: {e}")))?;
        let policies = self.policies()?.fetch(city)?;
        Ok(Response::new(pb::FetchPoliciesResponse { policies }))
    }

    async fn submit_attestation(
        &self,
        request: Request<pb::SubmitAttestationRequest>,
    ) -> Result<Response<pb::SubmitAttestationResponse>, Status> {
        let caller = caller(&request)?.identity;
        let signed = request
            .into_inner()
            .attestation
            .ok_or_else(|| Status::invalid_argument("no attestation in the request"))?
            .encode_to_vec();
        self.attestations()?
            .submit(&signed, &caller, self.registry.trust(), unix_now())
            .await?;
        Ok(Response::new(pb::SubmitAttestationResponse {}))
    }

    async fn list_attestations(
        &self,
        _request: Request<pb::ListAttestationsRequest>,
    ) -> Result<Response<pb::ListAttestationsResponse>, Status> {
        Ok(Response::new(pb::ListAttestationsResponse {
            attestations: self.attestations()?.list()?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_space() -> sled::Error {
        sled::Error::Io(std::io::Error::from_raw_os_error(28))
    }

    /// Each upload refused on a full disk is RESOURCE_EXHAUSTED naming the
    /// disk, whether sled reported it or the gateway had noted it before;
    /// any other storage failure stays INTERNAL.
    #[test]
    fn uploads_refused_on_a_full_disk_are_resource_exhausted() {
        let statuses = [
            Status::from(PublishError::Storage(no_space())),
            Status::from(PublishError::DiskFull("/data/registry".into())),
            Status::from(PolicyPublishError::Storage(no_space())),
            Status::from(PolicyPublishError::DiskFull),
            Status::from(SubmitError::Storage(no_space())),
            Status::from(SubmitError::DiskFull),
        ];
        for status in statuses {
            assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
            assert!(status.message().contains("disk is full"), "{status:?}");
        }
        let other = || sled::Error::Unsupported("x".into());
        for status in [
            Status::from(PublishError::Storage(other())),
            Status::from(PolicyPublishError::Storage(other())),
            Status::from(SubmitError::Storage(other())),
        ] {
            assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
        }
    }

    /// A write that failed on a full disk is noted for every tree of the
    /// database; other failures are not.
    #[test]
    fn a_full_disk_is_noted_once_for_the_whole_database() {
        let disk = crate::registry::DiskFull::default();
        let shared = disk.clone();
        let _ = disk.noting::<()>(Err(sled::Error::Unsupported("x".into())));
        assert!(!shared.is_full());
        let _ = disk.noting::<()>(Err(no_space()));
        assert!(shared.is_full());
    }
}
