//! The records a node accepts: infection-risk data only, validated whole
//! before anything is stored. There is no field for anything else.

use tessera_proto::v1 as pb;

use crate::pseudonym::{NationalId, NationalIdError};

/// Records older than this (2019-12-01) are refused as mistyped.
pub const EARLIEST_RECORD: i64 = 1_575_158_400;
/// How far in the future a record's time may lie (clock skew).
pub const FUTURE_SKEW_SECS: i64 = 300;
/// Longest record id, lab, product or source, in characters.
pub const MAX_TEXT: usize = 64;

/// What kind of record; defined beside the policy parser in core, which the
/// gateway shares.
pub use tessera_core::policy::{RecordType, type_and_time};

/// Seconds in a retention day.
pub const DAY: i64 = 86_400;

/// How long records and badge states are kept (`[retention]`). A record is
/// kept while its time (sampled, given, exposed, left, declared) is at most
/// its type's days old, and is past retention one second later: from then
/// on it counts for nothing and the sweep deletes it. A badge state is kept
/// `badge_days` after the badge's `valid_until`; then its status is UNKNOWN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Days a test result is kept.
    pub test_days: u32,
    /// Days a vaccination is kept.
    pub vaccination_days: u32,
    /// Days an exposure notice is kept.
    pub exposure_days: u32,
    /// Days a travel record is kept.
    pub travel_days: u32,
    /// Days a symptom declaration is kept.
    pub symptoms_days: u32,
    /// Days a badge state is kept after the badge's `valid_until`.
    pub badge_days: u32,
}

impl Default for Retention {
    /// 28 days for tests, exposures, travel and symptoms (twice the
    /// longest window the default policy looks back, 14 days), 365 for
    /// vaccinations, 7 after a badge expires.
    fn default() -> Self {
        Self {
            test_days: 28,
            vaccination_days: 365,
            exposure_days: 28,
            travel_days: 28,
            symptoms_days: 28,
            badge_days: 7,
        }
    }
}

impl Retention {
    /// Shortest and longest retention, in days.
    pub const RANGE: std::ops::RangeInclusive<u32> = 1..=3650;

    /// Days a record of `kind` is kept.
    pub fn days(&self, kind: RecordType) -> u32 {
        match kind {
            RecordType::Test => self.test_days,
            RecordType::Vaccination => self.vaccination_days,
            RecordType::Exposure => self.exposure_days,
            RecordType::Travel => self.travel_days,
            RecordType::Symptoms => self.symptoms_days,
        }
    }

    /// The latest record time of `kind` that is past retention at `now`:
    /// records dated before `now - days` are expired.
    pub fn cutoff(&self, kind: RecordType, now: i64) -> i64 {
        now.saturating_sub(i64::from(self.days(kind)) * DAY)
    }

    /// Whether a record of `kind` dated `at` is past retention at `now`.
    pub fn expired(&self, kind: RecordType, at: i64, now: i64) -> bool {
        at < self.cutoff(kind, now)
    }

    /// Badges whose `valid_until` is before this are past retention at `now`.
    pub fn badge_cutoff(&self, now: i64) -> i64 {
        now.saturating_sub(i64::from(self.badge_days) * DAY)
    }
}

/// Why one record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// No record id.
    #[error("record_id is missing")]
    MissingId,
    /// Record id too long or with odd characters.
    #[error("record_id must be 1 to 64 printable ASCII characters")]
    BadId,
    /// The national ID is wrong.
    #[error("national_id: {0}")]
    NationalId(#[from] NationalIdError),
    /// No record type set (or one this node does not know).
    #[error("record has no known type (test, vaccination, exposure, travel or symptoms)")]
    UnknownType,
    /// A required field is missing or unspecified.
    #[error("{0} is missing")]
    Missing(&'static str),
    /// A time in the future.
    #[error("{field} is in the future")]
    Future {
        /// The field.
        field: &'static str,
    },
    /// A time before the earliest accepted date.
    #[error("{field} is before 2019-12-01")]
    TooOld {
        /// The field.
        field: &'static str,
    },
    /// A value out of range.
    #[error("{0}")]
    Invalid(String),
    /// The record is already past its type's retention period.
    #[error(
        "{} record dated {at} is past the {days}-day retention of {} records and would be deleted at once",
        kind.name(),
        kind.name()
    )]
    PastRetention {
        /// Its type.
        kind: RecordType,
        /// Its time.
        at: i64,
        /// The type's retention in days.
        days: u32,
    },
}

/// A record that passed validation, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidRecord {
    /// The client-supplied id.
    pub record_id: String,
    /// The resident's ID number (pseudonymised before storage).
    pub national_id: NationalId,
    /// The record, with `national_id` cleared: what is stored.
    pub stored: pb::Record,
}

fn check_time(field: &'static str, t: i64, now: i64) -> Result<(), RecordError> {
    if t == 0 {
        return Err(RecordError::Missing(field));
    }
    if t > now + FUTURE_SKEW_SECS {
        return Err(RecordError::Future { field });
    }
    if t < EARLIEST_RECORD {
        return Err(RecordError::TooOld { field });
    }
    Ok(())
}

fn check_text(field: &'static str, s: &str) -> Result<(), RecordError> {
    if s.trim().is_empty() {
        return Err(RecordError::Missing(field));
    }
    if s.chars().count() > MAX_TEXT || s.chars().any(char::is_control) {
        return Err(RecordError::Invalid(format!(
            "{field} must be at most {MAX_TEXT} characters"
        )));
    }
    Ok(())
}

/// Validates one record received at `now`.
pub fn validate(record: &pb::Record, now: i64) -> Result<ValidRecord, RecordError> {
    use pb::record::Kind;
    if record.record_id.is_empty() {
        return Err(RecordError::MissingId);
    }
    if record.record_id.len() > MAX_TEXT || !record.record_id.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(RecordError::BadId);
    }
    if record.national_id.is_empty() {
        return Err(RecordError::Missing("national_id"));
    }
    let national_id = NationalId::parse(&record.national_id)?;
    match record.kind.as_ref().ok_or(RecordError::UnknownType)? {
        Kind::Test(t) => {
            if pb::TestKind::try_from(t.kind).unwrap_or(pb::TestKind::Unspecified)
                == pb::TestKind::Unspecified
            {
                return Err(RecordError::Missing("test kind"));
            }
            check_time("sampled_at", t.sampled_at, now)?;
            check_text("lab", &t.lab)?;
        }
        Kind::Vaccination(v) => {
            check_text("product", &v.product)?;
            if !(1..=10).contains(&v.dose) {
                return Err(RecordError::Invalid("dose must be 1 to 10".into()));
            }
            check_time("given_at", v.given_at, now)?;
        }
        Kind::Exposure(e) => {
            if pb::ContactLevel::try_from(e.level).unwrap_or(pb::ContactLevel::Unspecified)
                == pb::ContactLevel::Unspecified
            {
                return Err(RecordError::Missing("contact level"));
            }
            check_time("exposed_at", e.exposed_at, now)?;
            check_text("source", &e.source)?;
        }
        Kind::Travel(t) => {
            let area = t.area_code;
            if !(110_000..=829_999).contains(&area) {
                return Err(RecordError::Invalid(format!(
                    "area_code {area} is not an administrative division code"
                )));
            }
            if pb::RiskLevel::try_from(t.level).unwrap_or(pb::RiskLevel::Unspecified)
                == pb::RiskLevel::Unspecified
            {
                return Err(RecordError::Missing("risk level"));
            }
            check_time("left_at", t.left_at, now)?;
        }
        Kind::Symptoms(s) => {
            check_time("declared_at", s.declared_at, now)?;
            let mut seen = std::collections::HashSet::new();
            for &symptom in &s.symptoms {
                if pb::Symptom::try_from(symptom).unwrap_or(pb::Symptom::Unspecified)
                    == pb::Symptom::Unspecified
                {
                    return Err(RecordError::Invalid(format!("unknown symptom {symptom}")));
                }
                if !seen.insert(symptom) {
                    return Err(RecordError::Invalid("a symptom is listed twice".into()));
                }
            }
        }
    }
    let mut stored = record.clone();
    stored.national_id.clear();
    Ok(ValidRecord {
        record_id: record.record_id.clone(),
        national_id,
        stored,
    })
}
