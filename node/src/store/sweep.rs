//! The retention sweep: expired records and badges removed in bounded
//! batches, and a resident left with nothing loses their data key.

use super::codec::parse_badge;
use super::layout::*;
use super::{SledStore, StoreError, Swept};
use crate::pseudonym::Pseudonym;
use crate::records::{RecordType, Retention};

impl SledStore {
    pub(super) fn sweep_batch(
        &self,
        retention: &Retention,
        now: i64,
        limit: usize,
    ) -> Result<Swept, StoreError> {
        if self.key_file.is_none() {
            return Err(StoreError::ReadOnly);
        }
        let corrupt = || StoreError::Corrupt("expiry index".into());
        let mut batch = sled::Batch::default();
        let mut swept = Swept::default();
        let mut left = limit;
        // The residents this batch takes something from, and the record and
        // holder keys it removes: a resident left with neither loses their
        // data key in the same batch.
        let mut touched = std::collections::BTreeSet::new();
        let mut removed: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
        for (slot, kind) in RecordType::ALL.into_iter().enumerate() {
            let start = vec![EXPIRY, kind.code()];
            let end = key(
                EXPIRY,
                &[&[kind.code()], &time_bytes(retention.cutoff(kind, now))],
            );
            for k in self.tree.range(start..end).keys() {
                if left == 0 {
                    swept.more = true;
                    break;
                }
                let k = k?;
                let resident = Pseudonym::from_slice(k.get(10..42).ok_or_else(corrupt)?)
                    .ok_or_else(corrupt)?;
                let record_id = &k[42..];
                let id_key = key(RECORD_ID, &[record_id]);
                // The id index names the holder: remove it only if it is
                // this record's.
                if self
                    .tree
                    .get(&id_key)?
                    .is_some_and(|v| v.get(..Pseudonym::LEN) == Some(resident.as_bytes()))
                {
                    batch.remove(id_key);
                }
                let record_key = key(RECORD, &[resident.as_bytes(), record_id]);
                batch.remove(record_key.clone());
                // A replaced record takes its correction's mark with it.
                let mark_key = key(CORRECTION, &[resident.as_bytes(), record_id]);
                if let Some(mark) = self.tree.get(&mark_key)? {
                    let (kind, at) = parse_header(&mark)?;
                    batch.remove(correction_expiry_key(kind, at, &resident, record_id));
                    batch.remove(mark_key.clone());
                    removed.insert(mark_key);
                    swept.corrections += 1;
                }
                removed.insert(record_key);
                touched.insert(resident);
                batch.remove(k);
                swept.records[slot] += 1;
                left -= 1;
            }
        }
        // The marks of retracted records, past the retention of the record
        // they retracted (a replaced record's mark went with it above).
        for kind in RecordType::ALL {
            let start = vec![CORRECTION_EXPIRY, kind.code()];
            let end = key(
                CORRECTION_EXPIRY,
                &[&[kind.code()], &time_bytes(retention.cutoff(kind, now))],
            );
            for k in self.tree.range(start..end).keys() {
                if left == 0 {
                    swept.more = true;
                    break;
                }
                let k = k?;
                let resident = Pseudonym::from_slice(k.get(10..42).ok_or_else(corrupt)?)
                    .ok_or_else(corrupt)?;
                let record_id = &k[42..];
                let mark_key = key(CORRECTION, &[resident.as_bytes(), record_id]);
                if removed.contains(&mark_key) {
                    continue;
                }
                let record_key = key(RECORD, &[resident.as_bytes(), record_id]);
                let id_key = key(RECORD_ID, &[record_id]);
                // A retracted record's id stays reserved until now (a
                // retry of its batch is a duplicate); it goes with the mark.
                if !removed.contains(&record_key)
                    && !self.tree.contains_key(&record_key)?
                    && self
                        .tree
                        .get(&id_key)?
                        .is_some_and(|v| v.get(..Pseudonym::LEN) == Some(resident.as_bytes()))
                {
                    batch.remove(id_key);
                }
                batch.remove(mark_key.clone());
                removed.insert(mark_key);
                touched.insert(resident);
                batch.remove(k);
                swept.corrections += 1;
                left -= 1;
            }
        }
        let end = key(BADGE_EXPIRY, &[&time_bytes(retention.badge_cutoff(now))]);
        for k in self.tree.range(vec![BADGE_EXPIRY]..end).keys() {
            if left == 0 {
                swept.more = true;
                break;
            }
            let k = k?;
            let id = k.get(9..).ok_or_else(corrupt)?;
            if let Some(v) = self.tree.get(key(BADGE, &[id]))? {
                let badge = parse_badge(&v)?;
                let holder_key = key(HOLDER, &[badge.resident.as_bytes(), id]);
                batch.remove(holder_key.clone());
                removed.insert(holder_key);
                touched.insert(badge.resident);
                batch.remove(key(BADGE, &[id]));
                swept.badges += 1;
            }
            batch.remove(k);
            left -= 1;
        }
        for resident in touched {
            let mut keeps = false;
            for prefix in [RECORD, HOLDER, CORRECTION] {
                for k in self
                    .tree
                    .scan_prefix(key(prefix, &[resident.as_bytes()]))
                    .keys()
                {
                    if !removed.contains(k?.as_ref()) {
                        keeps = true;
                        break;
                    }
                }
            }
            if !keeps {
                batch.remove(key(DATA_KEY, &[resident.as_bytes()]));
                swept.keys += 1;
            }
        }
        self.tree.apply_batch(batch)?;
        Ok(swept)
    }
}
