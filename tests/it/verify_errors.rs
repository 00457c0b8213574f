//! Every way a badge or trust list can be wrong is refused with its own error.

use prost::Message;
use tessera_core::badge::{BadgeSigner, Envelope, EnvelopeError};
use tessera_core::signing;
use tessera_core::trust::{CheckedTrustList, TrustListError};
use tessera_core::verify::VerifyError;
use tessera_core::{CityCode, Identity, KeyId, Role, Scope, verify};
use tessera_proto::v1 as pb;
use tessera_tests::{DAY, Issued, NOW, TestPki, claims, entry};

fn federation() -> (TestPki, CityCode, CheckedTrustList) {
    let mut pki = TestPki::new(NOW).unwrap();
    let hz = pki.add_city(330_100, "Hangzhou", "127.0.0.1:7001").unwrap();
    pki.add_city(420_100, "Wuhan", "127.0.0.1:7002").unwrap();
    let list =
        CheckedTrustList::verify(&pki.trust_list(1).unwrap(), &pki.anchor().unwrap(), NOW).unwrap();
    (pki, hz, list)
}

/// Signs `payload` with any key, bypassing `BadgeSigner`'s own checks, as an
/// attacker or a buggy node would.
fn forge(payload: Vec<u8>, by: &Issued) -> Vec<u8> {
    Envelope {
        signature: signing::sign(signing::BADGE_CONTEXT, &payload, &by.key).unwrap(),
        payload,
        key_id: KeyId::of_certificate(&by.der),
    }
    .encode()
}

#[test]
fn a_good_badge_verifies_and_reports_its_claims() {
    let (pki, hz, list) = federation();
    let c = claims(hz, NOW);
    let badge = pki.badge_signer(hz).unwrap().sign(&c).unwrap();
    let verified = verify(&badge, &list, NOW + 60).unwrap();
    assert_eq!(verified.claims(), &c);
    assert_eq!(verified.issuer_name(), "Hangzhou");
}

#[test]
fn bad_signature() {
    let (pki, hz, list) = federation();
    let badge = pki
        .badge_signer(hz)
        .unwrap()
        .sign(&claims(hz, NOW))
        .unwrap();
    let mut msg = pb::SignedBadge::decode(badge.as_slice()).unwrap();
    msg.signature[10] ^= 1;
    let err = verify(&msg.encode_to_vec(), &list, NOW).unwrap_err();
    assert_eq!(err, VerifyError::BadSignature);
    assert_eq!(err.outcome(), pb::Outcome::BadSignature);
}

#[test]
fn unknown_key_id() {
    let (pki, hz, list) = federation();
    let stranger = TestPki::new(NOW).unwrap();
    let key = stranger
        .issue(
            Identity::new(Role::BadgeSigner, Scope::City(hz)).unwrap(),
            &[],
        )
        .unwrap();
    let badge = BadgeSigner::new(key.key, &key.der)
        .unwrap()
        .sign(&claims(hz, NOW))
        .unwrap();
    assert!(matches!(
        verify(&badge, &list, NOW),
        Err(VerifyError::UnknownSigner(_))
    ));
    drop(pki);
}

#[test]
fn signer_revoked() {
    let (pki, hz, _) = federation();
    let mut msg = pki.trust_list_message(2).unwrap();
    for e in &mut msg.entries {
        if e.code == hz.get() && e.role == pb::Role::BadgeSigner as i32 {
            e.status = pb::EntryStatus::Revoked as i32;
            e.revoked_at = NOW;
        }
    }
    let list =
        CheckedTrustList::verify(&pki.sign(&msg).unwrap(), &pki.anchor().unwrap(), NOW).unwrap();
    let badge = pki
        .badge_signer(hz)
        .unwrap()
        .sign(&claims(hz, NOW))
        .unwrap();
    let err = verify(&badge, &list, NOW).unwrap_err();
    assert!(matches!(err, VerifyError::SignerRevoked(_)));
    assert_eq!(err.outcome(), pb::Outcome::SignerRevoked);
}

#[test]
fn signer_certificate_of_the_wrong_role() {
    // A city's node TLS key signs a badge: its key id is in the list, but as
    // a node, not a badge signer.
    let (pki, hz, list) = federation();
    let node = &pki.city(hz).unwrap().node;
    let forged = forge(claims(hz, NOW).encode().unwrap(), node);
    let err = verify(&forged, &list, NOW).unwrap_err();
    assert!(matches!(
        err,
        VerifyError::WrongSignerRole {
            role: Role::CityNode,
            ..
        }
    ));
    // And the signer refuses to be built from a non-signer certificate.
    assert!(BadgeSigner::new(node.key.clone(), &node.der).is_err());
}

#[test]
fn a_city_cannot_sign_for_another() {
    let (pki, hz, list) = federation();
    let wuhan = CityCode::new(420_100).unwrap();
    let wuhan_signer = pki.city(wuhan).unwrap().signer.clone();
    let payload = claims(hz, NOW).encode().unwrap();
    let forged = forge(payload, &wuhan_signer);
    let err = verify(&forged, &list, NOW).unwrap_err();
    assert!(matches!(err, VerifyError::IssuerMismatch { .. }));
    assert!(
        pki.badge_signer(wuhan)
            .unwrap()
            .sign(&claims(hz, NOW))
            .is_err()
    );
}

#[test]
fn expired_and_not_yet_valid() {
    let (pki, hz, list) = federation();
    let badge = pki
        .badge_signer(hz)
        .unwrap()
        .sign(&claims(hz, NOW))
        .unwrap();
    let err = verify(&badge, &list, NOW + DAY + 1).unwrap_err();
    assert!(matches!(err, VerifyError::Expired { .. }));
    assert_eq!(err.outcome(), pb::Outcome::Expired);
    let future = claims(hz, NOW + 3600);
    let badge = pki.badge_signer(hz).unwrap().sign(&future).unwrap();
    let err = verify(&badge, &list, NOW).unwrap_err();
    assert!(matches!(err, VerifyError::NotYetValid { .. }));
    assert_eq!(err.outcome(), pb::Outcome::NotYetValid);
}

#[test]
fn unsupported_version() {
    let (pki, hz, list) = federation();
    let mut claims_msg =
        pb::BadgeClaims::decode(claims(hz, NOW).encode().unwrap().as_slice()).unwrap();
    claims_msg.version = 2;
    let payload = claims_msg.encode_to_vec();
    let signer = &pki.city(hz).unwrap().signer;
    let forged = forge(payload, signer);
    let err = verify(&forged, &list, NOW).unwrap_err();
    assert_eq!(err, VerifyError::UnsupportedVersion(2));
    assert_eq!(err.outcome(), pb::Outcome::Malformed);
}

#[test]
fn malformed_envelopes_name_what_is_wrong() {
    let (_, _, list) = federation();
    assert!(matches!(
        verify(&[0xff; 20], &list, NOW),
        Err(VerifyError::Envelope(EnvelopeError::Decode(_)))
    ));
    assert!(matches!(
        verify(&[0u8; 4096], &list, NOW),
        Err(VerifyError::Envelope(EnvelopeError::TooLarge(4096)))
    ));
    assert!(matches!(
        tessera_core::verify_text("TB1:%%%", &list, NOW),
        Err(VerifyError::Text(_))
    ));
}

#[test]
fn trust_list_signed_by_a_key_not_chaining_to_the_root() {
    let (pki, _, _) = federation();
    let impostor = TestPki::new(NOW).unwrap();
    // The impostor signs our entries with its own (properly formed) signer.
    let list = pki.trust_list_message(5).unwrap();
    let forged = impostor.sign(&list).unwrap();
    let err = CheckedTrustList::verify(&forged, &pki.anchor().unwrap(), NOW).unwrap_err();
    assert!(matches!(err, TrustListError::UntrustedSigner(_)), "{err}");
    // A list signed by one of our own non-signer keys (the gateway's).
    let by_gateway =
        tessera_core::trust::sign_trust_list(&list, &pki.gateway.key, &pki.gateway.der).unwrap();
    let err = CheckedTrustList::verify(&by_gateway, &pki.anchor().unwrap(), NOW).unwrap_err();
    assert_eq!(err, TrustListError::SignerRole(Role::Gateway));
}

#[test]
fn trust_list_older_than_the_one_held_is_refused() {
    let (pki, _, held) = federation();
    let root = pki.anchor().unwrap();
    let newer = held
        .verify_successor(&pki.trust_list(3).unwrap(), &root, NOW)
        .unwrap();
    let err = newer
        .verify_successor(&pki.trust_list(2).unwrap(), &root, NOW)
        .unwrap_err();
    assert_eq!(
        err,
        TrustListError::Rollback {
            held: 3,
            offered: 2
        }
    );
    // The same sequence with other contents is refused too.
    let mut other = pki.trust_list_message(3).unwrap();
    other.next_update += 1;
    let err = newer
        .verify_successor(&pki.sign(&other).unwrap(), &root, NOW)
        .unwrap_err();
    assert_eq!(err, TrustListError::SequenceReused(3));
}

#[test]
fn entries_must_agree_with_their_certificates() {
    let (pki, hz, _) = federation();
    let root = pki.anchor().unwrap();
    let mut msg = pki.trust_list_message(2).unwrap();
    msg.entries[2].code = 420_100;
    let err = CheckedTrustList::verify(&pki.sign(&msg).unwrap(), &root, NOW).unwrap_err();
    assert!(
        matches!(err, TrustListError::Entry { index: 2, .. }),
        "{err}"
    );

    let mut msg = pki.trust_list_message(2).unwrap();
    let dup = msg.entries[3].clone();
    msg.entries.push(dup);
    let err = CheckedTrustList::verify(&pki.sign(&msg).unwrap(), &root, NOW).unwrap_err();
    assert!(matches!(err, TrustListError::DuplicateKey(_)));

    let stranger = TestPki::new(NOW).unwrap();
    let foreign = stranger
        .issue(
            Identity::new(Role::BadgeSigner, Scope::City(hz)).unwrap(),
            &[],
        )
        .unwrap();
    let mut msg = pki.trust_list_message(2).unwrap();
    msg.entries
        .push(entry(&foreign, Role::BadgeSigner, hz.get(), "Foreign", "").unwrap());
    let err = CheckedTrustList::verify(&pki.sign(&msg).unwrap(), &root, NOW).unwrap_err();
    assert!(matches!(err, TrustListError::Entry { .. }), "{err}");
}

#[test]
fn a_trust_list_over_16_mib_is_refused_before_it_is_parsed() {
    let (pki, _, _) = federation();
    let root = pki.anchor().unwrap();
    let limit = tessera_core::trust::MAX_TRUST_LIST_LEN;
    // Not even a SignedTrustList: the size is checked first (rule L1).
    let err = CheckedTrustList::verify(&vec![0xff; limit + 1], &root, NOW).unwrap_err();
    assert_eq!(err, TrustListError::TooLarge(limit + 1));
    assert_eq!(err.reason(), "list_too_large");
    let err = CheckedTrustList::verify(&vec![0xff; limit], &root, NOW).unwrap_err();
    assert_eq!(err.reason(), "list_malformed");
}
