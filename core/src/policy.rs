//! How a resident scores: a published, versioned policy of rules over
//! infection-risk records, applied by a pure, deterministic function of
//! (records, policy, now) that also explains itself.

use serde::Deserialize;
use tessera_proto::v1 as pb;

use crate::Colour;

mod zh;

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
pub const DEFAULT_POLICY: &str = include_str!("../policy/default.toml");

const HOUR: i64 = 3600;
/// Shortest validity a badge is given, even when a rule's cap has just passed.
pub const MIN_VALIDITY_SECS: i64 = 60;

/// Why a policy file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ColourName {
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
enum TestKindName {
    Pcr,
    Antigen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ContactName {
    Close,
    Secondary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RiskName {
    Low,
    Medium,
    High,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SymptomName {
    Fever,
    Cough,
    SoreThroat,
    LossOfTasteOrSmell,
    ShortnessOfBreath,
    Fatigue,
}

impl SymptomName {
    fn to_proto(self) -> i32 {
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
struct Conditions {
    /// test: the result.
    positive: Option<bool>,
    /// test: the kind.
    test_kind: Option<TestKindName>,
    /// exposure: the contact level.
    contact: Option<ContactName>,
    /// travel: the area's risk is at least this.
    min_risk: Option<RiskName>,
    /// vaccination: the dose is at least this.
    min_dose: Option<u32>,
    /// symptoms: at least one of these was declared.
    any_symptom_of: Option<Vec<SymptomName>>,
}

impl Conditions {
    fn check_applies_to(&self, record: RecordType) -> Result<(), String> {
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

    fn matches(&self, record: &pb::Record) -> bool {
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
struct UnlessLater {
    record: RecordType,
    #[serde(default)]
    when: Conditions,
    /// How long a lifting record holds the rule off, counted from its own
    /// time (inclusive, like `within_hours`); `None`: for good.
    #[serde(default)]
    lifts_for_hours: Option<u32>,
}

impl UnlessLater {
    /// How a record dated `at` stands against this clause at `now`: `None`
    /// if no matching record is dated after it; otherwise the ids of the
    /// matching later records that still hold it off and when that hold
    /// ends (`None`: for good), or an empty list if every one has lapsed.
    fn lift(
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
struct Rule {
    id: String,
    description: String,
    record: RecordType,
    #[serde(default)]
    within_hours: Option<u32>,
    #[serde(default)]
    older_than_hours: Option<u32>,
    #[serde(default)]
    when: Conditions,
    #[serde(default)]
    unless_later: Option<UnlessLater>,
    #[serde(default)]
    latest_only: bool,
    #[serde(default)]
    score: i32,
    #[serde(default)]
    colour: Option<ColourName>,
    #[serde(default)]
    valid_hours_after_record: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Bands {
    yellow_below: u32,
    red_below: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Validity {
    green_hours: u32,
    yellow_hours: u32,
    red_hours: u32,
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

    /// Scores `records` at `now`. Pure and deterministic: the same records,
    /// policy and time always give the same assessment, whatever their order.
    pub fn assess(&self, records: &[pb::Record], now: i64) -> Assessment {
        let mut sorted: Vec<(RecordType, i64, &pb::Record)> = records
            .iter()
            .filter_map(|r| type_and_time(r).map(|(t, at)| (t, at, r)))
            .collect();
        sorted.sort_by(|a, b| {
            a.1.cmp(&b.1)
                .then_with(|| a.2.record_id.cmp(&b.2.record_id))
        });
        let outcome = self.outcome(&sorted, now);
        let mut valid_until = now + self.validity_secs(outcome.colour);
        if let Some(cap) = outcome.cap {
            valid_until = valid_until.min(cap);
        }
        // The badge ends before its colour would turn worse on these same
        // records: when a negative test stops lifting a rule, an
        // `older_than_hours` rule starts to fire, or a rule that raised the
        // score stops.
        if let Some(worse) = self.worsens_at(&sorted, now, outcome.colour, valid_until) {
            valid_until = valid_until.min(worse - 1);
        }
        Assessment {
            score: outcome.score,
            colour: outcome.colour,
            valid_until: valid_until.max(now + MIN_VALIDITY_SECS),
            policy_version: self.version,
            fired: outcome.fired,
            lifted: outcome.lifted,
        }
    }

    /// Score, colour, earliest rule cap, and the rules that fired and were
    /// lifted, at `now`.
    fn outcome(&self, sorted: &[(RecordType, i64, &pb::Record)], now: i64) -> Outcome {
        let mut total = i64::from(self.base_score);
        let mut colour = Colour::Green;
        let mut cap: Option<i64> = None;
        let mut fired = vec![];
        let mut lifted = vec![];
        for rule in &self.rules {
            match self.fire(rule, sorted, now) {
                Fire::Fired(f) => {
                    total += i64::from(f.score_delta);
                    if let Some(c) = f.colour {
                        colour = colour.max(c);
                    }
                    if let Some(c) = f.valid_until_cap {
                        cap = Some(cap.map_or(c, |old| old.min(c)));
                    }
                    fired.push(f);
                }
                Fire::Lifted(l) => lifted.push(l),
                Fire::No => {}
            }
        }
        let score = u32::try_from(total.clamp(0, 100)).unwrap_or(0);
        Outcome {
            score,
            colour: colour.max(self.band(score)),
            cap,
            fired,
            lifted,
        }
    }

    /// The first second in `(now, until]` at which the same records would
    /// score a worse colour than `colour`, if any. The outcome changes only
    /// when a lift lapses (`lifts_for_hours`), a record grows old enough for
    /// an `older_than_hours` rule, or one grows too old for `within_hours`
    /// (which can worsen the colour when the rule raised the score).
    fn worsens_at(
        &self,
        sorted: &[(RecordType, i64, &pb::Record)],
        now: i64,
        colour: Colour,
        until: i64,
    ) -> Option<i64> {
        let mut times = vec![];
        for rule in &self.rules {
            if let Some(u) = &rule.unless_later
                && let Some(h) = u.lifts_for_hours
            {
                times.extend(
                    sorted
                        .iter()
                        .filter(|(t, _, r)| *t == u.record && u.when.matches(r))
                        .map(|(_, at, _)| at + i64::from(h) * HOUR + 1),
                );
            }
            for h in [rule.older_than_hours, rule.within_hours]
                .into_iter()
                .flatten()
            {
                times.extend(
                    sorted
                        .iter()
                        .filter(|(t, _, _)| *t == rule.record)
                        .map(|(_, at, _)| at + i64::from(h) * HOUR + 1),
                );
            }
        }
        times.retain(|t| *t > now && *t <= until);
        times.sort_unstable();
        times.dedup();
        times
            .into_iter()
            .find(|&t| self.outcome(sorted, t).colour > colour)
    }

    fn fire(&self, rule: &Rule, sorted: &[(RecordType, i64, &pb::Record)], now: i64) -> Fire {
        let mut of_type = sorted.iter().filter(|(t, _, _)| *t == rule.record);
        let candidates: Vec<&(RecordType, i64, &pb::Record)> = if rule.latest_only {
            of_type.next_back().into_iter().collect()
        } else {
            of_type.collect()
        };
        let in_age = |at: i64| {
            let age = (now - at).max(0);
            rule.within_hours.is_none_or(|h| age <= i64::from(h) * HOUR)
                && rule
                    .older_than_hours
                    .is_none_or(|h| age > i64::from(h) * HOUR)
        };
        let mut hits: Vec<&(RecordType, i64, &pb::Record)> = vec![];
        let mut held: Vec<String> = vec![];
        let mut lifted_by: Vec<String> = vec![];
        let mut ends: Vec<Option<i64>> = vec![];
        for candidate in candidates {
            let (_, at, r) = candidate;
            if !(rule.when.matches(r) && in_age(*at)) {
                continue;
            }
            match rule
                .unless_later
                .as_ref()
                .and_then(|u| u.lift(*at, sorted, now))
            {
                Some((by, end)) if !by.is_empty() => {
                    held.push(r.record_id.clone());
                    for id in by {
                        if !lifted_by.contains(&id) {
                            lifted_by.push(id);
                        }
                    }
                    ends.push(end);
                }
                _ => hits.push(candidate),
            }
        }
        if let Some(latest) = hits.iter().map(|(_, at, _)| *at).max() {
            return Fire::Fired(FiredRule {
                rule_id: rule.id.clone(),
                description: rule.description.clone(),
                record_ids: hits.iter().map(|(_, _, r)| r.record_id.clone()).collect(),
                score_delta: rule.score,
                colour: rule.colour.map(Colour::from),
                valid_until_cap: rule
                    .valid_hours_after_record
                    .map(|h| latest + i64::from(h) * HOUR),
            });
        }
        if held.is_empty() {
            return Fire::No;
        }
        Fire::Lifted(LiftedRule {
            rule_id: rule.id.clone(),
            description: rule.description.clone(),
            record_ids: held,
            lifted_by,
            lifted_until: ends.into_iter().flatten().min(),
        })
    }
}

/// What [`Policy::outcome`] finds at one moment.
struct Outcome {
    score: u32,
    colour: Colour,
    cap: Option<i64>,
    fired: Vec<FiredRule>,
    lifted: Vec<LiftedRule>,
}

/// What one rule does to one resident at one moment.
enum Fire {
    Fired(FiredRule),
    Lifted(LiftedRule),
    No,
}

fn span(hours: u32) -> String {
    match hours {
        1 => "1 hour".into(),
        h if h % 24 == 0 && h / 24 == 1 => "1 day".into(),
        h if h % 24 == 0 => format!("{} days", h / 24),
        h => format!("{h} hours"),
    }
}

fn symptom_words(s: SymptomName) -> &'static str {
    match s {
        SymptomName::Fever => "fever",
        SymptomName::Cough => "cough",
        SymptomName::SoreThroat => "sore throat",
        SymptomName::LossOfTasteOrSmell => "loss of taste or smell",
        SymptomName::ShortnessOfBreath => "shortness of breath",
        SymptomName::Fatigue => "fatigue",
    }
}

fn colour_words(c: ColourName) -> &'static str {
    match c {
        ColourName::Green => "green",
        ColourName::Yellow => "yellow",
        ColourName::Red => "red",
    }
}

/// What records a rule (or its `unless_later`) looks at, in words:
/// "a positive PCR test", "a close contact", ...
fn subject(record: RecordType, when: &Conditions) -> String {
    match record {
        RecordType::Test => {
            let result = match when.positive {
                Some(true) => "positive ",
                Some(false) => "negative ",
                None => "",
            };
            let kind = match when.test_kind {
                Some(TestKindName::Pcr) => "PCR ",
                Some(TestKindName::Antigen) => "antigen ",
                None => "",
            };
            format!("a {result}{kind}test")
        }
        RecordType::Vaccination => match when.min_dose {
            Some(d) => format!("a vaccination (dose {d} or later)"),
            None => "a vaccination".into(),
        },
        RecordType::Exposure => match when.contact {
            Some(ContactName::Close) => "a close contact".into(),
            Some(ContactName::Secondary) => "a secondary contact".into(),
            None => "an exposure notice".into(),
        },
        RecordType::Travel => match when.min_risk {
            Some(RiskName::High) => "a departure from a high-risk area".into(),
            Some(RiskName::Medium) => "a departure from a medium- or high-risk area".into(),
            Some(RiskName::Low) | None => "a departure from a risk area".into(),
        },
        RecordType::Symptoms => match &when.any_symptom_of {
            Some(any) if !any.is_empty() => {
                let words: Vec<&str> = any.iter().map(|s| symptom_words(*s)).collect();
                format!("a declaration of {}", join_or(&words))
            }
            _ => "a symptom declaration".into(),
        },
    }
}

fn join_or(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The verb for a record's time, as the record schema names it.
fn timed(record: RecordType) -> &'static str {
    match record {
        RecordType::Test => "sampled",
        RecordType::Vaccination => "given",
        RecordType::Exposure | RecordType::Travel | RecordType::Symptoms => "",
    }
}

fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl Rule {
    /// Whether the rule can fire on a negative test.
    fn can_fire_on_negative_test(&self) -> bool {
        self.record == RecordType::Test && self.when.positive != Some(true)
    }

    /// Whether the rule can fire on a risk record: a positive test, an
    /// exposure, travel or a symptom declaration.
    fn can_fire_on_risk(&self) -> bool {
        match self.record {
            RecordType::Test => self.when.positive != Some(false),
            RecordType::Vaccination => false,
            RecordType::Exposure | RecordType::Travel | RecordType::Symptoms => true,
        }
    }

    /// The checks that make a policy monotone (docs/POLICY.md, "Getting
    /// tested never makes a badge worse"): a negative test only ever lifts
    /// risk rules, a risk record only ever counts against the resident.
    fn check_monotone(&self) -> Result<(), String> {
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

    /// The rule in one plain sentence, generated from its fields (not from
    /// its description), so what is read is what is applied.
    fn sentence(&self) -> String {
        let mut s = capitalised(&subject(self.record, &self.when));
        if self.latest_only {
            s.push_str(" (only the latest of its kind counts)");
        }
        let mut ages = vec![];
        if let Some(h) = self.within_hours {
            ages.push(format!("within the last {}", span(h)));
        }
        if let Some(h) = self.older_than_hours {
            ages.push(format!("more than {} ago", span(h)));
        }
        if !ages.is_empty() {
            let verb = timed(self.record);
            let space = if verb.is_empty() { "" } else { " " };
            s.push_str(&format!("{space}{verb} {}", ages.join(" and ")));
        }
        if let Some(u) = &self.unless_later {
            let verb = match timed(u.record) {
                "" => "recorded",
                verb => verb,
            };
            let lifter = subject(u.record, &u.when);
            s.push_str(&match u.lifts_for_hours {
                None => format!(", unless {lifter} was {verb} after it"),
                Some(h) => format!(
                    ", unless {lifter} was {verb} after it within the last {} (such a test lifts the rule for {} after it was {verb}, and a badge it makes better ends then)",
                    span(h),
                    span(h)
                ),
            });
        }
        let mut effects = vec![];
        if self.score != 0 || (self.colour.is_none() && self.valid_hours_after_record.is_none()) {
            effects.push(if self.score < 0 {
                format!("score \u{2212}{}", self.score.unsigned_abs())
            } else {
                format!("score +{}", self.score)
            });
        }
        if let Some(c) = self.colour {
            effects.push(format!("colour at least {}", colour_words(c)));
        }
        if let Some(h) = self.valid_hours_after_record {
            effects.push(format!("badge valid at most {} after the record", span(h)));
        }
        format!("{s}: {}.", effects.join(", "))
    }
}

impl Policy {
    /// Every rule in one plain sentence each, in policy order, generated
    /// from the rule's fields, e.g. "A positive test sampled within the last
    /// 14 days: score −100, colour at least red."
    pub fn rule_sentences(&self) -> Vec<(String, String)> {
        self.rules
            .iter()
            .map(|r| (r.id.clone(), r.sentence()))
            .collect()
    }

    /// How scores, bands and validity work under this policy, in plain words.
    pub fn summary_sentences(&self) -> Vec<String> {
        let v = &self.validity;
        vec![
            format!(
                "Everyone starts at {} points; every rule that applies adds its score, and the total is kept between 0 and 100.",
                self.base_score
            ),
            format!(
                "Below {} points the badge is red, below {} yellow, otherwise green; a rule's colour can only make it worse.",
                self.bands.red_below, self.bands.yellow_below
            ),
            format!(
                "A green badge is valid for {}, a yellow one for {}, a red one for {}, unless a rule ends it earlier.",
                span(v.green_hours),
                span(v.yellow_hours),
                span(v.red_hours)
            ),
            "A negative test never counts against anyone: it only lifts the rules that name it below, for as long as they say; a badge it makes better ends when that lift ends, and only if the colour would then be worse.".to_owned(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_in_plain_words_from_their_fields() {
        let policy = Policy::default_policy().unwrap();
        let sentences: Vec<String> = policy
            .rule_sentences()
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        assert_eq!(
            sentences,
            [
                "A positive test sampled within the last 14 days: score \u{2212}100, colour at least red.",
                "A close contact within the last 14 days, unless a negative test was sampled after it within the last 3 days (such a test lifts the rule for 3 days after it was sampled, and a badge it makes better ends then): score \u{2212}40, colour at least yellow.",
                "A secondary contact within the last 7 days, unless a negative test was sampled after it within the last 3 days (such a test lifts the rule for 3 days after it was sampled, and a badge it makes better ends then): score \u{2212}20.",
                "A departure from a high-risk area within the last 7 days, unless a negative test was sampled after it within the last 3 days (such a test lifts the rule for 3 days after it was sampled, and a badge it makes better ends then): score \u{2212}40, colour at least yellow.",
                "A departure from a medium- or high-risk area within the last 7 days: score \u{2212}15.",
                "A declaration of fever, loss of taste or smell or shortness of breath within the last 3 days, unless a negative test was sampled after it within the last 3 days (such a test lifts the rule for 3 days after it was sampled, and a badge it makes better ends then): score \u{2212}30, colour at least yellow.",
            ]
        );
    }
}
