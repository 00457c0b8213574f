//! `tessera bench` cannot silently break: a short run of every scenario
//! (no threshold on the figures), and the help that documents them.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

mod common;

#[test]
fn every_scenario_runs_briefly_without_failed_calls() {
    let out = common::ok(&[
        "bench",
        "all",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--concurrency",
        "8",
        "--connections",
        "2",
        "--badges",
        "120",
        "--residents",
        "120",
        "--batch",
        "10",
        "--idle",
        "20",
        "--streams",
        "300",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).expect("bench --json prints JSON");
    let rows = report["rows"].as_array().expect("rows");
    for expected in [
        "echo (baseline E)",
        "raw Ed25519 verify, all cores (V)",
        "verify-offline",
        "relay (",
        "relay at half",
        "batch (",
        "bare sled batch",
        "ingest (",
        "raw Ed25519 sign",
        "issue (",
        "idle mTLS connections",
        "full mTLS handshakes",
    ] {
        let row = rows
            .iter()
            .find(|r| r["name"].as_str().unwrap().starts_with(expected))
            .unwrap_or_else(|| panic!("no {expected:?} row in {out}"));
        assert!(row["per_second"].as_f64().unwrap() > 0.0, "{row}");
        assert_eq!(row["errors"], 0, "{row}");
    }
    let measured = rows.iter().filter(|r| r["calls"].as_u64().unwrap() > 0);
    assert_eq!(measured.count(), 8, "{out}");
    let targets = report["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 11, "{out}");
    let notes = report["notes"].as_array().unwrap();
    for note in [
        "status cache hit rate",
        "gateway RSS",
        "on disk",
        "limit announced 100; 100 held open, 200 refused",
    ] {
        assert!(
            notes.iter().any(|n| n.as_str().unwrap().contains(note)),
            "{note}: {out}"
        );
    }
}

#[test]
fn a_short_soak_reports_errors_memory_and_open_files() {
    let out = common::ok(&[
        "bench",
        "soak",
        "--soak",
        "2s",
        "--soak-warmup",
        "1s",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--concurrency",
        "8",
        "--connections",
        "2",
        "--badges",
        "120",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&out).expect("bench --json prints JSON");
    let rows = report["rows"].as_array().expect("rows");
    let soak = rows
        .iter()
        .find(|r| r["name"].as_str().unwrap().starts_with("soak at half"))
        .unwrap_or_else(|| panic!("no soak row in {out}"));
    assert!(soak["calls"].as_u64().unwrap() > 0, "{soak}");
    assert_eq!(soak["errors"], 0, "{soak}");
    let targets = report["targets"].as_array().unwrap();
    for what in [
        "soak failed verifications",
        "soak RSS growth",
        "soak open-file growth",
    ] {
        assert!(
            targets
                .iter()
                .any(|t| t["what"].as_str().unwrap().starts_with(what)),
            "{what}: {out}"
        );
    }
    let notes = report["notes"].as_array().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.as_str().unwrap().contains("open files")),
        "{out}"
    );
}

#[test]
fn help_documents_every_scenario() {
    let help = common::ok(&["bench", "--help"]);
    for scenario in [
        "echo",
        "verify-offline",
        "relay",
        "batch",
        "ingest",
        "issue",
        "idle-connections",
        "stream-flood",
        "all",
        "soak",
    ] {
        assert!(help.contains(scenario), "{scenario} missing from:\n{help}");
    }
    let bad = common::tessera(&["bench", "relay", "--duration", "soon"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a duration"));
}
