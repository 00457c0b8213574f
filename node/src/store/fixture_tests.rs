//! The committed store fixtures: a small store written by an earlier
//! release must open, read and keep reading in this one (see
//! `layout.rs`, the layout version, and docs/OPERATIONS.md, "Upgrade").

use std::path::{Path, PathBuf};

use super::*;
use crate::access_log::{AccessLog, Action, Actor};

const NOW: i64 = 1_800_000_000;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn resident(b: u8) -> Pseudonym {
    Pseudonym::from_slice(&[b; 32]).unwrap()
}

/// What the v1 fixture holds, written through the store of its time.
fn v1_change() -> Change {
    let record = |who: u8, id: &str, kind: RecordType, text: &str| NewRecord {
        resident: resident(who),
        record_id: id.into(),
        kind,
        at: NOW - 60,
        fingerprint: [0xf0 + who; 32],
        encoded: format!("plain:{text}").into_bytes(),
    };
    Change {
        records: vec![
            record(1, "a-1", RecordType::Test, "QUASAR-LAB"),
            record(1, "a-2", RecordType::Vaccination, "ORION-VAX"),
            record(2, "b-1", RecordType::Test, "PULSAR-LAB"),
        ],
        badges: vec![(
            BadgeId::from_bytes([7; 16]),
            BadgeRecord {
                resident: resident(1),
                colour: Colour::Green,
                issued_at: NOW,
                valid_until: NOW + 3600,
                state: BadgeState::Active,
            },
        )],
        states: vec![],
    }
}

/// Writes a fixture into `$TESSERA_WRITE_STORE_FIXTURE` (an empty
/// directory): `store/` and `master.key` beside it. Run with the release
/// whose layout the fixture pins, then commit the directory:
/// `TESSERA_WRITE_STORE_FIXTURE=node/tests/fixtures/store-v2 cargo nextest run -p tessera-node --run-ignored only write_the_store_fixture`
/// (store-v1 was written by the release before layout versions, with the
/// records, badge and log entry of [`v1_change`] only). From layout 2 on it
/// also holds a correction's mark of resident 2's record and a third
/// resident, erased: the master key is of generation 1.
#[test]
#[ignore = "writes a committed fixture; run by hand"]
fn write_the_store_fixture() {
    let dir = PathBuf::from(std::env::var("TESSERA_WRITE_STORE_FIXTURE").unwrap());
    let store = SledStore::open(&dir.join("store"), &dir.join("master.key")).unwrap();
    store.apply(&v1_change()).unwrap();
    store
        .apply(&Change {
            records: vec![NewRecord {
                resident: resident(3),
                record_id: "c-1".into(),
                kind: RecordType::Test,
                at: NOW - 60,
                fingerprint: [0xf3; 32],
                encoded: b"plain:NEBULA-LAB".to_vec(),
            }],
            ..Change::default()
        })
        .unwrap();
    store
        .correct(
            &Correction {
                resident: resident(2),
                record_id: "b-1".into(),
                reason: 1,
                at: NOW - 30,
                replacement: None,
            },
            &[],
        )
        .unwrap();
    store.erase(&resident(3)).unwrap();
    let log = AccessLog::open(store.open_tree(crate::access_log::TREE).unwrap()).unwrap();
    let actor = Actor {
        serial: "0a0b".into(),
        city: 330100,
    };
    log.append(NOW, Action::Explain, &actor, &resident(1))
        .unwrap();
    store.flush().unwrap();
}

/// A copy of the fixture `name` in a fresh directory (sled writes to a
/// store it opens; the committed files must stay as they are).
fn copy_of(name: &str) -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let target = to.join(path.file_name().unwrap());
            if path.is_dir() {
                copy(&path, &target);
            } else {
                std::fs::copy(&path, &target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(&fixture(name), dir.path());
    // Git keeps no empty directory; sled expects its blob directory.
    std::fs::create_dir_all(dir.path().join("store/blobs")).unwrap();
    dir
}

#[test]
fn a_store_of_layout_1_written_by_the_previous_release_opens_reads_and_is_migrated() {
    let dir = copy_of("store-v1");
    let store = SledStore::open(&dir.path().join("store"), &dir.path().join("master.key")).unwrap();
    let mut records: Vec<String> = store
        .records_of(&resident(1))
        .unwrap()
        .into_iter()
        .map(|r| String::from_utf8(r).unwrap())
        .collect();
    records.sort();
    assert_eq!(records, ["plain:ORION-VAX", "plain:QUASAR-LAB"]);
    assert_eq!(store.records_of(&resident(2)).unwrap().len(), 1);
    let badge = store.badge(&BadgeId::from_bytes([7; 16])).unwrap().unwrap();
    assert_eq!((badge.colour, badge.issued_at), (Colour::Green, NOW));
    assert_eq!(store.fingerprint("b-1").unwrap(), Some([0xf2; 32]));
    let tree = store.open_tree(crate::access_log::TREE).unwrap();
    let report = crate::access_log::verify(&tree, None).unwrap();
    assert_eq!((report.length, report.problem), (1, None));
    // Opening migrated it and recorded the layout it now holds.
    assert_eq!(LAYOUT, 3);
    assert_migrated(&store, 2);
    // And it takes new records.
    store
        .apply(&Change {
            records: vec![NewRecord {
                resident: resident(2),
                record_id: "b-2".into(),
                kind: RecordType::Test,
                at: NOW,
                fingerprint: [9; 32],
                encoded: b"plain:NEW".to_vec(),
            }],
            ..Change::default()
        })
        .unwrap();
    assert_eq!(store.records_of(&resident(2)).unwrap().len(), 2);
}

#[test]
fn a_store_of_a_newer_layout_is_refused_with_what_to_do() {
    let dir = copy_of("store-v1");
    {
        let db = sled::open(dir.path().join("store")).unwrap();
        db.open_tree("node")
            .unwrap()
            .insert(super::layout::META_LAYOUT, &(LAYOUT + 1).to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let err = when_unlocked(
        || match SledStore::open(&dir.path().join("store"), &dir.path().join("master.key")) {
            Err(StoreError::Locked(d)) => Err(d),
            other => Ok(other),
        },
        |_| true,
    )
    .unwrap_err();
    assert!(
        matches!(err, StoreError::NewerLayout { found, supported, .. } if found == LAYOUT + 1 && supported == LAYOUT),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("newer tessera") && text.contains("Upgrade"),
        "{text}"
    );
    // Nor does a tool that reads only the clear trees read it.
    let clear = SledStore::open_clear_tree(&dir.path().join("store"), crate::access_log::TREE);
    assert!(matches!(clear, Err(StoreError::NewerLayout { .. })));
}

/// The store records [`LAYOUT`] and holds its `residents` data keys in the
/// key tree, none under the master key any more.
fn assert_migrated(store: &SledStore, residents: usize) {
    use super::layout::{DATA_KEY, LEGACY_DATA_KEY, META_LAYOUT, NODE, layout_of};
    assert_eq!(layout_of(&store.tree).unwrap(), LAYOUT);
    assert!(store.tree.get(META_LAYOUT).unwrap().is_some());
    let count = |prefix: u8| store.tree.scan_prefix([prefix]).count();
    assert_eq!(
        count(LEGACY_DATA_KEY),
        0,
        "a data key is left under the master key"
    );
    assert_eq!(count(DATA_KEY), residents);
    // The nodes of the residents' paths (1 and 2 share level 1).
    let nodes: std::collections::BTreeSet<_> = (1..=residents as u8)
        .flat_map(|who| super::keytree::NodeId::path(&resident(who)))
        .collect();
    assert_eq!(
        nodes.len(),
        1 + 2 * (usize::from(super::KEY_TREE_DEPTH) - 1)
    );
    assert_eq!(count(NODE), nodes.len());
}

#[test]
fn a_store_of_layout_2_written_by_the_previous_release_opens_reads_and_is_migrated() {
    let dir = copy_of("store-v2");
    let key_file = dir.path().join("master.key");
    let key_before = std::fs::read(&key_file).unwrap();
    // Counted without the key and without migrating (as a sunset does).
    let (census, db) = SledStore::census_at(&dir.path().join("store")).unwrap();
    assert_eq!(
        census,
        Census {
            residents: 2,
            records: 2,
            badges: 1
        }
    );
    drop(db);
    let store = when_unlocked(
        || SledStore::open(&dir.path().join("store"), &key_file),
        |e| matches!(e, StoreError::Locked(_)),
    );
    assert_eq!(store.census().unwrap(), census);
    assert_migrated(&store, 2);
    // The migration keeps the master key and its generation (resident 3
    // was erased by the release that wrote it).
    assert_eq!(std::fs::read(&key_file).unwrap(), key_before);
    assert_eq!(store.key_generation(), 1);
    let mut records: Vec<String> = store
        .records_of(&resident(1))
        .unwrap()
        .into_iter()
        .map(|r| String::from_utf8(r).unwrap())
        .collect();
    records.sort();
    assert_eq!(records, ["plain:ORION-VAX", "plain:QUASAR-LAB"]);
    // Resident 2's record was retracted: the mark is read, under their key.
    assert!(store.records_of(&resident(2)).unwrap().is_empty());
    let marks = store.corrections_of(&resident(2)).unwrap();
    assert_eq!(
        marks
            .iter()
            .map(|m| (m.record_id.as_str(), m.retracted, m.at))
            .collect::<Vec<_>>(),
        [("b-1", true, NOW - 30)]
    );
    assert!(store.records_of(&resident(3)).unwrap().is_empty());
    assert_eq!(store.fingerprint("a-1").unwrap(), Some([0xf1; 32]));
    let badge = store.badge(&BadgeId::from_bytes([7; 16])).unwrap().unwrap();
    assert_eq!((badge.colour, badge.issued_at), (Colour::Green, NOW));
    let tree = store.open_tree(crate::access_log::TREE).unwrap();
    let report = crate::access_log::verify(&tree, None).unwrap();
    assert_eq!((report.length, report.problem), (1, None));
    // It takes new records, and erases in the tree after a restart.
    store
        .apply(&Change {
            records: vec![NewRecord {
                resident: resident(4),
                record_id: "d-1".into(),
                kind: RecordType::Test,
                at: NOW,
                fingerprint: [9; 32],
                encoded: b"plain:NEW".to_vec(),
            }],
            ..Change::default()
        })
        .unwrap();
    store.flush().unwrap();
    drop((tree, store));
    let store = when_unlocked(
        || SledStore::open(&dir.path().join("store"), &key_file),
        |e| matches!(e, StoreError::Locked(_)),
    );
    assert_eq!(store.erase(&resident(1)).unwrap().records, 2);
    assert_eq!(store.key_generation(), 2);
    assert_eq!(
        store.records_of(&resident(4)).unwrap(),
        [b"plain:NEW".to_vec()]
    );
    assert_eq!(store.corrections_of(&resident(2)).unwrap().len(), 1);
}

#[test]
fn a_migration_to_layout_3_stopped_between_batches_carries_on_at_the_next_start() {
    use super::layout::{DATA_KEY, LEGACY_DATA_KEY, META_LAYOUT, NODE, key};
    let dir = copy_of("store-v2");
    let key_file = dir.path().join("master.key");
    let store = SledStore::open(&dir.path().join("store"), &key_file).unwrap();
    let nodes = store.tree.scan_prefix([NODE]).count();
    // Put resident 2's data key back under the master key and the layout
    // back to 2: what a stop after a first batch that moved resident 1
    // only leaves.
    {
        let master = store.master.read().unwrap();
        let data = store.data_key(&master, &resident(2)).unwrap().unwrap();
        let p = resident(2);
        store.tree.remove(key(DATA_KEY, &[p.as_bytes()])).unwrap();
        store
            .tree
            .insert(
                key(LEGACY_DATA_KEY, &[p.as_bytes()]),
                master.key.wrap(&p, &data),
            )
            .unwrap();
        store.tree.insert(META_LAYOUT, &2u32.to_be_bytes()).unwrap();
    }
    store.flush().unwrap();
    drop(store);
    let store = when_unlocked(
        || SledStore::open(&dir.path().join("store"), &key_file),
        |e| matches!(e, StoreError::Locked(_)),
    );
    assert_migrated(&store, 2);
    // The nodes the first batch stored are used, not made again.
    assert_eq!(store.tree.scan_prefix([NODE]).count(), nodes);
    assert_eq!(store.records_of(&resident(1)).unwrap().len(), 2);
    assert_eq!(store.corrections_of(&resident(2)).unwrap().len(), 1);
}
