//! The badge value: what of an issued badge is kept in the clear (state,
//! end of validity, holder pseudonym) and what is sealed under the holder's
//! data key (colour, issue time).

use tessera_core::{BadgeId, Colour};

use super::{BadgeRecord, BadgeState, StoreError};
use crate::pseudonym::Pseudonym;
use crate::vault::{DataKey, OVERHEAD};

/// Format 1 kept the colour and issue time in the clear; format 2 seals them.
pub(super) const BADGE_FORMAT: u8 = 2;
/// Format byte, pseudonym, valid until, state tag and time: in the clear.
pub(super) const BADGE_CLEAR_LEN: usize = 1 + Pseudonym::LEN + 8 + 1 + 8;
/// Colour and issue time, sealed.
pub(super) const BADGE_SECRET_LEN: usize = 1 + 8;
pub(super) const BADGE_VALUE_LEN: usize = BADGE_CLEAR_LEN + BADGE_SECRET_LEN + OVERHEAD;
/// Where the state tag and its time sit in a badge value.
pub(super) const BADGE_STATE_AT: usize = 1 + Pseudonym::LEN + 8;

/// The part of a stored badge value in the clear: what status checks, the
/// retention sweep and erasure need without any key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ClearBadge {
    pub(super) resident: Pseudonym,
    pub(super) valid_until: i64,
    pub(super) state: BadgeState,
}

pub(super) fn state_bytes(state: BadgeState) -> [u8; 9] {
    let (tag, at) = match state {
        BadgeState::Active => (1u8, 0),
        BadgeState::Revoked(at) => (2, at),
        BadgeState::Superseded(at) => (3, at),
    };
    let mut out = [0u8; 9];
    out[0] = tag;
    out[1..].copy_from_slice(&at.to_be_bytes());
    out
}

pub(super) fn colour_code(colour: Colour) -> u8 {
    match colour {
        Colour::Green => 1,
        Colour::Yellow => 2,
        Colour::Red => 3,
    }
}

/// A badge value: the clear part, then colour and issue time sealed under
/// `data`.
pub(super) fn encode_badge(data: &DataKey, id: &BadgeId, badge: &BadgeRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(BADGE_VALUE_LEN);
    out.push(BADGE_FORMAT);
    out.extend_from_slice(badge.resident.as_bytes());
    out.extend_from_slice(&badge.valid_until.to_be_bytes());
    out.extend_from_slice(&state_bytes(badge.state));
    let mut secret = [0u8; BADGE_SECRET_LEN];
    secret[0] = colour_code(badge.colour);
    secret[1..].copy_from_slice(&badge.issued_at.to_be_bytes());
    out.extend_from_slice(&data.seal_badge(
        &badge.resident,
        id.as_bytes(),
        badge.valid_until,
        &secret,
    ));
    out
}

/// The clear part of a badge value, checking the whole value's shape.
pub(super) fn parse_badge(bytes: &[u8]) -> Result<ClearBadge, StoreError> {
    let corrupt = || StoreError::Corrupt("badge record".into());
    match bytes.first() {
        Some(&BADGE_FORMAT) if bytes.len() == BADGE_VALUE_LEN => {}
        Some(1) => {
            return Err(StoreError::Corrupt(
                "a badge state of format 1 (colour and issue time in the clear, written \
                 before badges were sealed): this version does not read it"
                    .into(),
            ));
        }
        _ => return Err(corrupt()),
    }
    let i64_at = |i: usize| -> Result<i64, StoreError> {
        Ok(i64::from_be_bytes(
            bytes[i..i + 8].try_into().map_err(|_| corrupt())?,
        ))
    };
    let resident = Pseudonym::from_slice(&bytes[1..1 + Pseudonym::LEN]).ok_or_else(corrupt)?;
    let at = i64_at(BADGE_STATE_AT + 1)?;
    let state = match bytes[BADGE_STATE_AT] {
        1 => BadgeState::Active,
        2 => BadgeState::Revoked(at),
        3 => BadgeState::Superseded(at),
        _ => return Err(corrupt()),
    };
    Ok(ClearBadge {
        resident,
        valid_until: i64_at(1 + Pseudonym::LEN)?,
        state,
    })
}

/// A whole badge record from its value, opening the sealed part with the
/// holder's data key.
pub(super) fn open_badge(
    data: &DataKey,
    id: &[u8],
    clear: ClearBadge,
    bytes: &[u8],
) -> Result<BadgeRecord, StoreError> {
    let corrupt = || StoreError::Corrupt("badge record".into());
    let secret = data.open_badge(
        &clear.resident,
        id,
        clear.valid_until,
        bytes.get(BADGE_CLEAR_LEN..).ok_or_else(corrupt)?,
    )?;
    if secret.len() != BADGE_SECRET_LEN {
        return Err(corrupt());
    }
    let colour = match secret[0] {
        1 => Colour::Green,
        2 => Colour::Yellow,
        3 => Colour::Red,
        _ => return Err(corrupt()),
    };
    let issued_at = i64::from_be_bytes(secret[1..].try_into().map_err(|_| corrupt())?);
    Ok(BadgeRecord {
        resident: clear.resident,
        colour,
        issued_at,
        valid_until: clear.valid_until,
        state: clear.state,
    })
}
