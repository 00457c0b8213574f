//! The key layout of the one sled tree (the table is on [`super::SledStore`]):
//! prefixes, composite keys, times that sort, and the meta entries.

use super::StoreError;
use crate::pseudonym::Pseudonym;
use crate::records::RecordType;
use crate::vault::MasterKey;

pub(super) const DATA_KEY: u8 = b'k';
pub(super) const RECORD: u8 = b'r';
pub(super) const RECORD_ID: u8 = b'i';
pub(super) const EXPIRY: u8 = b'x';
pub(super) const BADGE: u8 = b'b';
pub(super) const HOLDER: u8 = b'h';
pub(super) const BADGE_EXPIRY: u8 = b'y';
pub(super) const CORRECTION: u8 = b'c';
pub(super) const CORRECTION_EXPIRY: u8 = b'z';
/// Prefix `m`, then `master`.
pub(super) const META_MASTER: &[u8] = b"mmaster";
/// Prefix `m`, then `first-policy`: SHA-256 of the city's first signed
/// policy, the one exempt from notice.
pub(super) const META_FIRST_POLICY: &[u8] = b"mfirst-policy";
/// Prefix `m`, then `badges`: the badge value format the store was written
/// with (absent in a store written before badges were sealed).
pub(super) const META_BADGES: &[u8] = b"mbadges";
/// Type and time before a sealed record value.
pub(super) const HEADER_LEN: usize = 9;

pub(super) fn key(kind: u8, parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    k.push(kind);
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

/// A time as 8 bytes that sort in time order.
pub(super) fn time_bytes(t: i64) -> [u8; 8] {
    (t ^ i64::MIN).to_be_bytes()
}

pub(super) fn time_from(bytes: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(bytes.try_into().ok()?) ^ i64::MIN)
}

pub(super) fn header(kind: RecordType, at: i64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0] = kind.code();
    h[1..].copy_from_slice(&time_bytes(at));
    h
}

pub(super) fn parse_header(value: &[u8]) -> Result<(RecordType, i64), StoreError> {
    let corrupt = || StoreError::Corrupt("record header".into());
    let kind = RecordType::from_code(*value.first().ok_or_else(corrupt)?).ok_or_else(corrupt)?;
    let at = time_from(value.get(1..HEADER_LEN).ok_or_else(corrupt)?).ok_or_else(corrupt)?;
    Ok((kind, at))
}

pub(super) fn expiry_key(
    kind: RecordType,
    at: i64,
    resident: &Pseudonym,
    record_id: &[u8],
) -> Vec<u8> {
    key(
        EXPIRY,
        &[
            &[kind.code()],
            &time_bytes(at),
            resident.as_bytes(),
            record_id,
        ],
    )
}

pub(super) fn meta_value(generation: u64, key: &MasterKey) -> Vec<u8> {
    [generation.to_be_bytes().as_slice(), &key.fingerprint()].concat()
}

pub(super) fn parse_meta(v: &[u8]) -> Result<(u64, [u8; 32]), StoreError> {
    let corrupt = || StoreError::Corrupt("master key entry".into());
    if v.len() != 40 {
        return Err(corrupt());
    }
    let generation = u64::from_be_bytes(v[..8].try_into().map_err(|_| corrupt())?);
    let fingerprint = v[8..].try_into().map_err(|_| corrupt())?;
    Ok((generation, fingerprint))
}

/// The expiry index key of a correction mark: the type and time of the
/// record it marks (the replacement, or the retracted record), so that the
/// mark goes when that record would.
pub(super) fn correction_expiry_key(
    kind: RecordType,
    at: i64,
    resident: &Pseudonym,
    record_id: &[u8],
) -> Vec<u8> {
    key(
        CORRECTION_EXPIRY,
        &[
            &[kind.code()],
            &time_bytes(at),
            resident.as_bytes(),
            record_id,
        ],
    )
}
