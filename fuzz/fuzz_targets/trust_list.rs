//! Trust-list decode and verify, against the golden root.
//!
//! Each input is tried as a SignedTrustList from the network (also as the
//! successor of the golden list), then as a TrustList payload signed by the
//! golden trust-list signer, which is the only way to reach the checks after
//! the signature (version, dates, entries, duplicates).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::trust::{CheckedTrustList, Freshness, TrustListError};
use tessera_core::verify;
use tessera_fuzz::{BADGES, GOLDEN_NOW, golden};

fn check_list(bytes: &[u8], result: &Result<CheckedTrustList, TrustListError>) {
    let g = golden();
    let Ok(list) = result else {
        return;
    };
    assert_eq!(list.signed_bytes(), bytes);
    assert_ne!(list.freshness(GOLDEN_NOW), Freshness::Sunset);
    assert!(list.issued_at() <= list.next_update());
    assert!(list.next_update() <= list.sunset_at());
    for entry in list.entries() {
        let found = list.by_key_id(&entry.cert().key_id());
        assert_eq!(found, Some(entry));
        assert!(entry.cert().not_before() <= entry.cert().not_after());
    }
    // Whatever the list says, verifying against it must not panic, and a
    // badge can only pass if its signer is listed and active.
    for badge in BADGES {
        if let Ok(v) = verify(badge, list, GOLDEN_NOW) {
            let entry = list.by_key_id(&v.key_id());
            assert!(entry.is_some_and(|e| !e.is_revoked()));
        }
    }
    // A held list accepts itself again, and the golden list's rollback
    // rule holds.
    assert!(list.verify_successor(bytes, &g.root, GOLDEN_NOW).is_ok());
    let successor = g.list.verify_successor(bytes, &g.root, GOLDEN_NOW);
    if list.sequence() < g.list.sequence() {
        assert!(matches!(successor, Err(TrustListError::Rollback { .. })));
    } else if list.sequence() > g.list.sequence() {
        assert!(successor.is_ok());
    }
}

fuzz_target!(|data: &[u8]| {
    let g = golden();

    // 1. As received from the gateway.
    let received = CheckedTrustList::verify(data, &g.root, GOLDEN_NOW);
    check_list(data, &received);
    let _ = g.list.verify_successor(data, &g.root, GOLDEN_NOW);

    // 2. As a payload the golden signer signed.
    if let Some(signed) = g.sign_list(data) {
        let result = CheckedTrustList::verify(&signed, &g.root, GOLDEN_NOW);
        assert!(!matches!(
            result,
            Err(TrustListError::BadSignature
                | TrustListError::UntrustedSigner(_)
                | TrustListError::SignerRole(_))
        ));
        if let Err(e) = &result {
            assert!(!e.to_string().is_empty());
        }
        check_list(&signed, &result);
    }
});
