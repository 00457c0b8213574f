//! When a renewed badge signer may be used: a pure decision, so that the
//! rule is read (and tested) in one place. The files are watched in
//! [`crate::tasks`]; this module only says what to do with what was found.
//!
//! A badge signed by a key that verifiers do not know yet would be refused
//! as UNKNOWN_SIGNER. So a node that follows a gateway uses a new signer
//! only once the trust list in force here carries it, and goes on signing
//! with the old key until then (a rotation leaves it ACTIVE). A node with
//! no gateway has no list to wait for and uses the new key at once. A key
//! the list in force revokes is never used.

use tessera_core::KeyId;

/// What the trust list in force says of the candidate key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    /// No trust list is in force yet.
    NoList,
    /// The list in force (of this sequence) does not name the key.
    Absent {
        /// The list's sequence.
        sequence: u64,
    },
    /// The list names the key as revoked.
    Revoked,
    /// The list names the key, not revoked.
    Active,
}

/// What to do with a candidate badge signer found in the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// It is the key in use.
    Unchanged,
    /// Never use it, for this reason.
    Refused(String),
    /// Not yet: go on with the key in use, for this reason.
    Wait(String),
    /// Use it from now on.
    Use,
}

/// The decision on `candidate` while `current` signs, given what the list
/// in force says of it and whether the node follows a gateway (`gated`).
/// `reload_secs` is how often the files are looked at, for the message.
pub fn decide(
    current: KeyId,
    candidate: KeyId,
    listed: Listed,
    gated: bool,
    reload_secs: u64,
) -> Rotation {
    if candidate == current {
        return Rotation::Unchanged;
    }
    match listed {
        Listed::Revoked => Rotation::Refused("the trust list in force revokes it".into()),
        Listed::Active => Rotation::Use,
        Listed::Absent { .. } | Listed::NoList if !gated => Rotation::Use,
        Listed::Absent { sequence } => Rotation::Wait(format!(
            "key {candidate} is not in the trust list in force (sequence {sequence}): \
             signing with key {current} until the first look at the files \
             (every {reload_secs} s, or at once on SIGHUP) after a list carrying it is in force"
        )),
        Listed::NoList => Rotation::Wait(format!(
            "no trust list yet: signing with key {current} until the first look at the files \
             (every {reload_secs} s, or at once on SIGHUP) after a list carrying key {candidate} is in force"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> KeyId {
        KeyId::from_slice(&[b; 8]).unwrap()
    }

    #[test]
    fn the_key_in_use_is_unchanged_whatever_the_list_says() {
        for listed in [
            Listed::NoList,
            Listed::Absent { sequence: 3 },
            Listed::Revoked,
            Listed::Active,
        ] {
            for gated in [false, true] {
                assert_eq!(
                    decide(key(1), key(1), listed, gated, 30),
                    Rotation::Unchanged
                );
            }
        }
    }

    #[test]
    fn a_revoked_key_is_refused_with_or_without_a_gateway() {
        for gated in [false, true] {
            assert!(matches!(
                decide(key(1), key(2), Listed::Revoked, gated, 30),
                Rotation::Refused(r) if r.contains("revokes")
            ));
        }
    }

    #[test]
    fn a_listed_key_is_used_with_or_without_a_gateway() {
        for gated in [false, true] {
            assert_eq!(
                decide(key(1), key(2), Listed::Active, gated, 30),
                Rotation::Use
            );
        }
    }

    #[test]
    fn behind_a_gateway_an_unlisted_key_waits_and_says_for_what() {
        let Rotation::Wait(why) = decide(key(1), key(2), Listed::Absent { sequence: 7 }, true, 30)
        else {
            panic!("an unlisted key must wait");
        };
        assert!(
            why.contains("sequence 7") && why.contains(&key(2).to_string()),
            "{why}"
        );
        assert!(
            why.contains(&key(1).to_string()) && why.contains("every 30 s"),
            "{why}"
        );
        let Rotation::Wait(why) = decide(key(1), key(2), Listed::NoList, true, 30) else {
            panic!("with no list a gated node must wait");
        };
        assert!(why.contains("no trust list yet"), "{why}");
    }

    #[test]
    fn without_a_gateway_an_unlisted_key_is_used_at_once() {
        assert_eq!(
            decide(key(1), key(2), Listed::NoList, false, 30),
            Rotation::Use
        );
        assert_eq!(
            decide(key(1), key(2), Listed::Absent { sequence: 7 }, false, 30),
            Rotation::Use
        );
    }
}
