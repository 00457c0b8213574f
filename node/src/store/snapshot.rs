//! A consistent copy of the store into another sled database, for an
//! online backup (`crate::backup`): every entry of the store's tree copied
//! as it is stored, so records stay sealed under their data keys and data
//! keys stay wrapped under the master key, which is never copied.

use std::sync::PoisonError;

use super::layout::*;
use super::*;

/// Entries copied per batch.
const BATCH: usize = 4096;

impl SledStore {
    pub(super) fn copy_store_into(&self, dest: &sled::Db) -> Result<Copied, StoreError> {
        let into = dest.open_tree(STORE_TREE)?;
        let mut census = Census::default();
        let mut batch = sled::Batch::default();
        let mut pending = 0usize;
        for entry in self.tree.iter() {
            let (k, v) = entry?;
            match k.first() {
                Some(&DATA_KEY) | Some(&LEGACY_DATA_KEY) => census.residents += 1,
                Some(&RECORD) => census.records += 1,
                Some(&BADGE) => census.badges += 1,
                _ => {}
            }
            batch.insert(k, v);
            pending += 1;
            if pending == BATCH {
                into.apply_batch(std::mem::take(&mut batch))?;
                pending = 0;
            }
        }
        into.apply_batch(batch)?;
        let master = self.master.read().unwrap_or_else(PoisonError::into_inner);
        Ok(Copied {
            census,
            layout: layout_of(&self.tree)?,
            key_generation: master.generation,
            key_fingerprint: master.key.fingerprint(),
        })
    }
}
