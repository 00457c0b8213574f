//! The store's own tests: layouts refused, values sealed at rest, erasure
//! and its crash-safe rotation, the census.

use super::codec::*;
use super::erase::Stop;
use super::layout::*;
use super::*;
use crate::vault::{KeyFile, MasterKey};
use std::path::Path;

#[test]
fn a_directory_of_the_earlier_layout_is_refused_not_read_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("records").unwrap().insert(b"k", b"v").unwrap();
        db.flush().unwrap();
    }
    // sled's flusher may hold the lock a moment after the database is
    // dropped: wait for it, then the layout must be refused.
    let err = when_unlocked(
        || match SledStore::open(dir.path(), &dir.path().join("master.key")) {
            Err(StoreError::Locked(d)) => Err(d),
            other => Ok(other),
        },
        |_| true,
    )
    .unwrap_err();
    assert!(err.to_string().contains("earlier tessera layout"), "{err}");
}

#[test]
fn a_store_written_before_encryption_at_rest_is_refused_not_read() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path().join("store")).unwrap();
        let tree = db.open_tree("node").unwrap();
        tree.insert(key(RECORD, &[&[1; 32], b"lab-1"]), &b"clear"[..])
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
        err.to_string().contains("before encryption at rest"),
        "{err}"
    );
    assert!(!dir.path().join("master.key").exists());
}

#[test]
fn the_census_counts_residents_with_data_keys_records_and_badges() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(store.census().unwrap(), Census::default());
    let record =
        |resident: u8, id: &str| new_record(resident, id, RecordType::Test, NOW - 60, "LAB");
    let badge = |resident: u8| BadgeRecord {
        resident: Pseudonym::from_slice(&[resident; 32]).unwrap(),
        colour: Colour::Green,
        issued_at: 1,
        valid_until: 2,
        state: BadgeState::Active,
    };
    let change = Change {
        records: vec![
            record(1, "a"),
            record(1, "b"),
            record(2, "c"),
            record(3, "d"),
            record(3, "e"),
            record(3, "f"),
        ],
        badges: vec![
            (BadgeId::from_bytes([1; 16]), badge(1)),
            (BadgeId::from_bytes([2; 16]), badge(1)),
            (BadgeId::from_bytes([3; 16]), badge(9)),
        ],
        states: vec![],
    };
    store.apply(&change).unwrap();
    assert_eq!(
        store.census().unwrap(),
        Census {
            // Resident 9 holds only a badge, sealed under a data key too.
            residents: 4,
            records: 6,
            badges: 3
        }
    );
}

#[test]
fn a_record_id_repeated_in_one_change_is_a_duplicate_or_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("store"), &dir.path().join("master.key")).unwrap();
    let resident = Pseudonym::from_slice(&[3; 32]).unwrap();
    let record = |fingerprint: u8| NewRecord {
        resident,
        record_id: "lab-1".into(),
        kind: RecordType::Test,
        at: 1_700_000_000,
        fingerprint: [fingerprint; 32],
        encoded: vec![1, 2, 3],
    };
    let same = Change {
        records: vec![record(1), record(1)],
        badges: vec![],
        states: vec![],
    };
    assert_eq!(
        store.apply(&same).unwrap(),
        Applied {
            stored: 1,
            duplicates: 1
        }
    );
    let other = Change {
        records: vec![record(1), record(2)],
        badges: vec![],
        states: vec![],
    };
    assert!(matches!(
        store.apply(&other),
        Err(StoreError::ConflictingRecord { index: 1, .. })
    ));
    assert_eq!(store.records_of(&resident).unwrap().len(), 1);
}

const NOW: i64 = 1_800_000_000;

fn resident(b: u8) -> Pseudonym {
    Pseudonym::from_slice(&[b; 32]).unwrap()
}

fn new_record(who: u8, id: &str, kind: RecordType, at: i64, text: &str) -> NewRecord {
    NewRecord {
        resident: resident(who),
        record_id: id.into(),
        kind,
        at,
        fingerprint: [0xf0 + who; 32],
        encoded: format!("plain:{text}").into_bytes(),
    }
}

fn open(dir: &Path) -> SledStore {
    when_unlocked(
        || SledStore::open(&dir.join("store"), &dir.join("master.key")),
        |e| matches!(e, StoreError::Locked(_)),
    )
}

fn store_with_two_residents(dir: &Path) -> SledStore {
    let store = open(dir);
    store
        .apply(&Change {
            records: vec![
                new_record(1, "a-1", RecordType::Test, NOW - 60, "QUASAR-LAB"),
                new_record(1, "a-2", RecordType::Vaccination, NOW - 90, "ORION-VAX"),
                new_record(2, "b-1", RecordType::Test, NOW - 60, "PULSAR-LAB"),
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
        })
        .unwrap();
    store.flush().unwrap();
    store
}

/// Every byte of every file under `dir`.
fn raw_bytes(dir: &Path) -> Vec<u8> {
    let mut out = vec![];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(raw_bytes(&path));
        } else {
            out.extend(std::fs::read(&path).unwrap());
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn record_values_are_sealed_on_disk_and_read_back_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_two_residents(dir.path());
    let mut read = store.records_of(&resident(1)).unwrap();
    read.sort();
    assert_eq!(
        read,
        vec![b"plain:ORION-VAX".to_vec(), b"plain:QUASAR-LAB".to_vec()]
    );
    drop(store);
    let raw = raw_bytes(&dir.path().join("store"));
    // The sled files do hold what was written (ids are keys)...
    assert!(contains(&raw, b"a-1"), "the scan misses the store's files");
    // ...but none of the values in the clear.
    for secret in [&b"QUASAR-LAB"[..], b"ORION-VAX", b"PULSAR-LAB"] {
        assert!(!contains(&raw, secret), "{secret:?} is stored in the clear");
    }
    // Nor the content fingerprints, which would confirm a guessed record.
    for who in [1, 2] {
        assert!(
            !contains(&raw, &[0xf0 + who; 32]),
            "a fingerprint is in the clear"
        );
    }
}

#[test]
fn a_value_moved_to_another_record_or_resident_does_not_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_two_residents(dir.path());
    let a1 = store
        .tree
        .get(key(RECORD, &[&[1; 32], b"a-1"]))
        .unwrap()
        .unwrap();
    // Under another record id of the same resident.
    store
        .tree
        .insert(key(RECORD, &[&[1; 32], b"a-2"]), a1.clone())
        .unwrap();
    assert!(matches!(
        store.records_of(&resident(1)),
        Err(StoreError::Vault(VaultError::Undecryptable(_)))
    ));
    // Under another resident.
    store.tree.remove(key(RECORD, &[&[1; 32], b"a-2"])).unwrap();
    store
        .tree
        .insert(key(RECORD, &[&[2; 32], b"a-1"]), a1)
        .unwrap();
    assert!(store.records_of(&resident(2)).is_err());
}

#[test]
fn erasure_deletes_everything_of_the_resident_and_rotates_the_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_two_residents(dir.path());
    let old = KeyFile::new(dir.path().join("master.key"))
        .read()
        .unwrap()
        .unwrap();
    let erased = store.erase(&resident(1)).unwrap();
    assert_eq!(
        erased,
        Erased {
            records: 2,
            badges: 1,
            key: true
        }
    );
    assert_eq!(store.key_generation(), 1);
    assert!(store.records_of(&resident(1)).unwrap().is_empty());
    assert_eq!(
        store.records_of(&resident(2)).unwrap(),
        vec![b"plain:PULSAR-LAB".to_vec()]
    );
    assert_eq!(store.badge(&BadgeId::from_bytes([7; 16])).unwrap(), None);
    assert_eq!(store.fingerprint("a-1").unwrap(), None);
    // No key of the resident is left, in any index.
    for k in store.raw_keys().unwrap() {
        assert!(
            !contains(&k, &[1; 32]),
            "a key of the erased resident is left: {k:?}"
        );
        assert!(
            !contains(&k, &[7; 16]),
            "a key of the erased badge is left: {k:?}"
        );
    }
    let file = KeyFile::new(dir.path().join("master.key"));
    let new = file.read().unwrap().unwrap();
    assert_ne!(new, old);
    assert!(!file.next_path().exists());
    // The resident's id may be used again; erasing nobody rotates nothing.
    assert_eq!(store.erase(&resident(1)).unwrap(), Erased::default());
    assert_eq!(store.key_generation(), 1);
    // The new key opens the store after a restart.
    drop(store);
    let store = open(dir.path());
    assert_eq!(store.records_of(&resident(2)).unwrap().len(), 1);
}

#[test]
fn after_erasure_an_old_copy_does_not_decrypt_with_the_current_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_two_residents(dir.path());
    let old = KeyFile::new(dir.path().join("master.key"))
        .read()
        .unwrap()
        .unwrap();
    drop(store);
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&dir.path().join("store"), copy.path());
    let store = open(dir.path());
    store.erase(&resident(1)).unwrap();
    let current = KeyFile::new(dir.path().join("master.key"))
        .read()
        .unwrap()
        .unwrap();
    // The copy's tree hangs from the old master key: the new one opens
    // none of its node keys.
    let stolen = SledStore::open_copy(copy.path(), current).unwrap();
    for who in [1, 2] {
        assert!(matches!(
            stolen.records_of(&resident(who)),
            Err(StoreError::Vault(VaultError::Undecryptable("a node key")))
        ));
    }
    drop(stolen);
    // With the old key (an old backup of it) the copy still opens: the
    // ciphertext is there, only the key stands in the way.
    let stolen = SledStore::open_copy(copy.path(), old).unwrap();
    assert_eq!(stolen.records_of(&resident(1)).unwrap().len(), 2);
    assert!(
        stolen.apply(&Change::default()).is_err(),
        "a copy is read only"
    );
}

/// The value format 1 stored, colour and issue time in the clear (what
/// a copy taken before badges were sealed holds).
fn clear_badge_value(badge: &BadgeRecord) -> Vec<u8> {
    let mut out = vec![1];
    out.extend_from_slice(badge.resident.as_bytes());
    out.extend_from_slice(&colour_pattern(badge));
    out.extend_from_slice(&badge.valid_until.to_be_bytes());
    out.extend_from_slice(&state_bytes(badge.state));
    out
}

/// Colour then issue time, as format 1 stored them side by side.
fn colour_pattern(badge: &BadgeRecord) -> Vec<u8> {
    [
        [colour_code(badge.colour)].as_slice(),
        &badge.issued_at.to_be_bytes(),
    ]
    .concat()
}

#[test]
fn after_erasure_an_old_copy_reveals_no_colour_or_issue_time_of_the_residents_badges() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_two_residents(dir.path());
    let red = BadgeRecord {
        resident: resident(1),
        colour: Colour::Red,
        issued_at: NOW - 4321,
        valid_until: NOW + 7200,
        state: BadgeState::Active,
    };
    let yellow = BadgeRecord {
        resident: resident(2),
        colour: Colour::Yellow,
        issued_at: NOW - 5555,
        valid_until: NOW + 9000,
        state: BadgeState::Active,
    };
    let (red_id, yellow_id) = (BadgeId::from_bytes([8; 16]), BadgeId::from_bytes([9; 16]));
    store
        .apply(&Change {
            badges: vec![(red_id, red), (yellow_id, yellow)],
            ..Change::default()
        })
        .unwrap();
    store.flush().unwrap();
    // The live store reads them back.
    assert_eq!(store.badge(&red_id).unwrap(), Some(red));
    assert_eq!(
        store.badges_of(&resident(2)).unwrap(),
        vec![(yellow_id, yellow)]
    );
    drop(store);
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&dir.path().join("store"), copy.path());
    let store = open(dir.path());
    assert_eq!(store.erase(&resident(1)).unwrap().badges, 2);
    drop(store);
    let current = KeyFile::new(dir.path().join("master.key"))
        .read()
        .unwrap()
        .unwrap();

    for key in [current, MasterKey::generate()] {
        let stolen = when_unlocked(
            || SledStore::open_copy(copy.path(), key.clone()),
            |e| matches!(e, StoreError::Locked(_)),
        );
        let undecryptable = |r: Result<_, StoreError>| {
            matches!(r, Err(StoreError::Vault(VaultError::Undecryptable(_))))
        };
        for who in [1, 2] {
            assert!(undecryptable(stolen.badges_of(&resident(who)).map(|_| ())));
            assert!(undecryptable(
                stolen.active_badges_of(&resident(who)).map(|_| ())
            ));
        }
        for id in [BadgeId::from_bytes([7; 16]), red_id, yellow_id] {
            assert!(undecryptable(stolen.badge(&id).map(|_| ())), "{id:?}");
        }
        // What status checks read stays readable without any key.
        assert_eq!(
            stolen.badge_state(&red_id).unwrap(),
            Some(BadgeState::Active)
        );
    }

    // Nor do the copy's files hold a colour beside its issue time,
    // although they do hold the badges' values (their clear part)...
    let raw = raw_bytes(copy.path());
    for badge in [&red, &yellow] {
        let clear_part = [
            badge.resident.as_bytes().as_slice(),
            &badge.valid_until.to_be_bytes(),
        ]
        .concat();
        assert!(
            contains(&raw, &clear_part),
            "the scan misses the badge values"
        );
        assert!(
            !contains(&raw, &colour_pattern(badge)),
            "a colour and issue time are in the clear"
        );
    }
    // ...and the scan finds that pattern where format 1 stored it.
    let old = tempfile::tempdir().unwrap();
    {
        let db = sled::open(old.path()).unwrap();
        db.open_tree("node")
            .unwrap()
            .insert(key(BADGE, &[red_id.as_bytes()]), clear_badge_value(&red))
            .unwrap();
        db.flush().unwrap();
    }
    assert!(contains(&raw_bytes(old.path()), &colour_pattern(&red)));
}

#[test]
fn a_state_change_rewrites_only_the_state_and_an_unknown_badge_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_two_residents(dir.path());
    let id = BadgeId::from_bytes([7; 16]);
    let raw = |store: &SledStore| {
        store
            .tree
            .get(key(BADGE, &[id.as_bytes()]))
            .unwrap()
            .unwrap()
    };
    let before = raw(&store);
    store
        .apply(&Change {
            states: vec![(id, BadgeState::Revoked(NOW + 5))],
            ..Change::default()
        })
        .unwrap();
    let after = raw(&store);
    assert_eq!(
        before[BADGE_CLEAR_LEN..],
        after[BADGE_CLEAR_LEN..],
        "re-sealed"
    );
    assert_eq!(
        store.badge_state(&id).unwrap(),
        Some(BadgeState::Revoked(NOW + 5))
    );
    let badge = store.badge(&id).unwrap().unwrap();
    assert_eq!(
        (badge.colour, badge.issued_at, badge.state),
        (Colour::Green, NOW, BadgeState::Revoked(NOW + 5))
    );
    assert!(store.active_badges_of(&resident(1)).unwrap().is_empty());

    // A change naming a badge that is not stored is refused whole.
    let err = store
        .apply(&Change {
            records: vec![new_record(2, "b-2", RecordType::Test, NOW - 60, "X")],
            states: vec![(BadgeId::from_bytes([5; 16]), BadgeState::Superseded(NOW))],
            ..Change::default()
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::UnknownBadge(_)), "{err}");
    assert_eq!(store.fingerprint("b-2").unwrap(), None);
}

#[test]
fn a_badge_value_moved_to_another_badge_id_does_not_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_two_residents(dir.path());
    let value = store.tree.get(key(BADGE, &[&[7; 16]])).unwrap().unwrap();
    store.tree.insert(key(BADGE, &[&[6; 16]]), value).unwrap();
    assert!(matches!(
        store.badge(&BadgeId::from_bytes([6; 16])),
        Err(StoreError::Vault(VaultError::Undecryptable("a badge")))
    ));
}

#[test]
fn a_store_with_badge_states_written_in_the_clear_is_refused_not_read() {
    let dir = tempfile::tempdir().unwrap();
    drop(store_with_two_residents(dir.path()));
    let badge = BadgeRecord {
        resident: resident(1),
        colour: Colour::Red,
        issued_at: NOW,
        valid_until: NOW + 3600,
        state: BadgeState::Active,
    };
    // What the store looked like before badges were sealed: no format
    // entry, a badge value of format 1.
    let store_dir = dir.path().join("store");
    {
        let db = when_unlocked(|| sled::open(&store_dir), |_| true);
        let tree = db.open_tree("node").unwrap();
        tree.remove(META_BADGES).unwrap();
        tree.insert(key(BADGE, &[&[7; 16]]), clear_badge_value(&badge))
            .unwrap();
        db.flush().unwrap();
    }
    let err = when_unlocked(
        || match SledStore::open(&store_dir, &dir.path().join("master.key")) {
            Err(StoreError::Locked(d)) => Err(d),
            other => Ok(other),
        },
        |_| true,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("written before their colour and issue time were sealed"),
        "{err}"
    );
    // Refused without a change: the format entry was not written.
    let copy = when_unlocked(
        || SledStore::open_copy(&store_dir, MasterKey::generate()),
        |e| matches!(e, StoreError::Locked(_)),
    );
    assert_eq!(copy.tree.get(META_BADGES).unwrap(), None);
    // A format 1 value read anyway (a copy) is named, not misread.
    let err = copy.badge_state(&BadgeId::from_bytes([7; 16])).unwrap_err();
    assert!(err.to_string().contains("format 1"), "{err}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

#[test]
fn a_stop_at_any_step_of_a_rotation_leaves_a_store_that_opens() {
    // Stopped after the next key is written: the erasure never reached
    // the store, so it is rolled back (it was not acknowledged).
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_two_residents(dir.path());
    let file = KeyFile::new(dir.path().join("master.key"));
    let old = file.read().unwrap().unwrap();
    store.erase_until(&resident(1), Stop::AfterNextKey).unwrap();
    assert!(file.next_path().exists());
    drop(store);
    let store = open(dir.path());
    assert!(!file.next_path().exists());
    assert_eq!(file.read().unwrap().unwrap(), old);
    assert_eq!(store.records_of(&resident(1)).unwrap().len(), 2);
    assert_eq!(store.records_of(&resident(2)).unwrap().len(), 1);
    drop(store);

    // Stopped after the store is re-wrapped, before the files are
    // swapped: the next key is promoted at the next start.
    let store = open(dir.path());
    store.erase_until(&resident(1), Stop::AfterStore).unwrap();
    assert_eq!(file.read().unwrap().unwrap(), old, "the files were swapped");
    drop(store);
    let store = open(dir.path());
    assert!(!file.next_path().exists());
    assert_ne!(file.read().unwrap().unwrap(), old);
    assert!(store.records_of(&resident(1)).unwrap().is_empty());
    assert_eq!(store.records_of(&resident(2)).unwrap().len(), 1);
    drop(store);

    // Stopped inside the swap, after the old key was overwritten and
    // before the rename: the next key is promoted too.
    let store = open(dir.path());
    let before = file.read().unwrap().unwrap();
    store.erase_until(&resident(2), Stop::AfterStore).unwrap();
    std::fs::write(file.path(), format!("{}\n", "0".repeat(64))).unwrap();
    drop(store);
    let store = open(dir.path());
    let after = file.read().unwrap().unwrap();
    assert_ne!(after, before);
    assert_ne!(after, MasterKey::from_bytes([0; 32]));
    assert!(store.records_of(&resident(2)).unwrap().is_empty());
    assert_eq!(store.key_generation(), 2);
}

#[test]
fn a_store_whose_master_key_is_missing_or_wrong_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(store_with_two_residents(dir.path()));
    let file = KeyFile::new(dir.path().join("master.key"));
    let key = std::fs::read(file.path()).unwrap();
    std::fs::remove_file(file.path()).unwrap();
    let err = SledStore::open(&dir.path().join("store"), file.path()).unwrap_err();
    assert!(err.to_string().contains("restore the master key"), "{err}");
    assert!(
        !file.path().exists(),
        "a new key was written for an existing store"
    );
    file.create(&MasterKey::generate()).unwrap();
    let err = SledStore::open(&dir.path().join("store"), file.path()).unwrap_err();
    assert!(err.to_string().contains("restore the right key"), "{err}");
    std::fs::write(file.path(), key).unwrap();
    assert_eq!(open(dir.path()).records_of(&resident(2)).unwrap().len(), 1);
}

#[test]
fn the_sweep_deletes_expired_records_and_badges_in_bounded_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_two_residents(dir.path());
    let retention = Retention {
        test_days: 1,
        ..Retention::default()
    };
    // Nothing has expired yet.
    assert_eq!(store.sweep(&retention, NOW, 10).unwrap(), Swept::default());
    // Two days on: both tests (one per batch of 1), then the badge.
    let later = NOW + 2 * 86_400;
    let first = store.sweep(&retention, later, 1).unwrap();
    assert_eq!((first.total_records(), first.more), (1, true));
    let second = store.sweep(&retention, later, 2).unwrap();
    assert_eq!(second.records, [1, 0, 0, 0, 0]);
    assert_eq!(second.badges, 0, "the badge is within its 7 days");
    assert_eq!(
        store.records_of(&resident(1)).unwrap(),
        vec![b"plain:ORION-VAX".to_vec()]
    );
    assert!(store.records_of(&resident(2)).unwrap().is_empty());
    assert_eq!(store.fingerprint("a-1").unwrap(), None);
    // Resident 2 has nothing left: their data key went with their last
    // record. Resident 1 keeps a record and a badge, and their key.
    assert_eq!((first.keys + second.keys), 1);
    let data_key_of = |who: u8| key(DATA_KEY, &[resident(who).as_bytes()]);
    let keys = store.raw_keys().unwrap();
    assert!(!keys.contains(&data_key_of(2)));
    assert!(keys.contains(&data_key_of(1)));
    let much_later = NOW + 3600 + 8 * 86_400;
    let third = store.sweep(&retention, much_later, 10).unwrap();
    assert_eq!((third.total_records(), third.badges), (0, 1));
    assert_eq!(store.badge(&BadgeId::from_bytes([7; 16])).unwrap(), None);
    for k in store.raw_keys().unwrap() {
        assert!(
            !contains(&k, b"a-1") && !contains(&k, b"b-1"),
            "{k:?} is left"
        );
        assert!(!contains(&k, &[7; 16]), "the badge's {k:?} is left");
    }
    assert!(contains(&store.raw_keys().unwrap().concat(), b"a-2"));
}

/// Measures storing 100,000 records of as many residents, in clear as
/// the store did before encryption and sealed as it does now, and an
/// erasure among them; run with `cargo nextest run
/// --release -p tessera-node rotation_of --run-ignored only
/// --no-capture`. Prints the figures, asserts no time.
#[test]
#[ignore = "a measurement, minutes in a debug build"]
fn rotation_of_a_hundred_thousand_residents() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let residents = 100_000u32;
    let chunk_of = |chunk: u32| -> Vec<NewRecord> {
        (0..10_000u32)
            .map(|i| {
                let n = chunk * 10_000 + i;
                // Spread over the key tree as HMAC pseudonyms are.
                let mut p = [0u8; 32];
                p[..4].copy_from_slice(&n.wrapping_mul(0x9e37_79b1).to_be_bytes());
                NewRecord {
                    resident: Pseudonym::from_slice(&p).unwrap(),
                    record_id: format!("r-{n}"),
                    kind: RecordType::Test,
                    at: NOW,
                    fingerprint: [0; 32],
                    encoded: vec![0; 40],
                }
            })
            .collect()
    };
    // The same records written as the store did before encryption at
    // rest (id index read, record and id index written in clear), for
    // comparison.
    let plain_dir = tempfile::tempdir().unwrap();
    let plain_db = sled::open(plain_dir.path()).unwrap();
    let plain = plain_db.open_tree("node").unwrap();
    let started = std::time::Instant::now();
    for chunk in 0..residents / 10_000 {
        let mut batch = sled::Batch::default();
        for r in chunk_of(chunk) {
            let id_key = key(RECORD_ID, &[r.record_id.as_bytes()]);
            assert!(plain.get(&id_key).unwrap().is_none());
            batch.insert(
                key(RECORD, &[r.resident.as_bytes(), r.record_id.as_bytes()]),
                r.encoded,
            );
            batch.insert(
                id_key,
                [r.resident.as_bytes().as_slice(), &r.fingerprint].concat(),
            );
        }
        plain.apply_batch(batch).unwrap();
    }
    plain_db.flush().unwrap();
    println!(
        "storing {residents} records in clear (the layout before encryption), \
         10 batches and a flush: {:?}",
        started.elapsed()
    );
    let started = std::time::Instant::now();
    for chunk in 0..residents / 10_000 {
        store
            .apply(&Change {
                records: chunk_of(chunk),
                badges: vec![],
                states: vec![],
            })
            .unwrap();
    }
    store.flush().unwrap();
    println!(
        "storing {residents} records of as many residents (new data keys, sealed values), \
         10 batches and a flush: {:?}",
        started.elapsed()
    );
    let first = [0u8; 32];
    let started = std::time::Instant::now();
    let erased = store
        .erase(&Pseudonym::from_slice(&first).unwrap())
        .unwrap();
    let took = started.elapsed();
    assert_eq!(erased.records, 1);
    println!(
        "erasure among {residents} residents (re-keying one path of the key tree, \
         {} levels of {} children): {took:?}",
        KEY_TREE_DEPTH, KEY_TREE_FAN_OUT
    );
}

#[test]
fn a_correction_mark_is_sealed_never_opens_as_a_record_and_a_failed_correction_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .apply(&Change {
            records: vec![new_record(1, "m-1", RecordType::Test, NOW - 60, "MARK-LAB")],
            ..Change::default()
        })
        .unwrap();
    let before = store.raw_keys().unwrap();
    // Another resident's record, and an absent one: refused, nothing written.
    for (who, id) in [(2, "m-1"), (1, "absent")] {
        let err = store
            .correct(
                &Correction {
                    resident: resident(who),
                    record_id: id.into(),
                    reason: 1,
                    at: NOW,
                    replacement: None,
                },
                &[],
            )
            .unwrap_err();
        assert!(matches!(err, StoreError::UnknownRecord(_)), "{err}");
    }
    assert_eq!(store.raw_keys().unwrap(), before);

    store
        .correct(
            &Correction {
                resident: resident(1),
                record_id: "m-1".into(),
                reason: 4,
                at: NOW,
                replacement: Some(new_record(1, "m-1", RecordType::Test, NOW - 30, "FIXED")),
            },
            &[],
        )
        .unwrap();
    let marks = store.corrections_of(&resident(1)).unwrap();
    assert_eq!(
        marks,
        vec![CorrectionMark {
            record_id: "m-1".into(),
            kind: RecordType::Test,
            record_at: NOW - 30,
            retracted: false,
            reason: 4,
            at: NOW,
        }]
    );
    assert_eq!(
        store.records_of(&resident(1)).unwrap(),
        vec![b"plain:FIXED".to_vec()]
    );
    // The mark's value put where the record was does not open as one: it
    // is sealed under its own associated data.
    let mark = store
        .tree
        .get(key(CORRECTION, &[resident(1).as_bytes(), b"m-1"]))
        .unwrap()
        .unwrap();
    store
        .tree
        .insert(key(RECORD, &[resident(1).as_bytes(), b"m-1"]), mark)
        .unwrap();
    assert!(store.records_of(&resident(1)).is_err());
}
