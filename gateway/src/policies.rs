//! Published scoring policies: each city's signed policies, checked against
//! the trust list and the notice rule, kept durably in their own sled tree
//! beside the trust registry, and handed to anyone who asks.
//!
//! The notice rule: a city's second and later policies must come into force
//! at least `notice_hours` after the gateway accepts them. A city's first
//! policy is accepted without notice (an enrolment exception: its residents
//! had no earlier published policy to be surprised by, and a city cannot
//! wait 48 hours after enrolment before it may issue a badge). See
//! docs/POLICY.md.

use tessera_core::policy_doc::{self, PolicyDocError, SuccessionError, VerifiedPolicy};
use tessera_core::{CheckedTrustList, CityCode};
use tessera_proto::v1 as pb;
use tokio::sync::Mutex;

use crate::registry::DiskFull;

const TREE: &str = "policies";

/// Why a policy was not accepted. Nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum PolicyPublishError {
    /// The document does not verify, or its rules are refused.
    #[error("policy refused: {0}")]
    Invalid(#[from] PolicyDocError),
    /// The gateway holds no trust list to check the signer against.
    #[error("the gateway holds no trust list yet: no policy can be checked")]
    NoTrustList,
    /// The caller speaks for another city than the document.
    #[error("policy is for city {document}, but the caller's certificate is for {caller}")]
    WrongCity {
        /// The caller's city, or its scope if it has none.
        caller: String,
        /// The document's city.
        document: u32,
    },
    /// Too little notice.
    #[error(
        "policy version {version} takes effect at {effective_from}, less than the notice period of {notice_hours} hours after publication: the earliest allowed is {earliest}"
    )]
    TooSoon {
        /// The policy's version.
        version: u32,
        /// When it would take effect.
        effective_from: i64,
        /// The notice period.
        notice_hours: u32,
        /// Now plus the notice.
        earliest: i64,
    },
    /// The version is not above the newest held.
    #[error(
        "policy version {offered} is not greater than version {held}, already published for this city"
    )]
    NotNewer {
        /// Newest version held.
        held: u32,
        /// Version offered.
        offered: u32,
    },
    /// It would come into force before one held already.
    #[error(
        "policy version {offered} takes effect at {offered_from}, before version {held} (effective {held_from}) already published for this city"
    )]
    EarlierThanHeld {
        /// Version offered.
        offered: u32,
        /// Its effective date.
        offered_from: i64,
        /// The held version it would precede.
        held: u32,
        /// That version's effective date.
        held_from: i64,
    },
    /// The gateway's disk is full (a write failed on it since the
    /// database was opened).
    #[error("the gateway's disk is full: the policy was not stored")]
    DiskFull,
    /// Storage failed.
    #[error("policy storage: {0}")]
    Storage(#[from] sled::Error),
}

impl PolicyPublishError {
    /// Whether the policy was refused because the disk is full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            PolicyPublishError::DiskFull => true,
            PolicyPublishError::Storage(e) => crate::registry::is_disk_full(e),
            _ => false,
        }
    }
}

/// The policies the gateway holds.
pub struct Policies {
    tree: sled::Tree,
    db: sled::Db,
    disk: DiskFull,
    notice_hours: u32,
    publishing: Mutex<()>,
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policies")
            .field("notice_hours", &self.notice_hours)
            .finish_non_exhaustive()
    }
}

fn key(city: u32, version: u32) -> [u8; 8] {
    let mut k = [0u8; 8];
    k[..4].copy_from_slice(&city.to_be_bytes());
    k[4..].copy_from_slice(&version.to_be_bytes());
    k
}

impl Policies {
    /// Opens the policy tree of the gateway's database; a write that fails
    /// on a full disk is noted in `disk` (the registry's).
    pub fn open(db: sled::Db, disk: DiskFull, notice_hours: u32) -> Result<Self, sled::Error> {
        Ok(Self {
            tree: db.open_tree(TREE)?,
            db,
            disk,
            notice_hours,
            publishing: Mutex::new(()),
        })
    }

    /// The notice period in hours.
    pub fn notice_hours(&self) -> u32 {
        self.notice_hours
    }

    /// Every policy held for `city`, decoded (they were verified when
    /// published), oldest effective first.
    pub fn fetch(&self, city: u32) -> Result<Vec<pb::SignedPolicy>, PolicyPublishError> {
        Ok(self
            .held(city)?
            .into_iter()
            .map(|(_, _, signed)| signed)
            .collect())
    }

    /// Every city that has published a policy here, in code order.
    pub fn cities(&self) -> Result<Vec<u32>, PolicyPublishError> {
        let mut out: Vec<u32> = vec![];
        for item in self.tree.iter().keys() {
            let k = item?;
            if let Some(city) = k.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
                let city = u32::from_be_bytes(city);
                if out.last() != Some(&city) {
                    out.push(city);
                }
            }
        }
        Ok(out)
    }

    /// The signed bytes of `version` of `city`'s policy, exactly as
    /// published, if held. Versions are never removed: what a city once
    /// published stays readable (docs/POLICY.md, "The public copy").
    pub fn signed_bytes(&self, city: u32, version: u32) -> Result<Option<Vec<u8>>, sled::Error> {
        Ok(self.tree.get(key(city, version))?.map(|v| v.to_vec()))
    }

    /// (version, effective_from, signed) of each policy held for `city`,
    /// oldest effective first.
    pub fn held(&self, city: u32) -> Result<Vec<(u32, i64, pb::SignedPolicy)>, PolicyPublishError> {
        let mut out = vec![];
        for item in self.tree.scan_prefix(city.to_be_bytes()) {
            let (_, bytes) = item?;
            let signed = policy_doc::decode_signed(&bytes)?;
            let document =
                <pb::PolicyDocument as prost::Message>::decode(signed.payload.as_slice())
                    .map_err(|e| PolicyDocError::Malformed(e.to_string()))?;
            out.push((document.policy_version, document.effective_from, signed));
        }
        out.sort_by_key(|(version, from, _)| (*from, *version));
        Ok(out)
    }

    /// Checks `signed` against `trust`, the caller's city, the policies held
    /// and the notice rule at `now`, then stores it durably. Publishing the
    /// very document held already answers as a success (a retry).
    pub async fn publish(
        &self,
        signed: &pb::SignedPolicy,
        caller_city: Option<CityCode>,
        caller_scope: &str,
        trust: Option<&CheckedTrustList>,
        now: i64,
    ) -> Result<VerifiedPolicy, PolicyPublishError> {
        let trust = trust.ok_or(PolicyPublishError::NoTrustList)?;
        let policy = policy_doc::verify_with_trust_list(signed, trust)?;
        if caller_city.map(CityCode::get) != Some(policy.city()) {
            return Err(PolicyPublishError::WrongCity {
                caller: caller_scope.to_owned(),
                document: policy.city(),
            });
        }
        let _one_at_a_time = self.publishing.lock().await;
        if self.disk.is_full() {
            return Err(PolicyPublishError::DiskFull);
        }
        let held = self.held(policy.city())?;
        if held.iter().any(|(_, _, h)| h == signed) {
            return Ok(policy);
        }
        // The rule is core's; the first policy of a city is exempt from
        // notice (module docs), and notice counts from publication here.
        let dates: Vec<(u32, i64)> = held.iter().map(|(v, from, _)| (*v, *from)).collect();
        policy_doc::check_succession(
            &dates,
            policy.policy_version(),
            policy.effective_from(),
            now,
            i64::from(self.notice_hours) * 3600,
        )
        .map_err(|e| self.refusal(e, &dates, policy.policy_version()))?;
        self.store(&policy).await?;
        tracing::info!(
            city = policy.city(),
            version = policy.policy_version(),
            effective_from = policy.effective_from(),
            "scoring policy published"
        );
        Ok(policy)
    }

    /// Takes `signed` as a follower, from the peer gateway it follows
    /// (pool.rs): verified against `trust` exactly as an upload (signature,
    /// signer a badge signer of the document's city in the list, not
    /// revoked, the rules), and in order after the policies held (a greater
    /// version, no earlier date), then stored durably. The caller's city is
    /// not asked (the peer is not the city) and neither is the notice: the
    /// gateway that received the upload counted it from that moment, which
    /// a follower, seeing it later, cannot. Returns whether it was new.
    pub async fn adopt(
        &self,
        signed: &pb::SignedPolicy,
        trust: Option<&CheckedTrustList>,
    ) -> Result<bool, PolicyPublishError> {
        let trust = trust.ok_or(PolicyPublishError::NoTrustList)?;
        let policy = policy_doc::verify_with_trust_list(signed, trust)?;
        let _one_at_a_time = self.publishing.lock().await;
        if self.disk.is_full() {
            return Err(PolicyPublishError::DiskFull);
        }
        let held = self.held(policy.city())?;
        if held.iter().any(|(_, _, h)| h == signed) {
            return Ok(false);
        }
        let dates: Vec<(u32, i64)> = held.iter().map(|(v, from, _)| (*v, *from)).collect();
        // Announced at its own effective date with no notice: only the
        // order is checked.
        policy_doc::check_succession(
            &dates,
            policy.policy_version(),
            policy.effective_from(),
            policy.effective_from(),
            0,
        )
        .map_err(|e| self.refusal(e, &dates, policy.policy_version()))?;
        self.store(&policy).await?;
        tracing::info!(
            city = policy.city(),
            version = policy.policy_version(),
            effective_from = policy.effective_from(),
            "scoring policy copied from the peer gateway"
        );
        Ok(true)
    }

    /// Stores a checked policy and flushes; on a failed flush it is removed
    /// again (never acknowledged, so never served). The caller holds
    /// `publishing`.
    async fn store(&self, policy: &VerifiedPolicy) -> Result<(), PolicyPublishError> {
        let k = key(policy.city(), policy.policy_version());
        self.disk.noting(self.tree.insert(k, policy.to_bytes()))?;
        if let Err(e) = self.disk.noting(self.db.flush_async().await) {
            self.disk.noting(self.tree.remove(k))?;
            return Err(e.into());
        }
        Ok(())
    }

    /// A succession refusal as this module's error.
    fn refusal(
        &self,
        e: SuccessionError,
        dates: &[(u32, i64)],
        offered: u32,
    ) -> PolicyPublishError {
        match e {
            SuccessionError::NotNewer { held, offered } => {
                PolicyPublishError::NotNewer { held, offered }
            }
            SuccessionError::EarlierThanHeld {
                offered,
                offered_from,
                held,
                held_from,
            } => PolicyPublishError::EarlierThanHeld {
                offered,
                offered_from,
                held,
                held_from,
            },
            SuccessionError::TooSoon {
                version,
                effective_from,
                earliest,
            } => PolicyPublishError::TooSoon {
                version,
                effective_from,
                notice_hours: self.notice_hours,
                earliest,
            },
            // A rule core adds later: refused as not fitting what is held.
            _ => PolicyPublishError::NotNewer {
                held: dates.last().map_or(0, |(v, _)| *v),
                offered,
            },
        }
    }
}
