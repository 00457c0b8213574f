//! The key layout of the one sled tree (the table is on [`super::SledStore`]):
//! prefixes, composite keys, times that sort, and the meta entries.

use std::collections::HashMap;
use std::sync::PoisonError;

use super::{SledStore, StoreError};
use crate::pseudonym::Pseudonym;
use crate::records::RecordType;
use crate::vault::MasterKey;

/// A resident's data key, wrapped under its bottom node's key (layout 3).
pub(super) const DATA_KEY: u8 = b'l';
/// A resident's data key wrapped under the master key (layouts 1 and 2;
/// moved to [`DATA_KEY`] by the migration to 3).
pub(super) const LEGACY_DATA_KEY: u8 = b'k';
/// A node key of the key tree, wrapped under its parent's (`keytree.rs`).
pub(super) const NODE: u8 = b'n';
pub(super) const RECORD: u8 = b'r';
pub(super) const RECORD_ID: u8 = b'i';
pub(super) const EXPIRY: u8 = b'x';
pub(super) const BADGE: u8 = b'b';
pub(super) const HOLDER: u8 = b'h';
pub(super) const BADGE_EXPIRY: u8 = b'y';
pub(super) const CORRECTION: u8 = b'c';
pub(super) const CORRECTION_EXPIRY: u8 = b'z';
/// Prefix `m`, then `master`.
pub(super) const META_MASTER: &[u8] = b"mmaster";
/// Prefix `m`, then `first-policy`: SHA-256 of the city's first signed
/// policy, the one exempt from notice.
pub(super) const META_FIRST_POLICY: &[u8] = b"mfirst-policy";
/// Prefix `m`, then `badges`: the badge value format the store was written
/// with (absent in a store written before badges were sealed).
pub(super) const META_BADGES: &[u8] = b"mbadges";
/// Prefix `m`, then `layout`: the store layout version (u32, big-endian)
/// the store was last opened with; see [`LAYOUT`].
pub(super) const META_LAYOUT: &[u8] = b"mlayout";
/// Type and time before a sealed record value.
pub(super) const HEADER_LEN: usize = 9;

pub(super) fn key(kind: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(kind);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// A time as 8 bytes that sort in time order.
pub(super) fn time_bytes(t: i64) -> [u8; 8] {
    (t ^ i64::MIN).to_be_bytes()
}

pub(super) fn time_from(bytes: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(bytes.try_into().ok()?) ^ i64::MIN)
}

pub(super) fn header(kind: RecordType, at: i64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0] = kind.code();
    h[1..].copy_from_slice(&time_bytes(at));
    h
}

pub(super) fn parse_header(value: &[u8]) -> Result<(RecordType, i64), StoreError> {
    let corrupt = || StoreError::Corrupt("record header".into());
    let kind = RecordType::from_code(*value.first().ok_or_else(corrupt)?).ok_or_else(corrupt)?;
    let at = time_from(value.get(1..HEADER_LEN).ok_or_else(corrupt)?).ok_or_else(corrupt)?;
    Ok((kind, at))
}

pub(super) fn expiry_key(
    kind: RecordType,
    at: i64,
    resident: &Pseudonym,
    record_id: &[u8],
) -> Vec<u8> {
    key(
        EXPIRY,
        &[
            &[kind.code()],
            &time_bytes(at),
            resident.as_bytes(),
            record_id,
        ],
    )
}

pub(super) fn meta_value(generation: u64, key: &MasterKey) -> Vec<u8> {
    [generation.to_be_bytes().as_slice(), &key.fingerprint()].concat()
}

pub(super) fn parse_meta(v: &[u8]) -> Result<(u64, [u8; 32]), StoreError> {
    let corrupt = || StoreError::Corrupt("master key entry".into());
    if v.len() != 40 {
        return Err(corrupt());
    }
    let generation = u64::from_be_bytes(v[..8].try_into().map_err(|_| corrupt())?);
    let fingerprint = v[8..].try_into().map_err(|_| corrupt())?;
    Ok((generation, fingerprint))
}

/// The store layout this release writes and reads: the keys and values of
/// the `node` tree and of the access log tree. A store records it in
/// [`META_LAYOUT`]; one written before the entry existed is layout 1.
/// Bump it when a key or value changes, and add the step from the previous
/// version to [`step`].
///
/// | layout | what changed |
/// | --- | --- |
/// | 1 | the one-tree layout with sealed badges (stores that record no version) |
/// | 2 | correction marks (`c`) and their expiry index (`z`) |
/// | 3 | the key tree: node keys (`n`), data keys under them (`l`) instead of under the master key (`k`) |
pub const LAYOUT: u32 = 3;

/// The layout version a store records; 1 when it records none (written
/// before the entry existed).
pub(super) fn layout_of(tree: &sled::Tree) -> Result<u32, StoreError> {
    match tree.get(META_LAYOUT)? {
        None => Ok(1),
        Some(v) => <[u8; 4]>::try_from(v.as_ref())
            .map(u32::from_be_bytes)
            .map_err(|_| StoreError::Corrupt("layout version entry".into())),
    }
}

/// Refuses a store written by a newer release, whose keys or values this
/// one may misread.
pub(super) fn refuse_newer(tree: &sled::Tree, dir: &std::path::Path) -> Result<u32, StoreError> {
    let found = layout_of(tree)?;
    if found > LAYOUT {
        return Err(StoreError::NewerLayout {
            dir: dir.display().to_string(),
            found,
            supported: LAYOUT,
        });
    }
    Ok(found)
}

/// Brings a store of layout `found` (at most [`LAYOUT`]) to [`LAYOUT`],
/// one version at a time, and records the version; not yet durably. The
/// caller holds the store alone (at open). A step must be safe to run
/// again: a stop before the version is recorded runs it once more.
pub(super) fn migrate(store: &SledStore, found: u32) -> Result<(), StoreError> {
    for from in found..LAYOUT {
        step(store, from)?;
    }
    store.tree.insert(META_LAYOUT, &LAYOUT.to_be_bytes())?;
    Ok(())
}

/// The step from layout `from` to `from + 1`. A release that still reads a
/// layout has the step out of it here; the next layout adds its own arm.
fn step(store: &SledStore, from: u32) -> Result<(), StoreError> {
    match from {
        // Layout 2 only adds prefixes a layout-1 store has no entry under:
        // nothing to convert. Recording 2 keeps a release without
        // corrections from opening the store (it would leave marks behind
        // on erasure and sweep).
        1 => Ok(()),
        // Layout 3 moves every data key from under the master key into the
        // key tree, in batches that each move their keys whole, so a stop
        // between two leaves a store whose keys are each in one place.
        2 => store.move_data_keys_into_the_tree(),
        _ => Err(StoreError::Corrupt(format!(
            "store layout {from} has no migration to {}",
            from + 1
        ))),
    }
}

/// Data keys moved per batch by the migration to layout 3.
const MIGRATION_BATCH: usize = 4096;

impl SledStore {
    fn move_data_keys_into_the_tree(&self) -> Result<(), StoreError> {
        let master = self.master.read().unwrap_or_else(PoisonError::into_inner);
        loop {
            let mut batch = sled::Batch::default();
            let mut fresh = HashMap::new();
            let mut moved = 0;
            for entry in self
                .tree
                .scan_prefix([LEGACY_DATA_KEY])
                .take(MIGRATION_BATCH)
            {
                let (k, v) = entry?;
                let resident = Pseudonym::from_slice(&k[1..])
                    .ok_or_else(|| StoreError::Corrupt("data key entry".into()))?;
                let data = master.key.unwrap(&resident, &v)?;
                let bucket = self.bucket_key_or_new(&master, &resident, &mut fresh, &mut batch)?;
                batch.insert(
                    key(DATA_KEY, &[resident.as_bytes()]),
                    bucket.wrap_data(&resident, &data),
                );
                batch.remove(k);
                moved += 1;
            }
            if moved == 0 {
                return Ok(());
            }
            self.tree.apply_batch(batch)?;
            master.keep(fresh);
        }
    }
}

/// The expiry index key of a correction mark: the type and time of the
/// record it marks (the replacement, or the retracted record), so that the
/// mark goes when that record would.
pub(super) fn correction_expiry_key(
    kind: RecordType,
    at: i64,
    resident: &Pseudonym,
    record_id: &[u8],
) -> Vec<u8> {
    key(
        CORRECTION_EXPIRY,
        &[
            &[kind.code()],
            &time_bytes(at),
            resident.as_bytes(),
            record_id,
        ],
    )
}
