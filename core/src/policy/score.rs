//! Scoring: a pure, deterministic function of (records, policy, now) that
//! also says which rules fired and which a negative test lifted, and when
//! the badge would get worse.

use tessera_proto::v1 as pb;

use super::schema::*;
use super::*;
use crate::Colour;

impl Policy {
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
pub(super) struct Outcome {
    pub(super) score: u32,
    pub(super) colour: Colour,
    pub(super) cap: Option<i64>,
    pub(super) fired: Vec<FiredRule>,
    pub(super) lifted: Vec<LiftedRule>,
}

/// What one rule does to one resident at one moment.
pub(super) enum Fire {
    Fired(FiredRule),
    Lifted(LiftedRule),
    No,
}
