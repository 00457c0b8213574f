//! A help desk and an IT team at work on a running node, through the real
//! `tessera` binary: `tessera resident …` with an operator's bundle (text,
//! JSON, exit statuses, the ID number never printed whole), then
//! `tessera node backup` while the node runs and `tessera node restore`
//! into an empty data directory, refused with a master key an erasure
//! replaced.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{Authority, id, ok, stop, tessera};
use tessera_proto::v1 as pb;

/// Runs `tessera args` with `input` on standard input.
fn tessera_with_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_help_desk_reads_and_erases_and_it_backs_up_and_restores() {
    let a = Authority::new();
    let config = a.config();
    let city_dir = a.dir.join("cities/330100");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str("\n[storage]\nbackup_dir = \"backups\"\n");
    std::fs::write(&config, toml).unwrap();
    std::fs::create_dir_all(city_dir.join("backups")).unwrap();
    let node = a.start_node();
    let addr = format!("127.0.0.1:{}", a.port);
    let bundle = a.dir.join("operators/330100-hangzhou-cdc");
    let bundle = bundle.to_str().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let record = |rid: &str, n: u32| pb::Record {
        record_id: rid.into(),
        national_id: id(n),
        kind: Some(pb::record::Kind::Test(pb::TestResult {
            kind: pb::TestKind::Pcr as i32,
            positive: n == 3,
            sampled_at: now - 3600,
            lab: "HZ-LAB-01".into(),
        })),
    };
    a.client("operators/330100-hangzhou-cdc/operator")
        .ingest_records(pb::IngestRequest {
            records: vec![record("r1", 1), record("r2", 1), record("r3", 3)],
        })
        .await
        .unwrap();
    let resident = |cmd: &str, n: u32, extra: &[&str]| {
        let mut args = vec!["resident", cmd, "--node", &addr, "--bundle", bundle];
        args.extend_from_slice(extra);
        tessera_with_stdin(&args, &format!("{}\n", id(n)))
    };

    // Export, as JSON, the ID number read from standard input.
    let out = resident("export", 1, &["--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = json["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["record_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["r1", "r2"]);
    let full = id(1);
    assert_eq!(
        json["resident"],
        format!("ID ending {}", &full[full.len() - 4..])
    );
    // Explain, readable; the ID number is never printed whole.
    let out = resident("explain", 3, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("colour") && said.contains("r3"), "{said}");
    assert!(!said.contains(&id(3)), "{said}");
    // Nothing held: exit 3. No ID at all: exit 2.
    let out = resident("export", 2, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = tessera_with_stdin(
        &["resident", "export", "--node", &addr, "--bundle", bundle],
        "\n",
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // The access log lists the reads above, this one included.
    let out = resident("access-log", 3, &["--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let actions: Vec<&str> = json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["explain", "access_log"]);

    // Corrections: r2 retracted, r1 replaced by a positive test (from a
    // one-row CSV file), an unknown record not found.
    let out = resident(
        "correct",
        1,
        &["--record", "r2", "--retract", "--reason", "wrong-person"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("retracted record r2"), "{}", text(&out));
    let csv = a.dir.join("r1.csv");
    std::fs::write(
        &csv,
        format!(
            "record_id,national_id,type,time,test_kind,positive,lab\nr1,{},test,{},pcr,true,HZ-LAB-02\n",
            id(1),
            time::OffsetDateTime::from_unix_timestamp(now - 1800)
                .unwrap()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        ),
    )
    .unwrap();
    let out = resident(
        "correct",
        1,
        &[
            "--record",
            "r1",
            "--replacement",
            csv.to_str().unwrap(),
            "--reason",
            "source-amended",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["correction"], "replaced");
    assert_eq!(json["colour"], "red", "{json}");
    let out = resident(
        "correct",
        1,
        &["--record", "nope", "--retract", "--reason", "duplicate"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = resident("explain", 1, &[]);
    let said = text(&out);
    assert!(
        said.contains("record r2 retracted") && said.contains("record r1 replaced"),
        "{said}"
    );
    let out = resident("export", 1, &["--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["records"].as_array().unwrap().len(), 1, "{json}");
    // The corrections' marks are data held about the resident too.
    let marks: Vec<(&str, bool)> = json["corrections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["record_id"].as_str().unwrap(),
                c["retracted"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(marks.len(), 2, "{json}");
    assert!(
        marks.contains(&("r2", true)) && marks.contains(&("r1", false)),
        "{json}"
    );

    // A backup while the node runs, then an erasure (which replaces the
    // master key), then a second backup.
    let backed = ok(&[
        "node", "backup", "--config", &config, "--bundle", bundle, "--to", "before",
    ]);
    assert!(backed.contains("2 records"), "{backed}");
    let out = resident("erase", 3, &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "erase without --yes: {}",
        text(&out)
    );
    let out = resident("erase", 3, &["--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = resident("erase", 3, &["--yes"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    ok(&[
        "node", "backup", "--config", &config, "--bundle", bundle, "--to", "after",
    ]);
    stop(node);

    // Restore needs an empty data_dir and the master key of the backup.
    let data = city_dir.join("data");
    let out = tessera(&[
        "node",
        "restore",
        "--from",
        city_dir.join("backups/after").to_str().unwrap(),
        "--config",
        &config,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("not empty"), "{}", text(&out));
    std::fs::rename(&data, city_dir.join("data.old")).unwrap();
    let out = tessera(&[
        "node",
        "restore",
        "--from",
        city_dir.join("backups/before").to_str().unwrap(),
        "--config",
        &config,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("residents were erased since the backup"),
        "{}",
        text(&out)
    );
    assert!(!data.exists());
    ok(&[
        "node",
        "restore",
        "--from",
        city_dir.join("backups/after").to_str().unwrap(),
        "--config",
        &config,
    ]);
    let node = a.start_node();
    let out = resident("export", 1, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("1 records"), "{}", text(&out));
    let out = resident("export", 3, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    stop(node);
}
