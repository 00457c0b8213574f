//! The `tessera.v1.CityNode` gRPC service: authorization first, then the
//! city's work, with errors turned into statuses in one place.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tessera_proto::v1 as pb;
use tessera_proto::v1::city_node_server::CityNode;
use tonic::{Request, Response, Status};

use crate::city::{City, NodeError};
use crate::metrics::NodeMetrics;
use crate::store::Store;

/// The current time in Unix seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl From<NodeError> for Status {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Store(inner) => {
                tracing::error!(error = %inner, "storage failure");
                Status::internal("internal error")
            }
            NodeError::Sign(inner) => {
                tracing::error!(error = %inner, "signing failure");
                Status::internal("internal error")
            }
            NodeError::Lost => {
                tracing::error!("an issuance was lost before it was decided");
                Status::internal("internal error")
            }
            NodeError::NoPolicy(inner) => Status::failed_precondition(inner.to_string()),
            other => Status::invalid_argument(other.to_string()),
        }
    }
}

/// The gRPC face of a [`City`]. Callers are authorized before any handler
/// runs, by `tessera_certs::authz::AuthzLayer` with the table in `authz.rs`.
pub struct NodeService<S> {
    city: Arc<City<S>>,
    metrics: NodeMetrics,
}

impl<S> NodeService<S> {
    /// Serves `city`, counting what it does in `metrics`.
    pub fn new(city: Arc<City<S>>, metrics: NodeMetrics) -> Self {
        Self { city, metrics }
    }
}

fn colour(c: tessera_core::Colour) -> i32 {
    c.to_proto() as i32
}

#[tonic::async_trait]
impl<S: Store> CityNode for NodeService<S> {
    async fn ingest_records(
        &self,
        request: Request<pb::IngestRequest>,
    ) -> Result<Response<pb::IngestResponse>, Status> {
        let outcome = self
            .city
            .ingest(&request.get_ref().records, unix_now())
            .await?;
        self.metrics
            .ingested(outcome.stored, outcome.duplicates, outcome.revoked);
        Ok(Response::new(pb::IngestResponse {
            stored: outcome.stored,
            duplicates: outcome.duplicates,
            revoked: outcome.revoked,
        }))
    }

    async fn issue_badge(
        &self,
        request: Request<pb::IssueBadgeRequest>,
    ) -> Result<Response<pb::IssueBadgeResponse>, Status> {
        let req = request.get_ref();
        let badge = self
            .city
            .issue(&req.national_id, &req.name, unix_now())
            .await?;
        self.metrics.issued(badge.claims.colour);
        Ok(Response::new(pb::IssueBadgeResponse {
            colour: colour(badge.claims.colour),
            valid_until: badge.claims.valid_until,
            policy_version: badge.claims.policy_version,
            badge_id: badge.claims.badge_id.as_bytes().to_vec(),
            badge: badge.envelope,
            qr_text: badge.text,
        }))
    }

    async fn explain(
        &self,
        request: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        let now = unix_now();
        let a = self.city.explain(&request.get_ref().national_id, now)?;
        Ok(Response::new(pb::ExplainResponse {
            score: a.score,
            colour: colour(a.colour),
            policy_version: a.policy_version,
            effects: a
                .fired
                .into_iter()
                .map(|f| pb::RuleEffect {
                    rule_id: f.rule_id,
                    description: f.description,
                    record_ids: f.record_ids,
                    score_delta: f.score_delta,
                    colour: f.colour.map_or(0, colour),
                    valid_until_cap: f.valid_until_cap.unwrap_or(0),
                })
                .collect(),
            computed_at: now,
            valid_until: a.valid_until,
        }))
    }

    async fn check_status(
        &self,
        request: Request<pb::CheckStatusRequest>,
    ) -> Result<Response<pb::CheckStatusResponse>, Status> {
        let statuses: Vec<i32> = self
            .city
            .check_status(&request.get_ref().badge_ids)?
            .into_iter()
            .map(|s| s as i32)
            .collect();
        self.metrics.answered(&statuses);
        Ok(Response::new(pb::CheckStatusResponse { statuses }))
    }

    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::PeerIdentity>, Status> {
        Ok(Response::new(
            tessera_certs::authz::caller(&request)?.to_proto(),
        ))
    }

    async fn export_records(
        &self,
        _request: Request<pb::ExportRequest>,
    ) -> Result<Response<pb::ExportResponse>, Status> {
        Err(Status::unimplemented("export: in progress (issue 8)"))
    }

    async fn erase_resident(
        &self,
        _request: Request<pb::EraseRequest>,
    ) -> Result<Response<pb::EraseResponse>, Status> {
        Err(Status::unimplemented("erasure: in progress (issue 8)"))
    }

    async fn access_log(
        &self,
        _request: Request<pb::AccessLogRequest>,
    ) -> Result<Response<pb::AccessLogResponse>, Status> {
        Err(Status::unimplemented("access log: in progress (issue 8)"))
    }
}
