//! Trust-list freshness, sunset, truncation, revocation by serial, and lookup
//! in a list of national size.

use tessera_core::trust::{CheckedTrustList, Freshness, TrustListError};
use tessera_core::{CertInfo, CityCode, Identity, ProvinceCode, Role, Scope, verify};
use tessera_tests::{DAY, NOW, TestPki, claims, entry};

#[test]
fn a_list_past_next_update_is_stale_but_usable_and_past_sunset_is_refused() {
    let mut pki = TestPki::new(NOW).unwrap();
    let hz = pki.add_city(330_100, "Hangzhou", "127.0.0.1:7001").unwrap();
    let root = pki.anchor().unwrap();
    let bytes = pki.trust_list(1).unwrap();
    let list = CheckedTrustList::verify(&bytes, &root, NOW).unwrap();
    assert_eq!(list.freshness(NOW), Freshness::Fresh);
    assert_eq!(
        list.freshness(NOW + DAY + 10),
        Freshness::Stale { overdue_secs: 10 }
    );
    let badge = pki
        .badge_signer(hz)
        .unwrap()
        .sign(&claims(hz, NOW + DAY))
        .unwrap();
    assert!(verify(&badge, &list, NOW + DAY + 10).is_ok());

    let sunset = NOW + 365 * DAY + 1;
    assert_eq!(list.freshness(sunset), Freshness::Sunset);
    assert_eq!(
        verify(&badge, &list, sunset).unwrap_err(),
        tessera_core::VerifyError::TrustListSunset
    );
    assert!(matches!(
        CheckedTrustList::verify(&bytes, &root, sunset),
        Err(TrustListError::Sunset(_) | TrustListError::SignerExpired)
    ));
}

#[test]
fn a_truncated_list_is_malformed_at_every_cut() {
    let mut pki = TestPki::new(NOW).unwrap();
    pki.add_city(330_100, "Hangzhou", "127.0.0.1:7001").unwrap();
    let root = pki.anchor().unwrap();
    let bytes = pki.trust_list(1).unwrap();
    for cut in (0..bytes.len()).step_by(7) {
        assert!(
            CheckedTrustList::verify(&bytes[..cut], &root, NOW).is_err(),
            "a list cut at {cut} of {} bytes was accepted",
            bytes.len()
        );
    }
}

#[test]
fn revoked_serials_revoke_checkpoints_without_listing_them() {
    let pki = TestPki::new(NOW).unwrap();
    let root = pki.anchor().unwrap();
    let good = pki.verifier(420_000).unwrap();
    let bad = pki.verifier(420_000).unwrap();
    let bad_info = CertInfo::parse(&bad.der).unwrap();
    let mut msg = pki.trust_list_message(1).unwrap();
    msg.revoked_serials.push(bad_info.serial().to_vec());
    let list = CheckedTrustList::verify(&pki.sign(&msg).unwrap(), &root, NOW).unwrap();
    assert!(list.is_revoked(&bad_info));
    assert!(!list.is_revoked(&CertInfo::parse(&good.der).unwrap()));
    // Verifiers themselves cannot be listed as entries.
    let mut msg = pki.trust_list_message(1).unwrap();
    msg.entries
        .push(entry(&good, Role::Verifier, 420_000, "Checkpoint", "").unwrap());
    assert!(matches!(
        CheckedTrustList::verify(&pki.sign(&msg).unwrap(), &root, NOW),
        Err(TrustListError::Entry { .. })
    ));
    let _ = ProvinceCode::new(420_000).unwrap();
}

#[test]
fn lookup_finds_every_signer_in_a_national_size_list() {
    // ~1,000 keys: the size of a national list (333 prefecture-level cities
    // with a node and a signer key each, plus rotations).
    let pki = TestPki::new(NOW).unwrap();
    let root = pki.anchor().unwrap();
    let mut msg = pki.trust_list_message(1).unwrap();
    let mut ids = vec![];
    for i in 0..1000u32 {
        let province = 11 + (i % 60);
        let code = CityCode::new(province * 10_000 + 100 + (i / 60)).unwrap();
        let signer = pki
            .issue(
                Identity::new(Role::BadgeSigner, Scope::City(code)).unwrap(),
                &[],
            )
            .unwrap();
        ids.push(tessera_core::KeyId::of_certificate(&signer.der));
        msg.entries
            .push(entry(&signer, Role::BadgeSigner, code.get(), "City", "").unwrap());
    }
    let list = CheckedTrustList::verify(&pki.sign(&msg).unwrap(), &root, NOW).unwrap();
    for id in &ids {
        let e = list.by_key_id(id).unwrap();
        assert_eq!(e.cert().key_id(), *id);
        assert_eq!(e.cert().identity().role(), Role::BadgeSigner);
    }
    assert!(
        list.by_key_id(&tessera_core::KeyId::of_certificate(b"nobody"))
            .is_none()
    );
}

#[test]
fn a_certificate_has_one_encoding_only() {
    // Bytes outside the signed part (outer tag, algorithm, bit-string
    // header) could be changed without breaking the signature; they must
    // still be refused, or one certificate would have many key ids.
    let pki = TestPki::new(NOW).unwrap();
    let der = pki.gateway.der.clone();
    let root = pki.anchor().unwrap();
    assert!(CertInfo::parse_issued_by(&der, &root).is_ok());
    let tail = der.len() - 64 - 3 - 7;
    for (i, bit) in [
        (0, 5),
        (tail, 6),
        (tail + 2, 0),
        (tail + 7, 7),
        (tail + 9, 0),
    ] {
        let mut bent = der.clone();
        bent[i] ^= 1 << bit;
        assert!(
            CertInfo::parse_issued_by(&bent, &root).is_err(),
            "a certificate bent at byte {i} bit {bit} was accepted"
        );
    }
}

#[test]
fn a_rotated_out_trust_list_signer_is_refused_once_a_list_from_its_successor_is_held() {
    let mut pki = TestPki::new(NOW).unwrap();
    pki.add_city(330_100, "Hangzhou", "127.0.0.1:7001").unwrap();
    let root = pki.anchor().unwrap();
    let old = pki.list_signer.clone();
    let first = CheckedTrustList::verify(&pki.trust_list(1).unwrap(), &root, NOW).unwrap();

    // Rotation: a new signer, the old one listed REVOKED in its first list.
    let new = pki
        .issue(
            Identity::new(Role::TrustListSigner, Scope::Nation).unwrap(),
            &[],
        )
        .unwrap();
    let mut rotated = pki.trust_list_message(2).unwrap();
    rotated.entries[0].status = tessera_proto::v1::EntryStatus::Revoked as i32;
    rotated.entries[0].revoked_at = NOW;
    rotated
        .entries
        .push(entry(&new, Role::TrustListSigner, 0, "Signer 2", "").unwrap());
    pki.list_signer = new.clone();
    let second_bytes = pki.sign(&rotated).unwrap();
    let second = first
        .verify_successor(&second_bytes, &root, NOW)
        .expect("a list from the new signer chains to the root");
    assert_eq!(
        second.signer_certificate().key_id(),
        CertInfo::parse(&new.der).unwrap().key_id()
    );

    // The old key (stolen, say) signs a later sequence that lists itself active.
    pki.list_signer = old.clone();
    let forged = pki.trust_list(3).unwrap();
    let old_id = CertInfo::parse(&old.der).unwrap().key_id();
    assert_eq!(
        second.verify_successor(&forged, &root, NOW).unwrap_err(),
        TrustListError::SignerRevoked(old_id)
    );
    // A list that itself revokes its signer is refused even without history.
    let mut self_revoking = rotated.clone();
    self_revoking.sequence = 4;
    let self_revoking = pki.sign(&self_revoking).unwrap();
    assert_eq!(
        CheckedTrustList::verify(&self_revoking, &root, NOW).unwrap_err(),
        TrustListError::SignerRevoked(old_id)
    );
    // Rollback to the old signer's own list is refused by its sequence.
    assert!(matches!(
        second.verify_successor(first.signed_bytes(), &root, NOW),
        Err(TrustListError::Rollback {
            held: 2,
            offered: 1
        })
    ));
}
