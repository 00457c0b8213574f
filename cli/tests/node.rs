//! A city node as its IT team runs it: the real `tessera` binary, files the
//! authority wrote, CSV import, and a node process stopped and started again
//! on the same data directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{Authority, id, ok, stop, tessera};

use std::path::Path;

use tessera_proto::v1 as pb;
use tessera_proto::v1::city_node_client::CityNodeClient;

fn write_csv(dir: &Path, name: &str, rows: &[String]) -> String {
    let path = dir.join(name);
    let mut text = String::from("record_id,national_id,type,time,test_kind,positive,lab\n");
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn test_row(record: &str, resident: u32, positive: bool) -> String {
    format!(
        "{record},{},test,2026-11-27T08:00:00+08:00,pcr,{positive},HZ-LAB-01",
        id(resident)
    )
}

#[test]
fn csv_import_refuses_a_file_over_its_stated_size_or_row_limit() {
    let a = Authority::new();
    let config = a.config();
    let rows: Vec<String> = (0..3)
        .map(|i| test_row(&format!("big{i}"), 10 + i, false))
        .collect();
    let file = write_csv(&a.dir, "three.csv", &rows);
    let size = std::fs::metadata(&file).unwrap().len();

    let small = (size - 1).to_string();
    let out = tessera(&[
        "node",
        "import",
        "--config",
        &config,
        &file,
        "--max-bytes",
        &small,
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("larger than the limit of {small} bytes")),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("it has {size}")), "{stderr}");
    assert!(
        stderr.contains("raise the limit with --max-bytes"),
        "{stderr}"
    );

    let out = tessera(&[
        "node",
        "import",
        "--config",
        &config,
        &file,
        "--max-rows",
        "2",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("more than 2 rows"), "{stderr}");
    assert!(
        stderr.contains("raise the limit with --max-rows"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was imported"), "{stderr}");

    // Within both limits it is imported: nothing was stored by the refusals.
    let report = ok(&[
        "node",
        "import",
        "--config",
        &config,
        &file,
        "--max-rows",
        "3",
        "--max-bytes",
        &size.to_string(),
    ]);
    assert!(report.contains("imported 3 records"), "{report}");
}

#[test]
fn csv_import_of_a_large_file_stores_every_row_and_a_bad_line_mid_file_stores_nothing() {
    let a = Authority::new();
    let config = a.config();
    // 30,000 rows: three batches of the default max_batch_records (10,000),
    // and far more than the import's 64 KiB read buffer.
    let rows: Vec<String> = (0..30_000)
        .map(|i| test_row(&format!("big{i}"), i % 1000, false))
        .collect();
    let good = write_csv(&a.dir, "good.csv", &rows);
    assert!(std::fs::metadata(&good).unwrap().len() > 2_000_000);
    let mut broken = rows.clone();
    // Row 25,000 is line 25,002: the two batches before it are valid.
    broken[25_000] = "big25000,123,test,2026-11-27T08:00:00+08:00,pcr,false,L".into();
    let bad = write_csv(&a.dir, "bad.csv", &broken);

    let out = tessera(&["node", "import", "--config", &config, &bad]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 25002: national_id"), "{stderr}");
    assert!(stderr.contains("1 invalid line(s)"), "{stderr}");
    assert!(stderr.contains("nothing was imported"), "{stderr}");

    // Nothing of the refused file was stored: every row is new.
    let report = ok(&["node", "import", "--config", &config, &good]);
    assert!(
        report.contains("imported 30000 records") && report.contains("(0 already stored"),
        "{report}"
    );
    // And every row is there.
    let report = ok(&["node", "import", "--config", &config, &good]);
    assert!(
        report.contains("imported 0 records") && report.contains("(30000 already stored"),
        "{report}"
    );
}

#[test]
fn csv_import_is_all_or_nothing_unless_told_to_skip() {
    let a = Authority::new();
    let config = a.config();
    let good = write_csv(
        &a.dir,
        "good.csv",
        &[test_row("r1", 1, false), test_row("r2", 2, false)],
    );
    let bad = write_csv(
        &a.dir,
        "bad.csv",
        &[
            test_row("r3", 3, false),
            "r4,123,test,2026-11-27T08:00:00Z,pcr,false,L".into(),
            test_row("r5", 5, false),
        ],
    );
    let out = tessera(&["node", "import", "--config", &config, &bad]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 3: national_id"), "{stderr}");
    assert!(stderr.contains("nothing was imported"), "{stderr}");

    let report = ok(&["node", "import", "--config", &config, &good]);
    assert!(report.contains("imported 2 records"), "{report}");
    let report = ok(&[
        "node",
        "import",
        "--config",
        &config,
        &bad,
        "--skip-invalid",
    ]);
    assert!(report.contains("skipped line 3"), "{report}");
    assert!(
        report.contains("imported 2 records"),
        "r3 or r5 was stored by the refused import: {report}"
    );
    let report = ok(&["node", "import", "--config", &config, &good]);
    assert!(
        report.contains("imported 0 records") && report.contains("2 already stored"),
        "{report}"
    );

    let header = a.dir.join("header.csv");
    std::fs::write(&header, "record_id,national_id,type,time,colour\n").unwrap();
    let out = tessera(&[
        "node",
        "import",
        "--config",
        &config,
        header.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown column \"colour\""));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_process_keeps_every_acknowledged_record_and_badge_state_across_a_restart() {
    let a = Authority::new();
    let node = a.start_node();

    // While the node runs, its store is locked against a second opener.
    let csv = write_csv(&a.dir, "one.csv", &[test_row("c1", 9, false)]);
    let out = tessera(&["node", "import", "--config", &a.config(), &csv]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut op = a.client("operators/330100-hangzhou-cdc/operator");
    let mut gw = a.client("gateways/gateway/gateway");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let records: Vec<pb::Record> = (0..200)
        .map(|i| pb::Record {
            record_id: format!("rec-{i}"),
            national_id: id(i % 50),
            kind: Some(pb::record::Kind::Test(pb::TestResult {
                kind: pb::TestKind::Pcr as i32,
                positive: false,
                sampled_at: now - 3600 - i64::from(i),
                lab: "HZ-LAB-01".into(),
            })),
        })
        .collect();
    let ack = op
        .ingest_records(pb::IngestRequest {
            records: records.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ack.stored, 200);
    let badge = op
        .issue_badge(pb::IssueBadgeRequest {
            national_id: id(7),
            name: "王芳".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let other = op
        .issue_badge(pb::IssueBadgeRequest {
            national_id: id(8),
            name: "李雷".into(),
        })
        .await
        .unwrap()
        .into_inner();
    op.ingest_records(pb::IngestRequest {
        records: vec![pb::Record {
            record_id: "positive-7".into(),
            national_id: id(7),
            kind: Some(pb::record::Kind::Test(pb::TestResult {
                kind: pb::TestKind::Antigen as i32,
                positive: true,
                sampled_at: now - 60,
                lab: "HZ-LAB-02".into(),
            })),
        }],
    })
    .await
    .unwrap();
    let statuses = |gw: &mut CityNodeClient<_>| {
        let req = pb::CheckStatusRequest {
            badge_ids: vec![badge.badge_id.clone(), other.badge_id.clone()],
        };
        let mut gw = gw.clone();
        async move { gw.check_status(req).await.unwrap().into_inner().statuses }
    };
    let before = statuses(&mut gw).await;
    assert_eq!(
        before,
        vec![
            pb::BadgeStatus::Revoked as i32,
            pb::BadgeStatus::Active as i32
        ]
    );

    stop(node);
    let node = a.start_node();
    let mut op = a.client("operators/330100-hangzhou-cdc/operator");
    let mut gw = a.client("gateways/gateway/gateway");
    assert_eq!(
        statuses(&mut gw).await,
        before,
        "badge states changed over the restart"
    );
    let again = op
        .ingest_records(pb::IngestRequest { records })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (again.stored, again.duplicates),
        (0, 200),
        "acknowledged records were lost"
    );
    let explained = op
        .explain(pb::ExplainRequest { national_id: id(7) })
        .await
        .unwrap()
        .into_inner();
    assert!(
        explained
            .effects
            .iter()
            .any(|e| e.record_ids == vec!["positive-7".to_string()])
    );
    stop(node);
}

#[test]
fn the_authority_uploads_trust_lists_to_a_running_gateway() {
    let a = Authority::new();
    let d = a.dir.to_str().unwrap();
    let (child, gw) = a.run_gateway();
    let out = a.publish_to(&gw);
    assert!(out.contains("sequence 1 in force"), "{out}");
    ok(&["authority", "revoke", "--dir", d, "--city", "330100"]);
    let out = a.publish_to(&gw);
    assert!(out.contains("sequence 2 in force"), "{out}");
    let out = tessera(&[
        "authority",
        "trust-list",
        "publish",
        "--dir",
        d,
        "--gateway",
        "127.0.0.1:1",
    ]);
    assert!(!out.status.success());
    stop(child);
}

#[test]
fn a_checkpoint_keeps_an_offline_copy_of_the_trust_list() {
    let a = Authority::new();
    let d = a.dir.to_str().unwrap();
    ok(&[
        "authority",
        "enrol-verifier",
        "--dir",
        d,
        "--province",
        "420000",
        "--name",
        "Wuhan station",
    ]);
    let (child, gw) = a.run_gateway();
    a.publish_to(&gw);
    let bundle = a.dir.join("verifiers/420000-wuhan-station");
    let out = a.dir.join("checkpoint.tsl");
    let fetch = [
        "trust-list",
        "fetch",
        "--gateway",
        &gw,
        "--bundle",
        bundle.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    assert!(ok(&fetch).contains("trust list 1 saved"));
    assert!(ok(&fetch).contains("is current"));
    a.publish_to(&gw);
    assert!(ok(&fetch).contains("trust list 2 saved"));
    let shown = ok(&[
        "authority",
        "trust-list",
        "show",
        out.to_str().unwrap(),
        "--root",
        bundle.join("root.crt").to_str().unwrap(),
    ]);
    assert!(shown.contains("Trust list 2"), "{shown}");
    stop(child);
}

#[test]
fn logs_are_json_lines_when_asked() {
    let a = Authority::new();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args([
            "--log-format",
            "json",
            "node",
            "run",
            "--config",
            &a.config(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{}", a.port);
    common::wait_until(
        "the node to start",
        std::time::Duration::from_secs(20),
        || std::net::TcpStream::connect(&addr).is_ok(),
    );
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the node exited with {}", out.status);
    let text = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "the node logged nothing");
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        assert!(v["fields"].is_object(), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_access_log_says_ok_refuses_a_running_node_and_names_the_edited_entry() {
    let a = Authority::new();
    let config = a.config();
    let node = a.start_node();
    // Answers prove the store is open (the port is bound before it is).
    let mut op = a.client("operators/330100-hangzhou-cdc/operator");
    for n in [1, 2, 1] {
        op.explain(pb::ExplainRequest { national_id: id(n) })
            .await
            .unwrap();
    }
    // The node holds the data directory's lock: verification must wait.
    let out = tessera(&["node", "verify-access-log", "--config", &config]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("locked while the node runs"), "{stderr}");
    stop(node);

    let report = ok(&["node", "verify-access-log", "--config", &config]);
    assert!(report.contains("length 3\n"), "{report}");
    assert!(report.contains("OK:"), "{report}");
    let checkpoint = report
        .lines()
        .find_map(|l| l.strip_prefix("checkpoint "))
        .unwrap()
        .to_owned();
    assert!(checkpoint.starts_with("3:"), "{checkpoint}");
    let report = ok(&[
        "node",
        "verify-access-log",
        "--config",
        &config,
        "--expect",
        &checkpoint,
    ]);
    assert!(report.contains("entry 3 is as expected"), "{report}");

    // One byte of entry 2 changed in the real sled files.
    let store = tessera_node::config::NodeSettings::load(Path::new(&config))
        .unwrap()
        .data_dir
        .join("store");
    {
        let db = sled::open(&store).unwrap();
        let tree = db.open_tree(tessera_node::access_log::TREE).unwrap();
        let key = [&b"e"[..], &2u64.to_be_bytes()].concat();
        let mut bytes = tree.get(&key).unwrap().unwrap().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x80; // the stored hash
        tree.insert(&key, bytes).unwrap();
        db.flush().unwrap();
    }
    let out = tessera(&["node", "verify-access-log", "--config", &config]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("PROBLEM: entry 2: hash mismatch"),
        "{stdout}"
    );
    assert!(stdout.contains("length 3\n"), "{stdout}");
}
