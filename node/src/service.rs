//! The `tessera.v1.CityNode` gRPC service: authorization first, then the
//! city's work, with errors turned into statuses in one place.

use std::sync::Arc;

use tessera_proto::v1 as pb;
use tessera_proto::v1::city_node_server::CityNode;
use tessera_runtime::clock::unix_now;
use tonic::{Request, Response, Status};

use crate::access_log::{AccessLog, AccessLogError, Action, Actor, Entry};
use crate::backup::{self, BackupError};
use crate::city::{City, NodeError};
use crate::metrics::NodeMetrics;
use crate::pseudonym::Pseudonym;
use crate::store::Store;

impl From<NodeError> for Status {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Store(inner) if inner.is_disk_full() => Status::resource_exhausted(
                "the city node's disk is full: nothing was stored; send it again once the node \
                 reports SERVING",
            ),
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
            NodeError::Unlogged(inner) => unlogged(inner),
            NodeError::NoPolicy(inner) => Status::failed_precondition(inner.to_string()),
            e @ NodeError::UnknownRecord(_) => Status::not_found(e.to_string()),
            other => Status::invalid_argument(other.to_string()),
        }
    }
}

/// The gRPC face of a [`City`]. Callers are authorized before any handler
/// runs, by `tessera_runtime::authz::AuthzLayer` with the table in `authz.rs`.
pub struct NodeService<S> {
    city: Arc<City<S>>,
    access_log: Arc<AccessLog>,
    metrics: NodeMetrics,
    backups: Backups,
}

/// Where `BackupStore` may write, and the data directory it copies.
#[derive(Debug, Clone, Default)]
pub struct Backups {
    /// `[storage] backup_dir`; no online backup when `None`.
    pub backup_dir: Option<std::path::PathBuf>,
    /// The node's data directory.
    pub data_dir: std::path::PathBuf,
}

impl<S> NodeService<S> {
    /// Serves `city`, logging operators' reads of residents' records in
    /// `access_log` and counting what it does in `metrics`.
    pub fn new(city: Arc<City<S>>, access_log: Arc<AccessLog>, metrics: NodeMetrics) -> Self {
        Self {
            city,
            access_log,
            metrics,
            backups: Backups::default(),
        }
    }

    /// Lets `BackupStore` copy `backups.data_dir` into `backups.backup_dir`.
    pub fn with_backups(mut self, backups: Backups) -> Self {
        self.backups = backups;
        self
    }
}

impl From<BackupError> for Status {
    fn from(e: BackupError) -> Self {
        match e {
            BackupError::NotConfigured => Status::failed_precondition(e.to_string()),
            BackupError::Target(_) => Status::invalid_argument(e.to_string()),
            BackupError::Store(inner) if inner.is_disk_full() => Status::resource_exhausted(
                "the disk of the backup directory or of the node is full: no backup was written",
            ),
            BackupError::Io { ref source, .. } if tessera_certs::files::is_disk_full(source) => {
                Status::resource_exhausted(
                    "the disk of the backup directory is full: no backup was written",
                )
            }
            other => {
                tracing::error!(error = %other, "backup failed");
                Status::internal("the backup failed; nothing was left behind (see the node's log)")
            }
        }
    }
}

/// A read whose access-log entry cannot be written is refused with this.
fn unlogged(e: AccessLogError) -> Status {
    match e {
        AccessLogError::Damaged(_) => Status::failed_precondition(e.to_string()),
        AccessLogError::Sled(sled::Error::Io(ref io)) if tessera_certs::files::is_disk_full(io) => {
            Status::resource_exhausted(
                "the city node's disk is full: this read cannot be logged, so it is refused",
            )
        }
        other => {
            tracing::error!(error = %other, "access log");
            Status::internal("the access log cannot record this read, so it is refused")
        }
    }
}

impl<S: Store> NodeService<S> {
    /// Records, durably, that the caller of `request` reads the records of
    /// the resident with `national_id`, before anything is read; returns the
    /// entry. An invalid ID number is refused without an entry (nobody's
    /// records are read); a read that cannot be logged is refused.
    async fn log_access<T>(
        &self,
        request: &Request<T>,
        action: Action,
        national_id: &str,
    ) -> Result<Entry, Status> {
        let (actor, subject) = self.reader(request, national_id)?;
        self.access_log
            .record(unix_now(), action, &actor, &subject)
            .await
            .map_err(unlogged)
    }

    /// Who reads (from the caller's certificate) and whose records.
    fn reader<T>(
        &self,
        request: &Request<T>,
        national_id: &str,
    ) -> Result<(Actor, Pseudonym), Status> {
        let subject = self.city.resident(national_id)?;
        Ok((actor(request)?, subject))
    }
}

/// Who calls, as the access log names them: from the caller's certificate.
fn actor<T>(request: &Request<T>) -> Result<Actor, Status> {
    let caller = tessera_runtime::authz::caller(request)?;
    Ok(Actor {
        serial: caller.serial_hex(),
        city: caller.identity.scope().code(),
    })
}

/// A correction's mark as Explain lists it.
fn note(m: crate::store::CorrectionMark) -> pb::CorrectionNote {
    pb::CorrectionNote {
        record_id: m.record_id,
        retracted: m.retracted,
        reason: i32::from(m.reason),
        corrected_at: m.at,
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
        // Logged as an `issue` entry: the city appends the entries of a
        // decided batch of issuances together and makes them durable with
        // the badges. A damaged log refuses the issuance before it queues.
        self.access_log.head().map_err(unlogged)?;
        let badge = self
            .city
            .issue(&req.national_id, &req.name, unix_now(), &actor(&request)?)
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
        let national_id = &request.get_ref().national_id;
        self.log_access(&request, Action::Explain, national_id)
            .await?;
        let now = unix_now();
        let a = self.city.explain(national_id, now)?;
        let corrections = self.city.corrections(national_id, now)?;
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
            lifted: a
                .lifted
                .into_iter()
                .map(|l| pb::LiftedRule {
                    sentence: l.sentence(crate::policy::rfc3339),
                    rule_id: l.rule_id,
                    description: l.description,
                    record_ids: l.record_ids,
                    lifted_by: l.lifted_by,
                    lifted_until: l.lifted_until.unwrap_or(0),
                })
                .collect(),
            corrections: corrections.into_iter().map(note).collect(),
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
            tessera_runtime::authz::caller(&request)?.to_proto(),
        ))
    }

    async fn export_records(
        &self,
        request: Request<pb::ExportRequest>,
    ) -> Result<Response<pb::ExportResponse>, Status> {
        self.log_access(&request, Action::Export, &request.get_ref().national_id)
            .await?;
        let now = unix_now();
        let national_id = &request.get_ref().national_id;
        let records = self.city.export(national_id, now)?;
        let corrections = self.city.corrections(national_id, now)?;
        Ok(Response::new(pb::ExportResponse {
            records,
            corrections: corrections.into_iter().map(note).collect(),
        }))
    }

    async fn erase_resident(
        &self,
        request: Request<pb::EraseRequest>,
    ) -> Result<Response<pb::EraseResponse>, Status> {
        // Logged before anything is destroyed: the erasure itself stays
        // accountable in the log (the entry holds no record).
        self.log_access(&request, Action::Erase, &request.get_ref().national_id)
            .await?;
        let erased = self.city.erase(&request.get_ref().national_id).await?;
        self.metrics.erased();
        Ok(Response::new(pb::EraseResponse {
            records: erased.records,
            badges: erased.badges,
        }))
    }

    async fn correct_record(
        &self,
        request: Request<pb::CorrectRecordRequest>,
    ) -> Result<Response<pb::CorrectRecordResponse>, Status> {
        // Checked first, so a request naming no record of the resident
        // changes nothing, not even the log; then logged before the
        // change, like an erasure.
        let prepared = self
            .city
            .prepare_correction(request.get_ref(), unix_now())?;
        self.log_access(&request, Action::Correct, &request.get_ref().national_id)
            .await?;
        let done = self.city.correct(&prepared, unix_now()).await?;
        self.metrics.corrected(done.revoked);
        Ok(Response::new(pb::CorrectRecordResponse {
            colour: done.colour.map_or(0, colour),
            revoked: done.revoked,
            superseded: done.superseded,
        }))
    }

    async fn access_log(
        &self,
        request: Request<pb::AccessLogRequest>,
    ) -> Result<Response<pb::AccessLogResponse>, Status> {
        // This read is logged too, so the answer includes its own entry.
        let mine = self
            .log_access(&request, Action::AccessLog, &request.get_ref().national_id)
            .await?;
        let entries = self
            .access_log
            .entries_of(&mine.subject)
            .map_err(unlogged)?;
        let head = self.access_log.head().map_err(unlogged)?;
        Ok(Response::new(pb::AccessLogResponse {
            entries: entries.iter().map(Entry::to_proto).collect(),
            length: head.length,
            head_hash: head.hash.to_vec(),
            subject: mine.subject.as_bytes().to_vec(),
        }))
    }

    async fn backup_store(
        &self,
        request: Request<pb::BackupStoreRequest>,
    ) -> Result<Response<pb::BackupStoreResponse>, Status> {
        let dest = backup::target(
            self.backups.backup_dir.as_deref(),
            &self.backups.data_dir,
            &request.get_ref().directory,
        )?;
        tracing::info!(directory = %dest.display(), "backup started");
        let marker = backup::take(
            &self.city,
            &self.access_log,
            &self.backups.data_dir,
            &dest,
            unix_now(),
        )
        .await?;
        tracing::info!(
            directory = %dest.display(),
            records = marker.records,
            "backup written"
        );
        Ok(Response::new(pb::BackupStoreResponse {
            directory: dest.display().to_string(),
            layout: marker.layout,
            residents: marker.residents,
            records: marker.records,
            badges: marker.badges,
            access_log_length: marker.access_log_length,
            master_key_generation: marker.master_key_generation,
            master_key_fingerprint: hex::decode(&marker.master_key_fingerprint).unwrap_or_default(),
            taken_at: marker.taken_at,
        }))
    }
}
