//! The node's work, independent of gRPC: ingest a batch, issue a badge,
//! explain a score, answer a status check.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arc_swap::ArcSwap;
use prost::Message;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tessera_core::badge::{BadgeClaims, BadgeSigner, HolderHint, SignError};
use tessera_core::{BadgeId, CityCode, text};
use tessera_proto::v1 as pb;
use tokio::sync::{Mutex, oneshot};

use crate::access_log::{AccessLog, AccessLogError, Action, Actor, Read};
use crate::commit::GroupCommit;
use crate::policy::{Assessment, NotInForce, Policy, PolicySet};
use crate::pseudonym::{NationalId, NationalIdError, Pseudonym, PseudonymKey};
use crate::records::{self, RecordError, Retention};
use crate::store::{
    BadgeRecord, BadgeState, Change, Copied, Correction, CorrectionMark, Erased, NewRecord, Store,
    StoreError, Swept,
};

/// Most badge ids one status check may carry.
pub const MAX_STATUS_IDS: usize = 1000;

/// The most a badge's end of validity is brought forward at random.
pub const VALIDITY_JITTER_SECS: i64 = 3600;

/// A badge's end of validity: `valid_until` brought forward by a random
/// 0 to [`VALIDITY_JITTER_SECS`] seconds (at most a quarter of the window),
/// and never equal to one in `taken`. Without it, two badges capped by the
/// same record (a negative test: "72 hours after sampling") would end at the
/// same second, which links them and tells when the sample was taken.
fn unlinkable_end(now: i64, valid_until: i64, taken: &HashSet<i64>) -> i64 {
    let room = ((valid_until - now) / 4).clamp(0, VALIDITY_JITTER_SECS);
    let mut end = valid_until - rand::Rng::gen_range(&mut rand::thread_rng(), 0..=room);
    // Taken ends are few (one resident's badges): step past them, staying
    // inside the window.
    while taken.contains(&end) && end > now + 1 {
        end -= 1;
    }
    end
}

/// Why a request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The batch is empty.
    #[error("the batch holds no records")]
    EmptyBatch,
    /// The batch has too many records.
    #[error("batch of {len} records exceeds the limit of {max}")]
    BatchTooLarge {
        /// Records sent.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// One record is invalid; nothing was stored.
    #[error("record {index}: {reason} (nothing was stored)")]
    InvalidRecord {
        /// Index in the batch.
        index: usize,
        /// Why.
        reason: RecordError,
    },
    /// A record id is reused with different content; nothing was stored.
    #[error(
        "record {index}: id {record_id:?} is already used for different content (nothing was stored)"
    )]
    ConflictingId {
        /// Index in the batch.
        index: usize,
        /// The id.
        record_id: String,
    },
    /// The national ID of a badge or explain request is invalid.
    #[error("national_id: {0}")]
    NationalId(#[from] NationalIdError),
    /// Too many ids in a status check.
    #[error("{len} badge ids exceed the limit of {MAX_STATUS_IDS} per call")]
    TooManyIds {
        /// Ids sent.
        len: usize,
    },
    /// A badge id is not 16 bytes.
    #[error("badge id {index} is not 16 bytes")]
    BadBadgeId {
        /// Index in the request.
        index: usize,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing failed.
    #[error("signing: {0}")]
    Sign(#[from] SignError),
    /// No scoring policy is in force at the moment asked about.
    #[error(transparent)]
    NoPolicy(#[from] NotInForce),
    /// A correction's request is incomplete or inconsistent.
    #[error("correction refused: {0} (nothing was changed)")]
    BadCorrection(String),
    /// A correction names a record the resident does not hold (never
    /// stored, retracted, erased, or past retention).
    #[error(
        "record {0:?} is not held for this resident (never stored, retracted, erased or past \
         retention): nothing was changed"
    )]
    UnknownRecord(String),
    /// The issuance's access-log entry could not be written: nothing was
    /// decided or stored for it.
    #[error("access log: {0}")]
    Unlogged(#[from] AccessLogError),
    /// An issuance was dropped before it was decided (a bug, never input).
    #[error("the issuance was lost before it was decided")]
    Lost,
}

/// What an ingest stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Records newly stored.
    pub stored: u32,
    /// Records already present (a retry).
    pub duplicates: u32,
    /// Badges revoked because their holder's colour worsened.
    pub revoked: u32,
}

/// What a correction changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrected {
    /// The resident's colour after it, under the policy in force (`None`
    /// when none is).
    pub colour: Option<tessera_core::Colour>,
    /// Active badges revoked: the colour worsened.
    pub revoked: u32,
    /// Active badges superseded: the colour improved, a fresh badge may be
    /// issued.
    pub superseded: u32,
}

/// A correction checked against the request, ready to apply.
#[derive(Debug, Clone)]
pub struct PreparedCorrection {
    correction: Correction,
    /// The replacement as it will be scored.
    replacement: Option<pb::Record>,
}

impl PreparedCorrection {
    /// The resident whose record it corrects.
    pub fn resident(&self) -> &Pseudonym {
        &self.correction.resident
    }
}

/// A signed badge, as returned to the operator.
#[derive(Debug, Clone)]
pub struct IssuedBadge {
    /// The envelope bytes.
    pub envelope: Vec<u8>,
    /// The QR text.
    pub text: String,
    /// The claims signed.
    pub claims: BadgeClaims,
}

/// A city node's state.
pub struct City<S> {
    city: CityCode,
    store: Arc<S>,
    commit: GroupCommit<S>,
    policies: PolicySet,
    /// The badge signer in use; replaced whole by a rotation.
    signer: ArcSwap<BadgeSigner>,
    pseudonyms: PseudonymKey,
    max_batch: usize,
    /// How long records and badge states are kept.
    retention: Retention,
    /// Serialises read-decide-write sections; flushes happen outside it.
    writer: Arc<Mutex<()>>,
    /// Held by an erasure from its first part to its last.
    erasing: Arc<Mutex<()>>,
    /// Issuances waiting to be decided by whoever holds `writer` next.
    queued: std::sync::Mutex<Vec<Queued>>,
    /// Where every issuance is logged, a decided batch in one append;
    /// `None` for a city used without a node (nothing is logged).
    access_log: Option<Arc<AccessLog>>,
}

/// An issuance waiting for the writer.
struct Queued {
    resident: Pseudonym,
    id: NationalId,
    name: String,
    now: i64,
    /// Who asked (the access log's actor).
    actor: Actor,
    /// The badge, applied to the store but not yet durable.
    decided: oneshot::Sender<Result<IssuedBadge, NodeError>>,
}

/// A badge whose claims are fixed, not yet signed.
struct Planned {
    claims: BadgeClaims,
    /// The resident's badges as stored before the batch.
    held: Vec<(BadgeId, BadgeRecord)>,
}

/// The smallest batch of issuances signed on two threads; below it a
/// thread costs more than it saves.
pub const PARALLEL_SIGNING_FROM: usize = 4;

/// Signs each planned badge (in order), on this thread and one more for a
/// batch of [`PARALLEL_SIGNING_FROM`] or more.
fn sign_all(
    signer: &BadgeSigner,
    planned: Vec<Result<Planned, NodeError>>,
) -> Vec<Result<(Planned, Vec<u8>), NodeError>> {
    let sign = |p: Result<Planned, NodeError>| {
        let p = p?;
        let envelope = signer.sign(&p.claims)?;
        Ok((p, envelope))
    };
    if planned.len() < PARALLEL_SIGNING_FROM {
        return planned.into_iter().map(sign).collect();
    }
    let mut first = planned;
    let second = first.split_off(first.len() / 2);
    let n_second = second.len();
    std::thread::scope(|scope| {
        let helper = scope.spawn(|| second.into_iter().map(sign).collect::<Vec<_>>());
        let mut out: Vec<_> = first.into_iter().map(sign).collect();
        match helper.join() {
            Ok(rest) => out.extend(rest),
            // The helper panicked (it cannot: signing returns errors): its
            // badges are lost, nothing of them is stored.
            Err(_) => out.extend((0..n_second).map(|_| Err(NodeError::Lost))),
        }
        out
    })
}

impl<S> std::fmt::Debug for City<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("City")
            .field("city", &self.city)
            .finish_non_exhaustive()
    }
}

impl<S: Store> City<S> {
    /// A node for `signer`'s city over `store`, scoring under the policy of
    /// `policies` in force at each call's `now`.
    pub fn new(
        store: Arc<S>,
        policies: impl Into<PolicySet>,
        signer: BadgeSigner,
        pseudonyms: PseudonymKey,
        max_batch: usize,
    ) -> Self {
        Self {
            city: signer.city(),
            commit: GroupCommit::new(Arc::clone(&store)),
            store,
            policies: policies.into(),
            signer: ArcSwap::from_pointee(signer),
            pseudonyms,
            max_batch,
            retention: Retention::default(),
            writer: Arc::new(Mutex::new(())),
            erasing: Arc::new(Mutex::new(())),
            queued: std::sync::Mutex::new(vec![]),
            access_log: None,
        }
    }

    /// Logs every issuance in `log` (an `issue` entry per badge asked for,
    /// the entries of a decided batch appended together and made durable
    /// with its badges).
    pub fn with_access_log(mut self, log: Arc<AccessLog>) -> Self {
        self.access_log = Some(log);
        self
    }

    /// Keeps records and badge states for `retention` instead of the
    /// default.
    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// How long records and badge states are kept.
    pub fn retention(&self) -> &Retention {
        &self.retention
    }

    /// The node's city.
    pub fn city(&self) -> CityCode {
        self.city
    }

    /// Every policy held, in force or announced.
    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    /// The policy in force at `now`: the newest held whose effective date
    /// has come. A policy announced for later is never scored under.
    pub fn policy(&self, now: i64) -> Result<&Policy, NodeError> {
        Ok(self.policies.in_force(now)?)
    }

    /// The badge signer in use: badges issued from now on carry its key id.
    pub fn signer(&self) -> Arc<BadgeSigner> {
        self.signer.load_full()
    }

    /// Signs every badge decided from now on with `signer` (a rotation),
    /// which must speak for this node's city. Badges already issued keep the
    /// signature they have. Returns whether the signer changed.
    pub fn replace_signer(&self, signer: BadgeSigner) -> Result<bool, SignError> {
        if signer.city() != self.city {
            return Err(SignError::WrongCity {
                claimed: self.city,
                signer: signer.city(),
            });
        }
        if signer.key_id() == self.signer.load().key_id() {
            return Ok(false);
        }
        self.signer.store(Arc::new(signer));
        Ok(true)
    }

    /// Whether a write failed on a full disk (the store then refuses
    /// every change until it is reopened; reads go on).
    pub fn disk_full(&self) -> bool {
        self.store.disk_full()
    }

    /// Makes everything applied so far durable (used at shutdown).
    pub async fn flush(&self) -> Result<(), NodeError> {
        Ok(self.commit.durable().await?)
    }

    /// A resident's records, decrypted, without those past retention at
    /// `now` (which the sweep may not have deleted yet): an expired record
    /// counts for nothing from the second it expires.
    fn decode_records(&self, resident: &Pseudonym, now: i64) -> Result<Vec<pb::Record>, NodeError> {
        let mut out = vec![];
        for bytes in self.store.records_of(resident)? {
            let record = pb::Record::decode(bytes.as_slice())
                .map_err(|e| NodeError::Store(StoreError::Corrupt(format!("record: {e}"))))?;
            match records::type_and_time(&record) {
                Some((kind, at)) if self.retention.expired(kind, at, now) => {}
                _ => out.push(record),
            }
        }
        Ok(out)
    }

    /// Validates one record and computes what would be stored: the holder's
    /// pseudonym, the content fingerprint and the encoded record.
    pub fn prepare(
        &self,
        record: &pb::Record,
        now: i64,
    ) -> Result<(NewRecord, pb::Record), RecordError> {
        let valid = records::validate(record, now)?;
        let (kind, at) = records::type_and_time(&valid.stored).ok_or(RecordError::UnknownType)?;
        if self.retention.expired(kind, at, now) {
            return Err(RecordError::PastRetention {
                kind,
                at,
                days: self.retention.days(kind),
            });
        }
        let resident = self.pseudonyms.pseudonym(&valid.national_id);
        let encoded = valid.stored.encode_to_vec();
        let mut h = Sha256::new();
        h.update(resident.as_bytes());
        h.update(&encoded);
        Ok((
            NewRecord {
                resident,
                record_id: valid.record_id,
                kind,
                at,
                fingerprint: h.finalize().into(),
                encoded,
            },
            valid.stored,
        ))
    }

    /// Whether a record id is already stored with other content than
    /// `prepared`.
    pub fn conflicts(&self, prepared: &NewRecord) -> Result<bool, NodeError> {
        Ok(self
            .store
            .fingerprint(&prepared.record_id)?
            .is_some_and(|f| f != prepared.fingerprint))
    }

    /// The largest batch accepted.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// The pseudonym of the resident with this ID number (checked first).
    pub fn resident(&self, national_id: &str) -> Result<Pseudonym, NodeError> {
        Ok(self.pseudonyms.pseudonym(&NationalId::parse(national_id)?))
    }

    /// Validates a batch whole, stores it atomically, revokes badges whose
    /// holder's colour worsened, and returns once all of it is durable.
    pub async fn ingest(&self, batch: &[pb::Record], now: i64) -> Result<IngestOutcome, NodeError> {
        if batch.is_empty() {
            return Err(NodeError::EmptyBatch);
        }
        if batch.len() > self.max_batch {
            return Err(NodeError::BatchTooLarge {
                len: batch.len(),
                max: self.max_batch,
            });
        }
        let mut new = Vec::with_capacity(batch.len());
        let mut in_batch: HashMap<&str, [u8; 32]> = HashMap::with_capacity(batch.len());
        let mut repeated = 0u32;
        for (index, record) in batch.iter().enumerate() {
            let (prepared, stored) = self
                .prepare(record, now)
                .map_err(|reason| NodeError::InvalidRecord { index, reason })?;
            match in_batch.insert(record.record_id.as_str(), prepared.fingerprint) {
                Some(prev) if prev != prepared.fingerprint => {
                    return Err(NodeError::ConflictingId {
                        index,
                        record_id: record.record_id.clone(),
                    });
                }
                Some(_) => {
                    repeated += 1;
                    continue;
                }
                None => {}
            }
            new.push((index, prepared, stored));
        }

        let guard = self.writer.lock().await;
        // Only residents holding an active badge need their records read
        // back (to see whether the batch worsens their colour); the store
        // refuses a conflicting record id for everyone else when applying.
        let mut by_resident: BTreeMap<Pseudonym, Vec<usize>> = BTreeMap::new();
        for (i, (_, r, _)) in new.iter().enumerate() {
            by_resident.entry(r.resident).or_default().push(i);
        }
        let mut revoked = vec![];
        for (resident, positions) in by_resident {
            let active = self.store.active_badges_of(&resident)?;
            if active.is_empty() {
                continue;
            }
            let mut all = self.decode_records(&resident, now)?;
            for i in positions {
                let (index, r, stored) = &new[i];
                match self.store.fingerprint(&r.record_id)? {
                    // Already stored (a retry): counted once, from the store.
                    Some(f) if f == r.fingerprint => {}
                    Some(_) => {
                        return Err(NodeError::ConflictingId {
                            index: *index,
                            record_id: r.record_id.clone(),
                        });
                    }
                    None => all.push(stored.clone()),
                }
            }
            // With no policy in force no badge can have been issued under
            // one either: nothing to revoke.
            let Ok(policy) = self.policies.in_force(now) else {
                continue;
            };
            let now_colour = policy.assess(&all, now).colour;
            for (id, badge) in active {
                if now_colour > badge.colour {
                    revoked.push((id, BadgeState::Revoked(now)));
                }
            }
        }
        let batch_index: Vec<usize> = new.iter().map(|(index, _, _)| *index).collect();
        let change = Change {
            records: new.into_iter().map(|(_, r, _)| r).collect(),
            badges: vec![],
            states: revoked,
        };
        let applied = self.store.apply(&change).map_err(|e| match e {
            StoreError::ConflictingRecord { index, record_id } => NodeError::ConflictingId {
                index: batch_index.get(index).copied().unwrap_or(index),
                record_id,
            },
            other => NodeError::Store(other),
        });
        drop(guard);
        let applied = applied?;
        self.commit.durable().await?;
        Ok(IngestOutcome {
            stored: applied.stored,
            duplicates: applied.duplicates + repeated,
            revoked: u32::try_from(change.states.len()).unwrap_or(u32::MAX),
        })
    }

    /// Checks a correction request: the ID number, the record id, the
    /// reason, and the replacement (validated as on ingest, for the same
    /// id and resident); then that the resident holds the record at `now`.
    /// Changes nothing.
    pub fn prepare_correction(
        &self,
        request: &pb::CorrectRecordRequest,
        now: i64,
    ) -> Result<PreparedCorrection, NodeError> {
        use pb::correct_record_request::Correction as Kind;
        let resident = self.resident(&request.national_id)?;
        if request.record_id.is_empty() {
            return Err(NodeError::BadCorrection("record_id is missing".into()));
        }
        let reason = match pb::CorrectionReason::try_from(request.reason) {
            Ok(pb::CorrectionReason::Unspecified) | Err(_) => {
                return Err(NodeError::BadCorrection(format!(
                    "reason {} is not a CorrectionReason other than UNSPECIFIED",
                    request.reason
                )));
            }
            Ok(r) => u8::try_from(r as i32).unwrap_or(u8::MAX),
        };
        let (replacement, scored) = match &request.correction {
            None => {
                return Err(NodeError::BadCorrection(
                    "neither a replacement nor a retraction".into(),
                ));
            }
            Some(Kind::Retract(_)) => (None, None),
            Some(Kind::Replacement(r)) => {
                let mut r = r.clone();
                for (field, inner, outer) in [
                    ("record_id", &mut r.record_id, &request.record_id),
                    ("national_id", &mut r.national_id, &request.national_id),
                ] {
                    if inner.is_empty() {
                        inner.clone_from(outer);
                    } else if inner != outer {
                        return Err(NodeError::BadCorrection(format!(
                            "the replacement's {field} differs from the request's: a record \
                             never moves to another id or resident"
                        )));
                    }
                }
                let (prepared, stored) = self
                    .prepare(&r, now)
                    .map_err(|reason| NodeError::InvalidRecord { index: 0, reason })?;
                (Some(prepared), Some(stored))
            }
        };
        let prepared = PreparedCorrection {
            correction: Correction {
                resident,
                record_id: request.record_id.clone(),
                reason,
                at: now,
                replacement,
            },
            replacement: scored,
        };
        self.held(&prepared, now)?;
        Ok(prepared)
    }

    /// The resident's records at `now` with the correction applied, or
    /// [`NodeError::UnknownRecord`] if they hold no such record.
    fn held(&self, c: &PreparedCorrection, now: i64) -> Result<Vec<pb::Record>, NodeError> {
        let id = &c.correction.record_id;
        let mut records = self.decode_records(&c.correction.resident, now)?;
        let at = records
            .iter()
            .position(|r| &r.record_id == id)
            .ok_or_else(|| NodeError::UnknownRecord(id.clone()))?;
        match &c.replacement {
            Some(r) => records[at] = r.clone(),
            None => {
                records.remove(at);
            }
        }
        Ok(records)
    }

    /// Applies a prepared correction: the record replaced or retracted, its
    /// mark left, and the resident re-scored at once under the policy in
    /// force. An active badge whose colour is now better than the
    /// resident's is revoked (as a new record does on ingest); one whose
    /// colour is now worse than the resident's is superseded, so a fresh
    /// badge can be issued (as an issuance does); one of the same colour
    /// stands. Returns once all of it is durable.
    pub async fn correct(&self, c: &PreparedCorrection, now: i64) -> Result<Corrected, NodeError> {
        let guard = self.writer.lock().await;
        let records = self.held(c, now)?;
        let colour = self
            .policies
            .in_force(now)
            .ok()
            .map(|p| p.assess(&records, now).colour);
        let mut states = vec![];
        let (mut revoked, mut superseded) = (0u32, 0u32);
        if let Some(colour) = colour {
            for (id, badge) in self.store.active_badges_of(&c.correction.resident)? {
                if colour > badge.colour {
                    states.push((id, BadgeState::Revoked(now)));
                    revoked += 1;
                } else if colour < badge.colour {
                    states.push((id, BadgeState::Superseded(now)));
                    superseded += 1;
                }
            }
        }
        let applied = self
            .store
            .correct(&c.correction, &states)
            .map_err(|e| match e {
                StoreError::UnknownRecord(id) => NodeError::UnknownRecord(id),
                other => NodeError::Store(other),
            });
        drop(guard);
        applied?;
        self.commit.durable().await?;
        Ok(Corrected {
            colour,
            revoked,
            superseded,
        })
    }

    /// The marks of a resident's corrected records at `now` (those of
    /// records past retention, which the sweep may not have removed yet,
    /// left out), in record-id order.
    pub fn corrections(
        &self,
        national_id: &str,
        now: i64,
    ) -> Result<Vec<CorrectionMark>, NodeError> {
        let resident = self.resident(national_id)?;
        Ok(self
            .store
            .corrections_of(&resident)?
            .into_iter()
            .filter(|m| !self.retention.expired(m.kind, m.record_at, now))
            .collect())
    }

    /// Scores a resident now.
    pub fn explain(&self, national_id: &str, now: i64) -> Result<Assessment, NodeError> {
        let id = NationalId::parse(national_id)?;
        let resident = self.pseudonyms.pseudonym(&id);
        let policy = self.policy(now)?;
        Ok(policy.assess(&self.decode_records(&resident, now)?, now))
    }

    /// Every record held about a resident at `now` (the right of access),
    /// decrypted, without the ID number, oldest first.
    pub fn export(&self, national_id: &str, now: i64) -> Result<Vec<pb::Record>, NodeError> {
        let id = NationalId::parse(national_id)?;
        let resident = self.pseudonyms.pseudonym(&id);
        let mut records = self.decode_records(&resident, now)?;
        records.sort_by_key(|r| {
            (
                records::type_and_time(r).map_or(0, |(_, at)| at),
                r.record_id.clone(),
            )
        });
        Ok(records)
    }

    /// Erases a resident (the right to erasure): records, badge states
    /// (those badges are UNKNOWN from now on) and data key, with new keys
    /// for its path in the key tree and a new master key, so that copies
    /// taken before cannot be decrypted with the keys kept. Durable when it
    /// returns; the writer lock is held about as long as for one batch.
    pub async fn erase(&self, national_id: &str) -> Result<Erased, NodeError> {
        let id = NationalId::parse(national_id)?;
        let resident = self.pseudonyms.pseudonym(&id);
        // One erasure at a time (they share the key file's `.next`), run to
        // its end even if the caller goes away (a half-finished one would
        // leave the old master key on disk until the next); the writer lock
        // only while the store changes, not while key files and the store
        // are synced (off the async workers).
        let erasing = Arc::clone(&self.erasing).lock_owned().await;
        let writer = Arc::clone(&self.writer);
        let store = Arc::clone(&self.store);
        let task = tokio::spawn(async move {
            let _erasing = erasing;
            let failed = |e| StoreError::Corrupt(format!("erasure task failed: {e}"));
            let s = Arc::clone(&store);
            let prepared = tokio::task::spawn_blocking(move || s.prepare_erasure())
                .await
                .map_err(failed)??;
            let guard = writer.lock_owned().await;
            let s = Arc::clone(&store);
            let (prepared, erased) = tokio::task::spawn_blocking(move || {
                let erased = s.apply_erasure(&prepared, &resident);
                (prepared, erased)
            })
            .await
            .map_err(failed)?;
            drop(guard);
            // Finished even after a failure: it discards a next key the
            // store does not use, or completes one it does.
            let finished = tokio::task::spawn_blocking(move || store.finish_erasure(prepared))
                .await
                .map_err(failed)?;
            let erased = erased?;
            finished?;
            Ok::<_, StoreError>(erased)
        });
        Ok(task
            .await
            .map_err(|e| StoreError::Corrupt(format!("erasure task failed: {e}")))??)
    }

    /// Copies the store into `dest` holding the writer lock, so the copy is
    /// one state: every change acknowledged before the call is in it, none
    /// is half in it. Writes wait meanwhile; reads go on.
    pub async fn copy_store(&self, dest: sled::Db) -> Result<Copied, NodeError> {
        let _guard = self.writer.lock().await;
        let store = Arc::clone(&self.store);
        Ok(tokio::task::spawn_blocking(move || store.copy_into(&dest))
            .await
            .map_err(|e| StoreError::Corrupt(format!("copy task failed: {e}")))??)
    }

    /// Deletes everything past retention at `now`, in durable batches of
    /// at most `batch` entries, taking the writer lock per batch only.
    pub async fn sweep(&self, now: i64, batch: usize) -> Result<Swept, NodeError> {
        let mut total = Swept::default();
        loop {
            let swept = {
                let _guard = self.writer.lock().await;
                self.store.sweep(&self.retention, now, batch.max(1))?
            };
            if swept.total_records() + swept.badges + swept.corrections > 0 {
                self.commit.durable().await?;
            }
            total.add(&swept);
            if !swept.more {
                return Ok(total);
            }
        }
    }

    /// Scores a resident, signs a badge, supersedes their earlier badges, and
    /// returns once the new state is durable.
    ///
    /// Issuances that arrive together are decided together: each joins a
    /// queue and waits both for its answer and for the writer lock; the
    /// first to get the lock decides everything queued by then, one after
    /// the other, and the others find their answer ready. Every caller waits
    /// for the lock itself, so none depends on another (which may be
    /// cancelled) to be decided, and none decides more than one batch. Each
    /// caller then waits for durability itself, so flushes are shared as for
    /// ingest.
    ///
    /// With an access log ([`City::with_access_log`]) every issuance of a
    /// valid ID number is logged as `by`'s `issue` entry: the batch's
    /// entries are appended in one write before anything is read, and are
    /// durable with the badges before any caller is answered. A batch
    /// whose entries cannot be written fails whole and stores nothing; an
    /// issuance that fails after its entry was written (no policy in force,
    /// a key that cannot sign) keeps the entry and stores nothing else. An
    /// invalid ID number is refused first and logs nothing.
    pub async fn issue(
        &self,
        national_id: &str,
        name: &str,
        now: i64,
        by: &Actor,
    ) -> Result<IssuedBadge, NodeError> {
        let id = NationalId::parse(national_id)?;
        let (decided, answer) = oneshot::channel();
        self.queue().push(Queued {
            resident: self.pseudonyms.pseudonym(&id),
            id,
            name: name.to_owned(),
            now,
            actor: by.clone(),
            decided,
        });
        let mut answer = answer;
        let issued = loop {
            tokio::select! {
                biased;
                decided = &mut answer => break decided.unwrap_or(Err(NodeError::Lost)),
                guard = self.writer.lock() => {
                    let batch = std::mem::take(&mut *self.queue());
                    self.decide(batch);
                    drop(guard);
                }
            }
        };
        // A failed issuance's entry is made durable too (it is answered
        // after it, like a logged read that failed); a batch that could not
        // be logged wrote nothing.
        if !matches!(issued, Err(NodeError::Unlogged(_))) {
            self.commit.durable().await?;
        }
        issued
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Queued>> {
        // The queue only ever holds complete entries: a poisoned lock's data
        // is still sound.
        self.queued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Scores, signs and stores the queued badges in one atomic change, then
    /// tells each caller; the caller of this holds the writer lock.
    ///
    /// In three steps: every badge's claims are fixed one after the other
    /// (the resident's records and badges read, the end of validity
    /// chosen), then all are signed (on two threads for a batch of
    /// [`PARALLEL_SIGNING_FROM`] or more, so signing, a third of the work,
    /// does not run one badge after the other), then the signed ones are
    /// written with what they supersede. A badge that could not be signed
    /// is left out of the change and supersedes nothing.
    fn decide(&self, batch: Vec<Queued>) {
        if let Err(e) = self.log_issuances(&batch) {
            for q in batch {
                let _ = q.decided.send(Err(NodeError::Unlogged(e.clone())));
            }
            return;
        }
        let signer = self.signer.load_full();
        // The ends of validity chosen in this batch, by holder: a resident
        // asking twice in one batch gets two different ends.
        let mut ends: HashMap<Pseudonym, Vec<i64>> = HashMap::new();
        let planned: Vec<_> = batch
            .iter()
            .map(|q| self.plan(q, &signer, &mut ends))
            .collect();
        let signed = sign_all(&signer, planned);
        let mut change = Change::default();
        // Badges decided in this batch, by holder: a resident asking twice
        // in one batch supersedes the first answer like any other.
        let mut decided: HashMap<Pseudonym, Vec<usize>> = HashMap::new();
        let results: Vec<_> = batch
            .iter()
            .zip(signed)
            .map(|(q, signed)| {
                signed.map(|(plan, envelope)| {
                    Self::supersede(q, plan, envelope, &mut change, &mut decided)
                })
            })
            .collect();
        let stored = if change.badges.is_empty() {
            Ok(())
        } else {
            self.store.apply(&change).map(|_| ())
        };
        for (q, result) in batch.into_iter().zip(results) {
            let result = match &stored {
                Ok(()) => result,
                Err(e) => Err(NodeError::Store(e.clone())),
            };
            let _ = q.decided.send(result);
        }
    }

    /// Appends the batch's `issue` entries in one write, before any of its
    /// records are read (not yet durable: the batch's flush covers them).
    fn log_issuances(&self, batch: &[Queued]) -> Result<(), AccessLogError> {
        let Some(log) = &self.access_log else {
            return Ok(());
        };
        let reads: Vec<Read<'_>> = batch
            .iter()
            .map(|q| Read {
                at: q.now,
                action: Action::Issue,
                actor: &q.actor,
                subject: &q.resident,
            })
            .collect();
        log.append_all(&reads).map(|_| ())
    }

    /// Fixes one badge's claims: the resident scored, an end of validity
    /// that none of their other badges (stored, or planned in this batch
    /// and noted in `ends`) has.
    fn plan(
        &self,
        q: &Queued,
        signer: &BadgeSigner,
        ends: &mut HashMap<Pseudonym, Vec<i64>>,
    ) -> Result<Planned, NodeError> {
        let now = q.now;
        let assessment = self
            .policy(now)?
            .assess(&self.decode_records(&q.resident, now)?, now);
        let mut badge_id = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut badge_id);
        let held = self.store.badges_of(&q.resident)?;
        let planned = ends.entry(q.resident).or_default();
        let taken: HashSet<i64> = held
            .iter()
            .map(|(_, b)| b.valid_until)
            .chain(planned.iter().copied())
            .collect();
        let claims = BadgeClaims {
            issuer_city: self.city,
            badge_id: BadgeId::from_bytes(badge_id),
            colour: assessment.colour,
            issued_at: now,
            // Never past the signer certificate (signing refuses an empty window).
            valid_until: unlinkable_end(
                now,
                assessment.valid_until.min(signer.not_after()),
                &taken,
            ),
            policy_version: assessment.policy_version,
            holder_hint: HolderHint::mask(&q.name, q.id.as_str()),
        };
        planned.push(claims.valid_until);
        Ok(Planned { claims, held })
    }

    /// Adds a signed badge to `change`, superseding the resident's active
    /// badges: those stored, for their first badge of the batch, and the
    /// one decided before it in the batch otherwise.
    fn supersede(
        q: &Queued,
        plan: Planned,
        envelope: Vec<u8>,
        change: &mut Change,
        decided: &mut HashMap<Pseudonym, Vec<usize>>,
    ) -> IssuedBadge {
        let now = q.now;
        let earlier = decided.entry(q.resident).or_default();
        if earlier.is_empty() {
            for (old, badge) in plan.held {
                if badge.state == BadgeState::Active {
                    change.states.push((old, BadgeState::Superseded(now)));
                }
            }
        }
        for &i in earlier.iter() {
            if let Some((_, badge)) = change.badges.get_mut(i) {
                badge.state = BadgeState::Superseded(now);
            }
        }
        earlier.push(change.badges.len());
        let claims = plan.claims;
        change.badges.push((
            claims.badge_id,
            BadgeRecord {
                resident: q.resident,
                colour: claims.colour,
                issued_at: now,
                valid_until: claims.valid_until,
                state: BadgeState::Active,
            },
        ));
        IssuedBadge {
            text: text::to_text(&envelope),
            envelope,
            claims,
        }
    }

    /// The status of each badge id, in order.
    pub fn check_status(&self, ids: &[Vec<u8>]) -> Result<Vec<pb::BadgeStatus>, NodeError> {
        if ids.len() > MAX_STATUS_IDS {
            return Err(NodeError::TooManyIds { len: ids.len() });
        }
        ids.iter()
            .enumerate()
            .map(|(index, raw)| {
                let id = BadgeId::from_slice(raw).ok_or(NodeError::BadBadgeId { index })?;
                Ok(match self.store.badge_state(&id)? {
                    None => pb::BadgeStatus::Unknown,
                    Some(BadgeState::Active) => pb::BadgeStatus::Active,
                    Some(BadgeState::Revoked(_)) => pb::BadgeStatus::Revoked,
                    Some(BadgeState::Superseded(_)) => pb::BadgeStatus::Superseded,
                })
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "city_tests.rs"]
pub(crate) mod tests;

#[cfg(test)]
#[path = "city_log_tests.rs"]
mod log_tests;
