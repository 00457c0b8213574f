//! The key tree (layout 3): residents' data keys are not wrapped under the
//! master key directly but under the keys of a fixed tree of node keys, whose
//! root is the master key. An erasure then replaces only the keys on the
//! erased resident's path to the root and re-wraps their siblings (see
//! `erase.rs`), instead of every data key in the city.
//!
//! The tree has [`DEPTH`] levels below the root, each node with up to
//! [`FAN_OUT`] children. A node at level `l` is named by the first `4 × l`
//! bits of the pseudonyms under it (pseudonyms are HMAC outputs, so they
//! spread evenly), so a resident's path follows from the pseudonym and a
//! bottom node's data keys are one prefix range of the store's keys. A
//! node is stored when the first resident under it is: at most 69,904
//! nodes, whatever the city's size. Their decrypted keys are cached in
//! memory (about 3 MiB when all are), filled on first use and replaced by
//! an erasure on its path, under the store's master-key lock: a reader
//! holds it shared, an erasure alone.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use super::layout::{NODE, key};
use super::{SledStore, StoreError};
use crate::pseudonym::Pseudonym;
use crate::vault::{DataKey, MasterKey, NodeKey};

/// Bits of the pseudonym each level of the tree adds.
pub(super) const LEVEL_BITS: u32 = 4;
/// Children of a node: 16.
pub const FAN_OUT: usize = 1 << LEVEL_BITS;
/// Levels of node keys below the root (the master key); residents' data
/// keys hang from the bottom one. 16⁴ = 65,536 bottom nodes: about 15 data
/// keys each in a city of 1,000,000.
pub const DEPTH: u8 = 4;

/// A node of the key tree below the root: its level (1 to [`DEPTH`]) and
/// the first `4 × level` bits of the pseudonyms under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct NodeId {
    pub(super) level: u8,
    pub(super) index: u16,
}

impl NodeId {
    /// The bottom node whose key wraps `resident`'s data key.
    pub(super) fn bucket(resident: &Pseudonym) -> Self {
        let p = resident.as_bytes();
        Self {
            level: DEPTH,
            index: u16::from_be_bytes([p[0], p[1]]),
        }
    }

    /// The node above, or `None` at level 1 (whose parent is the root).
    pub(super) fn parent(self) -> Option<Self> {
        (self.level > 1).then(|| Self {
            level: self.level - 1,
            index: self.index >> LEVEL_BITS,
        })
    }

    /// The nodes from `resident`'s bottom node up to level 1.
    pub(super) fn path(resident: &Pseudonym) -> Vec<Self> {
        std::iter::successors(Some(Self::bucket(resident)), |n| n.parent()).collect()
    }

    /// What the node's wrapped key authenticates: level and index.
    pub(super) fn name(self) -> [u8; 3] {
        let [hi, lo] = self.index.to_be_bytes();
        [self.level, hi, lo]
    }

    pub(super) fn store_key(self) -> Vec<u8> {
        key(NODE, &[&self.name()])
    }

    pub(super) fn from_store_key(k: &[u8]) -> Option<Self> {
        match k {
            [NODE, level @ 1..=DEPTH, hi, lo] => Some(Self {
                level: *level,
                index: u16::from_be_bytes([*hi, *lo]),
            }),
            _ => None,
        }
    }

    /// The range of store keys of the children of `parent` (`None`: the
    /// root), which are nodes one level down.
    pub(super) fn children_of(parent: Option<Self>) -> std::ops::RangeInclusive<Vec<u8>> {
        let (level, first) = match parent {
            None => (1, 0),
            Some(p) => (p.level + 1, p.index << LEVEL_BITS),
        };
        let at = |index| Self { level, index }.store_key();
        at(first)..=at(first | (FAN_OUT as u16 - 1))
    }

    /// The prefix of the store keys of the data keys under this bottom node.
    pub(super) fn leaf_prefix(self) -> Vec<u8> {
        key(super::layout::DATA_KEY, &[&self.index.to_be_bytes()])
    }
}

/// The master key, its generation, and the node keys decrypted so far.
#[derive(Debug)]
pub(super) struct Master {
    pub(super) key: MasterKey,
    pub(super) generation: u64,
    /// Decrypted node keys; changed only by an erasure (holding the lock
    /// around this whole struct alone) or after a batch that stored new
    /// nodes was applied.
    pub(super) nodes: RwLock<HashMap<NodeId, NodeKey>>,
}

impl Master {
    pub(super) fn new(key: MasterKey, generation: u64) -> Self {
        Self {
            key,
            generation,
            nodes: RwLock::new(HashMap::new()),
        }
    }

    pub(super) fn cached(&self, id: NodeId) -> Option<NodeKey> {
        self.nodes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    /// Keeps node keys a change stored, once the change is applied.
    pub(super) fn keep(&self, nodes: HashMap<NodeId, NodeKey>) {
        if !nodes.is_empty() {
            self.nodes
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(nodes);
        }
    }
}

/// Keys a change being built made: data keys of new residents and of
/// residents already looked up, and node keys of nodes it stores (kept in
/// the cache only once the change is applied).
#[derive(Default)]
pub(super) struct NewKeys {
    pub(super) data: HashMap<Pseudonym, DataKey>,
    pub(super) nodes: HashMap<NodeId, NodeKey>,
}

impl SledStore {
    /// The key of node `id` from `fresh`, the cache, or the store (unwrapped
    /// down from the root, then cached); `None` if the node is not stored.
    pub(super) fn node_key(
        &self,
        master: &Master,
        id: NodeId,
        fresh: &HashMap<NodeId, NodeKey>,
    ) -> Result<Option<NodeKey>, StoreError> {
        if let Some(k) = fresh.get(&id).cloned().or_else(|| master.cached(id)) {
            return Ok(Some(k));
        }
        let Some(wrapped) = self.tree.get(id.store_key())? else {
            return Ok(None);
        };
        let parent = match id.parent() {
            None => master.key.as_node_key(),
            Some(p) => self.node_key(master, p, fresh)?.ok_or_else(|| {
                StoreError::Corrupt("a node of the key tree has no parent".into())
            })?,
        };
        let k = parent.unwrap_node(&id.name(), &wrapped)?;
        master
            .nodes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, k.clone());
        Ok(Some(k))
    }

    /// The key of `resident`'s bottom node, storing (in `batch`) every node
    /// of their path that is not stored yet.
    pub(super) fn bucket_key_or_new(
        &self,
        master: &Master,
        resident: &Pseudonym,
        fresh: &mut HashMap<NodeId, NodeKey>,
        batch: &mut sled::Batch,
    ) -> Result<NodeKey, StoreError> {
        let mut parent = master.key.as_node_key();
        for id in NodeId::path(resident).into_iter().rev() {
            parent = match self.node_key(master, id, fresh)? {
                Some(k) => k,
                None => {
                    let k = NodeKey::generate();
                    batch.insert(id.store_key(), parent.wrap_node(&id.name(), &k));
                    fresh.insert(id, k.clone());
                    k
                }
            };
        }
        Ok(parent)
    }

    /// `resident`'s data key, if stored.
    pub(super) fn data_key(
        &self,
        master: &Master,
        resident: &Pseudonym,
    ) -> Result<Option<DataKey>, StoreError> {
        let Some(wrapped) = self
            .tree
            .get(key(super::layout::DATA_KEY, &[resident.as_bytes()]))?
        else {
            return Ok(None);
        };
        let bucket = self
            .node_key(master, NodeId::bucket(resident), &HashMap::new())?
            .ok_or_else(|| StoreError::Corrupt("a data key has no node key above it".into()))?;
        Ok(Some(bucket.unwrap_data(resident, &wrapped)?))
    }

    /// A resident's data key from `keys`, the store, or a new one (written
    /// into `batch`, with the nodes of its path not stored yet).
    pub(super) fn data_key_or_new(
        &self,
        master: &Master,
        resident: &Pseudonym,
        keys: &mut NewKeys,
        batch: &mut sled::Batch,
    ) -> Result<DataKey, StoreError> {
        if let Some(k) = keys.data.get(resident) {
            return Ok(k.clone());
        }
        let k = match self.data_key(master, resident)? {
            Some(k) => k,
            None => {
                let k = DataKey::generate();
                let bucket = self.bucket_key_or_new(master, resident, &mut keys.nodes, batch)?;
                batch.insert(
                    key(super::layout::DATA_KEY, &[resident.as_bytes()]),
                    bucket.wrap_data(resident, &k),
                );
                k
            }
        };
        keys.data.insert(*resident, k.clone());
        Ok(k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_runs_from_the_bottom_node_to_level_one_by_pseudonym_prefix() {
        let mut p = [0u8; 32];
        p[0] = 0xab;
        p[1] = 0xcd;
        let path = NodeId::path(&Pseudonym::from_slice(&p).unwrap());
        let got: Vec<(u8, u16)> = path.iter().map(|n| (n.level, n.index)).collect();
        assert_eq!(got, [(4, 0xabcd), (3, 0xabc), (2, 0xab), (1, 0xa)]);
        for n in &path {
            assert_eq!(NodeId::from_store_key(&n.store_key()), Some(*n));
            assert!(NodeId::children_of(n.parent()).contains(&n.store_key()));
        }
        assert!(!NodeId::children_of(Some(path[1])).contains(&path[1].store_key()));
        assert_eq!(NodeId::from_store_key(&[NODE, 5, 0, 0]), None);
    }
}
