//! Where a backup may be written, and what a restore refuses.

use std::path::Path;

use super::*;
use crate::store::{Change, NewRecord};

#[test]
fn a_backup_goes_only_to_a_new_directory_inside_backup_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("backups");
    let data = tmp.path().join("data");
    std::fs::create_dir_all(root.join("taken")).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    let t = |asked: &str| target(Some(&root), &data, asked);
    assert!(matches!(
        target(None, &data, "b"),
        Err(BackupError::NotConfigured)
    ));
    assert_eq!(t("b").unwrap(), root.join("b"));
    assert_eq!(t(root.join("c").to_str().unwrap()).unwrap(), root.join("c"));
    for bad in [
        "",
        "../b",
        "x/../../b",
        "/elsewhere",
        "taken",
        "no/parent",
        root.to_str().unwrap(),
    ] {
        assert!(matches!(t(bad), Err(BackupError::Target(_))), "{bad}");
    }
    // A backup_dir around data_dir still keeps backups out of it.
    assert!(matches!(
        target(Some(tmp.path()), &data, "data/b"),
        Err(BackupError::Target(_))
    ));
}

/// A backup of a store with one record, as `take` writes it, and the
/// settings of a node of city 330100 whose data_dir is still absent.
fn backup_and_settings(tmp: &Path) -> (PathBuf, NodeSettings, Marker) {
    let backup = tmp.join("backup");
    let store = SledStore::open(&backup.join("store"), &tmp.join("master.key")).unwrap();
    store
        .apply(&Change {
            records: vec![NewRecord {
                resident: crate::pseudonym::Pseudonym::from_slice(&[1; 32]).unwrap(),
                record_id: "r-1".into(),
                kind: crate::records::RecordType::Test,
                at: 1_800_000_000,
                fingerprint: [2; 32],
                encoded: b"plain".to_vec(),
            }],
            ..Change::default()
        })
        .unwrap();
    store.flush().unwrap();
    let db = sled::open(tmp.join("scratch")).unwrap();
    let copied = store.copy_into(&db).unwrap();
    drop(store);
    wait_unlocked(&backup.join("store")).unwrap();
    std::fs::write(backup.join("pseudonym.key"), "00".repeat(32)).unwrap();
    let marker = Marker {
        format: FORMAT,
        layout: copied.layout,
        city: "330100".into(),
        taken_at: 1,
        residents: copied.census.residents,
        records: copied.census.records,
        badges: copied.census.badges,
        access_log_length: 0,
        master_key_generation: copied.key_generation,
        master_key_fingerprint: hex::encode(copied.key_fingerprint),
        files: vec!["pseudonym.key".into()],
    };
    write_marker(&backup, &marker).unwrap();
    let node = tmp.join("node");
    std::fs::create_dir_all(&node).unwrap();
    std::fs::write(
        node.join("node.toml"),
        crate::config::bundle_config("330100".parse().unwrap(), "127.0.0.1:7101"),
    )
    .unwrap();
    std::fs::copy(tmp.join("master.key"), node.join("master.key")).unwrap();
    let settings = NodeSettings::load(&node.join("node.toml")).unwrap();
    (backup, settings, marker)
}

fn refused(result: Result<Marker, BackupError>) -> String {
    match result {
        Err(BackupError::Refused(why)) => why,
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn a_restore_checks_marker_layout_city_and_key_and_fills_only_an_empty_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let (backup, settings, marker) = backup_and_settings(tmp.path());
    let rewrite = |m: &Marker| write_marker(&backup, m).unwrap();

    rewrite(&Marker {
        layout: LAYOUT + 1,
        ..marker.clone()
    });
    assert!(refused(restore(&settings, &backup)).contains("newer tessera"));
    rewrite(&Marker {
        city: "420100".into(),
        ..marker.clone()
    });
    assert!(refused(restore(&settings, &backup)).contains("city 420100"));
    rewrite(&Marker {
        master_key_fingerprint: "ab".repeat(32),
        ..marker.clone()
    });
    assert!(refused(restore(&settings, &backup)).contains("not the one the backup"));
    rewrite(&marker);

    std::fs::create_dir_all(settings.data_dir.join("store")).unwrap();
    assert!(refused(restore(&settings, &backup)).contains("not empty"));
    std::fs::remove_dir_all(&settings.data_dir).unwrap();

    std::fs::remove_file(backup.join(MARKER)).unwrap();
    assert!(refused(restore(&settings, &backup)).contains("not a finished backup"));
    assert!(!settings.data_dir.exists());
    rewrite(&marker);

    assert_eq!(restore(&settings, &backup).unwrap(), marker);
    assert!(settings.data_dir.join("pseudonym.key").is_file());
    assert!(!settings.data_dir.join(MARKER).exists());
    let store = crate::store::when_unlocked(
        || SledStore::open(&settings.data_dir.join("store"), &settings.master_key),
        |e| matches!(e, StoreError::Locked(_)),
    );
    assert_eq!(store.census().unwrap().records, 1);
}
