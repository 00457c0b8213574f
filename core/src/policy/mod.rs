//! How a resident scores: a published, versioned policy of rules over
//! infection-risk records, applied by a pure, deterministic function of
//! (records, policy, now) that also explains itself.

use serde::Deserialize;
use tessera_proto::v1 as pb;

use crate::Colour;

mod schema;
mod score;
#[cfg(test)]
mod tests;
mod words;
mod zh;

use schema::*;

/// What kind of record, for policies and explanations: the record schema
/// (node.proto's `Record`) has these five and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordType {
    /// A test result.
    Test,
    /// A vaccination.
    Vaccination,
    /// An exposure notice.
    Exposure,
    /// Travel from a risk area.
    Travel,
    /// A symptom declaration.
    Symptoms,
}

impl RecordType {
    /// Every type, in code order.
    pub const ALL: [RecordType; 5] = [
        RecordType::Test,
        RecordType::Vaccination,
        RecordType::Exposure,
        RecordType::Travel,
        RecordType::Symptoms,
    ];

    /// Its one-byte code in a node's store keys (1 to 5).
    pub fn code(self) -> u8 {
        match self {
            RecordType::Test => 1,
            RecordType::Vaccination => 2,
            RecordType::Exposure => 3,
            RecordType::Travel => 4,
            RecordType::Symptoms => 5,
        }
    }

    /// The type of a code.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.code() == code)
    }

    /// Its name in configuration, logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            RecordType::Test => "test",
            RecordType::Vaccination => "vaccination",
            RecordType::Exposure => "exposure",
            RecordType::Travel => "travel",
            RecordType::Symptoms => "symptoms",
        }
    }
}

/// The type and time of a stored record; `None` if it has no kind.
pub fn type_and_time(record: &pb::Record) -> Option<(RecordType, i64)> {
    use pb::record::Kind;
    Some(match record.kind.as_ref()? {
        Kind::Test(t) => (RecordType::Test, t.sampled_at),
        Kind::Vaccination(v) => (RecordType::Vaccination, v.given_at),
        Kind::Exposure(e) => (RecordType::Exposure, e.exposed_at),
        Kind::Travel(t) => (RecordType::Travel, t.left_at),
        Kind::Symptoms(s) => (RecordType::Symptoms, s.declared_at),
    })
}

/// The default policy, as published in docs/POLICY.md.
pub const DEFAULT_POLICY: &str = include_str!("../../policy/default.toml");

const HOUR: i64 = 3600;
/// Shortest validity a badge is given, even when a rule's cap has just passed.
pub const MIN_VALIDITY_SECS: i64 = 60;

/// Why a policy file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Not valid TOML for a policy.
    #[error("policy does not parse: {0}")]
    Parse(String),
    /// A rule is inconsistent.
    #[error("policy rule {rule:?}: {reason}")]
    Rule {
        /// Rule id.
        rule: String,
        /// What is wrong.
        reason: String,
    },
    /// A key or value that names an input outside the record schema (or
    /// any key the format does not define).
    #[error(
        "policy uses a key or value the policy format does not define (a policy can refer only to the record schema: tests, vaccinations, exposures, risk-area travel and symptom declarations): {0}"
    )]
    OutsideSchema(String),
    /// Something outside the rules.
    #[error("policy: {0}")]
    Invalid(String),
}

/// One line from a TOML error: the reason, then where.
fn toml_reason(e: &toml::de::Error) -> String {
    let text = e.to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or_default().to_owned();
    match lines.next_back() {
        Some(reason) => match first.strip_prefix("TOML parse error ") {
            Some(place) => format!("{reason} ({place})"),
            None => format!("{reason} ({first})"),
        },
        None => first,
    }
}

/// A checked scoring policy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    version: u32,
    name: String,
    base_score: u32,
    bands: Bands,
    validity: Validity,
    rules: Vec<Rule>,
}

/// One rule that fired, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiredRule {
    /// The rule's id.
    pub rule_id: String,
    /// Its published description.
    pub description: String,
    /// The records that triggered it.
    pub record_ids: Vec<String>,
    /// Its effect on the score.
    pub score_delta: i32,
    /// The colour it sets at least.
    pub colour: Option<Colour>,
    /// The latest end of validity it allows.
    pub valid_until_cap: Option<i64>,
}

/// A rule that would fire but for later records its `unless_later` names
/// (negative tests): they lift it, for good or until `lifted_until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiftedRule {
    /// The rule's id.
    pub rule_id: String,
    /// Its published description.
    pub description: String,
    /// The records it would fire on.
    pub record_ids: Vec<String>,
    /// The records that lift it (the negative tests).
    pub lifted_by: Vec<String>,
    /// When the earliest of these lifts ends (the last second it holds);
    /// `None` if they hold for good.
    pub lifted_until: Option<i64>,
}

impl LiftedRule {
    /// One plain sentence for the resident: which rule, lifted by what,
    /// until when (`time` renders a Unix time).
    pub fn sentence(&self, time: impl Fn(i64) -> String) -> String {
        let by = match self.lifted_by.as_slice() {
            [one] => format!("the negative test {one}"),
            many => format!("the negative tests {}", many.join(", ")),
        };
        let until = match self.lifted_until {
            Some(t) => format!("until {}", time(t)),
            None => "for good".to_owned(),
        };
        format!(
            "Rule {} ({}) does not apply: {by}, taken after {}, lifts it {until}.",
            self.rule_id,
            self.description,
            self.record_ids.join(", ")
        )
    }
}

/// A resident's score and its explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// 0 to 100.
    pub score: u32,
    /// The colour band.
    pub colour: Colour,
    /// When a badge issued now would expire.
    pub valid_until: i64,
    /// The policy version applied.
    pub policy_version: u32,
    /// The rules that fired, in policy order.
    pub fired: Vec<FiredRule>,
    /// The rules that did not fire only because a later negative test lifts
    /// them, in policy order.
    pub lifted: Vec<LiftedRule>,
}

impl Policy {
    /// Parses and checks a policy file.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let policy: Policy = toml::from_str(text).map_err(|e| {
            let reason = toml_reason(&e);
            if reason.contains("unknown field") || reason.contains("unknown variant") {
                PolicyError::OutsideSchema(reason)
            } else {
                PolicyError::Parse(reason)
            }
        })?;
        policy.check()?;
        Ok(policy)
    }

    /// The built-in default policy.
    pub fn default_policy() -> Result<Self, PolicyError> {
        Self::parse(DEFAULT_POLICY)
    }

    /// The version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn check(&self) -> Result<(), PolicyError> {
        if self.version == 0 {
            return Err(PolicyError::Invalid("version must be 1 or more".into()));
        }
        if self.base_score > 100 {
            return Err(PolicyError::Invalid("base_score must be 0 to 100".into()));
        }
        if !(self.bands.red_below <= self.bands.yellow_below && self.bands.yellow_below <= 100) {
            return Err(PolicyError::Invalid(
                "bands must satisfy red_below <= yellow_below <= 100".into(),
            ));
        }
        let v = &self.validity;
        if [v.green_hours, v.yellow_hours, v.red_hours]
            .iter()
            .any(|&h| h == 0 || h > 24 * 30)
        {
            return Err(PolicyError::Invalid(
                "validity hours must be 1 to 720".into(),
            ));
        }
        let mut ids = std::collections::HashSet::new();
        for rule in &self.rules {
            let bad = |reason: String| PolicyError::Rule {
                rule: rule.id.clone(),
                reason,
            };
            if rule.id.is_empty() || !ids.insert(rule.id.clone()) {
                return Err(bad("rule ids must be non-empty and unique".into()));
            }
            if rule.description.trim().is_empty() {
                return Err(bad("a rule needs a description".into()));
            }
            if !(-100..=100).contains(&rule.score) {
                return Err(bad("score must be -100 to 100".into()));
            }
            rule.when.check_applies_to(rule.record).map_err(bad)?;
            if let Some(u) = &rule.unless_later {
                u.when.check_applies_to(u.record).map_err(bad)?;
            }
            if let (Some(within), Some(older)) = (rule.within_hours, rule.older_than_hours)
                && older >= within
            {
                return Err(bad("older_than_hours must be less than within_hours".into()));
            }
            rule.check_monotone().map_err(bad)?;
        }
        Ok(())
    }

    fn validity_secs(&self, colour: Colour) -> i64 {
        i64::from(match colour {
            Colour::Green => self.validity.green_hours,
            Colour::Yellow => self.validity.yellow_hours,
            Colour::Red => self.validity.red_hours,
        }) * HOUR
    }

    fn band(&self, score: u32) -> Colour {
        if score < self.bands.red_below {
            Colour::Red
        } else if score < self.bands.yellow_below {
            Colour::Yellow
        } else {
            Colour::Green
        }
    }
}
