//! The deletion attestations the gateway collects from city nodes at sunset:
//! the latest verified one per city, in its own sled tree beside the trust
//! registry's. Nothing else about them is kept.

use prost::Message;
use tessera_core::CityCode;
use tessera_core::attestation::{self, AttestationError, VerifiedAttestation};
use tessera_proto::v1 as pb;
use tessera_runtime::TrustState;

use crate::registry::DiskFull;

const TREE: &str = "attestations";

/// Why an attestation was not taken.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// It does not verify.
    #[error("deletion attestation refused: {0}")]
    Invalid(#[from] AttestationError),
    /// The trust list in force revokes its signer.
    #[error("deletion attestation signed by a revoked node certificate")]
    SignerRevoked,
    /// The caller is not the node of the attested city.
    #[error("only the node of city {attested} may submit its attestation; the caller is {caller}")]
    NotTheCaller {
        /// The attested city.
        attested: CityCode,
        /// The caller's identity.
        caller: String,
    },
    /// A later attestation of the city is already held.
    #[error(
        "an attestation of city {city} destroyed at {held} is already held; this one says {offered}"
    )]
    Older {
        /// The city.
        city: CityCode,
        /// destroyed_at of the one held.
        held: i64,
        /// destroyed_at of the one offered.
        offered: i64,
    },
    /// The gateway's disk is full (a write failed on it since the
    /// database was opened).
    #[error("the gateway's disk is full: the attestation was not stored")]
    DiskFull,
    /// Storage failed.
    #[error("attestation storage: {0}")]
    Storage(#[from] sled::Error),
}

/// Verifies an attestation up to the root, its node certificate issued by
/// the root or by an issuing CA of the list in force.
fn verify(
    signed: &[u8],
    trust: &TrustState,
    now: i64,
) -> Result<VerifiedAttestation, AttestationError> {
    let list = trust.current();
    let cas = list.as_ref().map_or(&[][..], |l| l.issuing_ca_certs());
    attestation::verify_attestation_within(signed, trust.root(), cas, now)
}

impl SubmitError {
    /// Whether the attestation was refused because the disk is full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            SubmitError::DiskFull => true,
            SubmitError::Storage(e) => crate::registry::is_disk_full(e),
            _ => false,
        }
    }
}

/// The gateway's collected attestations.
#[derive(Debug, Clone)]
pub struct Attestations {
    db: sled::Db,
    tree: sled::Tree,
    disk: DiskFull,
}

impl Attestations {
    /// Opens the attestation tree of the gateway's database; a write that
    /// fails on a full disk is noted in `disk` (the registry's).
    pub fn open(db: &sled::Db, disk: DiskFull) -> Result<Self, sled::Error> {
        Ok(Self {
            tree: db.open_tree(TREE)?,
            db: db.clone(),
            disk,
        })
    }

    /// Verifies `signed` (an encoded SignedAttestation) against the root
    /// and the trust list in force, checks that `caller` (already
    /// authorized as a city node) is the node of the attested city, and
    /// keeps it as that city's latest, durably, before returning. The same
    /// attestation again is accepted and changes nothing; an older one than
    /// held is refused.
    pub async fn submit(
        &self,
        signed: &[u8],
        caller: &tessera_core::Identity,
        trust: &TrustState,
        now: i64,
    ) -> Result<VerifiedAttestation, SubmitError> {
        let verified = verify(signed, trust, now)?;
        if caller.role() != tessera_core::Role::CityNode || caller.city() != Some(verified.city()) {
            return Err(SubmitError::NotTheCaller {
                attested: verified.city(),
                caller: caller.to_uri(),
            });
        }
        if trust.is_revoked(verified.signer()) {
            return Err(SubmitError::SignerRevoked);
        }
        self.keep(&verified, signed).await?;
        tracing::info!(
            city = %verified.city(),
            destroyed_at = verified.claims().destroyed_at,
            "deletion attestation collected"
        );
        Ok(verified)
    }

    /// Takes `signed` as a follower, from the peer gateway it follows
    /// (pool.rs): verified as a submission is (up to the root, the signer a
    /// node of the attested city not revoked by the list in force, not
    /// older than the one held), then kept durably. Who passed it on is not
    /// asked: the node's own signature says who made it. Returns whether
    /// it was new.
    pub async fn adopt(
        &self,
        signed: &[u8],
        trust: &TrustState,
        now: i64,
    ) -> Result<bool, SubmitError> {
        let verified = verify(signed, trust, now)?;
        if trust.is_revoked(verified.signer()) {
            return Err(SubmitError::SignerRevoked);
        }
        let new = self.keep(&verified, signed).await?;
        if new {
            tracing::info!(
                city = %verified.city(),
                destroyed_at = verified.claims().destroyed_at,
                "deletion attestation copied from the peer gateway"
            );
        }
        Ok(new)
    }

    /// Keeps a verified attestation as its city's latest, durably; returns
    /// whether the tree changed (not when the same one is held).
    async fn keep(
        &self,
        verified: &VerifiedAttestation,
        signed: &[u8],
    ) -> Result<bool, SubmitError> {
        if self.disk.is_full() {
            return Err(SubmitError::DiskFull);
        }
        let key = verified.city().get().to_be_bytes();
        // What this submit replaced, if it changed the tree.
        let mut replaced = None;
        loop {
            let held = self.tree.get(key)?;
            if let Some(held) = &held {
                if held.as_ref() == signed {
                    break;
                }
                let held_at = pb::SignedAttestation::decode(held.as_ref())
                    .ok()
                    .and_then(|s| pb::DeletionAttestation::decode(s.payload.as_slice()).ok())
                    .map_or(i64::MIN, |c| c.destroyed_at);
                if held_at > verified.claims().destroyed_at {
                    return Err(SubmitError::Older {
                        city: verified.city(),
                        held: held_at,
                        offered: verified.claims().destroyed_at,
                    });
                }
            }
            if self
                .disk
                .noting(self.tree.compare_and_swap(key, held.clone(), Some(signed)))?
                .is_ok()
            {
                replaced = Some(held);
                break;
            }
        }
        if let Err(e) = self.disk.noting(self.db.flush_async().await) {
            // Not acknowledged, so it must not be listed later either.
            if let Some(previous) = replaced {
                let _ =
                    self.disk
                        .noting(self.tree.compare_and_swap(key, Some(signed), previous))?;
            }
            return Err(e.into());
        }
        Ok(replaced.is_some())
    }

    /// Every attestation held, one per city, in city order.
    pub fn list(&self) -> Result<Vec<pb::SignedAttestation>, SubmitError> {
        let mut out = vec![];
        for value in self.tree.iter().values() {
            let value = value?;
            // Only verified attestations were stored; one that no longer
            // decodes is damage, left out with a warning.
            match pb::SignedAttestation::decode(value.as_ref()) {
                Ok(a) => out.push(a),
                Err(e) => tracing::warn!(error = %e, "a stored attestation does not decode"),
            }
        }
        Ok(out)
    }
}
