//! Tests of [`crate::access_log`]: entries, hashes, the chain and its verification.

use super::*;

fn subject(n: u8) -> Pseudonym {
    Pseudonym::from_slice(&[n; 32]).unwrap()
}

fn actor() -> Actor {
    Actor {
        serial: "0a1b2c".into(),
        city: 330_100,
    }
}

/// A log of `n` entries over three residents, in a real sled directory.
/// Opens the database in `dir`, waiting out the lock of one just
/// dropped (sled's flusher lets go a moment later).
fn reopen(dir: &std::path::Path) -> sled::Db {
    crate::store::when_unlocked(
        || sled::open(dir),
        |e| e.to_string().contains("could not acquire lock"),
    )
}

fn log(dir: &std::path::Path, n: u64) -> (sled::Db, AccessLog) {
    let db = reopen(dir);
    let log = AccessLog::open(db.open_tree(TREE).unwrap()).unwrap();
    for i in 0..n {
        log.append(
            1_800_000_000 + i as i64,
            Action::Explain,
            &actor(),
            &subject((i % 3) as u8),
        )
        .unwrap();
    }
    (db, log)
}

/// What a resident's app holds: the entries about `subject(n)` as the
/// AccessLog RPC returns them.
fn response(log: &AccessLog, n: u8) -> tessera_proto::v1::AccessLogResponse {
    let head = log.head().unwrap();
    tessera_proto::v1::AccessLogResponse {
        entries: log
            .entries_of(&subject(n))
            .unwrap()
            .iter()
            .map(Entry::to_proto)
            .collect(),
        length: head.length,
        head_hash: head.hash.to_vec(),
        subject: subject(n).as_bytes().to_vec(),
    }
}

#[test]
fn a_residents_app_checks_its_entries_and_detects_an_edit_a_gap_in_a_run_or_another_subject() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, log) = log(dir.path(), 4);
    // Entries 1 and 4 are subject 0's; 5 and 6 (consecutive) are
    // subject 1's, the last one being the head.
    for action in [Action::Export, Action::AccessLog] {
        log.append(1_800_000_100, action, &actor(), &subject(1))
            .unwrap();
    }
    let good = response(&log, 1);
    assert_eq!(
        check_response(&good).unwrap(),
        [Action::Explain, Action::Export, Action::AccessLog]
    );
    // Subject 0's entries are not the head: refused as a full answer.
    assert!(check_response(&response(&log, 0)).is_err());

    let mut edited = good.clone();
    edited.entries[1].action = "explain".into();
    assert!(check_response(&edited).unwrap_err().contains("entry 5"));
    let mut relinked = good.clone();
    relinked.entries[2].previous_hash = vec![0; 32];
    assert!(check_response(&relinked).is_err());
    let mut dropped = good.clone();
    dropped.entries.pop();
    assert!(check_response(&dropped).unwrap_err().contains("head"));
    let mut other = good.clone();
    other.subject = subject(2).as_bytes().to_vec();
    assert!(check_response(&other).is_err());
    assert!(check_response(&tessera_proto::v1::AccessLogResponse::default()).is_err());
}

#[test]
fn the_encoding_round_trips_and_refuses_extra_or_missing_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, log) = log(dir.path(), 2);
    let e = log.entries_of(&subject(1)).unwrap().remove(0);
    assert_eq!(e.sequence, 2);
    let bytes = e.encode();
    assert_eq!(Entry::decode(&bytes), Some(e.clone()));
    assert_eq!(Entry::decode(&bytes[..bytes.len() - 1]), None);
    assert_eq!(Entry::decode(&[bytes.as_slice(), &[0]].concat()), None);
    assert_eq!(e.compute_hash(), e.hash);
}

#[test]
fn the_hash_covers_every_field_including_subject_and_link() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, log) = log(dir.path(), 1);
    let e = log.entries_of(&subject(0)).unwrap().remove(0);
    let mut variants = vec![];
    let mut v = e.clone();
    v.sequence += 1;
    variants.push(v);
    let mut v = e.clone();
    v.at += 1;
    variants.push(v);
    let mut v = e.clone();
    v.action = Action::Export;
    variants.push(v);
    let mut v = e.clone();
    v.actor.serial.push('0');
    variants.push(v);
    let mut v = e.clone();
    v.actor.city += 1;
    variants.push(v);
    let mut v = e.clone();
    v.previous_hash[31] ^= 1;
    variants.push(v);
    let mut v = e.clone();
    v.subject = subject(7);
    variants.push(v);
    for v in variants {
        assert_ne!(v.compute_hash(), e.hash, "{v:?}");
    }
}

#[test]
fn the_subject_index_returns_only_that_residents_entries_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, log) = log(dir.path(), 7);
    let seqs: Vec<u64> = log
        .entries_of(&subject(1))
        .unwrap()
        .iter()
        .map(|e| e.sequence)
        .collect();
    assert_eq!(seqs, [2, 5]);
    assert!(log.entries_of(&subject(9)).unwrap().is_empty());
    assert_eq!(log.head().unwrap().length, 7);
}

#[test]
fn a_reopened_log_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (db, _log) = log(dir.path(), 3);
        db.flush().unwrap();
    }
    let (db, log) = log(dir.path(), 2);
    assert_eq!(log.head().unwrap().length, 5);
    let report = verify(&db.open_tree(TREE).unwrap(), None).unwrap();
    assert_eq!(report.problem, None);
    assert_eq!(report.length, 5);
    assert_eq!(report.head_hash, log.head().unwrap().hash);
}

#[test]
fn a_damaged_log_refuses_appends_with_a_precise_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (db, _log) = log(dir.path(), 3);
        db.open_tree(TREE).unwrap().remove(entry_key(3)).unwrap();
        db.flush().unwrap();
    }
    let db = reopen(dir.path());
    let log = AccessLog::open(db.open_tree(TREE).unwrap()).unwrap();
    let err = log
        .append(1, Action::Explain, &actor(), &subject(0))
        .unwrap_err();
    assert!(err.to_string().contains("head records 3 entries"), "{err}");
    // Nothing was written.
    assert!(
        !db.open_tree(TREE)
            .unwrap()
            .contains_key(entry_key(3))
            .unwrap()
    );
}

#[test]
fn a_checkpoint_reads_sequence_and_hash() {
    let c: Checkpoint = format!("12:{}", "ab".repeat(32)).parse().unwrap();
    assert_eq!(c.sequence, 12);
    assert_eq!(c.hash, [0xab; 32]);
    assert!("12".parse::<Checkpoint>().is_err());
    assert!("x:00".parse::<Checkpoint>().is_err());
    assert!(
        format!("1:{}", "ab".repeat(31))
            .parse::<Checkpoint>()
            .is_err()
    );
}

#[test]
fn a_copy_for_a_backup_is_the_whole_chain_up_to_the_head_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, full) = log(&dir.path().join("db"), 7);
    let copy = sled::open(dir.path().join("copy")).unwrap();
    let tree = copy.open_tree(TREE).unwrap();
    assert_eq!(full.copy_into(&tree).unwrap(), 7);
    let report = verify(&tree, None).unwrap();
    assert_eq!((report.length, report.problem), (7, None));
    assert_eq!(report.head_hash, full.head().unwrap().hash);
    // A resident's entries are found in the copy as in the log.
    let copied = AccessLog::open(tree).unwrap();
    assert_eq!(
        copied.entries_of(&subject(1)).unwrap(),
        full.entries_of(&subject(1)).unwrap()
    );
    // An empty log copies to nothing.
    let (_db2, empty) = log(&dir.path().join("empty"), 0);
    let other = sled::open(dir.path().join("copy2")).unwrap();
    let tree = other.open_tree(TREE).unwrap();
    assert_eq!(empty.copy_into(&tree).unwrap(), 0);
    assert!(tree.is_empty());
}
