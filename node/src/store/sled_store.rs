//! The sled implementation of [`Store`]: opening (and refusing layouts it
//! does not read), reading, and applying one atomic change.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{PoisonError, RwLock};

use tessera_core::BadgeId;

use super::codec::*;
use super::erase::Stop;
use super::keytree::{Master, NewKeys};
use super::layout::*;
use super::*;
use crate::pseudonym::Pseudonym;
use crate::records::Retention;
use crate::vault::{DataKey, KeyFile, MasterKey};

/// The sled store: one tree, its keys prefixed by kind, so that every
/// change is one atomic `apply_batch` instead of a transaction over several
/// trees (several times slower on a batch of records). Reads made before
/// the batch rely on the caller serialising changes (the node's writer
/// lock).
///
/// | prefix | key after it | value |
/// | --- | --- | --- |
/// | `m` | `master` | generation (8 bytes), fingerprint of the master key (the root of the key tree) |
/// | `m` | `first-policy` | SHA-256 of the city's first signed policy (exempt from notice) |
/// | `m` | `layout` | the store layout version (u32), see [`super::LAYOUT`]; absent in a layout-1 store written before it was recorded |
/// | `m` | `badges` | the badge value format (2), refusing a store whose badge states were written in the clear |
/// | `n` | level (1 byte, 1 to 4), index (u16: the first 4 × level bits of the pseudonyms under the node) | a node key of the key tree, wrapped under its parent's (level 1: under the master key): nonce, ciphertext |
/// | `l` | pseudonym | the resident's data key, wrapped under the key of its bottom node (level 4): nonce, ciphertext |
/// | `k` | pseudonym | layouts 1 and 2 only: the data key wrapped under the master key (moved to `l` at open) |
/// | `r` | pseudonym, record id | type (1 byte), time (8), then the record sealed under the data key: nonce, ciphertext |
/// | `i` | record id | pseudonym, then the content fingerprint sealed under the data key: nonce, ciphertext |
/// | `x` | type, time, pseudonym, record id | nothing (expiry index) |
/// | `b` | badge id | format (1 byte, 2), pseudonym, valid until (8), state (1) and its time (8), then colour and issue time sealed under the data key: nonce, ciphertext |
/// | `h` | pseudonym, badge id | nothing (the holder's badges) |
/// | `y` | valid until, badge id | nothing (badge expiry index) |
/// | `c` | pseudonym, record id | a correction's mark: type (1 byte) and time (8) of the record it marks, then format, retracted, reason and time of the correction sealed under the data key (see `correct.rs`) |
/// | `z` | type, time, pseudonym, record id | nothing (the marks' expiry index) |
///
/// Times in keys are big-endian with the sign bit flipped, so they sort in
/// time order.
#[derive(Debug)]
pub struct SledStore {
    pub(super) db: sled::Db,
    pub(super) tree: sled::Tree,
    pub(super) master: RwLock<Master>,
    /// `None` for a copy opened to read.
    pub(super) key_file: Option<KeyFile>,
    /// Set when a write failed on a full disk: sled keeps its first I/O
    /// error, so no later change can succeed in this `Db`.
    pub(super) disk_full: std::sync::atomic::AtomicBool,
}

fn census_of(tree: &sled::Tree) -> Result<Census, StoreError> {
    let count = |prefix: u8| -> Result<u64, StoreError> {
        let mut n = 0u64;
        for k in tree.scan_prefix([prefix]).keys() {
            k?;
            n += 1;
        }
        Ok(n)
    };
    Ok(Census {
        // A store not yet migrated to layout 3 (counted without opening it,
        // as a sunset may) holds its data keys under the legacy prefix.
        residents: count(DATA_KEY)? + count(LEGACY_DATA_KEY)?,
        records: count(RECORD)?,
        badges: count(BADGE)?,
    })
}

impl SledStore {
    /// Opens (or creates) the store in `dir` with a 256 MiB page cache,
    /// under the master key in `key_file` (see [`SledStore::open_with_cache`]).
    pub fn open(dir: &Path, key_file: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(dir, 256 * 1024 * 1024, key_file)
    }

    /// Opens only the tree `name` of the store in `dir`, without the master
    /// key: for tools that read what the store keeps in clear (the access
    /// log). The directory stays locked while the tree is held, so this
    /// fails with [`StoreError::Locked`] while the node runs.
    pub fn open_clear_tree(dir: &Path, name: &str) -> Result<sled::Tree, StoreError> {
        let (db, _) = Self::open_db(dir, 64 * 1024 * 1024)?;
        Ok(db.open_tree(name)?)
    }

    /// Counts what the store in `dir` holds without the master key (the
    /// counts need no decryption): for a sunset, which must be able to
    /// attest even when the key file is damaged. Fails with
    /// [`StoreError::Locked`] while the node runs.
    /// The directory stays locked while the returned database is held: a
    /// caller that must act before any node can start on the directory
    /// (a sunset writing its marker) holds it until done.
    pub fn census_at(dir: &Path) -> Result<(Census, sled::Db), StoreError> {
        let (db, tree) = Self::open_db(dir, 16 * 1024 * 1024)?;
        Ok((census_of(&tree)?, db))
    }

    pub(super) fn open_db(
        dir: &Path,
        cache_bytes: u64,
    ) -> Result<(sled::Db, sled::Tree), StoreError> {
        tessera_certs::files::prepare_sled_dir(dir)
            .map_err(|e| StoreError::Files(e.to_string()))?;
        let config = sled::Config::new().path(dir).cache_capacity(cache_bytes);
        let db = config.open().map_err(|e| match e {
            sled::Error::Io(ref io) if tessera_certs::files::is_disk_full(io) => {
                // A start on a full disk leaves an empty snapshot temp
                // that would break the next start.
                let _ = tessera_certs::files::remove_snapshot_temps(dir);
                StoreError::DiskFull(dir.display().to_string())
            }
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
        let tree = db.open_tree(STORE_TREE)?;
        refuse_newer(&tree, dir)?;
        Ok((db, tree))
    }

    /// Opens (or creates) the store in `dir`, keeping at most about
    /// `cache_bytes` of its pages in memory, under the master key in
    /// `key_file`. A new store creates the key file if it does not exist;
    /// an existing one needs the key it was written under, and finishes or
    /// rolls back a key rotation that a stop interrupted.
    /// On a full disk it fails with [`StoreError::DiskFull`] and leaves
    /// nothing that breaks the next start.
    pub fn open_with_cache(
        dir: &Path,
        cache_bytes: u64,
        key_file: &Path,
    ) -> Result<Self, StoreError> {
        Self::open_on_disk(dir, cache_bytes, key_file).map_err(|e| {
            if e.is_disk_full() {
                // sled may leave an empty snapshot temp as it closes.
                let _ = tessera_certs::files::remove_snapshot_temps(dir);
                StoreError::DiskFull(dir.display().to_string())
            } else {
                e
            }
        })
    }

    pub(super) fn open_on_disk(
        dir: &Path,
        cache_bytes: u64,
        key_file: &Path,
    ) -> Result<Self, StoreError> {
        let (db, tree) = Self::open_db(dir, cache_bytes)?;
        let file = KeyFile::new(key_file);
        let master = match tree.get(META_MASTER)? {
            Some(v) => {
                let (generation, fingerprint) = parse_meta(&v)?;
                let master = Master::new(file.recover(&fingerprint)?, generation);
                match tree.get(META_BADGES)? {
                    Some(v) if v.as_ref() == [BADGE_FORMAT] => {}
                    Some(_) => {
                        return Err(StoreError::Corrupt(
                            "badge format entry: written by a newer tessera".into(),
                        ));
                    }
                    None => {
                        if tree.scan_prefix([BADGE]).next().is_some() {
                            return Err(StoreError::Corrupt(format!(
                                "{} holds badge states written before their colour and issue \
                                 time were sealed: import its records afresh into a new data \
                                 directory (badges issued from it then read UNKNOWN)",
                                dir.display()
                            )));
                        }
                        tree.insert(META_BADGES, &[BADGE_FORMAT])?;
                        db.flush()?;
                    }
                }
                master
            }
            None => {
                if !tree.is_empty() {
                    return Err(StoreError::Corrupt(format!(
                        "{} holds records written before encryption at rest (no master key \
                         entry): import its records afresh into a new data directory",
                        dir.display()
                    )));
                }
                // A fresh store. A key file already there (a first start
                // stopped before this entry was written) is used as it is.
                let key = match file.read()? {
                    Some(key) => key,
                    None => {
                        let key = MasterKey::generate();
                        file.create(&key)?;
                        key
                    }
                };
                if file.next_path().exists() {
                    file.discard_next()?;
                }
                tree.insert(META_MASTER, meta_value(0, &key))?;
                tree.insert(META_BADGES, &[BADGE_FORMAT])?;
                tree.insert(META_LAYOUT, &LAYOUT.to_be_bytes())?;
                db.flush()?;
                Master::new(key, 0)
            }
        };
        let store = Self {
            db,
            tree,
            master: RwLock::new(master),
            key_file: Some(file),
            disk_full: std::sync::atomic::AtomicBool::new(false),
        };
        let found = layout_of(&store.tree)?;
        if found != LAYOUT || store.tree.get(META_LAYOUT)?.is_none() {
            migrate(&store, found)?;
            store.db.flush()?;
        }
        Ok(store)
    }

    /// Opens a copy of a store directory (a backup, a stolen disk) to read
    /// it with `key`, touching no key file: reads fail with
    /// [`VaultError::Undecryptable`] if `key` is not the one its data keys
    /// are wrapped under, and changes are refused. sled locks and may
    /// update the directory's own files, so open a copy, never a running
    /// node's directory.
    pub fn open_copy(dir: &Path, key: MasterKey) -> Result<Self, StoreError> {
        let (db, tree) = Self::open_db(dir, 64 * 1024 * 1024)?;
        let found = layout_of(&tree)?;
        if found < LAYOUT {
            return Err(StoreError::Corrupt(format!(
                "{} holds store layout {found}: a copy is read in layout {LAYOUT} only; \
                 open a copy of it with the node once to migrate it",
                dir.display()
            )));
        }
        let generation = match tree.get(META_MASTER)? {
            Some(v) => parse_meta(&v)?.0,
            None => 0,
        };
        Ok(Self {
            db,
            tree,
            master: RwLock::new(Master::new(key, generation)),
            key_file: None,
            disk_full: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Notes a write that failed on a full disk (see [`Store::disk_full`]).
    pub(super) fn noting<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(e) = &result
            && e.is_disk_full()
            && !self
                .disk_full
                .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            tracing::error!(
                error = %e,
                "the store's disk is full: changes are refused until there is room"
            );
        }
        result
    }

    /// How many times the master key was rotated (by erasures).
    pub fn key_generation(&self) -> u64 {
        self.master
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .generation
    }

    /// Every key in the tree, raw (for audits and tests: what a stolen
    /// directory shows).
    pub fn raw_keys(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        self.tree.iter().keys().map(|k| Ok(k?.to_vec())).collect()
    }

    /// Opens each entry under `prefix` (a key of `resident`) with `open`,
    /// given the resident's data key, the rest of the entry's key and its
    /// value. The data key is read once, at the first entry; if there is none
    /// the store is corrupt, and `what` names the entries in the error.
    pub(super) fn open_each<T>(
        &self,
        resident: &Pseudonym,
        prefix: &[u8],
        what: &str,
        mut open: impl FnMut(&DataKey, &[u8], &[u8]) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = vec![];
        let mut data = None;
        for entry in self.tree.scan_prefix(prefix) {
            let (k, v) = entry?;
            let data = match &data {
                Some(d) => d,
                None => {
                    let master = self.master.read().unwrap_or_else(PoisonError::into_inner);
                    let found = self.data_key(&master, resident)?.ok_or_else(|| {
                        StoreError::Corrupt(format!("a resident's {what} have no data key"))
                    })?;
                    data.insert(found)
                }
            };
            out.push(open(data, &k[prefix.len()..], &v)?);
        }
        Ok(out)
    }

    /// A resident's badges whose state `keep` accepts, decrypted; the data
    /// key is unwrapped only if one is kept.
    pub(super) fn badges_where(
        &self,
        resident: &Pseudonym,
        keep: impl Fn(BadgeState) -> bool,
    ) -> Result<Vec<(BadgeId, BadgeRecord)>, StoreError> {
        let mut out = vec![];
        let mut data = None;
        let prefix = key(HOLDER, &[resident.as_bytes()]);
        for k in self.tree.scan_prefix(&prefix).keys() {
            let k = k?;
            let id = BadgeId::from_slice(&k[prefix.len()..])
                .ok_or_else(|| StoreError::Corrupt("resident badge index".into()))?;
            let Some(v) = self.tree.get(key(BADGE, &[id.as_bytes()]))? else {
                continue;
            };
            let clear = parse_badge(&v)?;
            if !keep(clear.state) {
                continue;
            }
            if clear.resident != *resident {
                return Err(StoreError::Corrupt("resident badge index".into()));
            }
            let data = match &data {
                Some(d) => d,
                None => {
                    let master = self.master.read().unwrap_or_else(PoisonError::into_inner);
                    let found = self.data_key(&master, resident)?.ok_or_else(|| {
                        StoreError::Corrupt("a resident's badges have no data key".into())
                    })?;
                    data.insert(found)
                }
            };
            out.push((id, open_badge(data, id.as_bytes(), clear, &v)?));
        }
        Ok(out)
    }

    /// The holder and content fingerprint of a record-id index entry.
    pub(super) fn id_entry(
        &self,
        master: &Master,
        record_id: &[u8],
        value: &[u8],
    ) -> Result<(Pseudonym, [u8; 32]), StoreError> {
        let corrupt = || StoreError::Corrupt("record id index".into());
        let holder = Pseudonym::from_slice(value.get(..Pseudonym::LEN).ok_or_else(corrupt)?)
            .ok_or_else(corrupt)?;
        let data = self.data_key(master, &holder)?.ok_or_else(corrupt)?;
        let fingerprint = data.open_fingerprint(&holder, record_id, &value[Pseudonym::LEN..])?;
        Ok((holder, fingerprint))
    }
}

impl SledStore {
    /// Another tree of the same database, for data kept apart from the
    /// records (the access log, see `access_log.rs`). A flush of the store
    /// covers it too.
    pub fn open_tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(name)?)
    }
}

impl SledStore {
    fn apply_change(&self, change: &Change) -> Result<Applied, StoreError> {
        if self.key_file.is_none() {
            return Err(StoreError::ReadOnly);
        }
        let master = self.master.read().unwrap_or_else(PoisonError::into_inner);
        let mut batch = sled::Batch::default();
        let mut applied = Applied::default();
        let mut in_change: HashMap<Vec<u8>, (Pseudonym, [u8; 32])> = HashMap::new();
        let mut new_keys = NewKeys::default();
        for (index, r) in change.records.iter().enumerate() {
            let id_key = key(RECORD_ID, &[r.record_id.as_bytes()]);
            let value = (r.resident, r.fingerprint);
            let existing = match in_change.get(&id_key) {
                Some(v) => Some(*v),
                None => match self.tree.get(&id_key)? {
                    None => None,
                    Some(v) => Some(self.id_entry(&master, r.record_id.as_bytes(), &v)?),
                },
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
            let data = self.data_key_or_new(&master, &r.resident, &mut new_keys, &mut batch)?;
            let head = header(r.kind, r.at);
            let sealed = data.seal(&r.resident, &head, r.record_id.as_bytes(), &r.encoded);
            batch.insert(
                key(RECORD, &[r.resident.as_bytes(), r.record_id.as_bytes()]),
                [head.as_slice(), &sealed].concat(),
            );
            batch.insert(
                expiry_key(r.kind, r.at, &r.resident, r.record_id.as_bytes()),
                &[][..],
            );
            batch.insert(
                id_key.clone(),
                [
                    r.resident.as_bytes().as_slice(),
                    &data.seal_fingerprint(&r.resident, r.record_id.as_bytes(), &r.fingerprint),
                ]
                .concat(),
            );
            in_change.insert(id_key, value);
            applied.stored += 1;
        }
        // Values written by this change, for a state change of a badge it
        // also stores.
        let mut written: HashMap<BadgeId, Vec<u8>> = HashMap::new();
        for (id, badge) in &change.badges {
            let data = self.data_key_or_new(&master, &badge.resident, &mut new_keys, &mut batch)?;
            let value = encode_badge(&data, id, badge);
            batch.insert(key(BADGE, &[id.as_bytes()]), value.clone());
            written.insert(*id, value);
            batch.insert(
                key(HOLDER, &[badge.resident.as_bytes(), id.as_bytes()]),
                &[][..],
            );
            batch.insert(
                key(
                    BADGE_EXPIRY,
                    &[&time_bytes(badge.valid_until), id.as_bytes()],
                ),
                &[][..],
            );
        }
        for (id, state) in &change.states {
            let mut value = match written.remove(id) {
                Some(v) => v,
                None => self
                    .tree
                    .get(key(BADGE, &[id.as_bytes()]))?
                    .ok_or_else(|| StoreError::UnknownBadge(hex::encode(id.as_bytes())))?
                    .to_vec(),
            };
            parse_badge(&value)?;
            value[BADGE_STATE_AT..BADGE_CLEAR_LEN].copy_from_slice(&state_bytes(*state));
            batch.insert(key(BADGE, &[id.as_bytes()]), value.clone());
            written.insert(*id, value);
        }
        self.tree.apply_batch(batch)?;
        master.keep(new_keys.nodes);
        Ok(applied)
    }
}

impl Store for SledStore {
    fn apply(&self, change: &Change) -> Result<Applied, StoreError> {
        self.noting(self.apply_change(change))
    }

    fn records_of(&self, resident: &Pseudonym) -> Result<Vec<Vec<u8>>, StoreError> {
        let prefix = key(RECORD, &[resident.as_bytes()]);
        self.open_each(resident, &prefix, "records", |data, id, v| {
            let head = v
                .get(..HEADER_LEN)
                .ok_or_else(|| StoreError::Corrupt("record header".into()))?;
            Ok(data.open(resident, head, id, &v[HEADER_LEN..])?)
        })
    }

    fn fingerprint(&self, record_id: &str) -> Result<Option<[u8; 32]>, StoreError> {
        match self.tree.get(key(RECORD_ID, &[record_id.as_bytes()]))? {
            None => Ok(None),
            Some(v) => {
                let master = self.master.read().unwrap_or_else(PoisonError::into_inner);
                Ok(Some(self.id_entry(&master, record_id.as_bytes(), &v)?.1))
            }
        }
    }

    fn badge_state(&self, id: &BadgeId) -> Result<Option<BadgeState>, StoreError> {
        self.tree
            .get(key(BADGE, &[id.as_bytes()]))?
            .map(|v| parse_badge(&v).map(|b| b.state))
            .transpose()
    }

    fn badge(&self, id: &BadgeId) -> Result<Option<BadgeRecord>, StoreError> {
        let Some(v) = self.tree.get(key(BADGE, &[id.as_bytes()]))? else {
            return Ok(None);
        };
        let clear = parse_badge(&v)?;
        let master = self.master.read().unwrap_or_else(PoisonError::into_inner);
        let data = self
            .data_key(&master, &clear.resident)?
            .ok_or_else(|| StoreError::Corrupt("a resident's badge has no data key".into()))?;
        Ok(Some(open_badge(&data, id.as_bytes(), clear, &v)?))
    }

    fn badges_of(&self, resident: &Pseudonym) -> Result<Vec<(BadgeId, BadgeRecord)>, StoreError> {
        self.badges_where(resident, |_| true)
    }

    fn active_badges_of(
        &self,
        resident: &Pseudonym,
    ) -> Result<Vec<(BadgeId, BadgeRecord)>, StoreError> {
        self.badges_where(resident, |s| s == BadgeState::Active)
    }

    fn correct(
        &self,
        correction: &Correction,
        states: &[(BadgeId, BadgeState)],
    ) -> Result<(), StoreError> {
        self.noting(self.correct_record(correction, states))
    }

    fn corrections_of(&self, resident: &Pseudonym) -> Result<Vec<CorrectionMark>, StoreError> {
        self.marks_of(resident)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.noting(self.db.flush().map(|_| ()).map_err(StoreError::from))
    }

    fn erase(&self, resident: &Pseudonym) -> Result<Erased, StoreError> {
        self.noting(self.erase_until(resident, Stop::Never))
    }

    fn prepare_erasure(&self) -> Result<PreparedErasure, StoreError> {
        self.noting(self.prepare())
    }

    fn apply_erasure(
        &self,
        prepared: &PreparedErasure,
        resident: &Pseudonym,
    ) -> Result<Erased, StoreError> {
        self.noting(self.apply_prepared(prepared, resident))
    }

    fn finish_erasure(&self, prepared: PreparedErasure) -> Result<(), StoreError> {
        self.noting(self.finish(prepared, Stop::Never))
    }

    fn disk_full(&self) -> bool {
        self.disk_full.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn holds_data(&self) -> Result<bool, StoreError> {
        for prefix in [RECORD, BADGE, CORRECTION] {
            if let Some(k) = self.tree.scan_prefix([prefix]).keys().next() {
                k?;
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn first_policy(&self) -> Result<Option<[u8; 32]>, StoreError> {
        match self.tree.get(META_FIRST_POLICY)? {
            None => Ok(None),
            Some(v) => <[u8; 32]>::try_from(v.as_ref())
                .map(Some)
                .map_err(|_| StoreError::Corrupt("first policy entry".into())),
        }
    }

    fn record_first_policy(&self, hash: [u8; 32]) -> Result<(), StoreError> {
        match self
            .tree
            .compare_and_swap(META_FIRST_POLICY, None::<&[u8]>, Some(&hash[..]))?
        {
            Ok(()) => {}
            Err(e) if e.current.as_deref() == Some(&hash[..]) => {}
            Err(_) => {
                return Err(StoreError::Corrupt(
                    "a different first policy is already recorded".into(),
                ));
            }
        }
        self.db.flush()?;
        Ok(())
    }

    fn census(&self) -> Result<Census, StoreError> {
        census_of(&self.tree)
    }

    fn copy_into(&self, dest: &sled::Db) -> Result<Copied, StoreError> {
        self.copy_store_into(dest)
    }

    fn sweep(&self, retention: &Retention, now: i64, limit: usize) -> Result<Swept, StoreError> {
        self.noting(self.sweep_batch(retention, now, limit))
    }
}
