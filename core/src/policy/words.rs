//! The policy in plain words, generated from the rules' fields (not from
//! their descriptions), so what is read is what is applied.

use super::schema::*;
use super::*;

pub(super) fn span(hours: u32) -> String {
    match hours {
        1 => "1 hour".into(),
        h if h % 24 == 0 && h / 24 == 1 => "1 day".into(),
        h if h % 24 == 0 => format!("{} days", h / 24),
        h => format!("{h} hours"),
    }
}

pub(super) fn symptom_words(s: SymptomName) -> &'static str {
    match s {
        SymptomName::Fever => "fever",
        SymptomName::Cough => "cough",
        SymptomName::SoreThroat => "sore throat",
        SymptomName::LossOfTasteOrSmell => "loss of taste or smell",
        SymptomName::ShortnessOfBreath => "shortness of breath",
        SymptomName::Fatigue => "fatigue",
    }
}

pub(super) fn colour_words(c: ColourName) -> &'static str {
    match c {
        ColourName::Green => "green",
        ColourName::Yellow => "yellow",
        ColourName::Red => "red",
    }
}

/// What records a rule (or its `unless_later`) looks at, in words:
/// "a positive PCR test", "a close contact", ...
pub(super) fn subject(record: RecordType, when: &Conditions) -> String {
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

pub(super) fn join_or(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The verb for a record's time, as the record schema names it.
pub(super) fn timed(record: RecordType) -> &'static str {
    match record {
        RecordType::Test => "sampled",
        RecordType::Vaccination => "given",
        RecordType::Exposure | RecordType::Travel | RecordType::Symptoms => "",
    }
}

pub(super) fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl Rule {
    /// The rule in one plain sentence, generated from its fields (not from
    /// its description), so what is read is what is applied.
    pub(super) fn sentence(&self) -> String {
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
