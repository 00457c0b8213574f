//! An offline verifier needs tessera-core and nothing of a server: the
//! crate's normal dependencies hold no async runtime, HTTP stack or TLS
//! library, and `examples/verify_offline.rs` (built from this crate alone)
//! gives every conformance badge vector its expected verdict.

use std::path::Path;
use std::process::Command;

#[allow(dead_code)]
#[path = "../examples/verify_offline.rs"]
mod example;

/// Crates that belong to the serving runtime, never to an offline verifier.
const SERVER_STACK: &[&str] = &[
    "tokio",
    "hyper",
    "hyper-util",
    "axum",
    "h2",
    "rustls",
    "tokio-rustls",
    "tonic",
    "sled",
];

#[test]
fn core_builds_without_a_server_stack() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--locked",
            "-p",
            "tessera-core",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).expect("cargo tree prints UTF-8");
    let names: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        names.contains(&"tessera-proto") && names.contains(&"prost"),
        "the tree should hold core's real dependencies: {names:?}"
    );
    let found: Vec<&&str> = SERVER_STACK.iter().filter(|c| names.contains(c)).collect();
    assert!(
        found.is_empty(),
        "tessera-core's normal dependencies include {found:?}:\n{tree}"
    );
}

#[test]
fn the_example_gives_every_conformance_badge_vector_its_verdict() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance");
    let text = std::fs::read_to_string(dir.join("vectors.json")).expect("vectors.json");
    let vectors: serde_json::Value = serde_json::from_str(&text).expect("vectors.json is JSON");
    let mut checked = 0;
    for v in vectors["badge_vectors"].as_array().expect("badge_vectors") {
        let id = v["id"].as_str().expect("id");
        // The example accepts its list at the badge's own time; vectors
        // whose list was accepted at another time are for verifiers that
        // keep a list across time, which the example does not.
        if v["trust_list_accepted_at"] != v["now"] {
            continue;
        }
        // The example reads QR text; envelope-bytes vectors are for the
        // library's own conformance run.
        let Some(text) = v["text"].as_str() else {
            continue;
        };
        let inputs = example::Inputs {
            root: dir.join(v["root"].as_str().expect("root")),
            list: dir.join(v["trust_list"].as_str().expect("trust_list")),
            badge: text.to_owned(),
            now: v["now"].as_i64().expect("now"),
        };
        let verdict = example::check(&inputs).unwrap_or_else(|e| panic!("{id}: {e}"));
        let expected = &v["expected"];
        let outcome = tessera_proto::v1::Outcome::try_from(verdict.outcome)
            .expect("a known outcome")
            .as_str_name()
            .trim_start_matches("OUTCOME_")
            .to_owned();
        assert_eq!(Some(outcome.as_str()), expected["outcome"].as_str(), "{id}");
        assert_eq!(
            Some(verdict.reason.as_str()),
            expected["reason"].as_str(),
            "{id}"
        );
        checked += 1;
    }
    assert!(checked >= 100, "only {checked} vectors were checked");
}

#[test]
fn the_example_with_no_arguments_checks_the_first_vector() {
    let inputs = example::inputs(&[]).expect("the conformance inputs");
    let verdict = example::check(&inputs).expect("the main list verifies");
    assert_eq!(verdict.outcome, tessera_proto::v1::Outcome::Valid as i32);
    assert!(example::describe(&verdict).contains("outcome: OUTCOME_VALID"));
}

#[test]
fn the_example_refuses_a_root_that_is_not_one() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance");
    let mut inputs = example::inputs(&[]).expect("the conformance inputs");
    inputs.root = dir.join("lists/main.tsl");
    let err = example::check(&inputs).expect_err("a trust list is not a root");
    assert!(err.contains("is not a tessera root"), "{err}");
    assert!(example::inputs(&["only-one".to_owned()]).is_err());
}
