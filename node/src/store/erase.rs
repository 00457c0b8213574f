//! Erasure: everything of one resident removed in one batch, and the keys
//! on their path in the key tree replaced, master key included, so that no
//! copy taken before can open the erased data key with any key kept after;
//! crash-safe at every step (a stop leaves a store that opens).

use std::collections::HashMap;
use std::sync::PoisonError;

use super::codec::parse_badge;
use super::keytree::{DEPTH, Master, NodeId};
use super::layout::*;
use super::{Erased, SledStore, StoreError};
use crate::pseudonym::Pseudonym;
use crate::vault::{MasterKey, NodeKey};

/// Where a test stops an erasure, as a crash would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// Run to the end.
    Never,
    /// After the next key is written, before the store changes.
    AfterNextKey,
    /// After the store changed, before it is flushed (a crash may keep the
    /// change or not).
    AfterApply,
    /// After the store is durably re-wrapped, before the key files change.
    AfterStore,
}

/// An erasure begun: its new master key, durable in the key file's `.next`
/// before the store uses it. Erasures are made one at a time, each in three
/// parts: [`super::Store::prepare_erasure`] (key file), then
/// [`super::Store::apply_erasure`] (the store, under the writer lock), then
/// [`super::Store::finish_erasure`] (durable, key files swapped).
#[derive(Debug)]
pub struct PreparedErasure {
    next: MasterKey,
}

impl SledStore {
    /// [`super::Store::erase`], stopping where `stop` says (tests simulate a crash
    /// there).
    pub(super) fn erase_until(
        &self,
        resident: &Pseudonym,
        stop: Stop,
    ) -> Result<Erased, StoreError> {
        let prepared = self.prepare()?;
        if stop == Stop::AfterNextKey {
            return Ok(Erased::default());
        }
        let erased = self.apply_prepared(&prepared, resident);
        if stop == Stop::AfterApply {
            return erased;
        }
        // Finished even after a failure: the next key is discarded if the
        // store does not use it, or the erasure completed if it does.
        let finished = self.finish(prepared, stop);
        let erased = erased?;
        finished?;
        Ok(erased)
    }

    /// Finishes or rolls back what an earlier erasure left in the key files
    /// (an error after its store part), then writes a new next key.
    pub(super) fn prepare(&self) -> Result<PreparedErasure, StoreError> {
        let file = self.key_file.as_ref().ok_or(StoreError::ReadOnly)?;
        {
            let master = self.master.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(next) = file.read_next()? {
                if next == master.key {
                    // Its store part applied: finish it before another.
                    self.db.flush()?;
                    file.promote_next()?;
                } else {
                    file.discard_next()?;
                }
            }
        }
        let next = MasterKey::generate();
        file.write_next(&next)?;
        Ok(PreparedErasure { next })
    }

    /// Everything of `resident` removed and their path re-keyed under
    /// `prepared`'s master key, in one batch applied (not yet durably); the
    /// store uses the new keys from then on.
    pub(super) fn apply_prepared(
        &self,
        prepared: &PreparedErasure,
        resident: &Pseudonym,
    ) -> Result<Erased, StoreError> {
        if self.key_file.is_none() {
            return Err(StoreError::ReadOnly);
        }
        let mut master = self.master.write().unwrap_or_else(PoisonError::into_inner);
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
            // rotation needed; finishing discards the next key.
            return Ok(erased);
        }
        batch.remove(own);

        // Re-key the resident's path: new keys for its nodes and a new
        // master key, the siblings on the path re-wrapped under them, in
        // the same batch. No key that survives ever wrapped a key replaced
        // here, so nothing left opens the erased data key (PRIVACY.md).
        let next = &prepared.next;
        let path = self.rekey_path(&master, resident, next, &mut batch)?;
        let generation = master.generation + 1;
        batch.insert(META_MASTER, meta_value(generation, next));
        if let Err(e) = self.tree.apply_batch(batch) {
            if self.tree.get(META_MASTER)?.as_deref() == Some(&meta_value(generation, next)[..]) {
                // Applied all the same: the store wraps under the new keys.
                adopt(&mut master, next.clone(), path);
            }
            return Err(e.into());
        }
        adopt(&mut master, next.clone(), path);
        Ok(erased)
    }

    /// Makes an applied erasure durable and swaps the key files (the old
    /// master key overwritten), or discards the next key of one that
    /// changed nothing; stops before the swap for [`Stop::AfterStore`].
    pub(super) fn finish(&self, prepared: PreparedErasure, stop: Stop) -> Result<(), StoreError> {
        let file = self.key_file.as_ref().ok_or(StoreError::ReadOnly)?;
        let used = self
            .master
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .key
            == prepared.next;
        if !used {
            file.discard_next()?;
            return Ok(());
        }
        self.db.flush()?;
        if stop == Stop::AfterStore {
            return Ok(());
        }
        file.promote_next()?;
        Ok(())
    }

    /// New keys for the nodes of `resident`'s path (those stored) and the
    /// siblings of each re-wrapped under them, into `batch`: the other data
    /// keys of the bottom node, the other children of each node on the
    /// path, and of the root (whose new key is `next`). The resident's own
    /// data key is not re-wrapped (the caller removes it). Returns the new
    /// node keys. Work: about [`super::keytree::FAN_OUT`] × [`DEPTH`] wrappings, plus the
    /// other data keys of the bottom node.
    fn rekey_path(
        &self,
        master: &Master,
        resident: &Pseudonym,
        next: &MasterKey,
        batch: &mut sled::Batch,
    ) -> Result<Vec<(NodeId, NodeKey)>, StoreError> {
        let none = HashMap::new();
        // The stored part of the path, top down, with old and new keys.
        let mut path = vec![];
        for id in NodeId::path(resident).into_iter().rev() {
            match self.node_key(master, id, &none)? {
                Some(old) => path.push((id, old, NodeKey::generate())),
                None => break,
            }
        }
        let root = (master.key.as_node_key(), next.as_node_key());
        for (depth, (id, _, new)) in path.iter().enumerate() {
            let (old_parent, new_parent) = match depth.checked_sub(1) {
                None => (&root.0, &root.1),
                Some(up) => (&path[up].1, &path[up].2),
            };
            batch.insert(id.store_key(), new_parent.wrap_node(&id.name(), new));
            for entry in self.tree.range(NodeId::children_of(id.parent())) {
                let (k, v) = entry?;
                let sibling = NodeId::from_store_key(&k)
                    .ok_or_else(|| StoreError::Corrupt("key tree node entry".into()))?;
                if sibling == *id {
                    continue;
                }
                let key = old_parent.unwrap_node(&sibling.name(), &v)?;
                batch.insert(k, new_parent.wrap_node(&sibling.name(), &key));
            }
        }
        if path.is_empty() {
            // No node of the path is stored (nothing but records without a
            // data key): still re-wrap the root's children.
            for entry in self.tree.range(NodeId::children_of(None)) {
                let (k, v) = entry?;
                let sibling = NodeId::from_store_key(&k)
                    .ok_or_else(|| StoreError::Corrupt("key tree node entry".into()))?;
                let key = root.0.unwrap_node(&sibling.name(), &v)?;
                batch.insert(k, root.1.wrap_node(&sibling.name(), &key));
            }
        }
        if let Some((bottom, old, new)) = path.last().filter(|(id, ..)| id.level == DEPTH) {
            let own = key(DATA_KEY, &[resident.as_bytes()]);
            for entry in self.tree.scan_prefix(bottom.leaf_prefix()) {
                let (k, v) = entry?;
                if k.as_ref() == own.as_slice() {
                    continue;
                }
                let holder = Pseudonym::from_slice(&k[1..])
                    .ok_or_else(|| StoreError::Corrupt("data key entry".into()))?;
                let data = old.unwrap_data(&holder, &v)?;
                batch.insert(k, new.wrap_data(&holder, &data));
            }
        }
        Ok(path.into_iter().map(|(id, _, new)| (id, new)).collect())
    }
}

/// Takes the new keys of an erasure into use: the master key, its
/// generation, and the path's node keys in the cache.
fn adopt(master: &mut Master, next: MasterKey, path: Vec<(NodeId, NodeKey)>) {
    master.generation += 1;
    master.key = next;
    master
        .nodes
        .get_mut()
        .unwrap_or_else(PoisonError::into_inner)
        .extend(path);
}
