//! The erasure guarantee of the key tree, tested as an attacker would try
//! it: a copy of the data directory taken before an erasure, together with
//! every key that exists after it (the new master key, and every node and
//! data key the live store opens with it), opens nothing of the erased
//! resident; and a stop at either step of an erasure leaves every other
//! resident readable. See docs/PRIVACY.md, "Erasure and old copies".

use std::path::Path;

use super::erase::Stop;
use super::layout::*;
use super::*;
use crate::vault::{DataKey, KeyFile, MasterKey, NodeKey};

const NOW: i64 = 1_800_000_000;

/// A pseudonym starting with `prefix`, then `fill`.
fn who(prefix: &[u8], fill: u8) -> Pseudonym {
    let mut p = [fill; 32];
    p[..prefix.len()].copy_from_slice(prefix);
    Pseudonym::from_slice(&p).unwrap()
}

/// The erased resident, and residents sharing each level of their path
/// (bottom node 0xabcd, then 0xabc, 0xab, 0xa) and none of it.
fn population() -> (Pseudonym, Vec<Pseudonym>) {
    let victim = who(&[0xab, 0xcd], 1);
    let others = vec![
        who(&[0xab, 0xcd], 2),
        who(&[0xab, 0xcd], 3),
        who(&[0xab, 0xce], 4),
        who(&[0xab, 0x10], 5),
        who(&[0xa0], 6),
        who(&[0x12], 7),
        who(&[0xf0, 0x0f], 8),
    ];
    (victim, others)
}

fn record(resident: &Pseudonym, n: usize) -> NewRecord {
    NewRecord {
        resident: *resident,
        record_id: format!("lab-{}-{n}", hex::encode(&resident.as_bytes()[..3])),
        kind: RecordType::Test,
        at: NOW - 60,
        fingerprint: [n as u8; 32],
        encoded: format!("plain:SECRET-{n}").into_bytes(),
    }
}

fn open(dir: &Path) -> SledStore {
    when_unlocked(
        || SledStore::open(&dir.join("store"), &dir.join("master.key")),
        |e| matches!(e, StoreError::Locked(_)),
    )
}

fn stored(dir: &Path) -> SledStore {
    let (victim, others) = population();
    let store = open(dir);
    let records = std::iter::once(&victim)
        .chain(&others)
        .enumerate()
        .flat_map(|(n, r)| [record(r, 2 * n), record(r, 2 * n + 1)])
        .collect();
    store
        .apply(&Change {
            records,
            ..Change::default()
        })
        .unwrap();
    store.flush().unwrap();
    store
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

/// What an attacker opens in `tree` starting from `keys`, without
/// assuming the tree's shape: every wrapped node key is tried under every
/// key known so far until nothing more opens, then every wrapped data key
/// under every node key.
struct Haul {
    nodes: Vec<NodeKey>,
    data: Vec<(Pseudonym, DataKey)>,
}

fn open_all(tree: &sled::Tree, mut nodes: Vec<NodeKey>) -> Haul {
    let wrapped: Vec<(Vec<u8>, Vec<u8>)> = tree
        .scan_prefix([NODE])
        .map(|e| {
            let (k, v) = e.unwrap();
            (k[1..].to_vec(), v.to_vec())
        })
        .collect();
    let mut opened = vec![false; wrapped.len()];
    loop {
        let mut more = false;
        for (i, (name, value)) in wrapped.iter().enumerate() {
            if opened[i] {
                continue;
            }
            if let Some(k) = nodes.iter().find_map(|n| n.unwrap_node(name, value).ok()) {
                nodes.push(k);
                opened[i] = true;
                more = true;
            }
        }
        if !more {
            break;
        }
    }
    let data = tree
        .scan_prefix([DATA_KEY])
        .filter_map(|e| {
            let (k, v) = e.unwrap();
            let resident = Pseudonym::from_slice(&k[1..]).unwrap();
            nodes
                .iter()
                .find_map(|n| n.unwrap_data(&resident, &v).ok())
                .map(|d| (resident, d))
        })
        .collect();
    Haul { nodes, data }
}

/// `resident`'s record values in `tree` that any of `keys` opens.
fn records_opened(tree: &sled::Tree, resident: &Pseudonym, keys: &[DataKey]) -> Vec<Vec<u8>> {
    let prefix = key(RECORD, &[resident.as_bytes()]);
    let values: Vec<_> = tree.scan_prefix(&prefix).map(|e| e.unwrap()).collect();
    assert!(!values.is_empty(), "the copy holds no record to try");
    values
        .iter()
        .filter_map(|(k, v)| {
            let (head, sealed) = v.split_at(HEADER_LEN);
            keys.iter()
                .find_map(|d| d.open(resident, head, &k[prefix.len()..], sealed).ok())
        })
        .collect()
}

fn master_key(dir: &Path) -> MasterKey {
    KeyFile::new(dir.join("master.key"))
        .read()
        .unwrap()
        .unwrap()
}

#[test]
fn a_copy_taken_before_an_erasure_opens_nothing_of_the_erased_resident_with_every_key_held_after() {
    let live = tempfile::tempdir().unwrap();
    let (victim, others) = population();
    drop(stored(live.path()));
    // The copy: the data directory and the master key file beside it, as
    // a backup or a stolen disk would hold them.
    let copy = tempfile::tempdir().unwrap();
    copy_dir(live.path(), copy.path());

    let store = open(live.path());
    assert_eq!(store.erase(&victim).unwrap().records, 2);
    // Every key that exists after the erasure: the new master key, and
    // whatever the live store opens with it.
    let new_master = master_key(live.path());
    let after = open_all(&store.tree, vec![new_master.as_node_key()]);
    assert_eq!(
        after.data.len(),
        others.len(),
        "the live keys are all found"
    );

    let copy_db = sled::open(copy.path().join("store")).unwrap();
    let old_tree = copy_db.open_tree(STORE_TREE).unwrap();
    let haul = open_all(&old_tree, after.nodes.clone());
    let data_keys: Vec<DataKey> = haul
        .data
        .iter()
        .chain(&after.data)
        .map(|(_, d)| d.clone())
        .collect();
    // Nothing of the erased resident opens: not their wrapped data key...
    assert!(
        !haul.data.iter().any(|(r, _)| *r == victim),
        "the erased resident's data key opens from the old copy"
    );
    // ...nor any record of theirs, under any data key found anywhere.
    assert!(records_opened(&old_tree, &victim, &data_keys).is_empty());

    // The attack is real: the same keys open the old copy's records of
    // the residents still held (their node keys did not change)...
    for other in &others {
        assert_eq!(records_opened(&old_tree, other, &data_keys).len(), 2);
    }
    // ...and against a scheme that deleted the data key but kept the keys
    // above it (here: the keys as they were), it finds the erased
    // resident's records. This is what the test catches.
    let kept = open_all(&old_tree, vec![master_key(copy.path()).as_node_key()]);
    let kept: Vec<DataKey> = kept.data.into_iter().map(|(_, d)| d).collect();
    assert_eq!(records_opened(&old_tree, &victim, &kept).len(), 2);

    // The live store serves everyone else, after a restart too.
    for other in &others {
        assert_eq!(store.records_of(other).unwrap().len(), 2);
    }
    assert!(store.records_of(&victim).unwrap().is_empty());
    drop(store);
    let store = open(live.path());
    for other in &others {
        assert_eq!(store.records_of(other).unwrap().len(), 2);
    }
}

#[test]
fn an_erasure_stopped_at_any_step_leaves_every_other_resident_readable() {
    let (victim, others) = population();
    for stop in [Stop::AfterNextKey, Stop::AfterApply, Stop::AfterStore] {
        let dir = tempfile::tempdir().unwrap();
        let store = stored(dir.path());
        let before = master_key(dir.path());
        store.erase_until(&victim, stop).unwrap();
        drop(store);
        let store = open(dir.path());
        for other in &others {
            assert_eq!(store.records_of(other).unwrap().len(), 2, "{stop:?}");
        }
        let file = KeyFile::new(dir.path().join("master.key"));
        assert!(!file.next_path().exists(), "{stop:?}");
        match stop {
            // Never acknowledged: rolled back whole, the resident kept.
            Stop::AfterNextKey => {
                assert_eq!(master_key(dir.path()), before);
                assert_eq!(store.records_of(&victim).unwrap().len(), 2);
            }
            // Applied, not flushed by the erasure: whichever the store
            // kept (sled may flush as it closes), the key file matches it.
            Stop::AfterApply => {
                let kept = store.records_of(&victim).unwrap().len();
                let rotated = master_key(dir.path()) != before;
                assert!(
                    (kept == 2 && !rotated) || (kept == 0 && rotated),
                    "{kept} records kept, key rotated: {rotated}"
                );
            }
            // Durable in the store: finished at the start.
            _ => {
                assert_ne!(master_key(dir.path()), before);
                assert!(store.records_of(&victim).unwrap().is_empty());
                assert_eq!(store.key_generation(), 1);
            }
        }
        // And the next erasure on the same path works from there.
        assert_eq!(store.erase(&others[0]).unwrap().records, 2);
        for other in &others[1..] {
            assert_eq!(store.records_of(other).unwrap().len(), 2, "{stop:?}");
        }
    }
}

#[test]
fn an_erasure_rewraps_only_its_path_and_the_siblings_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let (victim, others) = population();
    let store = stored(dir.path());
    let snapshot = |store: &SledStore| -> std::collections::BTreeMap<Vec<u8>, Vec<u8>> {
        store
            .tree
            .iter()
            .map(|e| e.unwrap())
            .filter(|(k, _)| matches!(k.first(), Some(&NODE) | Some(&DATA_KEY)))
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect()
    };
    let before = snapshot(&store);
    store.erase(&victim).unwrap();
    let after = snapshot(&store);
    // Of the data keys only those in the erased resident's bottom node are
    // re-wrapped; of the node keys only the path's and its siblings'.
    let changed: Vec<&Vec<u8>> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, _)| k)
        .collect();
    let leaf = |r: &Pseudonym| key(DATA_KEY, &[r.as_bytes()]);
    assert!(changed.contains(&&leaf(&others[0])));
    assert!(changed.contains(&&leaf(&others[1])));
    for other in &others[2..] {
        assert!(!changed.contains(&&leaf(other)), "{other:?} re-wrapped");
    }
    assert!(!after.contains_key(&leaf(&victim)));
    // Node 0xf00 (level 3, under 0xf0, not on the path) is untouched.
    let off_path = keytree::NodeId {
        level: 3,
        index: 0xf00,
    }
    .store_key();
    assert_eq!(before.get(&off_path), after.get(&off_path));
    assert!(before.contains_key(&off_path));
}
