//! The badge rules of PROTOCOL.md ("Badge verification and outcomes"), one
//! test per rule, each named after its rule id: every failure that bytes
//! can produce, with its exact error, reason code and outcome, at the exact
//! boundaries of each window, and the order in which the rules run.

use super::*;
use crate::badge::{CLAIMS_VERSION, ClaimsError, EnvelopeError};
use crate::identity::Scope;
use crate::test_pki::{DAY, Leaf, NOW, TestPki, claims};
use ed25519_dalek::SigningKey;
use prost::Message;

const CITY: u32 = 330_100;
const OTHER_CITY: u32 = 420_100;

/// A PKI, the badge signer of [`CITY`] and a list that trusts it.
fn setup() -> (TestPki, Leaf, CheckedTrustList) {
    let pki = TestPki::new();
    let signer = pki.badge_signer(CITY);
    let list = pki.trust_list([signer.entry.clone()]);
    (pki, signer, list)
}

/// Envelope bytes of `payload` under `key_id`, signed by `key` over the
/// badge context: what a badge signer writes, minus its own checks.
fn envelope(key: &SigningKey, key_id: KeyId, payload: Vec<u8>) -> Vec<u8> {
    let signature = signing::sign(BADGE_CONTEXT, &payload, key).unwrap();
    Envelope {
        payload,
        key_id,
        signature,
    }
    .encode()
}

/// Claims of [`CITY`] with this window, signed by `signer` without the
/// checks `BadgeSigner::sign` makes (so a badge may outlive its signer).
fn badge(signer: &Leaf, issued_at: i64, valid_until: i64) -> Vec<u8> {
    let mut c = claims(CITY, 1);
    c.issued_at = issued_at;
    c.valid_until = valid_until;
    envelope(&signer.key, signer.key_id(), c.encode().unwrap())
}

/// Asserts the error's reason code and outcome: the PROTOCOL.md table row.
fn assert_row(err: &VerifyError, reason: &str, outcome: pb::Outcome) {
    assert_eq!(err.reason(), reason, "{err}");
    assert_eq!(err.outcome(), outcome, "{err}");
}

#[test]
fn v16_a_good_badge_is_valid_with_its_claims_signer_and_issuer_name() {
    let (_pki, signer, list) = setup();
    let c = claims(CITY, 7);
    let bytes = signer.badge_signer().sign(&c).unwrap();
    let verified = verify(&bytes, &list, NOW).unwrap();
    assert_eq!(verified.claims(), &c);
    assert_eq!(verified.key_id(), signer.key_id());
    assert_eq!(verified.issuer_name(), "City 330100");
    let v = verified.verdict(NOW + 5, "ok");
    assert_eq!(v.outcome, pb::Outcome::Valid as i32);
    assert_eq!(v.reason, REASON_VALID);
    assert_eq!(v.reason, "valid");
    assert_eq!(v.colour, pb::Colour::Green as i32);
    assert_eq!(v.valid_until, NOW + DAY);
    assert_eq!(v.issuer_city, CITY);
    assert_eq!(v.issuer_name, "City 330100");
    assert_eq!(v.checked_at, NOW + 5);
    assert!(v.signature_valid);
    assert_eq!(v.detail, "ok");
}

#[test]
fn v1_past_the_lists_sunset_nothing_verifies_and_at_it_the_list_still_holds() {
    let (_pki, signer, list) = setup();
    let bytes = badge(&signer, NOW, NOW + DAY);
    let sunset = list.sunset_at();
    // At the sunset itself V1 passes; the badge has long expired (V15).
    assert_eq!(
        verify(&bytes, &list, sunset).unwrap_err(),
        VerifyError::Expired {
            valid_until: NOW + DAY
        }
    );
    let err = verify(&bytes, &list, sunset + 1).unwrap_err();
    assert_eq!(err, VerifyError::TrustListSunset);
    assert_row(&err, "trust_list_sunset", pb::Outcome::UnknownSigner);
    // V1 runs first: not even the envelope is read.
    assert_eq!(
        verify(b"\xff", &list, sunset + 1).unwrap_err(),
        VerifyError::TrustListSunset
    );
}

#[test]
fn v2_to_v6_misshapen_envelopes_are_malformed_with_their_own_reason() {
    let (_pki, signer, list) = setup();
    let raw = |payload: &[u8], key_id: Vec<u8>, signature: Vec<u8>| {
        pb::SignedBadge {
            payload: payload.to_vec(),
            key_id,
            signature,
        }
        .encode_to_vec()
    };
    let kid = signer.key_id().as_bytes().to_vec();
    let cases: Vec<(&str, Vec<u8>, VerifyError, &str)> = vec![
        (
            "V2",
            vec![0; MAX_ENVELOPE_LEN + 1],
            VerifyError::Envelope(EnvelopeError::TooLarge(MAX_ENVELOPE_LEN + 1)),
            "envelope_too_large",
        ),
        (
            "V4",
            raw(b"x", kid[..7].to_vec(), vec![0; 64]),
            VerifyError::Envelope(EnvelopeError::KeyIdLength(7)),
            "key_id_length",
        ),
        (
            "V5",
            raw(b"x", kid.clone(), vec![0; 63]),
            VerifyError::Envelope(EnvelopeError::SignatureLength(63)),
            "signature_length",
        ),
        (
            "V6",
            raw(b"", kid.clone(), vec![0; 64]),
            VerifyError::Envelope(EnvelopeError::EmptyPayload),
            "empty_payload",
        ),
    ];
    for (rule, bytes, want, reason) in cases {
        let err = verify(&bytes, &list, NOW).unwrap_err();
        assert_eq!(err, want, "{rule}");
        assert_row(&err, reason, pb::Outcome::Malformed);
    }
    // V3: bytes that are not a SignedBadge.
    let err = verify(b"\xff\xff\xff", &list, NOW).unwrap_err();
    assert!(
        matches!(err, VerifyError::Envelope(EnvelopeError::Decode(_))),
        "{err:?}"
    );
    assert_row(&err, "envelope_decode", pb::Outcome::Malformed);
}

#[test]
fn v7_a_key_id_no_entry_has_is_an_unknown_signer() {
    let (pki, _signer, list) = setup();
    let stranger = pki.badge_signer(CITY); // issued by the root, not listed
    let bytes = stranger.badge_signer().sign(&claims(CITY, 1)).unwrap();
    let err = verify(&bytes, &list, NOW).unwrap_err();
    assert_eq!(err, VerifyError::UnknownSigner(stranger.key_id()));
    assert_row(&err, "unknown_signer", pb::Outcome::UnknownSigner);
}

#[test]
fn v8_a_listed_certificate_of_another_role_may_not_sign_badges() {
    let pki = TestPki::new();
    let city = CityCode::new(CITY).unwrap();
    let node = pki.issue(
        crate::Identity::new(Role::CityNode, Scope::City(city)).unwrap(),
        NOW - DAY,
        NOW + DAY,
    );
    let list = pki.trust_list([node.entry.clone()]);
    let payload = claims(CITY, 1).encode().unwrap();
    // The trust-list signer has an Ed25519 key and a good signature...
    let lister = pki.list_signer();
    let bytes = envelope(&lister.key, lister.key_id(), payload.clone());
    let err = verify(&bytes, &list, NOW).unwrap_err();
    assert_eq!(
        err,
        VerifyError::WrongSignerRole {
            key_id: lister.key_id(),
            role: Role::TrustListSigner
        }
    );
    assert_row(&err, "wrong_signer_role", pb::Outcome::UnknownSigner);
    // ...and a city node is of its city, but neither signs badges.
    let bytes = envelope(&node.key, node.key_id(), payload);
    assert_eq!(
        verify(&bytes, &list, NOW).unwrap_err(),
        VerifyError::WrongSignerRole {
            key_id: node.key_id(),
            role: Role::CityNode
        }
    );
}

#[test]
fn v9_a_signature_that_does_not_hold_is_a_bad_signature() {
    let (pki, signer, list) = setup();
    let payload = claims(CITY, 1).encode().unwrap();
    let good = Envelope::decode(&envelope(&signer.key, signer.key_id(), payload.clone())).unwrap();
    let mut flipped = good.signature.to_bytes();
    flipped[3] ^= 0x01;
    let mut tampered_payload = payload.clone();
    *tampered_payload.last_mut().unwrap() ^= 0x01;
    let other_context = signing::sign(crate::signing::TRUST_LIST_CONTEXT, &payload, &signer.key)
        .unwrap()
        .to_bytes();
    let cases = [
        ("a flipped signature bit", payload.clone(), flipped),
        (
            "a changed payload byte",
            tampered_payload,
            good.signature.to_bytes(),
        ),
        (
            "signed under another context",
            payload.clone(),
            other_context,
        ),
        (
            "signed by another key",
            payload.clone(),
            signing::sign(BADGE_CONTEXT, &payload, &pki.badge_signer(CITY).key)
                .unwrap()
                .to_bytes(),
        ),
    ];
    for (what, payload, signature) in cases {
        let bytes = Envelope {
            payload,
            key_id: signer.key_id(),
            signature: Signature::from_bytes(&signature),
        }
        .encode();
        let err = verify(&bytes, &list, NOW).unwrap_err();
        assert_eq!(err, VerifyError::BadSignature, "{what}");
        assert_row(&err, "bad_signature", pb::Outcome::BadSignature);
    }
}

/// A list in which `signer` is REVOKED.
fn revoking(pki: &TestPki, signer: &Leaf) -> CheckedTrustList {
    let mut entry = signer.entry.clone();
    entry.status = pb::EntryStatus::Revoked as i32;
    entry.revoked_at = NOW - 10;
    pki.trust_list([entry])
}

#[test]
fn v10_a_revoked_signer_is_refused_but_only_after_its_signature_holds() {
    let (pki, signer, _) = setup();
    let list = revoking(&pki, &signer);
    let bytes = badge(&signer, NOW, NOW + DAY);
    let err = verify(&bytes, &list, NOW).unwrap_err();
    assert_eq!(err, VerifyError::SignerRevoked(signer.key_id()));
    assert_row(&err, "signer_revoked", pb::Outcome::SignerRevoked);
    // V9 before V10: a forgery naming a revoked key is a bad signature.
    let mut forged = Envelope::decode(&bytes).unwrap();
    let mut sig = forged.signature.to_bytes();
    sig[0] ^= 0x80;
    forged.signature = Signature::from_bytes(&sig);
    assert_eq!(
        verify(&forged.encode(), &list, NOW).unwrap_err(),
        VerifyError::BadSignature
    );
    // V10 before V12: a revoked key speaking for another city is revoked.
    let other = envelope(
        &signer.key,
        signer.key_id(),
        claims(OTHER_CITY, 1).encode().unwrap(),
    );
    assert_eq!(
        verify(&other, &list, NOW).unwrap_err(),
        VerifyError::SignerRevoked(signer.key_id())
    );
}

#[test]
fn v11_signed_claims_that_fail_c1_to_c10_are_malformed() {
    let (_pki, signer, list) = setup();
    let sign = |payload: Vec<u8>| envelope(&signer.key, signer.key_id(), payload);
    // C1: not a BadgeClaims message.
    let err = verify(&sign(b"\xff\xff".to_vec()), &list, NOW).unwrap_err();
    assert!(
        matches!(err, VerifyError::Claims(ClaimsError::Decode(_))),
        "{err:?}"
    );
    assert_row(&err, "claims_decode", pb::Outcome::Malformed);
    // C2: a version this verifier does not read has its own variant.
    let v2 = pb::BadgeClaims {
        version: CLAIMS_VERSION + 1,
        issuer_city: CITY,
        badge_id: vec![1; 16],
        colour: pb::Colour::Green as i32,
        issued_at: NOW,
        valid_until: NOW + DAY,
        policy_version: 1,
        holder_hint: None,
    };
    let err = verify(&sign(v2.encode_to_vec()), &list, NOW).unwrap_err();
    assert_eq!(err, VerifyError::UnsupportedVersion(CLAIMS_VERSION + 1));
    assert_row(&err, "unsupported_version", pb::Outcome::Malformed);
    // C6: an empty window, signed, is refused before any window rule.
    let empty = pb::BadgeClaims {
        version: CLAIMS_VERSION,
        valid_until: NOW,
        ..v2
    };
    let err = verify(&sign(empty.encode_to_vec()), &list, NOW).unwrap_err();
    assert_eq!(
        err,
        VerifyError::Claims(ClaimsError::EmptyWindow {
            issued_at: NOW,
            valid_until: NOW
        })
    );
    assert_row(&err, "empty_window", pb::Outcome::Malformed);
}

#[test]
fn v12_a_signer_of_one_city_signing_for_another_is_an_issuer_mismatch() {
    let (_pki, signer, list) = setup();
    let bytes = envelope(
        &signer.key,
        signer.key_id(),
        claims(OTHER_CITY, 1).encode().unwrap(),
    );
    let err = verify(&bytes, &list, NOW).unwrap_err();
    assert_eq!(
        err,
        VerifyError::IssuerMismatch {
            claimed: CityCode::new(OTHER_CITY).unwrap(),
            signer: CityCode::new(CITY).unwrap(),
        }
    );
    assert_row(&err, "issuer_mismatch", pb::Outcome::BadSignature);
}

#[test]
fn v13_the_badge_window_lies_within_the_signer_certificate_to_the_second() {
    let (_pki, signer, list) = setup();
    let (not_before, not_after) = (signer.entry.not_before, signer.entry.not_after);
    // issued_at == not_before holds; a second earlier does not.
    assert!(
        verify(
            &badge(&signer, not_before, not_before + DAY),
            &list,
            not_before
        )
        .is_ok()
    );
    let err = verify(
        &badge(&signer, not_before - 1, not_before - 1 + DAY),
        &list,
        not_before,
    )
    .unwrap_err();
    assert_eq!(
        err,
        VerifyError::SignerNotValidAtIssue {
            issued_at: not_before - 1,
            valid_until: not_before - 1 + DAY
        }
    );
    assert_row(&err, "signer_not_valid_at_issue", pb::Outcome::BadSignature);
    // valid_until == not_after holds; a second later does not.
    let start = not_after - DAY;
    assert!(verify(&badge(&signer, start, not_after), &list, start).is_ok());
    assert_eq!(
        verify(&badge(&signer, start, not_after + 1), &list, start).unwrap_err(),
        VerifyError::SignerNotValidAtIssue {
            issued_at: start,
            valid_until: not_after + 1
        }
    );
}

#[test]
fn v14_a_badge_issued_more_than_the_clock_skew_ahead_is_not_yet_valid() {
    let (_pki, signer, list) = setup();
    let bytes = badge(&signer, NOW, NOW + DAY);
    assert_eq!(CLOCK_SKEW_SECS, 300);
    assert!(verify(&bytes, &list, NOW - CLOCK_SKEW_SECS).is_ok());
    let err = verify(&bytes, &list, NOW - CLOCK_SKEW_SECS - 1).unwrap_err();
    assert_eq!(err, VerifyError::NotYetValid { issued_at: NOW });
    assert_row(&err, "not_yet_valid", pb::Outcome::NotYetValid);
}

#[test]
fn v15_a_badge_is_valid_through_its_last_second_and_expired_after() {
    let (_pki, signer, list) = setup();
    let bytes = badge(&signer, NOW, NOW + DAY);
    assert!(verify(&bytes, &list, NOW + DAY).is_ok());
    let err = verify(&bytes, &list, NOW + DAY + 1).unwrap_err();
    assert_eq!(
        err,
        VerifyError::Expired {
            valid_until: NOW + DAY
        }
    );
    assert_row(&err, "expired", pb::Outcome::Expired);
}

#[test]
fn q1_a_request_without_a_badge_is_malformed_and_q2_text_is_read_first() {
    let (_pki, signer, list) = setup();
    let err = request_envelope(&pb::VerifyRequest::default()).unwrap_err();
    assert_eq!(err, VerifyError::NoBadge);
    assert_row(&err, "no_badge", pb::Outcome::Malformed);

    let text = signer.badge_signer().sign_text(&claims(CITY, 1)).unwrap();
    let request = pb::VerifyRequest {
        badge: Some(pb::verify_request::Badge::QrText(format!(" {text}\n"))),
    };
    let bytes = request_envelope(&request).unwrap();
    assert_eq!(
        verify(&bytes, &list, NOW).unwrap().key_id(),
        signer.key_id()
    );
    assert!(verify_text(&text, &list, NOW).is_ok());
    // T3: the text rules give their own reasons, MALFORMED.
    let err = verify_text("XB1:000", &list, NOW).unwrap_err();
    assert_eq!(err, VerifyError::Text(TextError::MissingPrefix));
    assert_row(&err, "text_missing_prefix", pb::Outcome::Malformed);
}

#[test]
fn a_failures_verdict_carries_its_outcome_reason_and_message_and_nothing_else() {
    let err = VerifyError::Expired {
        valid_until: NOW + DAY,
    };
    let v = err.verdict(NOW + 2 * DAY);
    assert_eq!(v.outcome, pb::Outcome::Expired as i32);
    assert_eq!(v.reason, "expired");
    assert_eq!(v.detail, format!("badge expired at {}", NOW + DAY));
    assert_eq!(v.checked_at, NOW + 2 * DAY);
    assert!(!v.signature_valid);
    assert_eq!(v.colour, 0);
    assert_eq!(v.valid_until, 0);
    assert_eq!(v.issuer_city, 0);
    assert!(v.issuer_name.is_empty());
}

/// A PKI with an issuing CA, a badge signer of [`CITY`] it issued, and the
/// list entry of the issuing CA.
fn setup_with_issuing_ca() -> (TestPki, crate::test_pki::TestCa, Leaf) {
    let pki = TestPki::new();
    let ca = pki.issuing_ca();
    let signer = ca.badge_signer(CITY);
    (pki, ca, signer)
}

#[test]
fn v10a_a_signer_issued_by_a_revoked_issuing_ca_is_signer_revoked_for_its_issuer() {
    let (pki, ca, signer) = setup_with_issuing_ca();
    let bytes = signer.badge_signer().sign(&claims(CITY, 1)).unwrap();
    let active = pki.trust_list([ca.leaf.entry.clone(), signer.entry.clone()]);
    assert!(verify(&bytes, &active, NOW).is_ok());
    let mut revoked = ca.leaf.entry.clone();
    revoked.status = pb::EntryStatus::Revoked as i32;
    revoked.revoked_at = NOW - 5;
    let list = pki.trust_list([revoked, signer.entry.clone()]);
    let err = verify(&bytes, &list, NOW).unwrap_err();
    assert_row(&err, "issuer_revoked", pb::Outcome::SignerRevoked);
    assert_eq!(
        err,
        VerifyError::IssuerRevoked {
            signer: signer.key_id(),
            issuer: ca.leaf.key_id(),
        }
    );
    // V10 runs first: a revoked signer under a revoked CA is signer_revoked.
    let mut both = signer.entry.clone();
    both.status = pb::EntryStatus::Revoked as i32;
    let mut ca_revoked = ca.leaf.entry.clone();
    ca_revoked.status = pb::EntryStatus::Revoked as i32;
    let list = pki.trust_list([ca_revoked, both]);
    assert_eq!(
        verify(&bytes, &list, NOW).unwrap_err().reason(),
        "signer_revoked"
    );
    // V10a comes after the signature: a forged badge is still bad_signature.
    let forger = Leaf {
        key: SigningKey::from_bytes(&[7; 32]),
        ..signer
    };
    let list = pki.trust_list([revoked_entry(&ca.leaf), forger.entry.clone()]);
    let err = verify(&badge(&forger, NOW, NOW + DAY), &list, NOW).unwrap_err();
    assert_eq!(err.reason(), "bad_signature");
}

fn revoked_entry(leaf: &Leaf) -> pb::TrustEntry {
    let mut e = leaf.entry.clone();
    e.status = pb::EntryStatus::Revoked as i32;
    e
}

#[test]
fn v13_the_badge_window_lies_within_the_issuing_cas_validity_too() {
    let pki = TestPki::new();
    // An issuing CA that ends an hour after NOW, a signer valid a year.
    let ca = pki.issuing_ca_between(NOW - DAY, NOW + 3600);
    let signer = ca.badge_signer(CITY);
    let list = pki.trust_list([ca.leaf.entry.clone(), signer.entry.clone()]);
    assert!(verify(&badge(&signer, NOW, NOW + 3600), &list, NOW).is_ok());
    let err = verify(&badge(&signer, NOW, NOW + 3601), &list, NOW).unwrap_err();
    assert_row(&err, "signer_not_valid_at_issue", pb::Outcome::BadSignature);
    // Issued before the issuing CA's validity began.
    let err = verify(&badge(&signer, NOW - DAY - 1, NOW), &list, NOW).unwrap_err();
    assert_row(&err, "signer_not_valid_at_issue", pb::Outcome::BadSignature);
}
