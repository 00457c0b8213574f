//! The set of signed policies a node holds, oldest effective first, and
//! which of them is in force at a moment: the newest whose effective date
//! has come. A policy announced for later is held but never scored under.

use tessera_core::policy::Policy;
use tessera_core::policy_doc::VerifiedPolicy;

/// One policy the node holds.
#[derive(Debug, Clone)]
pub struct HeldPolicy {
    /// When it comes into force (Unix seconds); `i64::MIN` for a policy
    /// given without a signed document (tests and tools).
    pub effective_from: i64,
    /// The rules.
    pub policy: Policy,
    /// The signed document, if it came as one.
    pub signed: Option<VerifiedPolicy>,
}

/// Why no policy can be scored under at some moment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotInForce {
    /// The node holds no policy at all.
    #[error("no scoring policy in force: the node holds none")]
    NoneHeld,
    /// Every policy held takes effect later.
    #[error(
        "no scoring policy in force: version {version} takes effect at {effective_from} (Unix {effective_from_unix})"
    )]
    Announced {
        /// The first policy to come into force.
        version: u32,
        /// When, RFC 3339.
        effective_from: String,
        /// When, Unix seconds.
        effective_from_unix: i64,
    },
}

/// Why a set of signed policies does not hang together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicySetError {
    /// Two policies with one version, or versions that do not grow with
    /// effective dates.
    #[error(
        "policy version {later_version} (effective {later_from}) must be greater than version {earlier_version} (effective {earlier_from}): versions grow with effective dates"
    )]
    VersionOrder {
        /// The earlier-effective policy's version.
        earlier_version: u32,
        /// Its effective date.
        earlier_from: i64,
        /// The later-effective policy's version.
        later_version: u32,
        /// Its effective date.
        later_from: i64,
    },
    /// Two policies from the same moment.
    #[error("policies version {0} and {1} take effect at the same moment")]
    SameMoment(u32, u32),
}

/// Every policy a node holds, oldest effective first.
#[derive(Debug, Clone)]
pub struct PolicySet {
    held: Vec<HeldPolicy>,
}

/// RFC 3339 for a Unix time, or the number if out of range.
pub fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

impl PolicySet {
    /// A set of verified policies (one city's: the caller checked who
    /// signed them). Versions must grow with effective dates.
    pub fn new(policies: Vec<VerifiedPolicy>) -> Result<Self, PolicySetError> {
        let mut held: Vec<HeldPolicy> = policies
            .into_iter()
            .map(|v| HeldPolicy {
                effective_from: v.effective_from(),
                policy: v.policy().clone(),
                signed: Some(v),
            })
            .collect();
        held.sort_by_key(|h| h.effective_from);
        for pair in held.windows(2) {
            let [a, b] = pair else { continue };
            if a.effective_from == b.effective_from {
                return Err(PolicySetError::SameMoment(
                    a.policy.version(),
                    b.policy.version(),
                ));
            }
            if b.policy.version() <= a.policy.version() {
                return Err(PolicySetError::VersionOrder {
                    earlier_version: a.policy.version(),
                    earlier_from: a.effective_from,
                    later_version: b.policy.version(),
                    later_from: b.effective_from,
                });
            }
        }
        Ok(Self { held })
    }

    /// The policy in force at `now`: the newest whose effective date has
    /// come.
    pub fn in_force(&self, now: i64) -> Result<&Policy, NotInForce> {
        if let Some(h) = self.held.iter().rev().find(|h| h.effective_from <= now) {
            return Ok(&h.policy);
        }
        match self.held.first() {
            None => Err(NotInForce::NoneHeld),
            Some(first) => Err(NotInForce::Announced {
                version: first.policy.version(),
                effective_from: rfc3339(first.effective_from),
                effective_from_unix: first.effective_from,
            }),
        }
    }

    /// Which policy is in force at `now` and which are announced, in words.
    pub fn describe(&self, now: i64) -> String {
        let mut parts = vec![];
        match self.in_force(now) {
            Ok(p) => parts.push(format!(
                "policy {:?} version {} in force",
                p.name(),
                p.version()
            )),
            Err(e) => parts.push(e.to_string()),
        }
        for h in self.held.iter().filter(|h| h.effective_from > now) {
            parts.push(format!(
                "version {} announced for {}",
                h.policy.version(),
                rfc3339(h.effective_from)
            ));
        }
        parts.join("; ")
    }

    /// Every policy held, oldest effective first.
    pub fn held(&self) -> &[HeldPolicy] {
        &self.held
    }
}

impl From<Policy> for PolicySet {
    /// One policy in force at every moment (tests and tools that score
    /// without a signed document).
    fn from(policy: Policy) -> Self {
        Self {
            held: vec![HeldPolicy {
                effective_from: i64::MIN,
                policy,
                signed: None,
            }],
        }
    }
}
