//! Reaching a verdict: the badge's signature against the trust list in force
//! (core), then its status at the issuing city (the relay). Never VALID
//! without a status answer (unless the relay is turned off, when every
//! verdict says so); never a hang.

use std::borrow::Cow;
use std::sync::Arc;

use futures::future::Either;
use tessera_core::trust::CheckedTrustList;
use tessera_core::verify::{VerifiedBadge, VerifyError, request_envelope};
use tessera_core::verify_batch;
use tessera_proto::v1 as pb;
use tessera_runtime::TrustState;

use crate::relay::Relay;

/// The detail of every verdict of a gateway whose relay is off.
pub const SIGNATURE_ONLY: &str =
    "signature only: this gateway does not relay status checks, the issuing city was not asked";

/// Counters of outcomes: aggregate only, never per badge.
#[derive(Debug, Default)]
pub struct Counters {
    by_outcome: [std::sync::atomic::AtomicU64; 10],
}

impl Counters {
    fn count(&self, outcome: pb::Outcome) {
        if let Some(c) = self.by_outcome.get(outcome as usize) {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// How many verdicts had `outcome`.
    pub fn get(&self, outcome: pb::Outcome) -> u64 {
        self.by_outcome
            .get(outcome as usize)
            .map_or(0, |c| c.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// Verifies badges for checkpoints.
#[derive(Debug)]
pub struct Verifier {
    trust: Arc<TrustState>,
    relay: Relay,
    counters: Counters,
}

fn verdict(outcome: pb::Outcome, reason: &str, now: i64, detail: String) -> pb::Verdict {
    pb::Verdict {
        outcome: outcome as i32,
        checked_at: now,
        detail,
        reason: reason.to_owned(),
        ..pb::Verdict::default()
    }
}

/// The gateway's own reason codes, for the steps after core verification
/// (PROTOCOL.md, online outcome table).
pub mod reason {
    /// The gateway holds no trust list.
    pub const NO_TRUST_LIST: &str = "no_trust_list";
    /// The trust list has no active node for the issuing city.
    pub const NO_CITY_NODE: &str = "no_city_node";
    /// The node answered ACTIVE.
    pub const STATUS_ACTIVE: &str = "status_active";
    /// The node answered REVOKED.
    pub const STATUS_REVOKED: &str = "status_revoked";
    /// The node answered SUPERSEDED.
    pub const STATUS_SUPERSEDED: &str = "status_superseded";
    /// The node answered UNKNOWN.
    pub const STATUS_UNKNOWN: &str = "status_unknown";
    /// The node answered without a status.
    pub const STATUS_MISSING: &str = "status_missing";
    /// The node did not answer (error, deadline, open breaker).
    pub const STATUS_UNREACHABLE: &str = "status_unreachable";
    /// No verdict could be matched to the request (never expected).
    pub const INTERNAL: &str = "internal";
}

impl Verifier {
    /// Verifies against `trust`, relaying status checks through `relay`.
    pub fn new(trust: Arc<TrustState>, relay: Relay) -> Self {
        Self {
            trust,
            relay,
            counters: Counters::default(),
        }
    }

    /// The relay.
    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    /// The aggregate counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The verdict on one badge at `now`. A verdict reached with a trust list
    /// past its next update says so in its detail.
    pub async fn verify(&self, request: &pb::VerifyRequest, now: i64) -> pb::Verdict {
        self.verify_all(std::slice::from_ref(request), now)
            .await
            .pop()
            .unwrap_or_else(|| {
                verdict(
                    pb::Outcome::Unspecified,
                    reason::INTERNAL,
                    now,
                    "no verdict".into(),
                )
            })
    }

    /// The verdicts on several badges at `now`, in order: what
    /// [`Verifier::verify`] gives for each, with their signatures checked
    /// together in one batch and their status checks made concurrently.
    pub async fn verify_all(&self, requests: &[pb::VerifyRequest], now: i64) -> Vec<pb::Verdict> {
        let envelopes: Vec<Result<Cow<'_, [u8]>, pb::Verdict>> =
            requests.iter().map(|r| envelope_of(r, now)).collect();
        let list = self.trust.current();
        let mut verdicts = match &list {
            None => envelopes
                .into_iter()
                .map(|e| {
                    e.err().unwrap_or_else(|| {
                        verdict(
                            pb::Outcome::StatusUnavailable,
                            reason::NO_TRUST_LIST,
                            now,
                            "the gateway holds no trust list".into(),
                        )
                    })
                })
                .collect(),
            Some(list) => {
                let readable: Vec<&[u8]> = envelopes.iter().flatten().map(|e| e.as_ref()).collect();
                let mut checked = verify_batch(&readable, list, now).into_iter();
                let reached = envelopes.iter().map(|e| match e {
                    Err(v) => Either::Left(std::future::ready(v.clone())),
                    Ok(_) => Either::Right(self.status_of(checked.next(), list, now)),
                });
                futures::future::join_all(reached).await
            }
        };
        let stale = list.as_ref().and_then(|list| match list.freshness(now) {
            tessera_core::Freshness::Stale { overdue_secs } => Some(format!(
                "trust list {} is stale ({} h past its next update)",
                list.sequence(),
                overdue_secs / 3600
            )),
            _ => None,
        });
        for v in &mut verdicts {
            if let Some(note) = &stale {
                v.detail = if v.detail.is_empty() {
                    note.clone()
                } else {
                    format!("{}; {note}", v.detail)
                };
            }
            self.counters
                .count(pb::Outcome::try_from(v.outcome).unwrap_or(pb::Outcome::Unspecified));
        }
        verdicts
    }

    /// The verdict on a badge whose signature was checked: its status at the
    /// issuing city, through the relay.
    async fn status_of(
        &self,
        checked: Option<Result<VerifiedBadge, VerifyError>>,
        list: &CheckedTrustList,
        now: i64,
    ) -> pb::Verdict {
        let badge = match checked {
            Some(Ok(badge)) => badge,
            Some(Err(e)) => return e.verdict(now),
            None => {
                return verdict(
                    pb::Outcome::Unspecified,
                    reason::INTERNAL,
                    now,
                    "no verdict".into(),
                );
            }
        };
        if !self.relay.enabled() {
            return badge.verdict(now, SIGNATURE_ONLY);
        }
        let claims = badge.claims();
        let mut v = badge.verdict(now, "");
        let Some(node) = list.city_node(claims.issuer_city) else {
            v.outcome = pb::Outcome::StatusUnavailable as i32;
            v.reason = reason::NO_CITY_NODE.to_owned();
            v.detail = format!("no node of {} is in the trust list", claims.issuer_city);
            return v;
        };
        let (outcome, code, detail) = match self
            .relay
            .status(claims.issuer_city, node.endpoint(), claims.badge_id)
            .await
        {
            Ok(pb::BadgeStatus::Active) => (pb::Outcome::Valid, reason::STATUS_ACTIVE, ""),
            Ok(pb::BadgeStatus::Revoked) => (
                pb::Outcome::Revoked,
                reason::STATUS_REVOKED,
                "revoked by the issuing city",
            ),
            Ok(pb::BadgeStatus::Superseded) => (
                pb::Outcome::Revoked,
                reason::STATUS_SUPERSEDED,
                "superseded by a newer badge",
            ),
            Ok(pb::BadgeStatus::Unknown) => (
                pb::Outcome::Revoked,
                reason::STATUS_UNKNOWN,
                "the issuing city does not know this badge",
            ),
            Ok(pb::BadgeStatus::Unspecified) => (
                pb::Outcome::StatusUnavailable,
                reason::STATUS_MISSING,
                "the issuing city sent no status",
            ),
            Err(e) => {
                v.outcome = pb::Outcome::StatusUnavailable as i32;
                v.reason = reason::STATUS_UNREACHABLE.to_owned();
                v.detail = format!("signature valid, but {e}");
                return v;
            }
        };
        v.outcome = outcome as i32;
        v.reason = code.to_owned();
        v.detail = detail.to_owned();
        v
    }
}

/// The envelope bytes a request carries, or the MALFORMED verdict.
fn envelope_of(request: &pb::VerifyRequest, now: i64) -> Result<Cow<'_, [u8]>, pb::Verdict> {
    request_envelope(request).map_err(|e| e.verdict(now))
}
