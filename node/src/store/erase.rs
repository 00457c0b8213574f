//! Erasure: everything of one resident removed in one batch, and the master
//! key rotated so that no copy taken before can open the erased data key,
//! crash-safe at every step (a stop leaves a store that opens).

use std::sync::PoisonError;

use super::codec::parse_badge;
use super::layout::*;
use super::{Erased, SledStore, StoreError};
use crate::pseudonym::Pseudonym;
use crate::vault::MasterKey;

/// Where a test stops an erasure, as a crash would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// Run to the end.
    Never,
    /// After the next key is written, before the store changes.
    AfterNextKey,
    /// After the store is durably re-wrapped, before the key files change.
    AfterStore,
}

impl SledStore {
    /// [`super::Store::erase`], stopping where `stop` says (tests simulate a crash
    /// there).
    pub(super) fn erase_until(
        &self,
        resident: &Pseudonym,
        stop: Stop,
    ) -> Result<Erased, StoreError> {
        let file = self.key_file.as_ref().ok_or(StoreError::ReadOnly)?;
        let mut master = self.master.write().unwrap_or_else(PoisonError::into_inner);
        // A rotation whose store part is durable but whose files were not
        // swapped (an error after it): finish it before starting another.
        if let Some(next) = file.read_next()? {
            if next == master.key {
                file.promote_next()?;
            } else {
                file.discard_next()?;
            }
        }
        let mut batch = sled::Batch::default();
        let mut erased = Erased::default();
        let p = resident.as_bytes();
        let prefix = key(RECORD, &[p]);
        for entry in self.tree.scan_prefix(&prefix) {
            let (k, v) = entry?;
            let record_id = &k[prefix.len()..];
            let (kind, at) = parse_header(&v)?;
            batch.remove(expiry_key(kind, at, resident, record_id));
            batch.remove(key(RECORD_ID, &[record_id]));
            batch.remove(k);
            erased.records += 1;
        }
        // Correction marks, and the id index of the records they retracted.
        let prefix = key(CORRECTION, &[p]);
        for entry in self.tree.scan_prefix(&prefix) {
            let (k, v) = entry?;
            let record_id = &k[prefix.len()..];
            let (kind, at) = parse_header(&v)?;
            batch.remove(correction_expiry_key(kind, at, resident, record_id));
            batch.remove(key(RECORD_ID, &[record_id]));
            batch.remove(k);
        }
        let prefix = key(HOLDER, &[p]);
        for k in self.tree.scan_prefix(&prefix).keys() {
            let k = k?;
            let id = &k[prefix.len()..];
            if let Some(v) = self.tree.get(key(BADGE, &[id]))? {
                let badge = parse_badge(&v)?;
                batch.remove(key(BADGE_EXPIRY, &[&time_bytes(badge.valid_until), id]));
                batch.remove(key(BADGE, &[id]));
                erased.badges += 1;
            }
            batch.remove(k);
        }
        let own = key(DATA_KEY, &[p]);
        erased.key = self.tree.contains_key(&own)?;
        if erased == Erased::default() {
            // Nothing of theirs is stored (never, or erased before): no
            // rotation needed.
            return Ok(erased);
        }
        batch.remove(own.clone());

        // Rotate: every other data key is re-wrapped under a new master key
        // in the same batch, so the erased key's wrapping is the only one
        // the old master key ever opened that is not also under the new one.
        let next = MasterKey::generate();
        file.write_next(&next)?;
        if stop == Stop::AfterNextKey {
            return Ok(erased);
        }
        let rewrapped = (|| -> Result<(), StoreError> {
            for entry in self.tree.scan_prefix([DATA_KEY]) {
                let (k, v) = entry?;
                if k.as_ref() == own.as_slice() {
                    continue;
                }
                let holder = Pseudonym::from_slice(&k[1..])
                    .ok_or_else(|| StoreError::Corrupt("data key entry".into()))?;
                let data = master.key.unwrap(&holder, &v)?;
                batch.insert(k, next.wrap(&holder, &data));
            }
            let generation = master.generation + 1;
            batch.insert(META_MASTER, meta_value(generation, &next));
            self.tree.apply_batch(batch)?;
            self.db.flush()?;
            Ok(())
        })();
        if let Err(e) = rewrapped {
            let applied = self.tree.get(META_MASTER)?.as_deref()
                == Some(&meta_value(master.generation + 1, &next)[..]);
            if applied {
                // Applied but not flushed: the store now wraps under the
                // next key, so use it; the next start keeps whichever key
                // the durable store names.
                master.generation += 1;
                master.key = next;
            } else {
                file.discard_next()?;
            }
            return Err(e);
        }
        master.generation += 1;
        master.key = next;
        if stop == Stop::AfterStore {
            return Ok(erased);
        }
        file.promote_next()?;
        Ok(erased)
    }
}
