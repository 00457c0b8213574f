//! Where a node keeps its records and badge states: a [`Store`] trait, and its
//! sled implementation.
//!
//! Residents appear only as pseudonyms. Every change of one batch or one
//! issuance is applied atomically across all trees; nothing is durable until
//! [`Store::flush`] returns (the node groups concurrent flushes into one, see
//! `commit.rs`). Record values, and the colour and issue time of badges, are
//! encrypted under their resident's data key ([`crate::vault`]) and
//! decrypted only in memory; data keys are wrapped in a tree of node keys
//! whose root is the master key (`keytree.rs`), and erasing a resident
//! destroys their data key and replaces the keys on its path to the root. A badge's state and end of validity stay in the clear, so
//! status checks and the retention sweep need no key.

mod codec;
mod correct;
mod erase;
#[cfg(test)]
mod fixture_tests;
mod keytree;
mod layout;
#[cfg(test)]
mod privacy_tests;
mod sled_store;
mod snapshot;
mod sweep;
#[cfg(test)]
mod tests;

pub use erase::PreparedErasure;
pub use keytree::{DEPTH as KEY_TREE_DEPTH, FAN_OUT as KEY_TREE_FAN_OUT};
pub use layout::LAYOUT;
pub use sled_store::SledStore;

use tessera_core::{BadgeId, Colour};

use crate::pseudonym::Pseudonym;
use crate::records::{RecordType, Retention};
use crate::vault::VaultError;

/// Why the store failed or refused a change.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The data directory is already open (another node process?).
    #[error("data directory {0} is in use by another process: stop the running node first")]
    Locked(String),
    /// sled failed.
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
    /// The disk holding the store is full: sled cannot write its log.
    #[error(
        "the disk holding {0} is full (no space left on device, or less than 2 MiB free): free space on it; \
         nothing acknowledged is lost"
    )]
    DiskFull(String),
    /// The store directory could not be prepared (its modes, a stray
    /// snapshot temp).
    #[error("store directory: {0}")]
    Files(String),
    /// A stored value does not decode (corruption or a newer format).
    #[error("stored value is corrupt: {0}")]
    Corrupt(String),
    /// The store was written by a newer release (a newer layout version).
    #[error(
        "{dir} holds store layout {found}, written by a newer tessera; this release reads layouts \
         up to {supported}: run the newer release again, or restore a backup taken before the \
         upgrade (docs/OPERATIONS.md, \"Upgrade\")"
    )]
    NewerLayout {
        /// The store directory.
        dir: String,
        /// The version it records.
        found: u32,
        /// The newest this release reads.
        supported: u32,
    },
    /// A key file, or a value that does not decrypt.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The store was opened as a copy, to read only.
    #[error("this store was opened as a copy, to read only")]
    ReadOnly,
    /// A change names a badge that is not stored.
    #[error("badge {0} is not stored: its state cannot change")]
    UnknownBadge(String),
    /// A correction names a record the resident does not hold.
    #[error("record {0:?} is not stored for this resident")]
    UnknownRecord(String),
    /// A record id is stored with different content.
    #[error("record id {record_id:?} is already stored with different content")]
    ConflictingRecord {
        /// Index in the change.
        index: usize,
        /// The id.
        record_id: String,
    },
}

impl StoreError {
    /// Whether the disk holding the store is full: a write failed with "no
    /// space left on device" (sled then refuses every write until the
    /// store is reopened).
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::DiskFull(_) => true,
            StoreError::Sled(sled::Error::Io(io)) => tessera_certs::files::is_disk_full(io),
            _ => false,
        }
    }
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
/// hint, only what status checks and revocation need. Stored with its
/// colour and issue time sealed under the holder's data key; the rest is in
/// the clear (see [`SledStore`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadgeRecord {
    /// The holder.
    pub resident: Pseudonym,
    /// The colour it showed (sealed at rest).
    pub colour: Colour,
    /// Issued at (sealed at rest).
    pub issued_at: i64,
    /// Valid until.
    pub valid_until: i64,
    /// Its state.
    pub state: BadgeState,
}

/// A record to store.
#[derive(Debug, Clone)]
pub struct NewRecord {
    /// The holder.
    pub resident: Pseudonym,
    /// Client-supplied id.
    pub record_id: String,
    /// Its type (for retention).
    pub kind: RecordType,
    /// Its time (sampled, given, exposed, left or declared at).
    pub at: i64,
    /// SHA-256 over holder and content: tells a retry from a conflict.
    pub fingerprint: [u8; 32],
    /// The encoded record (no ID number in it), in the clear: the store
    /// encrypts it.
    pub encoded: Vec<u8>,
}

/// One atomic change.
#[derive(Debug, Clone, Default)]
pub struct Change {
    /// Records to add; an id already stored with the same fingerprint is
    /// skipped as a duplicate.
    pub records: Vec<NewRecord>,
    /// New badges to store.
    pub badges: Vec<(BadgeId, BadgeRecord)>,
    /// New states of stored badges (revoked, superseded): only the state is
    /// rewritten, the sealed colour and issue time are kept as they are.
    pub states: Vec<(BadgeId, BadgeState)>,
}

/// A correction of one stored record (`CityNode.CorrectRecord`), applied
/// with the badge states it changes in one atomic batch.
#[derive(Debug, Clone)]
pub struct Correction {
    /// The holder.
    pub resident: Pseudonym,
    /// The stored record's id.
    pub record_id: String,
    /// Why: a `tessera.v1.CorrectionReason` value.
    pub reason: u8,
    /// When.
    pub at: i64,
    /// The new content (same id, same holder), or `None` to retract it.
    pub replacement: Option<NewRecord>,
}

/// The trace a correction leaves (sealed under the holder's data key,
/// removed with the record it marks by the sweep, and by erasure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrectionMark {
    /// The record's id.
    pub record_id: String,
    /// The type of the record it marks (the replacement or the retracted
    /// record), for retention.
    pub kind: RecordType,
    /// Its time.
    pub record_at: i64,
    /// Whether the record was retracted (else replaced).
    pub retracted: bool,
    /// Why: a `tessera.v1.CorrectionReason` value.
    pub reason: u8,
    /// When the correction was made.
    pub at: i64,
}

/// What a change did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    /// Records newly stored.
    pub stored: u32,
    /// Records skipped as already stored.
    pub duplicates: u32,
}

/// What an erasure destroyed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    /// Records deleted.
    pub records: u32,
    /// Badge states deleted.
    pub badges: u32,
    /// Whether the resident had a data key (which is destroyed).
    pub key: bool,
}

/// What one sweep batch deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Records deleted, by type in [`RecordType::ALL`] order.
    pub records: [u32; 5],
    /// Badge states deleted.
    pub badges: u32,
    /// Data keys deleted because their resident had nothing left.
    pub keys: u32,
    /// Correction marks deleted (with their record, or past the retention
    /// of the record they retracted).
    pub corrections: u32,
    /// Whether more expired entries remain (the batch was full).
    pub more: bool,
}

impl Swept {
    /// Records deleted, all types.
    pub fn total_records(&self) -> u32 {
        self.records.iter().sum()
    }

    /// Adds another batch's counts.
    pub fn add(&mut self, other: &Swept) {
        for (a, b) in self.records.iter_mut().zip(other.records) {
            *a += b;
        }
        self.badges += other.badges;
        self.keys += other.keys;
        self.corrections += other.corrections;
        self.more = other.more;
    }
}

/// The node's storage. Another embedded store can replace sled by
/// implementing this trait.
pub trait Store: Send + Sync + 'static {
    /// Applies a change atomically (all or nothing), not yet durably.
    fn apply(&self, change: &Change) -> Result<Applied, StoreError>;
    /// Every record of a resident, decrypted (encoded `Record`s).
    fn records_of(&self, resident: &Pseudonym) -> Result<Vec<Vec<u8>>, StoreError>;
    /// The fingerprint stored for a record id.
    fn fingerprint(&self, record_id: &str) -> Result<Option<[u8; 32]>, StoreError>;
    /// A badge's state, read without any key (for status checks).
    fn badge_state(&self, id: &BadgeId) -> Result<Option<BadgeState>, StoreError>;
    /// A badge's record, decrypted.
    fn badge(&self, id: &BadgeId) -> Result<Option<BadgeRecord>, StoreError>;
    /// Every badge of a resident, decrypted.
    fn badges_of(&self, resident: &Pseudonym) -> Result<Vec<(BadgeId, BadgeRecord)>, StoreError>;
    /// A resident's active badges, decrypted; nothing is decrypted when
    /// they have none.
    fn active_badges_of(
        &self,
        resident: &Pseudonym,
    ) -> Result<Vec<(BadgeId, BadgeRecord)>, StoreError>;
    /// Replaces or retracts one stored record of `correction.resident` and
    /// leaves its mark, with `states` (the badges the re-scoring changes),
    /// atomically, not yet durably; [`StoreError::UnknownRecord`] and no
    /// change if the resident holds no such record. The record-id index
    /// keeps the id's first content, so the sender's retry of the original
    /// batch stays a duplicate and never undoes the correction. The caller
    /// serialises it with every other change.
    fn correct(
        &self,
        correction: &Correction,
        states: &[(BadgeId, BadgeState)],
    ) -> Result<(), StoreError>;
    /// A resident's correction marks, decrypted, in record-id order.
    fn corrections_of(&self, resident: &Pseudonym) -> Result<Vec<CorrectionMark>, StoreError>;
    /// Makes every applied change durable.
    fn flush(&self) -> Result<(), StoreError>;
    /// Erases a resident: their records, record-id and expiry index
    /// entries, badge states and data key, and replaces the keys above
    /// that data key (their path in the key tree, and the master key), so
    /// that no copy of the store taken before opens the resident's data
    /// with any key kept afterwards. Durable when it returns. The caller
    /// serialises it with every other change; its work does not grow with
    /// the city (the path and its siblings only). The three parts below,
    /// one after the other.
    fn erase(&self, resident: &Pseudonym) -> Result<Erased, StoreError>;
    /// An erasure's first part: writes its new master key durably beside
    /// the current one (finishing or rolling back what an earlier erasure
    /// left there). Needs no writer lock; the caller makes erasures one at
    /// a time, from this to [`Store::finish_erasure`].
    fn prepare_erasure(&self) -> Result<PreparedErasure, StoreError>;
    /// An erasure's second part, serialised with every other change (the
    /// writer lock): removes everything of `resident` and re-keys their
    /// path in one batch, applied but not yet durable; reads and changes
    /// use the new keys from then on. Its work does not grow with the city.
    fn apply_erasure(
        &self,
        prepared: &PreparedErasure,
        resident: &Pseudonym,
    ) -> Result<Erased, StoreError>;
    /// An erasure's last part, without the writer lock: makes it durable,
    /// then replaces the master key file (the old key overwritten); or
    /// discards the new key if the erasure changed nothing.
    fn finish_erasure(&self, prepared: PreparedErasure) -> Result<(), StoreError>;
    /// Deletes at most `limit` entries past `retention` at `now`, found
    /// through the expiry indexes without decrypting anything; not yet
    /// durably. The caller serialises it with every other change.
    fn sweep(&self, retention: &Retention, now: i64, limit: usize) -> Result<Swept, StoreError>;
    /// Counts what the store holds, for a deletion attestation (a full scan:
    /// for sunset, not for serving).
    fn census(&self) -> Result<Census, StoreError>;
    /// Whether the store holds any record or badge state: a city that has
    /// served residents, which may no longer start from a policy it signs
    /// itself without notice.
    fn holds_data(&self) -> Result<bool, StoreError>;
    /// The SHA-256 of the city's first signed policy, the only one that
    /// may take effect without notice, once recorded (the policy pin).
    fn first_policy(&self) -> Result<Option<[u8; 32]>, StoreError>;
    /// Records the city's first signed policy, durably. It is never
    /// replaced: a second call with another hash is refused.
    fn record_first_policy(&self, hash: [u8; 32]) -> Result<(), StoreError>;
    /// Copies everything the store holds (records, indexes, data keys
    /// wrapped under the master key, meta entries: never the master key)
    /// into `dest`, a new database, not yet durably. The caller holds the
    /// writer lock, so the copy is one state of the store; other trees of
    /// the database (the access log) are the caller's to copy.
    fn copy_into(&self, dest: &sled::Db) -> Result<Copied, StoreError>;
    /// Whether a write failed because the disk is full: the store then
    /// refuses every change until it is reopened (reads go on).
    fn disk_full(&self) -> bool {
        false
    }
}

/// The name of the store's tree in its sled database.
pub const STORE_TREE: &str = "node";

/// What [`Store::copy_into`] copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// What the copy holds.
    pub census: Census,
    /// The layout version it was written in.
    pub layout: u32,
    /// How many times the master key had been rotated: only the key of
    /// this generation decrypts the copy.
    pub key_generation: u64,
    /// That master key's fingerprint.
    pub key_fingerprint: [u8; 32],
}

/// What a store holds, counted before it is destroyed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    /// Residents holding a data key (whose keys a sunset destroys).
    pub residents: u64,
    /// Records.
    pub records: u64,
    /// Badge states.
    pub badges: u64,
}

/// Opens with `open`, trying again while `locked` says the directory is
/// still locked: sled's flusher thread can hold the lock for a moment after
/// the database before was dropped. For tests that reopen a store.
#[cfg(test)]
pub(crate) fn when_unlocked<T, E: std::fmt::Debug>(
    mut open: impl FnMut() -> Result<T, E>,
    locked: impl Fn(&E) -> bool,
) -> T {
    for _ in 0..500 {
        match open() {
            Err(e) if locked(&e) => std::thread::sleep(std::time::Duration::from_millis(10)),
            other => return other.unwrap(),
        }
    }
    panic!("the directory stayed locked after its database was dropped")
}
