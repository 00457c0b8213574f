//! Copying the log for an online backup: a prefix of the chain that is
//! whole (every entry up to the head read first, their index entries, that
//! head), taken while reads go on appending.

use super::*;

impl AccessLog {
    /// Copies the log into `dest` (a tree of a new database), not yet
    /// durably, and returns how many entries it copied. Entries appended
    /// while it copies are left out, so the copy ends at the head it read
    /// first. A damaged log is copied as it is stored, entry for entry.
    pub fn copy_into(&self, dest: &sled::Tree) -> Result<u64, AccessLogError> {
        let head = match self.head() {
            Ok(head) => head,
            Err(AccessLogError::Damaged(_)) => return self.copy_raw(dest).map(|()| 0),
            Err(e) => return Err(e),
        };
        if head.length == 0 {
            return Ok(0);
        }
        let mut batch = sled::Batch::default();
        for entry in self.tree.range(entry_key(1)..=entry_key(head.length)) {
            let (k, v) = entry?;
            batch.insert(k, v);
        }
        for key in self.tree.scan_prefix([SUBJECT]).keys() {
            let key = key?;
            let sequence = key
                .len()
                .checked_sub(8)
                .and_then(|at| <[u8; 8]>::try_from(&key[at..]).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| AccessLogError::Damaged("a subject index key is corrupt".into()))?;
            if sequence <= head.length {
                batch.insert(key, &[][..]);
            }
        }
        batch.insert(HEAD, &head.encode()[..]);
        dest.apply_batch(batch)?;
        Ok(head.length)
    }

    fn copy_raw(&self, dest: &sled::Tree) -> Result<(), AccessLogError> {
        let mut batch = sled::Batch::default();
        for entry in self.tree.iter() {
            let (k, v) = entry?;
            batch.insert(k, v);
        }
        Ok(dest.apply_batch(batch)?)
    }
}
