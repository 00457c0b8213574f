//! Monotone scoring (issue 21), as properties over generated residents'
//! record histories, for the default policy and for generated policies that
//! `Policy::parse` accepts:
//!
//! - adding a negative test never makes the colour worse nor the score
//!   lower, and for the same colour never ends the badge earlier (a test
//!   that improves the colour may end the better badge when it stops
//!   covering the risk, which is no earlier than the worse one would);
//! - a resident with no risk record gets the very same assessment with or
//!   without negative tests;
//! - adding a positive test, an exposure, a trip or a symptom declaration
//!   never makes the colour better nor the score higher, and for the same
//!   colour never makes the badge last longer under a policy without
//!   `valid_hours_after_record` (the default has none; such a cap counts
//!   from the latest record of its rule, so a newer record moves it later);
//! - records' order never matters;
//! - the explanation names exactly the rules that fire (each checked alone
//!   in a one-rule policy), with records the resident has, and accounts
//!   for the score and the colour.
//!
//! Kept small for CI (2 cores, debug): short histories, most records
//! within 100 hours of each other (where rules and lifts interact), 256
//! cases each.

use proptest::prelude::*;
use tessera_core::Colour;
use tessera_core::policy::{Assessment, DEFAULT_POLICY, MIN_VALIDITY_SECS, Policy};
use tessera_proto::v1 as pb;
use tessera_proto::v1::record::Kind;
use tessera_tests::NOW;

const H: i64 = 3600;

// ---- records ----

/// A record's content without its id; `ago` is seconds before NOW
/// (negative: a little in the future, as clock skew allows).
#[derive(Debug, Clone)]
enum Rec {
    Test {
        positive: bool,
        pcr: bool,
        ago: i64,
    },
    Vaccination {
        dose: u32,
        ago: i64,
    },
    Exposure {
        close: bool,
        ago: i64,
    },
    Travel {
        level: pb::RiskLevel,
        ago: i64,
    },
    Symptoms {
        symptoms: Vec<pb::Symptom>,
        ago: i64,
    },
}

impl Rec {
    fn record(&self, id: String) -> pb::Record {
        let kind = match self {
            Rec::Test { positive, pcr, ago } => Kind::Test(pb::TestResult {
                kind: if *pcr {
                    pb::TestKind::Pcr
                } else {
                    pb::TestKind::Antigen
                } as i32,
                positive: *positive,
                sampled_at: NOW - ago,
                lab: "LAB-0101".into(),
            }),
            Rec::Vaccination { dose, ago } => Kind::Vaccination(pb::Vaccination {
                product: "VAX".into(),
                dose: *dose,
                given_at: NOW - ago,
            }),
            Rec::Exposure { close, ago } => Kind::Exposure(pb::ExposureNotice {
                level: if *close {
                    pb::ContactLevel::Close
                } else {
                    pb::ContactLevel::Secondary
                } as i32,
                exposed_at: NOW - ago,
                source: "CDC-310000".into(),
            }),
            Rec::Travel { level, ago } => Kind::Travel(pb::RiskAreaTravel {
                area_code: 420_100,
                level: *level as i32,
                left_at: NOW - ago,
            }),
            Rec::Symptoms { symptoms, ago } => Kind::Symptoms(pb::SymptomDeclaration {
                declared_at: NOW - ago,
                symptoms: symptoms.iter().map(|&s| s as i32).collect(),
            }),
        };
        pb::Record {
            record_id: id,
            national_id: String::new(),
            kind: Some(kind),
        }
    }
}

/// Seconds before NOW: whole hours up to 20 days (most within
/// 100 hours), often exactly on an hour
/// (where the policy's boundaries are), sometimes a second either side, and
/// now and then up to 5 minutes in the future.
fn arb_ago() -> impl Strategy<Value = i64> {
    prop_oneof![
        6 => (0i64..100, prop_oneof![Just(0i64), Just(1), Just(-1)]).prop_map(|(h, s)| h * H + s),
        3 => (100i64..480, prop_oneof![Just(0i64), Just(1), Just(-1)]).prop_map(|(h, s)| h * H + s),
        1 => -300i64..=0,
    ]
}

fn arb_symptoms() -> impl Strategy<Value = Vec<pb::Symptom>> {
    proptest::sample::subsequence(
        vec![
            pb::Symptom::Fever,
            pb::Symptom::Cough,
            pb::Symptom::SoreThroat,
            pb::Symptom::LossOfTasteOrSmell,
            pb::Symptom::ShortnessOfBreath,
            pb::Symptom::Fatigue,
        ],
        0..=3,
    )
}

fn arb_negative_test() -> impl Strategy<Value = Rec> {
    (any::<bool>(), arb_ago()).prop_map(|(pcr, ago)| Rec::Test {
        positive: false,
        pcr,
        ago,
    })
}

/// A record that can only count against the resident.
fn arb_risk() -> impl Strategy<Value = Rec> {
    prop_oneof![
        (any::<bool>(), arb_ago()).prop_map(|(pcr, ago)| Rec::Test {
            positive: true,
            pcr,
            ago
        }),
        (any::<bool>(), arb_ago()).prop_map(|(close, ago)| Rec::Exposure { close, ago }),
        (
            prop_oneof![
                Just(pb::RiskLevel::Low),
                Just(pb::RiskLevel::Medium),
                Just(pb::RiskLevel::High)
            ],
            arb_ago()
        )
            .prop_map(|(level, ago)| Rec::Travel { level, ago }),
        (arb_symptoms(), arb_ago()).prop_map(|(symptoms, ago)| Rec::Symptoms { symptoms, ago }),
    ]
}

fn arb_safe() -> impl Strategy<Value = Rec> {
    prop_oneof![
        arb_negative_test(),
        (1u32..4, arb_ago()).prop_map(|(dose, ago)| Rec::Vaccination { dose, ago }),
    ]
}

fn arb_rec() -> impl Strategy<Value = Rec> {
    prop_oneof![2 => arb_risk(), 2 => arb_negative_test(), 1 => arb_safe()]
}

/// Records with unique ids `r0`, `r1`, ...; `extra` gets the id `x`.
fn records(recs: &[Rec]) -> Vec<pb::Record> {
    recs.iter()
        .enumerate()
        .map(|(i, r)| r.record(format!("r{i}")))
        .collect()
}

fn with(recs: &[Rec], extra: &Rec) -> Vec<pb::Record> {
    let mut all = records(recs);
    all.push(extra.record("x".into()));
    all
}

// ---- policies ----

/// A generated policy: its text, each rule's text (for one-rule policies),
/// and whether any rule caps validity with `valid_hours_after_record`.
#[derive(Debug, Clone)]
struct Generated {
    head: String,
    rules: Vec<String>,
    capped: bool,
    /// base_score, and green, yellow and red hours.
    base: i64,
    hours: [i64; 3],
}

impl Generated {
    fn text(&self) -> String {
        if self.rules.is_empty() && !self.head.contains("[[rules]]") {
            return format!("rules = []\n{}", self.head);
        }
        format!("{}{}", self.head, self.rules.concat())
    }

    fn policy(&self) -> Policy {
        Policy::parse(&self.text()).unwrap()
    }
}

fn arb_head() -> impl Strategy<Value = (String, i64, [i64; 3])> {
    (
        0u32..=100,
        0u32..=100,
        0u32..=100,
        1u32..=240,
        1u32..=240,
        1u32..=240,
    )
        .prop_map(|(base, a, b, green, yellow, red)| {
            let (red_below, yellow_below) = (a.min(b), a.max(b));
            let text = format!(
                "version = 7\nname = \"generated\"\nbase_score = {base}\n\
                 [bands]\nyellow_below = {yellow_below}\nred_below = {red_below}\n\
                 [validity]\ngreen_hours = {green}\nyellow_hours = {yellow}\nred_hours = {red}\n"
            );
            (text, i64::from(base), [green, yellow, red].map(i64::from))
        })
}

fn opt<T: std::fmt::Debug>(s: impl Strategy<Value = T>) -> impl Strategy<Value = Option<T>> {
    proptest::option::weighted(0.5, s)
}

/// The age window of a rule, as TOML lines.
fn arb_window() -> impl Strategy<Value = String> {
    (opt(1u32..400), opt(0u32..200)).prop_map(|(within, older)| {
        let mut s = String::new();
        if let Some(w) = within {
            s.push_str(&format!("within_hours = {w}\n"));
            if let Some(o) = older.filter(|o| *o < w) {
                s.push_str(&format!("older_than_hours = {o}\n"));
            }
        } else if let Some(o) = older {
            s.push_str(&format!("older_than_hours = {o}\n"));
        }
        s
    })
}

/// What a risk rule looks at: (record, when, may it be latest_only).
fn arb_risk_subject() -> impl Strategy<Value = (&'static str, String, bool)> {
    prop_oneof![
        Just(("test", "positive = true".to_owned(), true)),
        prop_oneof![Just("pcr"), Just("antigen")].prop_map(|k| (
            "test",
            format!("positive = true, test_kind = \"{k}\""),
            false
        )),
        prop_oneof![
            Just(""),
            Just("contact = \"close\""),
            Just("contact = \"secondary\"")
        ]
        .prop_map(|w| ("exposure", w.to_owned(), false)),
        prop_oneof![
            Just(""),
            Just("min_risk = \"low\""),
            Just("min_risk = \"medium\""),
            Just("min_risk = \"high\"")
        ]
        .prop_map(|w| ("travel", w.to_owned(), false)),
        proptest::sample::subsequence(
            vec![
                "\"fever\"",
                "\"cough\"",
                "\"sore_throat\"",
                "\"loss_of_taste_or_smell\"",
                "\"shortness_of_breath\"",
                "\"fatigue\""
            ],
            0..=3
        )
        .prop_map(|list| (
            "symptoms",
            if list.is_empty() {
                String::new()
            } else {
                format!("any_symptom_of = [{}]", list.join(", "))
            },
            false
        )),
    ]
}

fn arb_colour() -> impl Strategy<Value = Option<&'static str>> {
    opt(prop_oneof![Just("green"), Just("yellow"), Just("red")])
}

/// One rule the monotone checks allow (and the test checks it parses).
/// The bool: it caps validity.
fn arb_rule() -> impl Strategy<Value = (String, bool)> {
    let risk = (
        arb_risk_subject(),
        arb_window(),
        -100i32..=0,
        arb_colour(),
        opt(1u32..200),
        opt((opt(prop_oneof![Just("pcr"), Just("antigen")]), opt(1u32..=200))),
        any::<bool>(),
    )
        .prop_map(
            |((record, when, may_latest), window, score, colour, cap, unless, latest)| {
                let mut s = format!("record = \"{record}\"\nwhen = {{ {when} }}\n{window}score = {score}\n");
                if let Some(c) = colour {
                    s.push_str(&format!("colour = \"{c}\"\n"));
                }
                if let Some(c) = cap {
                    s.push_str(&format!("valid_hours_after_record = {c}\n"));
                }
                if let Some((kind, hours)) = unless {
                    let kind = kind.map_or(String::new(), |k| format!(", test_kind = \"{k}\""));
                    let hours = hours.map_or(String::new(), |h| format!(", lifts_for_hours = {h}"));
                    s.push_str(&format!(
                        "unless_later = {{ record = \"test\", when = {{ positive = false{kind} }}{hours} }}\n"
                    ));
                }
                if latest && may_latest && !window.contains("older_than_hours") {
                    s.push_str("latest_only = true\n");
                }
                (s, cap.is_some())
            },
        );
    let inert_test = (
        prop_oneof![
            Just(""),
            Just("positive = false"),
            Just("test_kind = \"pcr\"")
        ],
        arb_window(),
        any::<bool>(),
    )
        .prop_map(|(when, window, latest)| {
            (
                format!(
                    "record = \"test\"\nwhen = {{ {when} }}\n{window}{}",
                    if latest { "latest_only = true\n" } else { "" }
                ),
                false,
            )
        });
    let vaccination = (1u32..4, arb_window(), -30i32..=30, arb_colour(), any::<bool>()).prop_map(
        |(dose, window, score, colour, latest)| {
            let mut s = format!(
                "record = \"vaccination\"\nwhen = {{ min_dose = {dose} }}\n{window}score = {score}\n"
            );
            if let Some(c) = colour {
                s.push_str(&format!("colour = \"{c}\"\n"));
            }
            if latest {
                s.push_str("latest_only = true\n");
            }
            (s, false)
        },
    );
    prop_oneof![6 => risk, 1 => inert_test, 1 => vaccination]
}

fn arb_policy() -> impl Strategy<Value = Generated> {
    (arb_head(), proptest::collection::vec(arb_rule(), 0..6)).prop_map(
        |((head, base, hours), rules)| {
            let capped = rules.iter().any(|(_, c)| *c);
            Generated {
                head,
                base,
                hours,
                rules: rules
                    .into_iter()
                    .enumerate()
                    .map(|(i, (body, _))| {
                        format!(
                            "\n[[rules]]\nid = \"rule-{i}\"\ndescription = \"rule {i}\"\n{body}"
                        )
                    })
                    .collect(),
                capped,
            }
        },
    )
}

fn default_generated() -> Generated {
    Generated {
        head: DEFAULT_POLICY.to_owned(),
        rules: vec![],
        capped: false,
        base: 100,
        hours: [72, 24, 24],
    }
}

/// The default policy half the time, a generated one otherwise.
fn arb_any_policy() -> impl Strategy<Value = Generated> {
    prop_oneof![Just(default_generated()), arb_policy()]
}

fn arb_history() -> impl Strategy<Value = Vec<Rec>> {
    proptest::collection::vec(arb_rec(), 0..7)
}

// ---- the checks ----

fn badge(a: &Assessment) -> (Colour, i64, u32) {
    (a.colour, a.valid_until, a.score)
}

fn fired_ids(a: &Assessment) -> Vec<&str> {
    a.fired.iter().map(|f| f.rule_id.as_str()).collect()
}

/// The rules that fired with an effect on the score, colour or validity.
fn effective_ids(a: &Assessment) -> Vec<&str> {
    a.fired
        .iter()
        .filter(|f| f.score_delta != 0 || f.colour.is_some() || f.valid_until_cap.is_some())
        .map(|f| f.rule_id.as_str())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn generated_policies_pass_the_monotone_checks(g in arb_policy()) {
        prop_assert!(Policy::parse(&g.text()).is_ok(), "{}: {:?}", g.text(), Policy::parse(&g.text()).err());
    }

    #[test]
    fn a_negative_test_never_makes_a_badge_worse_or_shorter(
        g in arb_any_policy(),
        history in arb_history(),
        negative in arb_negative_test(),
    ) {
        let policy = g.policy();
        let before = policy.assess(&records(&history), NOW);
        let after = policy.assess(&with(&history, &negative), NOW);
        prop_assert!(after.colour <= before.colour, "colour {:?} -> {:?}", before.colour, after.colour);
        prop_assert!(after.score >= before.score, "score {} -> {}", before.score, after.score);
        if after.colour == before.colour {
            prop_assert!(
                after.valid_until >= before.valid_until,
                "{:?}: valid for {}s -> {}s\nbefore {before:#?}\nafter {after:#?}",
                after.colour, before.valid_until - NOW, after.valid_until - NOW
            );
        }
    }

    #[test]
    fn without_a_risk_record_negative_tests_change_nothing(
        g in arb_any_policy(),
        safe in proptest::collection::vec(arb_safe(), 0..5),
        negative in arb_negative_test(),
    ) {
        let policy = g.policy();
        let before = policy.assess(&records(&safe), NOW);
        let after = policy.assess(&with(&safe, &negative), NOW);
        prop_assert_eq!(badge(&after), badge(&before));
        // A rule over any test with no effect may fire on the new test; no
        // rule with an effect starts or stops firing.
        prop_assert_eq!(effective_ids(&after), effective_ids(&before));
        prop_assert!(after.lifted.is_empty());
    }

    #[test]
    fn a_risk_record_never_makes_a_badge_better(
        g in arb_any_policy(),
        history in arb_history(),
        risk in arb_risk(),
    ) {
        let policy = g.policy();
        let before = policy.assess(&records(&history), NOW);
        let after = policy.assess(&with(&history, &risk), NOW);
        prop_assert!(after.colour >= before.colour, "colour {:?} -> {:?}", before.colour, after.colour);
        prop_assert!(after.score <= before.score, "score {} -> {}", before.score, after.score);
        if after.colour == before.colour && !g.capped {
            prop_assert!(
                after.valid_until <= before.valid_until,
                "{:?}: valid for {}s -> {}s\nbefore {before:#?}\nafter {after:#?}",
                after.colour, before.valid_until - NOW, after.valid_until - NOW
            );
        }
    }

    #[test]
    fn record_order_never_matters(
        g in arb_any_policy(),
        shuffled in arb_history().prop_flat_map(|h| {
            let recs = records(&h);
            (Just(recs.clone()), Just(recs).prop_shuffle())
        }),
    ) {
        let policy = g.policy();
        let (recs, shuffled) = shuffled;
        prop_assert_eq!(policy.assess(&shuffled, NOW), policy.assess(&recs, NOW));
    }

    #[test]
    fn the_explanation_names_exactly_the_rules_that_fire(
        g in arb_policy(),
        history in arb_history(),
    ) {
        let recs = records(&history);
        let a = g.policy().assess(&recs, NOW);
        let ids: Vec<&str> = recs.iter().map(|r| r.record_id.as_str()).collect();
        // Rules fire independently: each fires alone in a one-rule policy
        // exactly when the full explanation names it.
        for (i, rule) in g.rules.iter().enumerate() {
            let alone = Policy::parse(&format!("{}{rule}", g.head)).unwrap().assess(&recs, NOW);
            let id = format!("rule-{i}");
            prop_assert_eq!(
                !alone.fired.is_empty(),
                a.fired.iter().any(|f| f.rule_id == id),
                "{} alone: {:?}; in full: {:?}", id, alone.fired, a.fired
            );
            prop_assert_eq!(
                !alone.lifted.is_empty(),
                a.lifted.iter().any(|l| l.rule_id == id),
                "{} lifted alone: {:?}; in full: {:?}", id, alone.lifted, a.lifted
            );
        }
        for f in &a.fired {
            prop_assert!(!f.record_ids.is_empty(), "{f:?}");
            prop_assert!(f.record_ids.iter().all(|r| ids.contains(&r.as_str())), "{f:?}");
            prop_assert!(f.colour.is_none_or(|c| c <= a.colour), "{f:?} but {:?}", a.colour);
        }
        for l in &a.lifted {
            prop_assert!(!l.record_ids.is_empty() && !l.lifted_by.is_empty(), "{l:?}");
            prop_assert!(l.record_ids.iter().chain(&l.lifted_by).all(|r| ids.contains(&r.as_str())), "{l:?}");
            prop_assert!(!fired_ids(&a).contains(&l.rule_id.as_str()), "{l:?} also fired");
        }
        let sum = g.base + a.fired.iter().map(|f| i64::from(f.score_delta)).sum::<i64>();
        prop_assert_eq!(i64::from(a.score), sum.clamp(0, 100));
        prop_assert!(a.valid_until >= NOW + MIN_VALIDITY_SECS);
        let hours = g.hours[match a.colour {
            Colour::Green => 0,
            Colour::Yellow => 1,
            Colour::Red => 2,
        }];
        prop_assert!(a.valid_until <= (NOW + hours * H).max(NOW + MIN_VALIDITY_SECS));
    }
}

/// What the validity property above relies on, pinned for the default
/// policy: a negative test lifting a yellow rule gives a green badge that
/// ends when the lift ends, which is no later than 72 hours after the test.
#[test]
fn a_better_colour_from_a_test_lasts_while_the_test_covers_the_risk() {
    let policy = Policy::default_policy().unwrap();
    let contact = Rec::Exposure {
        close: true,
        ago: 100 * H,
    };
    let test = Rec::Test {
        positive: false,
        pcr: true,
        ago: 70 * H,
    };
    let yellow = policy.assess(&records(std::slice::from_ref(&contact)), NOW);
    let green = policy.assess(&with(&[contact], &test), NOW);
    assert_eq!(
        (yellow.colour, yellow.valid_until),
        (Colour::Yellow, NOW + 24 * H)
    );
    assert_eq!(
        (green.colour, green.valid_until),
        (Colour::Green, NOW + 2 * H)
    );
}
