//! The policy file's schema: the names a rule may use, its conditions,
//! its `unless_later` clause, bands and validity, and the checks that keep
//! a rule monotone.

use serde::Deserialize;
use tessera_proto::v1 as pb;

use super::{HOUR, RecordType};
use crate::Colour;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum ColourName {
    Green,
    Yellow,
    Red,
}

impl From<ColourName> for Colour {
    fn from(c: ColourName) -> Self {
        match c {
            ColourName::Green => Colour::Green,
            ColourName::Yellow => Colour::Yellow,
            ColourName::Red => Colour::Red,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum TestKindName {
    Pcr,
    Antigen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum ContactName {
    Close,
    Secondary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum RiskName {
    Low,
    Medium,
    High,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum SymptomName {
    Fever,
    Cough,
    SoreThroat,
    LossOfTasteOrSmell,
    ShortnessOfBreath,
    Fatigue,
}

impl SymptomName {
    pub(super) fn to_proto(self) -> i32 {
        (match self {
            SymptomName::Fever => pb::Symptom::Fever,
            SymptomName::Cough => pb::Symptom::Cough,
            SymptomName::SoreThroat => pb::Symptom::SoreThroat,
            SymptomName::LossOfTasteOrSmell => pb::Symptom::LossOfTasteOrSmell,
            SymptomName::ShortnessOfBreath => pb::Symptom::ShortnessOfBreath,
            SymptomName::Fatigue => pb::Symptom::Fatigue,
        }) as i32
    }
}

/// Conditions on a record's values; each applies to one record type.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Conditions {
    /// test: the result.
    pub(super) positive: Option<bool>,
    /// test: the kind.
    pub(super) test_kind: Option<TestKindName>,
    /// exposure: the contact level.
    pub(super) contact: Option<ContactName>,
    /// travel: the area's risk is at least this.
    pub(super) min_risk: Option<RiskName>,
    /// vaccination: the dose is at least this.
    pub(super) min_dose: Option<u32>,
    /// symptoms: at least one of these was declared.
    pub(super) any_symptom_of: Option<Vec<SymptomName>>,
}

impl Conditions {
    pub(super) fn check_applies_to(&self, record: RecordType) -> Result<(), String> {
        let fields: [(&str, bool, RecordType); 6] = [
            ("positive", self.positive.is_some(), RecordType::Test),
            ("test_kind", self.test_kind.is_some(), RecordType::Test),
            ("contact", self.contact.is_some(), RecordType::Exposure),
            ("min_risk", self.min_risk.is_some(), RecordType::Travel),
            ("min_dose", self.min_dose.is_some(), RecordType::Vaccination),
            (
                "any_symptom_of",
                self.any_symptom_of.is_some(),
                RecordType::Symptoms,
            ),
        ];
        for (name, set, applies) in fields {
            if set && applies != record {
                return Err(format!(
                    "condition {name} does not apply to {record:?} records"
                ));
            }
        }
        Ok(())
    }

    pub(super) fn matches(&self, record: &pb::Record) -> bool {
        use pb::record::Kind;
        match &record.kind {
            Some(Kind::Test(t)) => {
                self.positive.is_none_or(|p| p == t.positive)
                    && self.test_kind.is_none_or(|k| {
                        t.kind
                            == (match k {
                                TestKindName::Pcr => pb::TestKind::Pcr,
                                TestKindName::Antigen => pb::TestKind::Antigen,
                            }) as i32
                    })
            }
            Some(Kind::Exposure(e)) => self.contact.is_none_or(|c| {
                e.level
                    == (match c {
                        ContactName::Close => pb::ContactLevel::Close,
                        ContactName::Secondary => pb::ContactLevel::Secondary,
                    }) as i32
            }),
            Some(Kind::Travel(t)) => self.min_risk.is_none_or(|min| {
                let level = match pb::RiskLevel::try_from(t.level) {
                    Ok(pb::RiskLevel::High) => RiskName::High,
                    Ok(pb::RiskLevel::Medium) => RiskName::Medium,
                    _ => RiskName::Low,
                };
                level >= min
            }),
            Some(Kind::Vaccination(v)) => self.min_dose.is_none_or(|d| v.dose >= d),
            Some(Kind::Symptoms(s)) => self
                .any_symptom_of
                .as_ref()
                .is_none_or(|any| any.iter().any(|want| s.symptoms.contains(&want.to_proto()))),
            None => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UnlessLater {
    pub(super) record: RecordType,
    #[serde(default)]
    pub(super) when: Conditions,
    /// How long a lifting record holds the rule off, counted from its own
    /// time (inclusive, like `within_hours`); `None`: for good.
    #[serde(default)]
    pub(super) lifts_for_hours: Option<u32>,
}

impl UnlessLater {
    /// How a record dated `at` stands against this clause at `now`: `None`
    /// if no matching record is dated after it; otherwise the ids of the
    /// matching later records that still hold it off and when that hold
    /// ends (`None`: for good), or an empty list if every one has lapsed.
    pub(super) fn lift(
        &self,
        at: i64,
        sorted: &[(RecordType, i64, &pb::Record)],
        now: i64,
    ) -> Option<(Vec<String>, Option<i64>)> {
        let later: Vec<&(RecordType, i64, &pb::Record)> = sorted
            .iter()
            .filter(|(t, when, r)| *t == self.record && *when > at && self.when.matches(r))
            .collect();
        if later.is_empty() {
            return None;
        }
        let Some(hours) = self.lifts_for_hours else {
            return Some((
                later.iter().map(|(_, _, r)| r.record_id.clone()).collect(),
                None,
            ));
        };
        let span = i64::from(hours) * HOUR;
        let holding: Vec<&&(RecordType, i64, &pb::Record)> = later
            .iter()
            .filter(|(_, when, _)| (now - when).max(0) <= span)
            .collect();
        let until = holding.iter().map(|(_, when, _)| when + span).max();
        Some((
            holding
                .iter()
                .map(|(_, _, r)| r.record_id.clone())
                .collect(),
            until,
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Rule {
    pub(super) id: String,
    pub(super) description: String,
    pub(super) record: RecordType,
    #[serde(default)]
    pub(super) within_hours: Option<u32>,
    #[serde(default)]
    pub(super) older_than_hours: Option<u32>,
    #[serde(default)]
    pub(super) when: Conditions,
    #[serde(default)]
    pub(super) unless_later: Option<UnlessLater>,
    #[serde(default)]
    pub(super) latest_only: bool,
    #[serde(default)]
    pub(super) score: i32,
    #[serde(default)]
    pub(super) colour: Option<ColourName>,
    #[serde(default)]
    pub(super) valid_hours_after_record: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Bands {
    pub(super) yellow_below: u32,
    pub(super) red_below: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Validity {
    pub(super) green_hours: u32,
    pub(super) yellow_hours: u32,
    pub(super) red_hours: u32,
}

impl Rule {
    /// Whether the rule can fire on a negative test.
    pub(super) fn can_fire_on_negative_test(&self) -> bool {
        self.record == RecordType::Test && self.when.positive != Some(true)
    }

    /// Whether the rule can fire on a risk record: a positive test, an
    /// exposure, travel or a symptom declaration.
    pub(super) fn can_fire_on_risk(&self) -> bool {
        match self.record {
            RecordType::Test => self.when.positive != Some(false),
            RecordType::Vaccination => false,
            RecordType::Exposure | RecordType::Travel | RecordType::Symptoms => true,
        }
    }

    /// The checks that make a policy monotone (docs/POLICY.md, "Getting
    /// tested never makes a badge worse"): a negative test only ever lifts
    /// risk rules, a risk record only ever counts against the resident.
    pub(super) fn check_monotone(&self) -> Result<(), String> {
        if self.can_fire_on_negative_test()
            && (self.score != 0 || self.colour.is_some() || self.valid_hours_after_record.is_some())
        {
            return Err("a rule that can fire on a negative test must not change the score, the colour or the validity (a negative test may only lift risk rules, through their unless_later and its lifts_for_hours); match only positive tests with when = { positive = true }, or drop score, colour and valid_hours_after_record".into());
        }
        if self.can_fire_on_risk() && self.score > 0 {
            return Err("a rule over risk records (positive tests, exposures, travel, symptoms) must not raise the score: adding a risk record would make a badge better".into());
        }
        if self.valid_hours_after_record.is_some() && !self.can_fire_on_risk() {
            return Err("only a rule over risk records (positive tests, exposures, travel, symptoms) may cap validity with valid_hours_after_record: a vaccination or a negative test must never shorten a badge".into());
        }
        if let Some(u) = &self.unless_later {
            if !(u.record == RecordType::Test && u.when.positive == Some(false)) {
                return Err("unless_later must name negative tests (record = \"test\", when = { positive = false, ... }): only a negative test may lift a rule, so that adding a risk record never makes a badge better".into());
            }
            if self.score > 0 {
                return Err("a rule with unless_later must not raise the score: a negative test lifting it would make the badge worse".into());
            }
            if u.lifts_for_hours.is_some_and(|h| h == 0 || h > 24 * 30) {
                return Err("lifts_for_hours must be 1 to 720".into());
            }
        }
        let has_effect =
            self.score != 0 || self.colour.is_some() || self.valid_hours_after_record.is_some();
        if self.latest_only
            && has_effect
            && self.can_fire_on_risk()
            && !(self.record == RecordType::Test
                && self.when.positive == Some(true)
                && self.when.test_kind.is_none()
                && self.older_than_hours.is_none())
        {
            return Err("latest_only on a rule over risk records is allowed only as \"the latest test is positive\" (record = \"test\", when = { positive = true }, no test_kind, no older_than_hours): otherwise a newer record could stop the rule from firing and make a badge better".into());
        }
        Ok(())
    }
}
