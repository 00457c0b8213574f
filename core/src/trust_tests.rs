//! The trust-list rules of PROTOCOL.md ("Trust list"), each test named after
//! its rule ids: acceptance (L1 to L15, E1 to E7), successors (R1 to R3),
//! freshness (F1 to F3) at their exact boundaries, revocation lookups by
//! serial and by key id, and the reason code of every refusal.

use super::*;
use crate::identity::{Identity, Scope};
use crate::test_pki::{DAY, Leaf, NOW, TestPki};

const CITY: u32 = 330_100;

fn city() -> CityCode {
    CityCode::new(CITY).unwrap()
}

/// A leaf of `role` for [`CITY`] (or the nation), valid a day either side
/// of [`NOW`].
fn leaf(pki: &TestPki, role: Role) -> Leaf {
    let scope = match role {
        Role::TrustListSigner | Role::Gateway | Role::Authority => Scope::Nation,
        Role::Verifier => Scope::Province(city().province()),
        _ => Scope::City(city()),
    };
    pki.issue(Identity::new(role, scope).unwrap(), NOW - DAY, NOW + DAY)
}

/// Verifies `list` signed by the PKI's trust-list signer at `now`.
fn check(
    pki: &TestPki,
    list: &pb::TrustList,
    now: i64,
) -> Result<CheckedTrustList, TrustListError> {
    CheckedTrustList::verify(&pki.sign(list), pki.anchor(), now)
}

#[test]
fn an_accepted_list_keeps_its_dates_entries_and_exact_bytes() {
    let pki = TestPki::new();
    let badge = pki.badge_signer(CITY);
    let node = leaf(&pki, Role::CityNode);
    let list = pki.list([badge.entry.clone(), node.entry.clone()]);
    let bytes = pki.sign(&list);
    let checked = CheckedTrustList::verify(&bytes, pki.anchor(), NOW).unwrap();
    assert_eq!(checked.sequence(), 1);
    assert_eq!(checked.issued_at(), NOW - DAY);
    assert_eq!(checked.next_update(), NOW + 7 * DAY);
    assert_eq!(checked.sunset_at(), NOW + 365 * DAY);
    assert_eq!(checked.signed_bytes(), bytes.as_slice());
    assert_eq!(
        checked.signer_certificate().key_id(),
        pki.list_signer().key_id()
    );
    let ids: Vec<KeyId> = checked
        .entries()
        .iter()
        .map(|e| e.cert().key_id())
        .collect();
    assert_eq!(
        ids,
        [pki.list_signer().key_id(), badge.key_id(), node.key_id()]
    );
    let entry = checked.by_key_id(&node.key_id()).unwrap();
    assert_eq!(entry.name(), "City 330100");
    assert_eq!(entry.endpoint(), "127.0.0.1:1");
    assert_eq!(entry.der(), node.der.as_slice());
    assert_eq!(entry.status(), EntryStatus::Active);
    assert!(!entry.is_revoked());
    assert_eq!(
        checked.city_node(city()).unwrap().cert().key_id(),
        node.key_id()
    );
    assert!(checked.city_node(CityCode::new(420_100).unwrap()).is_none());
    assert!(
        checked
            .by_key_id(&KeyId::of_certificate(b"not listed"))
            .is_none()
    );
}

#[test]
fn l1_l2_l7_oversized_and_undecodable_lists_are_refused() {
    let pki = TestPki::new();
    let err =
        CheckedTrustList::verify(&vec![0; MAX_TRUST_LIST_LEN + 1], pki.anchor(), NOW).unwrap_err();
    assert_eq!(err, TrustListError::TooLarge(MAX_TRUST_LIST_LEN + 1));
    assert_eq!(err.reason(), "list_too_large");
    let err = CheckedTrustList::verify(b"\xff\xff", pki.anchor(), NOW).unwrap_err();
    assert!(matches!(err, TrustListError::Malformed(_)), "{err:?}");
    assert_eq!(err.reason(), "list_malformed");
    // L7: a well-signed payload that is not a TrustList.
    let signer = pki.list_signer();
    let signed = pb::SignedTrustList {
        payload: b"\xff\xff".to_vec(),
        signature: signing::sign(TRUST_LIST_CONTEXT, b"\xff\xff", &signer.key)
            .unwrap()
            .to_bytes()
            .to_vec(),
        signer_certificate: signer.der.clone(),
    }
    .encode_to_vec();
    let err = CheckedTrustList::verify(&signed, pki.anchor(), NOW).unwrap_err();
    assert!(matches!(err, TrustListError::Malformed(_)), "{err:?}");
}

#[test]
fn l3_to_l6_the_signer_must_chain_to_the_root_hold_the_role_be_valid_and_sign() {
    let pki = TestPki::new();
    let list = pki.list([]);
    // L3: a list from another federation's signer.
    let foreign = TestPki::new();
    let err = CheckedTrustList::verify(&foreign.sign(&list), pki.anchor(), NOW).unwrap_err();
    assert!(matches!(err, TrustListError::UntrustedSigner(_)), "{err:?}");
    assert_eq!(err.reason(), "signer_untrusted");
    // L4: a badge signer's good signature over a list.
    let badge = pki.badge_signer(CITY);
    let bytes = sign_trust_list(&list, &badge.key, &badge.der).unwrap();
    let err = CheckedTrustList::verify(&bytes, pki.anchor(), NOW).unwrap_err();
    assert_eq!(err, TrustListError::SignerRole(Role::BadgeSigner));
    assert_eq!(err.reason(), "signer_role");
    // L5: the signer is valid up to its not_after and not a second longer.
    let not_after = pki.list_signer().entry.not_after;
    let mut late = list.clone();
    late.sunset_at = not_after + DAY;
    assert!(check(&pki, &late, not_after).is_ok());
    let err = check(&pki, &late, not_after + 1).unwrap_err();
    assert_eq!(err, TrustListError::SignerExpired);
    assert_eq!(err.reason(), "signer_expired");
    // L6: a changed payload byte, and a signature of the wrong length.
    let mut signed = pb::SignedTrustList::decode(pki.sign(&list).as_slice()).unwrap();
    signed.payload[0] ^= 0x01;
    let err = CheckedTrustList::verify(&signed.encode_to_vec(), pki.anchor(), NOW).unwrap_err();
    assert_eq!(err, TrustListError::BadSignature);
    assert_eq!(err.reason(), "bad_signature");
    signed.payload[0] ^= 0x01;
    signed.signature.pop();
    let err = CheckedTrustList::verify(&signed.encode_to_vec(), pki.anchor(), NOW).unwrap_err();
    assert_eq!(err, TrustListError::BadSignature);
}

#[test]
fn l8_to_l12_version_and_dates_hold_to_the_second() {
    let pki = TestPki::new();
    let base = pki.list([]);
    let with = |f: &dyn Fn(&mut pb::TrustList)| {
        let mut l = base.clone();
        f(&mut l);
        l
    };
    let err = check(&pki, &with(&|l| l.version = 2), NOW).unwrap_err();
    assert_eq!(err, TrustListError::UnsupportedVersion(2));
    assert_eq!(err.reason(), "unsupported_version");
    // L9: next_update == issued_at holds; a second before does not.
    assert!(check(&pki, &with(&|l| l.next_update = l.issued_at), NOW).is_ok());
    let err = check(&pki, &with(&|l| l.next_update = l.issued_at - 1), NOW).unwrap_err();
    assert_eq!(
        err,
        TrustListError::Dates("next_update is before issued_at")
    );
    assert_eq!(err.reason(), "dates_inconsistent");
    // L10: sunset_at == next_update holds; a second before does not.
    assert!(check(&pki, &with(&|l| l.sunset_at = l.next_update), NOW).is_ok());
    let err = check(&pki, &with(&|l| l.sunset_at = l.next_update - 1), NOW).unwrap_err();
    assert_eq!(
        err,
        TrustListError::Dates("sunset_at is before next_update")
    );
    // L11: issued up to the clock skew ahead holds.
    let ahead = |s: i64| with(&|l| l.issued_at = NOW + s);
    assert!(check(&pki, &ahead(CLOCK_SKEW_SECS), NOW).is_ok());
    let err = check(&pki, &ahead(CLOCK_SKEW_SECS + 1), NOW).unwrap_err();
    assert_eq!(
        err,
        TrustListError::IssuedInFuture {
            issued_at: NOW + CLOCK_SKEW_SECS + 1,
            now: NOW
        }
    );
    assert_eq!(err.reason(), "issued_in_future");
    // L12: usable at its sunset, refused a second after.
    let sunset = NOW + 30 * DAY;
    let short = with(&|l| l.sunset_at = sunset);
    assert!(check(&pki, &short, sunset).is_ok());
    let err = check(&pki, &short, sunset + 1).unwrap_err();
    assert_eq!(err, TrustListError::Sunset(sunset));
    assert_eq!(err.reason(), "sunset");
}

#[test]
fn l13_e1_to_e7_the_first_bad_entry_refuses_the_list_with_its_index() {
    let pki = TestPki::new();
    let good = pki.badge_signer(CITY);
    let node = leaf(&pki, Role::CityNode);
    let foreign = TestPki::new().badge_signer(CITY);
    let operator = leaf(&pki, Role::Operator);
    let edit = |leaf: &Leaf, f: &dyn Fn(&mut pb::TrustEntry)| {
        let mut e = leaf.entry.clone();
        f(&mut e);
        e
    };
    let cases: Vec<(&str, pb::TrustEntry, &str)> = vec![
        ("E1", foreign.entry.clone(), "entry_certificate"),
        (
            "E2",
            edit(&good, &|e| e.role = pb::Role::CityNode as i32),
            "entry_role_mismatch",
        ),
        (
            "E2 unspecified",
            edit(&good, &|e| e.role = 0),
            "entry_role_mismatch",
        ),
        ("E3", operator.entry.clone(), "entry_unlisted_role"),
        (
            "E4",
            edit(&node, &|e| e.endpoint.clear()),
            "entry_missing_endpoint",
        ),
        (
            "E5",
            edit(&good, &|e| e.code = 420_100),
            "entry_code_mismatch",
        ),
        (
            "E6",
            edit(&good, &|e| e.not_after -= 1),
            "entry_validity_mismatch",
        ),
        ("E7", edit(&good, &|e| e.status = 0), "entry_status"),
    ];
    for (rule, bad, reason) in cases {
        // Index 0 is the trust-list signer, 1 a good entry, 2 the bad one.
        let err = check(&pki, &pki.list([good.entry.clone(), bad]), NOW).unwrap_err();
        let TrustListError::Entry { index, error } = &err else {
            panic!("{rule}: {err:?}");
        };
        assert_eq!(*index, 2, "{rule}");
        assert_eq!(error.reason(), reason, "{rule}");
        assert_eq!(err.reason(), reason, "{rule}");
    }
    let err = check(&pki, &pki.list([edit(&good, &|e| e.code = 420_100)]), NOW).unwrap_err();
    assert_eq!(
        err,
        TrustListError::Entry {
            index: 1,
            error: EntryError::CodeMismatch {
                entry: 420_100,
                cert: CITY
            }
        }
    );
}

#[test]
fn l14_a_certificate_listed_twice_is_refused() {
    let pki = TestPki::new();
    let good = pki.badge_signer(CITY);
    let err = check(
        &pki,
        &pki.list([good.entry.clone(), good.entry.clone()]),
        NOW,
    )
    .unwrap_err();
    assert_eq!(err, TrustListError::DuplicateKey(good.key_id()));
    assert_eq!(err.reason(), "duplicate_key");
}

#[test]
fn l15_a_list_that_revokes_its_own_signer_is_refused_by_entry_or_by_serial() {
    let pki = TestPki::new();
    let signer = pki.list_signer();
    let mut by_entry = pki.list([]);
    by_entry.entries[0].status = pb::EntryStatus::Revoked as i32;
    let err = check(&pki, &by_entry, NOW).unwrap_err();
    assert_eq!(err, TrustListError::SignerRevoked(signer.key_id()));
    assert_eq!(err.reason(), "signer_revoked");
    let mut by_serial = pki.list([]);
    let serial = CertInfo::parse(&signer.der).unwrap().serial().to_vec();
    by_serial.revoked_serials.push(serial);
    assert_eq!(
        check(&pki, &by_serial, NOW).unwrap_err(),
        TrustListError::SignerRevoked(signer.key_id())
    );
}

/// A list of sequence `sequence` with one badge signer's entry.
fn sequenced(pki: &TestPki, sequence: u64, entry: &pb::TrustEntry) -> pb::TrustList {
    pb::TrustList {
        sequence,
        ..pki.list([entry.clone()])
    }
}

#[test]
fn r1_r2_a_successor_may_not_go_back_nor_reuse_a_sequence_but_may_be_redelivered() {
    let pki = TestPki::new();
    let a = pki.badge_signer(CITY);
    let b = pki.badge_signer(CITY);
    let held = check(&pki, &sequenced(&pki, 5, &a.entry), NOW).unwrap();
    // Higher: accepted.
    let next = held
        .verify_successor(&pki.sign(&sequenced(&pki, 6, &b.entry)), pki.anchor(), NOW)
        .unwrap();
    assert_eq!(next.sequence(), 6);
    // R1: lower.
    let err = held
        .verify_successor(&pki.sign(&sequenced(&pki, 4, &b.entry)), pki.anchor(), NOW)
        .unwrap_err();
    assert_eq!(
        err,
        TrustListError::Rollback {
            held: 5,
            offered: 4
        }
    );
    assert_eq!(err.reason(), "rollback");
    // R2: the same sequence with other contents.
    let err = held
        .verify_successor(&pki.sign(&sequenced(&pki, 5, &b.entry)), pki.anchor(), NOW)
        .unwrap_err();
    assert_eq!(err, TrustListError::SequenceReused(5));
    assert_eq!(err.reason(), "sequence_reused");
    // R2: the same bytes again are harmless.
    let again = held
        .verify_successor(held.signed_bytes(), pki.anchor(), NOW)
        .unwrap();
    assert_eq!(again.sequence(), 5);
    assert_eq!(again.signed_bytes(), held.signed_bytes());
    // A successor must pass L1 to L15 first.
    assert_eq!(
        held.verify_successor(b"\xff", pki.anchor(), NOW)
            .unwrap_err()
            .reason(),
        "list_malformed"
    );
}

#[test]
fn r3_after_a_rotation_the_old_signer_is_refused_whatever_its_sequence() {
    let pki = TestPki::new();
    let old = pki.list_signer();
    let new = leaf(&pki, Role::TrustListSigner);
    let held = check(&pki, &sequenced(&pki, 1, &new.entry), NOW).unwrap();
    // The new signer's first list revokes the old one.
    let mut rotated = pki.list([new.entry.clone()]);
    rotated.sequence = 2;
    rotated.entries[0].status = pb::EntryStatus::Revoked as i32;
    rotated.entries[0].revoked_at = NOW;
    let bytes = sign_trust_list(&rotated, &new.key, &new.der).unwrap();
    let held = held.verify_successor(&bytes, pki.anchor(), NOW).unwrap();
    assert!(held.revokes(CertInfo::parse(&old.der).unwrap().serial(), &old.key_id()));
    // The old signer's list verifies alone (it does not revoke itself)...
    let stale = sequenced(&pki, 99, &new.entry);
    assert!(check(&pki, &stale, NOW).is_ok());
    // ...but not as a successor of the list that revoked it.
    let err = held
        .verify_successor(&pki.sign(&stale), pki.anchor(), NOW)
        .unwrap_err();
    assert_eq!(err, TrustListError::SignerRevoked(old.key_id()));
    assert_eq!(err.reason(), "signer_revoked");
}

#[test]
fn f1_to_f3_fresh_through_next_update_stale_through_sunset_then_sunset() {
    let pki = TestPki::new();
    let list = pki.trust_list([]);
    let (next, sunset) = (list.next_update(), list.sunset_at());
    assert_eq!(list.freshness(NOW), Freshness::Fresh);
    assert_eq!(list.freshness(next), Freshness::Fresh);
    assert_eq!(
        list.freshness(next + 1),
        Freshness::Stale { overdue_secs: 1 }
    );
    assert_eq!(
        list.freshness(sunset),
        Freshness::Stale {
            overdue_secs: sunset - next
        }
    );
    assert_eq!(list.freshness(sunset + 1), Freshness::Sunset);
}

#[test]
fn revocation_is_found_by_serial_for_unlisted_roles_and_by_key_id_for_entries() {
    let pki = TestPki::new();
    let revoked_signer = pki.badge_signer(CITY);
    let active_signer = pki.badge_signer(CITY);
    let operator = leaf(&pki, Role::Operator);
    let other_operator = leaf(&pki, Role::Operator);
    let node = leaf(&pki, Role::CityNode);
    let mut revoked_entry = revoked_signer.entry.clone();
    revoked_entry.status = pb::EntryStatus::Revoked as i32;
    revoked_entry.revoked_at = NOW - 60;
    let mut revoked_node = node.entry.clone();
    revoked_node.status = pb::EntryStatus::Revoked as i32;
    let op_serial = CertInfo::parse(&operator.der).unwrap().serial().to_vec();
    let mut list = pki.list([revoked_entry, active_signer.entry.clone(), revoked_node]);
    list.revoked_serials = vec![op_serial.clone()];
    let list = check(&pki, &list, NOW).unwrap();

    let info = |l: &Leaf| CertInfo::parse(&l.der).unwrap();
    assert!(list.is_revoked(&info(&operator)));
    assert!(!list.is_revoked(&info(&other_operator)));
    assert!(list.is_revoked(&info(&revoked_signer)));
    assert!(!list.is_revoked(&info(&active_signer)));
    // By serial alone, whatever the key id; by key id alone, whatever the
    // serial.
    assert!(list.revokes(&op_serial, &KeyId::of_certificate(b"x")));
    assert!(list.revokes(b"\x01", &revoked_signer.key_id()));
    assert!(!list.revokes(b"\x01", &active_signer.key_id()));
    assert!(!list.revokes(b"\x01", &KeyId::of_certificate(b"x")));
    assert_eq!(
        list.revoked_serials().collect::<Vec<_>>(),
        [op_serial.as_slice()]
    );
    assert_eq!(
        list.by_key_id(&revoked_signer.key_id()).unwrap().status(),
        EntryStatus::Revoked { at: NOW - 60 }
    );
    // A revoked node is no city's node.
    assert!(list.city_node(city()).is_none());
}

#[test]
fn e1_an_entry_may_be_issued_by_an_issuing_ca_listed_anywhere_in_the_list() {
    let pki = TestPki::new();
    let ca = pki.issuing_ca();
    let badge = ca.badge_signer(CITY);
    // The issuing CA after the entry it issued: still found.
    let checked = check(
        &pki,
        &pki.list([badge.entry.clone(), ca.leaf.entry.clone()]),
        NOW,
    )
    .unwrap();
    let entry = checked.by_key_id(&badge.key_id()).unwrap();
    assert_eq!(entry.issuer(), Some(ca.leaf.key_id()));
    assert_eq!(
        checked.issuer_of(entry).unwrap().cert().key_id(),
        ca.leaf.key_id()
    );
    assert_eq!(checked.issuing_cas().count(), 1);
    assert!(checked.issuing_ca_in_force(&ca.leaf.der));
    // Without the issuing CA's entry the badge signer does not chain.
    let err = check(&pki, &pki.list([badge.entry.clone()]), NOW).unwrap_err();
    assert_eq!(err.reason(), "entry_certificate");
    assert!(
        matches!(err, TrustListError::Entry { index: 1, .. }),
        "{err}"
    );
    // Another, listed issuing CA does not stand in for the one that issued it.
    let other = pki.issuing_ca();
    let err = check(
        &pki,
        &pki.list([other.leaf.entry.clone(), badge.entry.clone()]),
        NOW,
    )
    .unwrap_err();
    assert!(
        matches!(err, TrustListError::Entry { index: 2, .. }),
        "{err}"
    );
    // An issuing CA listed under another role is a role mismatch.
    let mut wrong = ca.leaf.entry.clone();
    wrong.role = pb::Role::Gateway as i32;
    wrong.endpoint = "127.0.0.1:1".into();
    let err = check(&pki, &pki.list([wrong]), NOW).unwrap_err();
    assert_eq!(err.reason(), "entry_role_mismatch");
}

#[test]
fn e1_an_issuing_ca_issued_by_an_issuing_ca_is_refused_in_a_list() {
    let pki = TestPki::new();
    let ca = pki.issuing_ca();
    let nested = ca.issue(
        Identity::new(Role::IssuingCa, Scope::Nation).unwrap(),
        NOW - DAY,
        NOW + DAY,
    );
    let err = check(
        &pki,
        &pki.list([ca.leaf.entry.clone(), nested.entry.clone()]),
        NOW,
    )
    .unwrap_err();
    assert_eq!(err.reason(), "entry_certificate");
    assert!(
        matches!(err, TrustListError::Entry { index: 2, .. }),
        "{err}"
    );
}

#[test]
fn l3_a_trust_list_signer_issued_by_an_issuing_ca_is_untrusted() {
    let pki = TestPki::new();
    let ca = pki.issuing_ca();
    let signer = ca.issue(
        Identity::new(Role::TrustListSigner, Scope::Nation).unwrap(),
        NOW - DAY,
        NOW + DAY,
    );
    let list = pki.list([ca.leaf.entry.clone(), signer.entry.clone()]);
    let bytes = sign_trust_list(&list, &signer.key, &signer.der).unwrap();
    let err = CheckedTrustList::verify(&bytes, pki.anchor(), NOW).unwrap_err();
    assert_eq!(err.reason(), "signer_untrusted");
}

#[test]
fn a_chain_through_a_revoked_or_unlisted_issuing_ca_is_refused_and_a_root_issued_leaf_is_not() {
    let pki = TestPki::new();
    let ca = pki.issuing_ca();
    let operator = ca.issue(
        Identity::new(Role::Operator, Scope::City(city())).unwrap(),
        NOW - DAY,
        NOW + DAY,
    );
    let direct = leaf(&pki, Role::Operator);
    let listed = check(&pki, &pki.list([ca.leaf.entry.clone()]), NOW).unwrap();
    assert_eq!(listed.chain_refusal(&operator.der), None);
    assert_eq!(listed.chain_refusal(&direct.der), None);
    let mut revoked = ca.leaf.entry.clone();
    revoked.status = pb::EntryStatus::Revoked as i32;
    revoked.revoked_at = NOW - 5;
    let revoking = check(&pki, &pki.list([revoked]), NOW).unwrap();
    let refusal = revoking.chain_refusal(&operator.der).unwrap();
    let serial = CertInfo::parse(&ca.leaf.der).unwrap().serial().to_vec();
    assert_eq!(refusal, ChainRefusal::IssuerRevoked(serial));
    assert!(
        refusal
            .to_string()
            .starts_with("issued by revoked issuing CA ")
    );
    assert!(!revoking.issuing_ca_in_force(&ca.leaf.der));
    assert_eq!(revoking.chain_refusal(&direct.der), None);
    let unlisted = check(&pki, &pki.list([]), NOW).unwrap();
    assert_eq!(
        unlisted.chain_refusal(&operator.der),
        Some(ChainRefusal::IssuerUnlisted)
    );
    assert!(!unlisted.issuing_ca_in_force(&ca.leaf.der));
    let info = CertInfo::parse(&ca.leaf.der).unwrap();
    assert_eq!(
        unlisted.issuer_refusal(&info.key_id(), info.serial()),
        Some(ChainRefusal::IssuerUnlisted)
    );
    assert_eq!(listed.issuer_refusal(&info.key_id(), info.serial()), None);
    assert_eq!(
        revoking.issuer_refusal(&info.key_id(), info.serial()),
        Some(ChainRefusal::IssuerRevoked(info.serial().to_vec()))
    );
}
