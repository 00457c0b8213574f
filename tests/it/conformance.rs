//! The conformance suite under `conformance/`: the committed files are what
//! the generator makes, byte for byte, and the Rust core agrees with every
//! vector — one at a time, in batches of any arrangement, and for trust-list
//! acceptance. The vectors are read from disk as any vendor would read them.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use tessera_core::trust::{CheckedTrustList, Freshness, REASON_ACCEPTED};
use tessera_core::verify::{REASON_VALID, VerifiedBadge, VerifyError};
use tessera_core::{TrustAnchor, text, verify, verify_batch};
use tessera_proto::v1 as pb;
use tessera_tests::conformance::{self, suite_dir};

#[test]
fn conformance_files_match_the_generator_byte_for_byte() {
    let dir = suite_dir();
    let built = conformance::build();
    for file in &built.files {
        let on_disk = std::fs::read(dir.join(&file.name))
            .unwrap_or_else(|e| panic!("conformance file {} missing: {e}", file.name));
        assert!(
            on_disk == file.bytes,
            "conformance/{} differs from what the generator makes. If the change is intended, \
             run `cargo run -p tessera-tests --bin regen-conformance` and say why.",
            file.name
        );
    }
    let mut expected: Vec<String> = built
        .files
        .iter()
        .filter_map(|f| f.name.strip_prefix("lists/").map(str::to_owned))
        .collect();
    expected.sort();
    let mut present: Vec<String> = std::fs::read_dir(dir.join("lists"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    present.sort();
    assert_eq!(
        present, expected,
        "stray or missing files in conformance/lists"
    );
    let total = built.suite.badge_vectors.len() + built.suite.trust_list_vectors.len();
    assert!(total >= 150, "only {total} vectors");
}

/// What a verifier concluded, in the vectors' terms.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Got {
    outcome: String,
    reason: String,
    colour: Option<String>,
    valid_until: Option<i64>,
    issuer_city: Option<u64>,
}

fn outcome_name(outcome: pb::Outcome) -> String {
    outcome
        .as_str_name()
        .trim_start_matches("OUTCOME_")
        .to_owned()
}

fn got(result: &Result<VerifiedBadge, VerifyError>) -> Got {
    match result {
        Ok(badge) => {
            let c = badge.claims();
            Got {
                outcome: "VALID".into(),
                reason: REASON_VALID.into(),
                colour: Some(c.colour.as_str().to_uppercase()),
                valid_until: Some(c.valid_until),
                issuer_city: Some(u64::from(c.issuer_city.get())),
            }
        }
        Err(e) => Got {
            outcome: outcome_name(e.outcome()),
            reason: e.reason().into(),
            colour: None,
            valid_until: None,
            issuer_city: None,
        },
    }
}

fn expected(v: &Value) -> Got {
    let e = &v["expected"];
    Got {
        outcome: e["outcome"].as_str().unwrap().into(),
        reason: e["reason"].as_str().unwrap().into(),
        colour: e["colour"].as_str().map(str::to_owned),
        valid_until: e["valid_until"].as_i64(),
        issuer_city: e["issuer_city"].as_u64(),
    }
}

fn vectors() -> Value {
    let bytes = std::fs::read(suite_dir().join("vectors.json")).unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["format"], conformance::FORMAT);
    v
}

fn read(dir: &Path, name: &Value) -> Vec<u8> {
    let name = name.as_str().unwrap();
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn root(dir: &Path, v: &Value) -> TrustAnchor {
    TrustAnchor::from_der(&read(dir, &v["root"])).unwrap()
}

/// The list a badge vector holds; refusing it is a disagreement too.
fn held_list(dir: &Path, v: &Value) -> Result<CheckedTrustList, String> {
    let at = v["trust_list_accepted_at"].as_i64().unwrap();
    CheckedTrustList::verify(&read(dir, &v["trust_list"]), &root(dir, v), at)
        .map_err(|e| format!("its trust list {} is refused: {e}", v["trust_list"]))
}

/// The badge as envelope bytes, or the verdict of its text.
fn envelope(v: &Value) -> Result<Vec<u8>, VerifyError> {
    match (v["text"].as_str(), v["envelope_hex"].as_str()) {
        (Some(t), None) => {
            text::from_text(t, tessera_core::badge::MAX_ENVELOPE_LEN).map_err(VerifyError::from)
        }
        (None, Some(h)) => Ok(hex::decode(h).unwrap()),
        _ => panic!("{}: exactly one of text and envelope_hex", v["id"]),
    }
}

fn report(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} disagreement(s) with the conformance vectors:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_badge_vector_verifies_as_expected_one_at_a_time() {
    let dir = suite_dir();
    let all = vectors();
    let mut failures = vec![];
    let mut lists: BTreeMap<(String, i64), Result<CheckedTrustList, String>> = BTreeMap::new();
    for v in all["badge_vectors"].as_array().unwrap() {
        let key = (
            v["trust_list"].as_str().unwrap().to_owned(),
            v["trust_list_accepted_at"].as_i64().unwrap(),
        );
        let list = match lists.entry(key).or_insert_with(|| held_list(&dir, v)) {
            Ok(list) => list,
            Err(e) => {
                failures.push(format!("{}: {e}", v["id"]));
                continue;
            }
        };
        let now = v["now"].as_i64().unwrap();
        let result = envelope(v).and_then(|bytes| verify(&bytes, list, now));
        let got = got(&result);
        let want = expected(v);
        if got != want {
            failures.push(format!("{}: expected {want:?}, got {got:?}", v["id"]));
        }
    }
    report(&failures);
}

/// Every arrangement the batch runner tries: whole, in chunks of several
/// sizes, reversed and rotated.
fn arrangements(n: usize) -> Vec<(String, Vec<Vec<usize>>)> {
    let order: Vec<usize> = (0..n).collect();
    let mut out = vec![("whole".to_owned(), vec![order.clone()])];
    for size in [1, 2, 3, 7, 64] {
        out.push((
            format!("chunks of {size}"),
            order.chunks(size).map(<[usize]>::to_vec).collect(),
        ));
    }
    let mut reversed = order.clone();
    reversed.reverse();
    out.push(("reversed".into(), vec![reversed]));
    let mut rotated = order;
    rotated.rotate_left(n / 3);
    out.push((
        "rotated, chunks of 5".into(),
        rotated.chunks(5).map(<[usize]>::to_vec).collect(),
    ));
    out
}

#[test]
fn every_badge_vector_verifies_as_expected_in_batches() {
    let dir = suite_dir();
    let all = vectors();
    let mut groups: BTreeMap<(String, i64, i64), Vec<&Value>> = BTreeMap::new();
    for v in all["badge_vectors"].as_array().unwrap() {
        let key = (
            v["trust_list"].as_str().unwrap().to_owned(),
            v["trust_list_accepted_at"].as_i64().unwrap(),
            v["now"].as_i64().unwrap(),
        );
        groups.entry(key).or_default().push(v);
    }
    let mut failures = vec![];
    for ((_, _, now), members) in &groups {
        let list = match held_list(&dir, members[0]) {
            Ok(list) => list,
            Err(e) => {
                failures.extend(members.iter().map(|v| format!("{}: {e}", v["id"])));
                continue;
            }
        };
        let envelopes: Vec<Result<Vec<u8>, VerifyError>> =
            members.iter().map(|v| envelope(v)).collect();
        for (name, chunks) in arrangements(members.len()) {
            for chunk in chunks {
                let readable: Vec<&[u8]> = chunk
                    .iter()
                    .filter_map(|&i| envelopes[i].as_ref().ok().map(Vec::as_slice))
                    .collect();
                let mut results = verify_batch(&readable, &list, *now).into_iter();
                for &i in &chunk {
                    let result = match &envelopes[i] {
                        Err(e) => Err(e.clone()),
                        Ok(_) => results.next().unwrap(),
                    };
                    let got = got(&result);
                    let want = expected(members[i]);
                    if got != want {
                        failures.push(format!(
                            "{} (batch, {name}): expected {want:?}, got {got:?}",
                            members[i]["id"]
                        ));
                    }
                }
            }
        }
    }
    report(&failures);
}

#[test]
fn every_trust_list_vector_is_accepted_or_refused_as_expected() {
    let dir = suite_dir();
    let all = vectors();
    let mut failures = vec![];
    for v in all["trust_list_vectors"].as_array().unwrap() {
        let root = root(&dir, v);
        let now = v["now"].as_i64().unwrap();
        let candidate = read(&dir, &v["candidate"]);
        let result = match v.get("held") {
            Some(held) => match CheckedTrustList::verify(&read(&dir, held), &root, now) {
                Ok(held) => held.verify_successor(&candidate, &root, now),
                Err(e) => {
                    failures.push(format!("{}: the held list is refused: {e}", v["id"]));
                    continue;
                }
            },
            None => CheckedTrustList::verify(&candidate, &root, now),
        };
        let got = match &result {
            Ok(list) => serde_json::json!({
                "accepted": true,
                "reason": REASON_ACCEPTED,
                "sequence": list.sequence(),
                "freshness": match list.freshness(now) {
                    Freshness::Fresh => "fresh",
                    Freshness::Stale { .. } => "stale",
                    Freshness::Sunset => "sunset",
                },
            }),
            Err(e) => serde_json::json!({ "accepted": false, "reason": e.reason() }),
        };
        if got != v["expected"] {
            let detail = result.err().map(|e| e.to_string()).unwrap_or_default();
            failures.push(format!(
                "{}: expected {}, got {got} {detail}",
                v["id"], v["expected"]
            ));
        }
    }
    report(&failures);
}
