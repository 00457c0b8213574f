//! Sunset as a city IT team and the authority do it, with the real `tessera`
//! binary: records imported and badges issued by a node process, `tessera
//! node sunset`, `tessera authority verify-attestation` on the file it
//! wrote (and on tampered copies), and `tessera authority attestations`
//! against the gateway.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Authority, id, ok, stop, tessera};
use prost::Message;
use tessera_proto::v1 as pb;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The one attestation file `tessera node sunset` wrote beside `data`.
fn attestation_file(city_dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(city_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("attestation-330100-") && n.ends_with(".pb"))
        })
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

#[tokio::test]
async fn node_sunset_destroys_everything_and_the_authority_verifies_it_and_sees_every_city_attested()
 {
    let a = Authority::new();
    let d = a.dir.to_str().unwrap().to_owned();
    let (gateway, gw) = a.run_gateway();
    a.publish_to(&gw);
    let config = a.config();
    let city_dir = a.dir.join("cities/330100");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "root = \"root.crt\"",
        &format!("root = \"root.crt\"\ngateway = \"{gw}\""),
    );
    std::fs::write(&config, text).unwrap();

    // 3 residents, 4 records imported; 2 badges issued by the running node.
    let csv = city_dir.join("lab.csv");
    let mut rows = String::from("record_id,national_id,type,time,test_kind,positive,lab\n");
    for (record, resident) in [("r1", 1), ("r2", 1), ("r3", 2), ("r4", 3)] {
        rows.push_str(&format!(
            "{record},{},test,2026-11-27T08:00:00+08:00,pcr,false,HZ-LAB-01\n",
            id(resident)
        ));
    }
    std::fs::write(&csv, rows).unwrap();
    ok(&["node", "import", "--config", &config, csv.to_str().unwrap()]);
    let node = a.start_node();
    let mut op = a.client("operators/330100-hangzhou-cdc/operator");
    for resident in [1, 2] {
        op.issue_badge(pb::IssueBadgeRequest {
            national_id: id(resident),
            name: "张三丰".into(),
        })
        .await
        .unwrap();
    }
    drop(op);

    // Refused while the node runs, and without confirmation: nothing goes.
    let out = tessera(&["node", "sunset", "--config", &config, "--yes"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("stop it first"), "{}", stderr(&out));
    stop(node);
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["node", "sunset", "--config", &config])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert!(city_dir.join("badge-signer.key").exists());
    assert!(city_dir.join("data/store").exists());

    // Not every city has attested yet.
    let out = tessera(&["authority", "attestations", "--dir", &d, "--gateway", &gw]);
    assert!(!out.status.success());
    assert!(stdout(&out).contains("MISSING"), "{}", stdout(&out));

    let report = ok(&["node", "sunset", "--config", &config, "--yes"]);
    assert!(
        report.contains(
            "destroyed: 3 residents, 4 records, 2 badges; badge-signer key destroyed: yes"
        ),
        "{report}"
    );
    assert!(report.contains("submitted to the gateway"), "{report}");
    let names: Vec<String> = std::fs::read_dir(city_dir.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["sunset-attestation.pb".to_owned()]);
    assert!(!city_dir.join("badge-signer.key").exists());
    let file = attestation_file(&city_dir);
    assert!(report.contains(&file.display().to_string()), "{report}");

    let shown = ok(&[
        "authority",
        "verify-attestation",
        file.to_str().unwrap(),
        "--dir",
        &d,
    ]);
    assert!(shown.contains("city 330100"), "{shown}");
    assert!(
        shown.contains("3 residents, 4 records, 2 badges"),
        "{shown}"
    );
    assert!(shown.contains("reason       operator"), "{shown}");
    assert!(shown.trim_end().ends_with("VALID"), "{shown}");

    // A copy with one payload byte flipped, and one with its counts edited
    // and re-encoded, are INVALID with a non-zero exit.
    let signed = std::fs::read(&file).unwrap();
    let mut flipped = pb::SignedAttestation::decode(signed.as_slice()).unwrap();
    flipped.payload[3] ^= 0x01;
    let mut edited = pb::SignedAttestation::decode(signed.as_slice()).unwrap();
    let mut claims = pb::DeletionAttestation::decode(edited.payload.as_slice()).unwrap();
    claims.records = 0;
    edited.payload = claims.encode_to_vec();
    for (name, copy) in [("flipped.pb", flipped), ("edited.pb", edited)] {
        let path = city_dir.join(name);
        std::fs::write(&path, copy.encode_to_vec()).unwrap();
        // With the authority's directory: the node's certificate is issued
        // by its issuing CA, which the root alone does not name.
        let out = tessera(&[
            "authority",
            "verify-attestation",
            path.to_str().unwrap(),
            "--dir",
            &d,
        ]);
        assert!(!out.status.success(), "{name}");
        assert!(
            stdout(&out).contains("INVALID: attestation signature does not match"),
            "{name}: {}",
            stdout(&out)
        );
    }

    // The gateway holds it: the whole country (one city) switched off.
    let all = ok(&["authority", "attestations", "--dir", &d, "--gateway", &gw]);
    assert!(all.contains("330100 Hangzhou"), "{all}");
    assert!(all.contains("ATTESTED"), "{all}");
    assert!(all.contains("Every city has switched off"), "{all}");

    // The node never runs again; a second sunset resubmits the same file.
    let out = tessera(&["node", "run", "--config", &config]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("switched off"), "{}", stderr(&out));
    let again = ok(&["node", "sunset", "--config", &config, "--yes"]);
    assert!(again.contains("already switched off"), "{again}");
    assert_eq!(std::fs::read(attestation_file(&city_dir)).unwrap(), signed);
    stop(gateway);
}
