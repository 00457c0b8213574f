//! Verifying many badges at once: for each badge the very result [`verify`]
//! gives, with the signatures checked by one batch equation instead of one
//! by one.
//!
//! The checks before and after the signature are [`verify`]'s own (one
//! `Unverified` type serves both); only the signature step differs, and it
//! follows the same signature rule ([`crate::signing`]): a signature that
//! fails its preconditions is refused and left out of the equation, and the
//! batch equation is the cofactored single equation summed. When it fails,
//! each remaining signature is checked on its own to find the bad ones, so
//! one forged badge costs its batch the speed-up, never a wrong verdict. A
//! badge's verdict never depends on what shares its batch.
//!
//! [`verify`]: crate::verify::verify

use crate::signing::{self, BADGE_CONTEXT, BatchItem};
use crate::trust::CheckedTrustList;
use crate::verify::{Unverified, VerifiedBadge, VerifyError};

#[cfg(test)]
mod one_verdict;

/// Verifies envelopes against a trust list at time `now` (Unix seconds):
/// element `i` of the result is what [`crate::verify()`] returns for
/// `envelopes[i]`.
pub fn verify_batch(
    envelopes: &[&[u8]],
    trust: &CheckedTrustList,
    now: i64,
) -> Vec<Result<VerifiedBadge, VerifyError>> {
    let read: Vec<Result<Unverified<'_>, VerifyError>> = envelopes
        .iter()
        .map(|envelope| Unverified::read(envelope, trust, now))
        .collect();
    let items: Vec<BatchItem<'_>> = read
        .iter()
        .flatten()
        .map(|badge| (badge.payload(), badge.signature(), badge.public_key()))
        .collect();
    let mut holds = signing::verify_each(BADGE_CONTEXT, &items).into_iter();
    read.into_iter()
        .map(|badge| {
            let badge = badge?;
            // One answer per readable badge, in order.
            if !holds.next().unwrap_or(false) {
                return Err(VerifyError::BadSignature);
            }
            badge.accept(now)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;

    use super::*;
    use crate::badge::{BadgeClaims, Envelope};
    use crate::identity::{Identity, Role, Scope};
    use crate::ids::{CityCode, KeyId};
    use crate::test_pki::{DAY, NOW, TestPki, claims};
    use crate::verify::verify;

    const HANGZHOU: u32 = 330_100;
    const WUHAN: u32 = 420_100;

    fn check_against_verify(envelopes: &[Vec<u8>], list: &CheckedTrustList, now: i64) {
        let refs: Vec<&[u8]> = envelopes.iter().map(Vec::as_slice).collect();
        let batch = verify_batch(&refs, list, now);
        assert_eq!(batch.len(), envelopes.len());
        for (i, (got, envelope)) in batch.iter().zip(envelopes).enumerate() {
            assert_eq!(got, &verify(envelope, list, now), "item {i}");
        }
    }

    /// An envelope signed by hand, bypassing BadgeSigner's own checks.
    fn forge(key: &SigningKey, key_id: KeyId, claims: &BadgeClaims) -> Vec<u8> {
        let payload = claims.encode().unwrap();
        let signature = signing::sign(BADGE_CONTEXT, &payload, key).unwrap();
        Envelope {
            payload,
            key_id,
            signature,
        }
        .encode()
    }

    #[test]
    fn a_batch_of_good_badges_all_verify() {
        let pki = TestPki::new();
        let (a, b) = (pki.badge_signer(HANGZHOU), pki.badge_signer(WUHAN));
        let list = pki.trust_list([a.entry.clone(), b.entry.clone()]);
        let envelopes: Vec<Vec<u8>> = (0..20)
            .map(|n| match n % 2 {
                0 => a.badge_signer().sign(&claims(HANGZHOU, n)).unwrap(),
                _ => b.badge_signer().sign(&claims(WUHAN, n)).unwrap(),
            })
            .collect();
        let refs: Vec<&[u8]> = envelopes.iter().map(Vec::as_slice).collect();
        let results = verify_batch(&refs, &list, NOW);
        for (n, result) in (0..).zip(&results) {
            let badge = result.as_ref().unwrap();
            assert_eq!(badge.claims().badge_id, claims(HANGZHOU, n).badge_id);
        }
        check_against_verify(&envelopes, &list, NOW);
    }

    #[test]
    fn an_empty_batch_gives_no_results() {
        let pki = TestPki::new();
        let list = pki.trust_list([]);
        assert!(verify_batch(&[], &list, NOW).is_empty());
    }

    #[test]
    fn a_mixed_batch_gives_each_badge_its_own_verdict() {
        let pki = TestPki::new();
        let good = pki.badge_signer(HANGZHOU);
        let stranger = pki.badge_signer(HANGZHOU);
        let mut revoked = pki.badge_signer(WUHAN);
        revoked.entry.status = tessera_proto::v1::EntryStatus::Revoked as i32;
        let city = CityCode::new(HANGZHOU).unwrap();
        let node = pki.issue(
            Identity::new(Role::CityNode, Scope::City(city)).unwrap(),
            NOW - DAY,
            NOW + DAY,
        );
        let list = pki.trust_list([
            good.entry.clone(),
            revoked.entry.clone(),
            node.entry.clone(),
        ]);
        let signer = good.badge_signer();

        let mut bad_signature = signer.sign(&claims(HANGZHOU, 2)).unwrap();
        *bad_signature.last_mut().unwrap() ^= 0x01;
        let mut expired = claims(HANGZHOU, 5);
        (expired.issued_at, expired.valid_until) = (NOW - DAY + 60, NOW - 60);
        let mut not_yet = claims(HANGZHOU, 6);
        not_yet.issued_at = NOW + 3_600;
        let envelopes = vec![
            signer.sign(&claims(HANGZHOU, 1)).unwrap(),
            bad_signature,
            stranger.badge_signer().sign(&claims(HANGZHOU, 3)).unwrap(),
            b"not a badge".to_vec(),
            Vec::new(),
            signer.sign(&expired).unwrap(),
            signer.sign(&not_yet).unwrap(),
            revoked.badge_signer().sign(&claims(WUHAN, 7)).unwrap(),
            forge(&node.key, node.key_id(), &claims(HANGZHOU, 8)),
            forge(&good.key, good.key_id(), &claims(WUHAN, 9)),
            signer.sign(&claims(HANGZHOU, 10)).unwrap(),
        ];
        let refs: Vec<&[u8]> = envelopes.iter().map(Vec::as_slice).collect();
        let results = verify_batch(&refs, &list, NOW);
        let outcome = |i: usize| results[i].as_ref().map_err(VerifyError::outcome).err();
        use tessera_proto::v1::Outcome;
        assert!(results[0].is_ok() && results[10].is_ok());
        assert_eq!(results[1], Err(VerifyError::BadSignature));
        assert_eq!(
            results[2],
            Err(VerifyError::UnknownSigner(stranger.key_id()))
        );
        assert_eq!(outcome(3), Some(Outcome::Malformed));
        assert_eq!(outcome(4), Some(Outcome::Malformed));
        assert_eq!(outcome(5), Some(Outcome::Expired));
        assert_eq!(outcome(6), Some(Outcome::NotYetValid));
        assert_eq!(
            results[7],
            Err(VerifyError::SignerRevoked(revoked.key_id()))
        );
        assert!(matches!(
            results[8],
            Err(VerifyError::WrongSignerRole {
                role: Role::CityNode,
                ..
            })
        ));
        assert!(matches!(
            results[9],
            Err(VerifyError::IssuerMismatch { .. })
        ));
        check_against_verify(&envelopes, &list, NOW);
        // Past the list's sunset nothing verifies, batched or not.
        check_against_verify(&envelopes, &list, NOW + 400 * DAY);
    }

    struct Fixture {
        list: CheckedTrustList,
        envelopes: Vec<Vec<u8>>,
    }

    fn fixture() -> &'static Fixture {
        static FIXTURE: OnceLock<Fixture> = OnceLock::new();
        FIXTURE.get_or_init(|| {
            let pki = TestPki::new();
            let (a, b) = (pki.badge_signer(HANGZHOU), pki.badge_signer(WUHAN));
            let list = pki.trust_list([a.entry.clone(), b.entry.clone()]);
            let envelopes = (0..8)
                .map(|n| match n % 3 {
                    0 => b.badge_signer().sign(&claims(WUHAN, n)).unwrap(),
                    _ => a.badge_signer().sign(&claims(HANGZHOU, n)).unwrap(),
                })
                .collect();
            Fixture { list, envelopes }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn batch_agrees_with_verify_under_flipped_bytes(
            flips in prop::collection::vec(
                (0..8usize, any::<prop::sample::Index>(), 1..=255u8),
                0..6,
            ),
        ) {
            let fixture = fixture();
            let mut envelopes = fixture.envelopes.clone();
            for (badge, at, mask) in flips {
                let envelope = &mut envelopes[badge];
                let at = at.index(envelope.len());
                envelope[at] ^= mask;
            }
            check_against_verify(&envelopes, &fixture.list, NOW);
        }
    }
}
