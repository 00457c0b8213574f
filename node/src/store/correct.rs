//! Corrections: one stored record replaced or retracted, its mark left
//! beside it, and the badge states the re-scoring changes, in one batch.
//!
//! The mark (`c` ‖ pseudonym ‖ record id) holds the type and time of the
//! record it marks in the clear (as a record does, for retention) and then,
//! sealed under the holder's data key: a format byte, whether the record was
//! retracted, the reason code and when the correction was made. It is
//! indexed for the sweep under `z` ‖ type ‖ time ‖ pseudonym ‖ record id.

use super::keytree::NewKeys;
use std::sync::PoisonError;

use tessera_core::BadgeId;

use super::codec::{parse_badge, state_bytes};
use super::layout::*;
use super::{BadgeState, Correction, CorrectionMark, SledStore, StoreError};
use crate::pseudonym::Pseudonym;
use crate::vault::DataKey;

const MARK_FORMAT: u8 = 1;
const MARK_LEN: usize = 1 + 1 + 1 + 8;

/// The associated data of a sealed mark: a tag byte, so a mark never opens
/// as a record (nor the reverse), then the clear header.
fn mark_aad(head: &[u8; HEADER_LEN]) -> [u8; HEADER_LEN + 1] {
    let mut aad = [0u8; HEADER_LEN + 1];
    aad[0] = CORRECTION;
    aad[1..].copy_from_slice(head);
    aad
}

fn seal_mark(data: &DataKey, resident: &Pseudonym, mark: &CorrectionMark) -> Vec<u8> {
    let head = header(mark.kind, mark.record_at);
    let mut plain = [0u8; MARK_LEN];
    plain[0] = MARK_FORMAT;
    plain[1] = u8::from(mark.retracted);
    plain[2] = mark.reason;
    plain[3..].copy_from_slice(&mark.at.to_be_bytes());
    let record_id = mark.record_id.as_bytes();
    let sealed = data.seal(resident, &mark_aad(&head), record_id, &plain);
    [head.as_slice(), &sealed].concat()
}

fn open_mark(
    data: &DataKey,
    resident: &Pseudonym,
    record_id: &[u8],
    value: &[u8],
) -> Result<CorrectionMark, StoreError> {
    let corrupt = || StoreError::Corrupt("correction mark".into());
    let (kind, record_at) = parse_header(value)?;
    let head: [u8; HEADER_LEN] = value[..HEADER_LEN].try_into().map_err(|_| corrupt())?;
    let plain = data.open(resident, &mark_aad(&head), record_id, &value[HEADER_LEN..])?;
    if plain.len() != MARK_LEN || plain[0] != MARK_FORMAT || plain[1] > 1 {
        return Err(corrupt());
    }
    Ok(CorrectionMark {
        record_id: String::from_utf8(record_id.to_vec()).map_err(|_| corrupt())?,
        kind,
        record_at,
        retracted: plain[1] == 1,
        reason: plain[2],
        at: i64::from_be_bytes(plain[3..].try_into().map_err(|_| corrupt())?),
    })
}

impl SledStore {
    pub(super) fn correct_record(
        &self,
        c: &Correction,
        states: &[(BadgeId, BadgeState)],
    ) -> Result<(), StoreError> {
        if self.key_file.is_none() {
            return Err(StoreError::ReadOnly);
        }
        let master = self.master.read().unwrap_or_else(PoisonError::into_inner);
        let resident = &c.resident;
        let id = c.record_id.as_bytes();
        let record_key = key(RECORD, &[resident.as_bytes(), id]);
        let Some(old) = self.tree.get(&record_key)? else {
            return Err(StoreError::UnknownRecord(c.record_id.clone()));
        };
        let (old_kind, old_at) = parse_header(&old)?;
        let mut batch = sled::Batch::default();
        let mut keys = NewKeys::default();
        let data = self.data_key_or_new(&master, resident, &mut keys, &mut batch)?;
        // Removals first: a key removed and then written again in the same
        // batch (same type and time) is kept.
        batch.remove(expiry_key(old_kind, old_at, resident, id));
        let mark_key = key(CORRECTION, &[resident.as_bytes(), id]);
        if let Some(earlier) = self.tree.get(&mark_key)? {
            let (kind, at) = parse_header(&earlier)?;
            batch.remove(correction_expiry_key(kind, at, resident, id));
        }
        let (kind, at) = match &c.replacement {
            Some(r) => {
                if r.resident != *resident || r.record_id != c.record_id {
                    return Err(StoreError::Corrupt(
                        "a replacement names another record than the one it corrects".into(),
                    ));
                }
                let head = header(r.kind, r.at);
                let sealed = data.seal(resident, &head, id, &r.encoded);
                batch.insert(record_key, [head.as_slice(), &sealed].concat());
                batch.insert(expiry_key(r.kind, r.at, resident, id), &[][..]);
                (r.kind, r.at)
            }
            None => {
                batch.remove(record_key);
                (old_kind, old_at)
            }
        };
        batch.insert(
            mark_key,
            seal_mark(
                &data,
                resident,
                &CorrectionMark {
                    record_id: c.record_id.clone(),
                    kind,
                    record_at: at,
                    retracted: c.replacement.is_none(),
                    reason: c.reason,
                    at: c.at,
                },
            ),
        );
        batch.insert(correction_expiry_key(kind, at, resident, id), &[][..]);
        for (badge, state) in states {
            let mut value = self
                .tree
                .get(key(BADGE, &[badge.as_bytes()]))?
                .ok_or_else(|| StoreError::UnknownBadge(hex::encode(badge.as_bytes())))?
                .to_vec();
            parse_badge(&value)?;
            value[super::codec::BADGE_STATE_AT..super::codec::BADGE_CLEAR_LEN]
                .copy_from_slice(&state_bytes(*state));
            batch.insert(key(BADGE, &[badge.as_bytes()]), value);
        }
        self.tree.apply_batch(batch)?;
        master.keep(keys.nodes);
        Ok(())
    }

    pub(super) fn marks_of(&self, resident: &Pseudonym) -> Result<Vec<CorrectionMark>, StoreError> {
        let prefix = key(CORRECTION, &[resident.as_bytes()]);
        self.open_each(resident, &prefix, "corrections", |data, id, v| {
            open_mark(data, resident, id, v)
        })
    }
}
