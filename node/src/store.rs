//! Where a node keeps its records and badge states: a [`Store`] trait, and its
//! sled implementation.
//!
//! Residents appear only as pseudonyms. Every change of one batch or one
//! issuance is applied atomically across all trees; nothing is durable until
//! [`Store::flush`] returns (the node groups concurrent flushes into one, see
//! `commit.rs`).

use std::path::Path;

use tessera_core::{BadgeId, Colour};

use crate::pseudonym::Pseudonym;

/// Why the store failed or refused a change.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The data directory is already open (another node process?).
    #[error("data directory {0} is in use by another process: stop the running node first")]
    Locked(String),
    /// sled failed.
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
    /// A stored value does not decode (corruption or a newer format).
    #[error("stored value is corrupt: {0}")]
    Corrupt(String),
    /// A record id is stored with different content.
    #[error("record id {record_id:?} is already stored with different content")]
    ConflictingRecord {
        /// Index in the change.
        index: usize,
        /// The id.
        record_id: String,
    },
}

/// A badge's state as the status service reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadgeState {
    /// Standing.
    Active,
    /// Revoked at the given time.
    Revoked(i64),
    /// Superseded by a newer badge at the given time.
    Superseded(i64),
}

/// What the node remembers of a badge it issued: never the claims' holder
/// hint, only what status checks and revocation need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadgeRecord {
    /// The holder.
    pub resident: Pseudonym,
    /// The colour it showed.
    pub colour: Colour,
    /// Issued at.
    pub issued_at: i64,
    /// Valid until.
    pub valid_until: i64,
    /// Its state.
    pub state: BadgeState,
}

const BADGE_FORMAT: u8 = 1;

impl BadgeRecord {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(59);
        out.push(BADGE_FORMAT);
        out.extend_from_slice(self.resident.as_bytes());
        out.push(match self.colour {
            Colour::Green => 1,
            Colour::Yellow => 2,
            Colour::Red => 3,
        });
        out.extend_from_slice(&self.issued_at.to_be_bytes());
        out.extend_from_slice(&self.valid_until.to_be_bytes());
        let (tag, at) = match self.state {
            BadgeState::Active => (1u8, 0),
            BadgeState::Revoked(at) => (2, at),
            BadgeState::Superseded(at) => (3, at),
        };
        out.push(tag);
        out.extend_from_slice(&at.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = || StoreError::Corrupt("badge record".into());
        if bytes.len() != 59 || bytes[0] != BADGE_FORMAT {
            return Err(corrupt());
        }
        let i64_at = |i: usize| -> Result<i64, StoreError> {
            Ok(i64::from_be_bytes(
                bytes[i..i + 8].try_into().map_err(|_| corrupt())?,
            ))
        };
        let resident = Pseudonym::from_slice(&bytes[1..33]).ok_or_else(corrupt)?;
        let colour = match bytes[33] {
            1 => Colour::Green,
            2 => Colour::Yellow,
            3 => Colour::Red,
            _ => return Err(corrupt()),
        };
        let at = i64_at(51)?;
        let state = match bytes[50] {
            1 => BadgeState::Active,
            2 => BadgeState::Revoked(at),
            3 => BadgeState::Superseded(at),
            _ => return Err(corrupt()),
        };
        Ok(Self {
            resident,
            colour,
            issued_at: i64_at(34)?,
            valid_until: i64_at(42)?,
            state,
        })
    }
}

/// A record to store.
#[derive(Debug, Clone)]
pub struct NewRecord {
    /// The holder.
    pub resident: Pseudonym,
    /// Client-supplied id.
    pub record_id: String,
    /// SHA-256 over holder and content: tells a retry from a conflict.
    pub fingerprint: [u8; 32],
    /// The encoded record (no ID number in it).
    pub encoded: Vec<u8>,
}

/// One atomic change.
#[derive(Debug, Clone, Default)]
pub struct Change {
    /// Records to add; an id already stored with the same fingerprint is
    /// skipped as a duplicate.
    pub records: Vec<NewRecord>,
    /// Badge states to write.
    pub badges: Vec<(BadgeId, BadgeRecord)>,
}

/// What a change did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Records newly stored.
    pub stored: u32,
    /// Records skipped as already stored.
    pub duplicates: u32,
}

/// The node's storage. Another embedded store can replace sled by
/// implementing this trait.
pub trait Store: Send + Sync + 'static {
    /// Applies a change atomically (all or nothing), not yet durably.
    fn apply(&self, change: &Change) -> Result<Applied, StoreError>;
    /// Every record of a resident.
    fn records_of(&self, resident: &Pseudonym) -> Result<Vec<Vec<u8>>, StoreError>;
    /// The fingerprint stored for a record id.
    fn fingerprint(&self, record_id: &str) -> Result<Option<[u8; 32]>, StoreError>;
    /// A badge's record.
    fn badge(&self, id: &BadgeId) -> Result<Option<BadgeRecord>, StoreError>;
    /// Every badge of a resident.
    fn badges_of(&self, resident: &Pseudonym) -> Result<Vec<(BadgeId, BadgeRecord)>, StoreError>;
    /// Makes every applied change durable.
    fn flush(&self) -> Result<(), StoreError>;
    /// Counts what the store holds, for a deletion attestation (a full scan:
    /// for sunset, not for serving).
    fn census(&self) -> Result<Census, StoreError>;
}

/// What a store holds, counted before it is destroyed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    /// Distinct residents with at least one record.
    pub residents: u64,
    /// Records.
    pub records: u64,
    /// Badge states.
    pub badges: u64,
}

/// The sled store: one tree, its keys prefixed by kind, so that every
/// change is one atomic `apply_batch` instead of a transaction over several
/// trees (several times slower on a batch of records). Reads made before
/// the batch rely on the caller serialising changes (the node's writer
/// lock).
///
/// | prefix | key after it | value |
/// | --- | --- | --- |
/// | `r` | pseudonym, record id | the encoded record |
/// | `i` | record id | pseudonym, fingerprint |
/// | `b` | badge id | the badge record |
/// | `h` | pseudonym, badge id | nothing (the holder's badges) |
#[derive(Debug, Clone)]
pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
}

const RECORD: u8 = b'r';
const RECORD_ID: u8 = b'i';
const BADGE: u8 = b'b';
const HOLDER: u8 = b'h';

fn key(kind: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(kind);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

impl SledStore {
    /// Opens (or creates) the store in `dir` with a 256 MiB page cache.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(dir, 256 * 1024 * 1024)
    }

    /// Opens (or creates) the store in `dir`, keeping at most about
    /// `cache_bytes` of its pages in memory.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let config = sled::Config::new().path(dir).cache_capacity(cache_bytes);
        let db = config.open().map_err(|e| match e {
            sled::Error::Io(ref io) if io.kind() == std::io::ErrorKind::WouldBlock => {
                StoreError::Locked(dir.display().to_string())
            }
            sled::Error::Io(ref io) if io.to_string().contains("lock") => {
                StoreError::Locked(dir.display().to_string())
            }
            other => StoreError::Sled(other),
        })?;
        // The first layout kept four trees; this version does not read it.
        if db.tree_names().iter().any(|n| n.as_ref() == b"records") {
            return Err(StoreError::Corrupt(format!(
                "{} was written by an earlier tessera layout (tree \"records\"): \
                 import its records afresh into a new data directory",
                dir.display()
            )));
        }
        Ok(Self {
            tree: db.open_tree("node")?,
            db,
        })
    }
}

impl Store for SledStore {
    fn apply(&self, change: &Change) -> Result<Applied, StoreError> {
        let mut batch = sled::Batch::default();
        let mut applied = Applied::default();
        let mut in_change = std::collections::HashMap::new();
        for (index, r) in change.records.iter().enumerate() {
            let id_key = key(RECORD_ID, &[r.record_id.as_bytes()]);
            let value = [r.resident.as_bytes().as_slice(), &r.fingerprint].concat();
            let existing = match in_change.get(&id_key) {
                Some(v) => Some(Vec::clone(v)),
                None => self.tree.get(&id_key)?.map(|v| v.to_vec()),
            };
            if let Some(existing) = existing {
                if existing == value {
                    applied.duplicates += 1;
                    continue;
                }
                return Err(StoreError::ConflictingRecord {
                    index,
                    record_id: r.record_id.clone(),
                });
            }
            batch.insert(
                key(RECORD, &[r.resident.as_bytes(), r.record_id.as_bytes()]),
                r.encoded.as_slice(),
            );
            batch.insert(id_key.clone(), value.clone());
            in_change.insert(id_key, value);
            applied.stored += 1;
        }
        for (id, badge) in &change.badges {
            batch.insert(key(BADGE, &[id.as_bytes()]), badge.encode());
            batch.insert(
                key(HOLDER, &[badge.resident.as_bytes(), id.as_bytes()]),
                &[][..],
            );
        }
        self.tree.apply_batch(batch)?;
        Ok(applied)
    }

    fn records_of(&self, resident: &Pseudonym) -> Result<Vec<Vec<u8>>, StoreError> {
        self.tree
            .scan_prefix(key(RECORD, &[resident.as_bytes()]))
            .values()
            .map(|v| Ok(v?.to_vec()))
            .collect()
    }

    fn fingerprint(&self, record_id: &str) -> Result<Option<[u8; 32]>, StoreError> {
        match self.tree.get(key(RECORD_ID, &[record_id.as_bytes()]))? {
            None => Ok(None),
            Some(v) => v
                .get(Pseudonym::LEN..)
                .and_then(|f| <[u8; 32]>::try_from(f).ok())
                .map(Some)
                .ok_or_else(|| StoreError::Corrupt("record id index".into())),
        }
    }

    fn badge(&self, id: &BadgeId) -> Result<Option<BadgeRecord>, StoreError> {
        self.tree
            .get(key(BADGE, &[id.as_bytes()]))?
            .map(|v| BadgeRecord::decode(&v))
            .transpose()
    }

    fn badges_of(&self, resident: &Pseudonym) -> Result<Vec<(BadgeId, BadgeRecord)>, StoreError> {
        let mut out = vec![];
        let prefix = key(HOLDER, &[resident.as_bytes()]);
        for k in self.tree.scan_prefix(&prefix).keys() {
            let k = k?;
            let id = BadgeId::from_slice(&k[prefix.len()..])
                .ok_or_else(|| StoreError::Corrupt("resident badge index".into()))?;
            if let Some(b) = self.badge(&id)? {
                out.push((id, b));
            }
        }
        Ok(out)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    fn census(&self) -> Result<Census, StoreError> {
        let mut census = Census::default();
        let mut last: Option<Vec<u8>> = None;
        for k in self.tree.scan_prefix([RECORD]).keys() {
            let k = k?;
            let resident = k
                .get(1..=Pseudonym::LEN)
                .ok_or_else(|| StoreError::Corrupt("record key".into()))?;
            census.records += 1;
            if last.as_deref() != Some(resident) {
                census.residents += 1;
                last = Some(resident.to_vec());
            }
        }
        census.badges = self.tree.scan_prefix([BADGE]).count() as u64;
        Ok(census)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_of_the_earlier_layout_is_refused_not_read_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            db.open_tree("records").unwrap().insert(b"k", b"v").unwrap();
            db.flush().unwrap();
        }
        let err = SledStore::open(dir.path()).unwrap_err();
        assert!(err.to_string().contains("earlier tessera layout"), "{err}");
    }

    #[test]
    fn the_census_counts_distinct_residents_records_and_badges() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.census().unwrap(), Census::default());
        let record = |resident: u8, id: &str| NewRecord {
            resident: Pseudonym::from_slice(&[resident; 32]).unwrap(),
            record_id: id.into(),
            fingerprint: [resident; 32],
            encoded: vec![resident],
        };
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
        };
        store.apply(&change).unwrap();
        assert_eq!(
            store.census().unwrap(),
            Census {
                residents: 3,
                records: 6,
                badges: 3
            }
        );
    }

    #[test]
    fn a_record_id_repeated_in_one_change_is_a_duplicate_or_a_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let resident = Pseudonym::from_slice(&[3; 32]).unwrap();
        let record = |fingerprint: u8| NewRecord {
            resident,
            record_id: "lab-1".into(),
            fingerprint: [fingerprint; 32],
            encoded: vec![1, 2, 3],
        };
        let same = Change {
            records: vec![record(1), record(1)],
            badges: vec![],
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
        };
        assert!(matches!(
            store.apply(&other),
            Err(StoreError::ConflictingRecord { index: 1, .. })
        ));
        assert_eq!(store.records_of(&resident).unwrap().len(), 1);
    }
}
