#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The published default scoring policy, rule by rule and boundary by
//! boundary, and the checks that refuse a bad policy file.
//!
//! Every table row asserts the score, the colour, the rules that fired with
//! the records that triggered them, the validity and the policy version.

use pb::ContactLevel::{Close, Secondary};
use pb::RiskLevel::{High, Low, Medium};
use pb::Symptom::{Cough, Fatigue, Fever, LossOfTasteOrSmell, ShortnessOfBreath, SoreThroat};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use tessera_core::Colour::{self, Green, Red, Yellow};
use tessera_node::policy::{Assessment, DEFAULT_POLICY, MIN_VALIDITY_SECS, Policy, PolicyError};
use tessera_proto::v1 as pb;
use tessera_proto::v1::record::Kind;

/// 2026-11-01T00:00:00Z.
const NOW: i64 = 1_793_491_200;
const H: i64 = 3600;

// ---- record helpers: `ago` is seconds before NOW; write `336 * H + 1` ----

fn age(ago: i64) -> String {
    match ago % H {
        0 => format!("{}h", ago / H),
        s => format!("{}h+{s}s", ago / H),
    }
}

fn record(record_id: String, kind: Kind) -> pb::Record {
    pb::Record {
        record_id,
        national_id: String::new(),
        kind: Some(kind),
    }
}

/// id `test-pos-<age>` or `test-neg-<age>`.
fn test(positive: bool, ago: i64) -> pb::Record {
    let id = format!("test-{}-{}", if positive { "pos" } else { "neg" }, age(ago));
    record(
        id,
        Kind::Test(pb::TestResult {
            kind: pb::TestKind::Pcr as i32,
            positive,
            sampled_at: NOW - ago,
            lab: "LAB-0101".into(),
        }),
    )
}

/// id `close-<age>` or `secondary-<age>`.
fn exposure(level: pb::ContactLevel, ago: i64) -> pb::Record {
    let name = match level {
        pb::ContactLevel::Close => "close",
        _ => "secondary",
    };
    record(
        format!("{name}-{}", age(ago)),
        Kind::Exposure(pb::ExposureNotice {
            level: level as i32,
            exposed_at: NOW - ago,
            source: "CDC-310000".into(),
        }),
    )
}

/// id `travel-low-<age>`, `travel-medium-<age>` or `travel-high-<age>`.
fn travel(risk: pb::RiskLevel, ago: i64) -> pb::Record {
    let name = match risk {
        pb::RiskLevel::High => "high",
        pb::RiskLevel::Medium => "medium",
        _ => "low",
    };
    record(
        format!("travel-{name}-{}", age(ago)),
        Kind::Travel(pb::RiskAreaTravel {
            area_code: 420_100,
            level: risk as i32,
            left_at: NOW - ago,
        }),
    )
}

/// id `symptoms-<age>`.
fn symptoms(list: &[pb::Symptom], ago: i64) -> pb::Record {
    record(
        format!("symptoms-{}", age(ago)),
        Kind::Symptoms(pb::SymptomDeclaration {
            declared_at: NOW - ago,
            symptoms: list.iter().map(|&s| s as i32).collect(),
        }),
    )
}

/// id `dose<n>-<age>`.
fn vaccination(dose: u32, ago: i64) -> pb::Record {
    record(
        format!("dose{dose}-{}", age(ago)),
        Kind::Vaccination(pb::Vaccination {
            product: "VAX".into(),
            dose,
            given_at: NOW - ago,
        }),
    )
}

fn with_id(mut r: pb::Record, id: &str) -> pb::Record {
    r.record_id = id.into();
    r
}

// ---- the table runner ----

type Fired = &'static [(&'static str, &'static [&'static str])];

struct Case {
    name: &'static str,
    records: Vec<pb::Record>,
    score: u32,
    colour: Colour,
    /// Rule ids in policy order, each with the ids of its triggering records.
    fired: Fired,
    /// `valid_until - NOW`.
    valid_for: i64,
}

fn row(
    name: &'static str,
    records: Vec<pb::Record>,
    score: u32,
    colour: Colour,
    fired: Fired,
    valid_for: i64,
) -> Case {
    Case {
        name,
        records,
        score,
        colour,
        fired,
        valid_for,
    }
}

fn default_policy() -> Policy {
    Policy::default_policy().expect("the default policy parses")
}

type Summary = (u32, Colour, Vec<(String, Vec<String>)>, i64, u32);

fn summarise(a: &Assessment) -> Summary {
    let fired = a
        .fired
        .iter()
        .map(|f| {
            let mut ids = f.record_ids.clone();
            ids.sort();
            (f.rule_id.clone(), ids)
        })
        .collect();
    (
        a.score,
        a.colour,
        fired,
        a.valid_until - NOW,
        a.policy_version,
    )
}

/// Runs every row and reports all mismatches at once.
fn check(cases: Vec<Case>) {
    let policy = default_policy();
    let mut failures = vec![];
    for case in cases {
        let got = policy.assess(&case.records, NOW);
        let fired = case
            .fired
            .iter()
            .map(|(rule, ids)| {
                let mut ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
                ids.sort();
                (rule.to_string(), ids)
            })
            .collect();
        let want = (case.score, case.colour, fired, case.valid_for, 2);
        if summarise(&got) != want {
            failures.push(format!(
                "{}:\n  want {want:?}\n  got  {:?}",
                case.name,
                summarise(&got)
            ));
        }
        // The explanation accounts for the score.
        let sum: i64 = 100
            + got
                .fired
                .iter()
                .map(|f| i64::from(f.score_delta))
                .sum::<i64>();
        if i64::from(got.score) != sum.clamp(0, 100) {
            failures.push(format!(
                "{}: score {} but deltas sum to {sum}",
                case.name, got.score
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const POS: &str = "positive-test-14d";
const CLOSE: &str = "close-contact-14d";
const SECONDARY: &str = "secondary-contact-7d";
const HIGH: &str = "high-risk-travel-7d";
const MEDIUM: &str = "medium-risk-travel-7d";
const SYMPTOMS: &str = "key-symptoms-72h";

// ---- the default policy, rule by rule (one row per line, hence no rustfmt) ----

#[rustfmt::skip]
#[test]
fn nothing_that_scores() {
    check(vec![
        row("no records", vec![], 100, Green, &[], 72 * H),
        row("vaccination only", vec![vaccination(3, H)], 100, Green, &[], 72 * H),
        row("non-key symptoms", vec![symptoms(&[Cough, SoreThroat, Fatigue], H)], 100, Green, &[], 72 * H),
        row("a declaration naming no symptom", vec![symptoms(&[], H)], 100, Green, &[], 72 * H),
        row("low-risk travel", vec![travel(Low, H)], 100, Green, &[], 72 * H),
        row("a record without a kind", vec![pb::Record::default()], 100, Green, &[], 72 * H),
    ]);
}

#[rustfmt::skip]
#[test]
fn positive_test() {
    check(vec![
        row("1h old", vec![test(true, H)], 0, Red, &[(POS, &["test-pos-1h"])], 24 * H),
        row("exactly 336h", vec![test(true, 336 * H)], 0, Red, &[(POS, &["test-pos-336h"])], 24 * H),
        row("336h+1s", vec![test(true, 336 * H + 1)], 100, Green, &[], 72 * H),
        row("a later negative test does not clear it", vec![test(true, 100 * H), test(false, 24 * H)],
            0, Red, &[(POS, &["test-pos-100h"])], 24 * H),
    ]);
}

#[rustfmt::skip]
#[test]
fn close_contact() {
    check(vec![
        row("1h old", vec![exposure(Close, H)], 60, Yellow, &[(CLOSE, &["close-1h"])], 24 * H),
        row("exactly 336h", vec![exposure(Close, 336 * H)], 60, Yellow, &[(CLOSE, &["close-336h"])], 24 * H),
        row("336h+1s", vec![exposure(Close, 336 * H + 1)], 100, Green, &[], 72 * H),
        // The test lifts the contact until it is 72h old (22h from now): then
        // the contact would make the badge yellow, so the green badge ends.
        row("lifted by a later negative test until that test is 72h old", vec![exposure(Close, 100 * H), test(false, 50 * H)],
            100, Green, &[], 22 * H),
        row("a later negative test older than 72h no longer lifts it", vec![exposure(Close, 100 * H), test(false, 72 * H + 1)],
            60, Yellow, &[(CLOSE, &["close-100h"])], 24 * H),
        row("a later negative test exactly 72h old still lifts it, for its last second",
            vec![exposure(Close, 100 * H), test(false, 72 * H)], 100, Green, &[], MIN_VALIDITY_SECS),
        row("a negative test before it does not clear it", vec![test(false, 100 * H), exposure(Close, 50 * H)],
            60, Yellow, &[(CLOSE, &["close-50h"])], 24 * H),
        row("a negative test the same second does not clear it", vec![exposure(Close, 60 * H), test(false, 60 * H)],
            60, Yellow, &[(CLOSE, &["close-60h"])], 24 * H),
        row("only the contact after the negative test counts",
            vec![exposure(Close, 200 * H), test(false, 50 * H), exposure(Close, 10 * H)],
            60, Yellow, &[(CLOSE, &["close-10h"])], 24 * H),
        row("a lapsed negative test lifts nothing",
            vec![exposure(Close, 200 * H), test(false, 150 * H), exposure(Close, 100 * H)],
            60, Yellow, &[(CLOSE, &["close-100h", "close-200h"])], 24 * H),
        row("two contacts: counted once, both named", vec![exposure(Close, 10 * H), exposure(Close, 300 * H)],
            60, Yellow, &[(CLOSE, &["close-10h", "close-300h"])], 24 * H),
        row("a later positive test does not clear it; clamps at 0", vec![exposure(Close, 100 * H), test(true, 50 * H)],
            0, Red, &[(POS, &["test-pos-50h"]), (CLOSE, &["close-100h"])], 24 * H),
    ]);
}

#[rustfmt::skip]
#[test]
fn secondary_contact() {
    check(vec![
        row("1h old", vec![exposure(Secondary, H)], 80, Green, &[(SECONDARY, &["secondary-1h"])], 72 * H),
        row("exactly 168h", vec![exposure(Secondary, 168 * H)], 80, Green, &[(SECONDARY, &["secondary-168h"])], 72 * H),
        row("168h+1s", vec![exposure(Secondary, 168 * H + 1)], 100, Green, &[], 72 * H),
        // When the lift ends (32h from now) the contact would give 80: still
        // green, so the badge keeps its full 72h.
        row("lifted by a later negative test; its end would not change the colour", vec![exposure(Secondary, 100 * H), test(false, 40 * H)],
            100, Green, &[], 72 * H),
        row("a later negative test older than 72h no longer lifts it", vec![exposure(Secondary, 100 * H), test(false, 80 * H)],
            80, Green, &[(SECONDARY, &["secondary-100h"])], 72 * H),
        row("a negative test before it does not clear it", vec![test(false, 100 * H), exposure(Secondary, 80 * H)],
            80, Green, &[(SECONDARY, &["secondary-80h"])], 72 * H),
    ]);
}

#[rustfmt::skip]
#[test]
fn risk_area_travel() {
    // min_risk = "medium" means "at least medium": high-risk travel fires both rules.
    check(vec![
        row("medium, 1h", vec![travel(Medium, H)], 85, Green, &[(MEDIUM, &["travel-medium-1h"])], 72 * H),
        row("medium, exactly 168h", vec![travel(Medium, 168 * H)], 85, Green, &[(MEDIUM, &["travel-medium-168h"])], 72 * H),
        row("medium, 168h+1s", vec![travel(Medium, 168 * H + 1)], 100, Green, &[], 72 * H),
        row("high, 1h", vec![travel(High, H)],
            45, Yellow, &[(HIGH, &["travel-high-1h"]), (MEDIUM, &["travel-high-1h"])], 24 * H),
        row("high, exactly 168h", vec![travel(High, 168 * H)],
            45, Yellow, &[(HIGH, &["travel-high-168h"]), (MEDIUM, &["travel-high-168h"])], 24 * H),
        row("high, 168h+1s", vec![travel(High, 168 * H + 1)], 100, Green, &[], 72 * H),
        // The lift ends 32h from now; the high rule would then make it yellow.
        row("high, a later negative test lifts the high rule only", vec![travel(High, 100 * H), test(false, 40 * H)],
            85, Green, &[(MEDIUM, &["travel-high-100h"])], 32 * H),
        row("medium, a later negative test does not clear it", vec![travel(Medium, 100 * H), test(false, 80 * H)],
            85, Green, &[(MEDIUM, &["travel-medium-100h"])], 72 * H),
        row("two medium trips: counted once, both named", vec![travel(Medium, 10 * H), travel(Medium, 20 * H)],
            85, Green, &[(MEDIUM, &["travel-medium-10h", "travel-medium-20h"])], 72 * H),
    ]);
}

#[rustfmt::skip]
#[test]
fn key_symptoms() {
    // 70 is not below yellow_below = 70: the band is green, the rule makes it yellow.
    check(vec![
        row("fever, 1h", vec![symptoms(&[Fever], H)], 70, Yellow, &[(SYMPTOMS, &["symptoms-1h"])], 24 * H),
        row("loss of taste or smell, exactly 72h", vec![symptoms(&[LossOfTasteOrSmell], 72 * H)],
            70, Yellow, &[(SYMPTOMS, &["symptoms-72h"])], 24 * H),
        row("fever, 72h+1s", vec![symptoms(&[Fever], 72 * H + 1)], 100, Green, &[], 72 * H),
        row("shortness of breath among others", vec![symptoms(&[Cough, ShortnessOfBreath], 5 * H)],
            70, Yellow, &[(SYMPTOMS, &["symptoms-5h"])], 24 * H),
        // The declaration stops counting (in 24h) before the lift ends (in 48h).
        row("lifted by a later negative test", vec![symptoms(&[Fever], 48 * H), test(false, 24 * H)],
            100, Green, &[], 72 * H),
    ]);
}

#[rustfmt::skip]
#[test]
fn a_negative_test_alone_never_changes_the_badge() {
    check(vec![
        row("1h old", vec![test(false, H)], 100, Green, &[], 72 * H),
        row("71h old", vec![test(false, 71 * H)], 100, Green, &[], 72 * H),
        row("exactly 72h", vec![test(false, 72 * H)], 100, Green, &[], 72 * H),
        row("two negative tests", vec![test(false, 60 * H), test(false, 10 * H)], 100, Green, &[], 72 * H),
        row("an older negative then a newer positive", vec![test(false, 60 * H), test(true, 10 * H)],
            0, Red, &[(POS, &["test-pos-10h"])], 24 * H),
        row("a negative after an expired positive", vec![test(true, 400 * H), test(false, 10 * H)],
            100, Green, &[], 72 * H),
        row("a negative test before a contact neither lifts it nor shortens the badge",
            vec![exposure(Close, 5 * H), test(false, 70 * H)], 60, Yellow, &[(CLOSE, &["close-5h"])], 24 * H),
    ]);
}

/// Issue 21: under version 1, a resident with no risk record who tested
/// negative 71 hours ago got a green badge valid for 1 hour, while one who
/// never tested got 72 hours. Now both get the same badge, to the second.
#[test]
fn a_negative_test_71_hours_ago_gives_the_same_72_hour_badge_as_no_test() {
    let policy = default_policy();
    let untested = policy.assess(&[], NOW);
    let tested = policy.assess(&[test(false, 71 * H)], NOW);
    assert_eq!(
        (untested.colour, untested.valid_until),
        (Green, NOW + 72 * H)
    );
    assert_eq!(tested, untested);
}

#[rustfmt::skip]
#[test]
fn colour_is_the_worse_of_band_and_rules() {
    check(vec![
        row("65 is yellow by band, though neither rule sets a colour", vec![exposure(Secondary, H), travel(Medium, H)],
            65, Yellow, &[(SECONDARY, &["secondary-1h"]), (MEDIUM, &["travel-medium-1h"])], 24 * H),
        row("exactly 40 is yellow", vec![exposure(Close, H), exposure(Secondary, H)],
            40, Yellow, &[(CLOSE, &["close-1h"]), (SECONDARY, &["secondary-1h"])], 24 * H),
        row("25 is red by band, though the rules say yellow at most",
            vec![exposure(Close, H), exposure(Secondary, H), travel(Medium, H)],
            25, Red, &[(CLOSE, &["close-1h"]), (SECONDARY, &["secondary-1h"]), (MEDIUM, &["travel-medium-1h"])], 24 * H),
        row("everything at once clamps at 0",
            vec![test(true, H), exposure(Close, H), exposure(Secondary, H), travel(High, H), symptoms(&[Fever], H)],
            0, Red, &[(POS, &["test-pos-1h"]), (CLOSE, &["close-1h"]), (SECONDARY, &["secondary-1h"]),
                      (HIGH, &["travel-high-1h"]), (MEDIUM, &["travel-high-1h"]), (SYMPTOMS, &["symptoms-1h"])], 24 * H),
    ]);
}

// ---- determinism and the explanation ----

fn mixed_records() -> Vec<pb::Record> {
    vec![
        exposure(Close, 200 * H),
        test(false, 150 * H),
        exposure(Close, 100 * H),
        exposure(Secondary, 30 * H),
        travel(High, 100 * H),
        travel(Medium, 50 * H),
        symptoms(&[Fever, Cough], 70 * H),
        vaccination(2, 500 * H),
        // Two tests sampled the same second: the tie is broken by record id.
        with_id(test(false, 60 * H), "tie-a"),
        with_id(test(true, 60 * H), "tie-b"),
    ]
}

#[test]
fn record_order_does_not_matter() {
    let policy = default_policy();
    let records = mixed_records();
    let want = policy.assess(&records, NOW);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut shuffled = records.clone();
    shuffled.reverse();
    assert_eq!(policy.assess(&shuffled, NOW), want, "reversed");
    for i in 0..64 {
        shuffled.shuffle(&mut rng);
        assert_eq!(policy.assess(&shuffled, NOW), want, "shuffle {i}");
    }
}

/// A lifted rule as (id, record ids, lifted by, lifted until).
type Lift<'a> = (&'a str, Vec<&'a str>, Vec<&'a str>, Option<i64>);

/// A fired rule as (id, record ids, score delta, colour, validity cap).
type Effect<'a> = (&'a str, Vec<&'a str>, i32, Option<Colour>, Option<i64>);

#[test]
fn explanation_names_the_rules_and_records() {
    let a = default_policy().assess(&mixed_records(), NOW);
    assert_eq!(a.score, 0);
    assert_eq!(a.colour, Red);
    assert_eq!(a.valid_until, NOW + 24 * H);
    assert_eq!(a.policy_version, 2);
    let fired: Vec<Effect> = a
        .fired
        .iter()
        .map(|f| {
            let ids = f.record_ids.iter().map(String::as_str).collect();
            (
                f.rule_id.as_str(),
                ids,
                f.score_delta,
                f.colour,
                f.valid_until_cap,
            )
        })
        .collect();
    // In policy order, records oldest first. The negative test at 150h clears
    // nothing any more (it is over 72h old); tie-a (negative, 60h) lifts the
    // close contacts, the high-risk trip and the fever before it, but not the
    // secondary contact after it. Medium travel has no unless_later. The
    // badge is red already, so the lift's end (in 12h) cannot shorten it.
    assert_eq!(
        fired,
        vec![
            (POS, vec!["tie-b"], -100, Some(Red), None),
            (SECONDARY, vec!["secondary-30h"], -20, None, None),
            (
                MEDIUM,
                vec!["travel-high-100h", "travel-medium-50h"],
                -15,
                None,
                None
            ),
        ],
        "full explanation: {:#?}",
        a.fired
    );
    let descriptions: Vec<&str> = a.fired.iter().map(|f| f.description.as_str()).collect();
    assert_eq!(
        descriptions,
        [
            "A positive test sampled within the last 14 days",
            "A secondary contact within the last 7 days, unless a negative test sampled after it is at most 72 hours old",
            "Left a medium- or high-risk area within the last 7 days (a high-risk area also fires high-risk-travel-7d)",
        ]
    );
    // What tie-a lifts, and until when: the end of its 72 hours.
    let lifted: Vec<Lift> = a
        .lifted
        .iter()
        .map(|l| {
            (
                l.rule_id.as_str(),
                l.record_ids.iter().map(String::as_str).collect(),
                l.lifted_by.iter().map(String::as_str).collect(),
                l.lifted_until,
            )
        })
        .collect();
    let until = Some(NOW - 60 * H + 72 * H);
    assert_eq!(
        lifted,
        vec![
            (
                CLOSE,
                vec!["close-200h", "close-100h"],
                vec!["tie-a"],
                until
            ),
            (HIGH, vec!["travel-high-100h"], vec!["tie-a"], until),
            (SYMPTOMS, vec!["symptoms-70h"], vec!["tie-a"], until),
        ]
    );
}

#[test]
fn explanation_says_which_rule_a_negative_test_lifts_and_until_when() {
    let a = default_policy().assess(&[exposure(Close, 100 * H), test(false, 50 * H)], NOW);
    assert!(a.fired.is_empty(), "{:?}", a.fired);
    let sentences: Vec<String> = a
        .lifted
        .iter()
        .map(|l| l.sentence(|t| format!("t={}h", (t - NOW) / H)))
        .collect();
    assert_eq!(
        sentences,
        [
            "Rule close-contact-14d (A close contact within the last 14 days, unless a negative test sampled after it is at most 72 hours old) does not apply: the negative test test-neg-50h, taken after close-100h, lifts it until t=22h."
        ]
    );
    assert_eq!(a.valid_until, NOW + 22 * H);
}

#[test]
fn explanation_carries_each_rules_effect() {
    let records = [
        exposure(Close, 5 * H),
        test(false, 70 * H),
        symptoms(&[Fever], H),
    ];
    let a = default_policy().assess(&records, NOW);
    let effects: Vec<(&str, i32, Option<Colour>, Option<i64>)> = a
        .fired
        .iter()
        .map(|f| {
            (
                f.rule_id.as_str(),
                f.score_delta,
                f.colour,
                f.valid_until_cap,
            )
        })
        .collect();
    assert_eq!(
        effects,
        [
            (CLOSE, -40, Some(Yellow), None),
            (SYMPTOMS, -30, Some(Yellow), None),
        ]
    );
    // Version 1 cut this badge to 2h (72h after the negative test); a test
    // taken before the risk now neither lifts it nor shortens the badge.
    assert_eq!((a.score, a.colour, a.valid_until), (30, Red, NOW + 24 * H));
}

// ---- the published policy and the docs ----

#[test]
fn default_policy_is_version_2_and_documented() {
    let policy = default_policy();
    assert_eq!(policy.version(), 2);
    assert_eq!(policy.name(), "tessera default infection-risk policy");
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/POLICY.md")).unwrap();
    let table: toml::Table = DEFAULT_POLICY.parse().unwrap();
    let rules = table["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 6);
    for rule in rules {
        let id = rule["id"].as_str().unwrap();
        assert!(
            doc.contains(&format!("`{id}`")),
            "docs/POLICY.md does not explain rule {id}"
        );
    }
}

// ---- Policy::parse refuses bad files ----

const HEAD: &str = r#"
version = 1
name = "test policy"
base_score = 100

[bands]
yellow_below = 70
red_below = 40

[validity]
green_hours = 72
yellow_hours = 24
red_hours = 24
"#;

const RULE: &str = r#"
[[rules]]
id = "close"
description = "A close contact"
record = "exposure"
within_hours = 336
when = { contact = "close" }
unless_later = { record = "test", when = { positive = false } }
score = -40
colour = "yellow"
"#;

fn parse(text: &str) -> Result<Policy, PolicyError> {
    Policy::parse(text)
}

#[test]
fn a_well_formed_policy_parses() {
    parse(&format!("{HEAD}{RULE}")).unwrap();
    parse(&format!("rules = []\n{HEAD}")).unwrap();
    for score in ["-100", "0"] {
        parse(&format!("{HEAD}{}", RULE.replace("-40", score))).unwrap();
    }
}

#[test]
fn older_than_hours_is_exclusive_and_within_hours_inclusive() {
    let text = format!("{HEAD}{RULE}").replace(
        "within_hours = 336",
        "within_hours = 48\nolder_than_hours = 24",
    );
    let policy = parse(&text).unwrap();
    for (ago, fires) in [
        (24 * H, false),
        (24 * H + 1, true),
        (48 * H, true),
        (48 * H + 1, false),
    ] {
        let a = policy.assess(&[exposure(Close, ago)], NOW);
        assert_eq!(!a.fired.is_empty(), fires, "close contact {} old", age(ago));
        assert_eq!(
            a.score,
            if fires { 60 } else { 100 },
            "close contact {} old",
            age(ago)
        );
    }
}

#[test]
fn rule_effects_combine_to_the_worst_colour_and_earliest_cap() {
    // Two colour-setting, validity-capping rules, the red one first; red badges last 100h.
    let rules = r#"
[[rules]]
id = "red-close"
description = "A close contact"
record = "exposure"
when = { contact = "close" }
colour = "red"
valid_hours_after_record = 48

[[rules]]
id = "yellow-secondary"
description = "A secondary contact"
record = "exposure"
when = { contact = "secondary" }
colour = "yellow"
valid_hours_after_record = 72
"#;
    let policy = parse(&format!(
        "{}{rules}",
        HEAD.replace("red_hours = 24", "red_hours = 100")
    ))
    .unwrap();
    let records = [
        exposure(Close, 20 * H),
        exposure(Close, 10 * H),
        exposure(Secondary, H),
    ];
    let a = policy.assess(&records, NOW);
    let caps: Vec<_> = a
        .fired
        .iter()
        .map(|f| (f.rule_id.as_str(), f.valid_until_cap))
        .collect();
    // A rule's cap counts from its latest triggering record.
    assert_eq!(
        caps,
        [
            ("red-close", Some(NOW + 38 * H)),
            ("yellow-secondary", Some(NOW + 71 * H))
        ]
    );
    assert_eq!((a.score, a.colour, a.valid_until), (100, Red, NOW + 38 * H));
}

#[rustfmt::skip]
#[test]
fn parse_refuses_bad_policies() {
    let with_rule = |from: &str, to: &str| {
        assert!(RULE.contains(from), "{from:?} is not in RULE");
        format!("{HEAD}{}", RULE.replace(from, to))
    };
    let with_head = |from: &str, to: &str| {
        assert!(HEAD.contains(from), "{from:?} is not in HEAD");
        format!("{}{RULE}", HEAD.replace(from, to))
    };
    type Expect = fn(&PolicyError) -> bool;
    let syntax: Expect = |e| matches!(e, PolicyError::Parse(_));
    let outside: Expect = |e| matches!(e, PolicyError::OutsideSchema(_));
    let rule: Expect = |e| matches!(e, PolicyError::Rule { rule, .. } if rule == "close");
    let any_rule: Expect = |e| matches!(e, PolicyError::Rule { .. });
    let invalid: Expect = |e| matches!(e, PolicyError::Invalid(_));
    let cases: Vec<(&str, String, Expect)> = vec![
        ("unknown top-level key", format!("ranking = true\n{HEAD}{RULE}"), outside),
        ("unknown rule key", with_rule("score = -40", "score = -40\nweight = 2"), outside),
        ("unknown condition", with_rule("contact = \"close\"", "occupation = \"driver\""), outside),
        ("unknown band key", with_head("red_below = 40", "red_below = 40\nblue_below = 10"), outside),
        ("unknown unless_later key", with_rule("record = \"test\",", "record = \"test\", within_hours = 1,"), outside),
        ("a record type that does not exist", with_rule("record = \"exposure\"", "record = \"purchases\""), outside),
        ("an unknown colour", with_rule("colour = \"yellow\"", "colour = \"blue\""), outside),
        ("not TOML", format!("{HEAD}{RULE}score = = 1\n"), syntax),
        ("positive on an exposure rule", with_rule("contact = \"close\"", "positive = true"), rule),
        ("min_risk on an exposure rule", with_rule("contact = \"close\"", "min_risk = \"high\""), rule),
        ("contact in unless_later on tests", with_rule("positive = false", "contact = \"close\""), rule),
        ("duplicate rule ids", format!("{HEAD}{RULE}{RULE}"), rule),
        ("empty rule id", with_rule("id = \"close\"", "id = \"\""), any_rule),
        ("empty description", with_rule("\"A close contact\"", "\" \""), rule),
        ("score -101", with_rule("-40", "-101"), rule),
        ("score 101", with_rule("-40", "101"), rule),
        // Monotone policies (issue 21): see monotone_policy_checks below.
        ("a risk rule that raises the score", with_rule("-40", "10"), rule),
        ("unless_later naming an exposure", with_rule("record = \"test\", when = { positive = false }", "record = \"exposure\""), rule),
        ("unless_later naming positive tests", with_rule("positive = false", "positive = true"), rule),
        ("unless_later naming any test", with_rule("when = { positive = false }", "when = {}"), rule),
        ("lifts_for_hours 0", with_rule("positive = false }", "positive = false }, lifts_for_hours = 0"), rule),
        ("lifts_for_hours over 30 days", with_rule("positive = false }", "positive = false }, lifts_for_hours = 721"), rule),
        ("latest_only on an exposure rule", with_rule("score = -40", "latest_only = true\nscore = -40"), rule),
        ("older_than_hours not below within_hours", with_rule("score", "older_than_hours = 336\nscore"), rule),
        ("red_below above yellow_below", with_head("red_below = 40", "red_below = 80"), invalid),
        ("yellow_below above 100", with_head("yellow_below = 70", "yellow_below = 101"), invalid),
        ("base_score above 100", with_head("base_score = 100", "base_score = 101"), invalid),
        ("version 0", with_head("version = 1", "version = 0"), invalid),
        ("zero validity", with_head("red_hours = 24", "red_hours = 0"), invalid),
        ("validity over 30 days", with_head("green_hours = 72", "green_hours = 721"), invalid),
    ];
    let mut failures = vec![];
    for (name, text, expect) in cases {
        match parse(&text) {
            Ok(_) => failures.push(format!("{name}: accepted")),
            Err(e) if !expect(&e) => failures.push(format!("{name}: wrong error {e:?}")),
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Issue 21: a policy whose rules could make a negative test (or a
/// vaccination) worsen or shorten a badge, or a risk record improve one, is
/// refused with the rule's id and the reason.
#[test]
fn monotone_policy_checks() {
    let rule =
        |body: &str| format!("{HEAD}\n[[rules]]\nid = \"r\"\ndescription = \"a rule\"\n{body}\n");
    let cases = [
        (
            "version 1's recent-negative-test-72h",
            rule(
                "record = \"test\"\nlatest_only = true\nwithin_hours = 72\nwhen = { positive = false }\nscore = 0\nvalid_hours_after_record = 72",
            ),
            "a rule that can fire on a negative test must not change the score, the colour or the validity",
        ),
        (
            "any test lowers the score",
            rule("record = \"test\"\nscore = -5"),
            "a rule that can fire on a negative test must not change the score",
        ),
        (
            "a negative test sets a colour",
            rule("record = \"test\"\nwhen = { positive = false }\ncolour = \"yellow\""),
            "a rule that can fire on a negative test must not change the score",
        ),
        (
            "a negative test raises the score",
            rule(
                "record = \"test\"\nwhen = { positive = false, test_kind = \"pcr\" }\nlatest_only = true\nscore = 5",
            ),
            "a rule that can fire on a negative test must not change the score",
        ),
        (
            "a vaccination caps validity",
            rule("record = \"vaccination\"\nvalid_hours_after_record = 72"),
            "only a rule over risk records",
        ),
        (
            "a lifted vaccination rule raises the score",
            rule(
                "record = \"vaccination\"\nunless_later = { record = \"test\", when = { positive = false } }\nscore = 5",
            ),
            "a rule with unless_later must not raise the score",
        ),
        (
            "the latest positive test, once old enough",
            rule(
                "record = \"test\"\nlatest_only = true\nwhen = { positive = true }\nolder_than_hours = 28\nscore = -1",
            ),
            "latest_only on a rule over risk records is allowed only as",
        ),
        (
            "latest positive PCR test",
            rule(
                "record = \"test\"\nlatest_only = true\nwhen = { positive = true, test_kind = \"pcr\" }\nscore = -100",
            ),
            "latest_only on a rule over risk records is allowed only as",
        ),
    ];
    let mut failures = vec![];
    for (name, text, want) in cases {
        match Policy::parse(&text) {
            Ok(_) => failures.push(format!("{name}: accepted")),
            Err(e @ PolicyError::Rule { .. })
                if e.to_string().starts_with("policy rule \"r\": ")
                    && e.to_string().contains(want) => {}
            Err(e) => failures.push(format!("{name}: wrong error {e}")),
        }
    }
    // What the checks still allow: the latest test being positive, an inert
    // rule over any test, and a vaccination rule that only scores.
    for ok in [
        rule(
            "record = \"test\"\nlatest_only = true\nwhen = { positive = true }\nscore = -100\ncolour = \"red\"\nvalid_hours_after_record = 24",
        ),
        rule("record = \"test\"\nlatest_only = true\nwithin_hours = 72"),
        rule("record = \"vaccination\"\nscore = 5"),
    ] {
        if let Err(e) = Policy::parse(&ok) {
            failures.push(format!("refused {ok}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Found by tests/it/policy_properties.rs: a rule that raised the score
/// stops counting a record while the badge would still run, and the colour
/// turns worse then; the badge ends at that second, with or without a
/// negative test (which once added the only change point the node looked
/// at, so the test shortened the badge).
#[test]
fn a_badge_ends_when_a_rule_that_raised_the_score_stops_counting() {
    let text = format!(
        "{}\n[[rules]]\nid = \"dose\"\ndescription = \"a recent dose\"\nrecord = \"vaccination\"\nwithin_hours = 57\nscore = 1\n",
        HEAD.replace("base_score = 100", "base_score = 69")
    );
    let policy = Policy::parse(&text).unwrap();
    let dose = vaccination(1, 56 * H);
    let alone = policy.assess(std::slice::from_ref(&dose), NOW);
    assert_eq!((alone.score, alone.colour), (70, Green));
    assert_eq!(alone.valid_until, NOW + H);
    let tested = policy.assess(&[dose, test(false, 0)], NOW);
    assert_eq!(tested, alone);
}
