//! How the demo tells its story: numbered steps, each checked, and the
//! manifest of what it made.

use tessera_proto::v1 as pb;

/// Everything the demo ingested and issued, written as `demo-manifest.json`
/// beside the federation's files so a test can look for each of them where
/// they must not be (the gateway's directory).
#[derive(Default, serde::Serialize)]
pub(super) struct Manifest {
    /// Badge ids issued, hex.
    pub(super) badge_ids: Vec<String>,
    /// Record ids ingested.
    pub(super) record_ids: Vec<String>,
    /// Residents' ID numbers ingested or issued to.
    pub(super) national_ids: Vec<String>,
    /// Labs and sources named in the records.
    pub(super) sources: Vec<String>,
}

impl Manifest {
    pub(super) fn ingested(&mut self, records: &[pb::Record]) {
        for r in records {
            self.record_ids.push(r.record_id.clone());
            self.national_ids.push(r.national_id.clone());
            let source = match &r.kind {
                Some(pb::record::Kind::Test(t)) => t.lab.clone(),
                Some(pb::record::Kind::Exposure(e)) => e.source.clone(),
                _ => continue,
            };
            if !self.sources.contains(&source) {
                self.sources.push(source);
            }
        }
    }

    pub(super) fn issued(&mut self, national_id: &str, badge: &pb::IssueBadgeResponse) {
        self.national_ids.push(national_id.into());
        self.badge_ids
            .push(badge.badge_id.iter().map(|b| format!("{b:02x}")).collect());
    }
}

pub(super) struct Step {
    pub(super) title: String,
    pub(super) expected: String,
    pub(super) got: String,
}

#[derive(Default)]
pub(super) struct Story {
    pub(super) steps: Vec<Step>,
}

impl Story {
    pub(super) fn check(&mut self, title: &str, expected: &str, got: impl Into<String>) -> bool {
        let got = got.into();
        let ok = got == expected;
        outln!(
            "   {} expected {expected}, got {got}",
            if ok { "✓" } else { "✗" }
        );
        self.steps.push(Step {
            title: title.into(),
            expected: expected.into(),
            got,
        });
        ok
    }

    pub(super) fn all_ok(&self) -> bool {
        self.steps.iter().all(|s| s.expected == s.got)
    }

    pub(super) fn table(&self) {
        // Columns as wide as their longest cell, in characters.
        let width = |cell: fn(&Step) -> &str, head: &str| {
            self.steps
                .iter()
                .map(|s| cell(s).chars().count())
                .chain([head.chars().count()])
                .max()
                .unwrap_or(0)
        };
        let (t, e, g) = (
            width(|s| &s.title, "step"),
            width(|s| &s.expected, "expected"),
            width(|s| &s.got, "got"),
        );
        outln!("\n  #  {:<t$} {:<e$} {:<g$}", "step", "expected", "got");
        for (i, s) in self.steps.iter().enumerate() {
            let mark = if s.expected == s.got { "✓" } else { "✗" };
            outln!(
                "  {:<2} {:<t$} {:<e$} {:<g$} {mark}",
                i + 1,
                s.title,
                s.expected,
                s.got
            );
        }
    }
}

pub(super) fn outcome_name(v: &pb::Verdict) -> String {
    pb::Outcome::try_from(v.outcome)
        .map(|o| o.as_str_name().trim_start_matches("OUTCOME_").to_owned())
        .unwrap_or_else(|_| "?".into())
}

pub(super) fn colour_name(c: i32) -> String {
    pb::Colour::try_from(c)
        .map(|c| c.as_str_name().trim_start_matches("COLOUR_").to_owned())
        .unwrap_or_else(|_| "?".into())
}
