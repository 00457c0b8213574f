//! QR text → envelope → verify, against the golden trust list.
//!
//! Each input is tried three ways: as scanned text (`verify_text`), as
//! envelope bytes (`verify`, and `verify_batch` next to a good badge), and
//! as a claims payload signed by the golden badge signer, which is the only
//! way to reach the checks after the signature (claims, issuer, window).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::badge::MAX_ENVELOPE_LEN;
use tessera_core::text;
use tessera_core::verify::CLOCK_SKEW_SECS;
use tessera_core::{VerifyError, verify, verify_batch, verify_text};
use tessera_fuzz::{BADGES, GOLDEN_NOW, golden};
use tessera_proto::v1 as pb;

fn check_result(result: &Result<tessera_core::VerifiedBadge, VerifyError>) {
    match result {
        Ok(badge) => {
            let claims = badge.claims();
            assert!(claims.issued_at <= GOLDEN_NOW + CLOCK_SKEW_SECS);
            assert!(GOLDEN_NOW <= claims.valid_until);
            assert!(claims.issued_at < claims.valid_until);
            assert_eq!(badge.issuer_name(), "Hangzhou");
            let verdict = badge.verdict(GOLDEN_NOW, "");
            assert_eq!(verdict.outcome, pb::Outcome::Valid as i32);
        }
        Err(e) => {
            let verdict = e.verdict(GOLDEN_NOW);
            assert_ne!(verdict.outcome, pb::Outcome::Valid as i32);
            assert!(!verdict.detail.is_empty());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let g = golden();

    // 1. The input as scanned QR text.
    if let Ok(scanned) = std::str::from_utf8(data) {
        let by_text = verify_text(scanned, &g.list, GOLDEN_NOW);
        check_result(&by_text);
        match text::from_text(scanned, MAX_ENVELOPE_LEN) {
            Ok(envelope) => {
                // base45 has one encoding per byte string: text that decodes
                // is exactly the encoding of what it decodes to.
                assert_eq!(text::to_text(&envelope), scanned.trim());
                assert_eq!(by_text, verify(&envelope, &g.list, GOLDEN_NOW));
            }
            Err(e) => assert_eq!(by_text, Err(VerifyError::Text(e))),
        }
    }

    // 2. The input as envelope bytes; the batch verifier must give the
    //    single verifier's answer for it, and not spoil a good neighbour.
    let alone = verify(data, &g.list, GOLDEN_NOW);
    check_result(&alone);
    let batch = verify_batch(&[data, BADGES[0]], &g.list, GOLDEN_NOW);
    assert_eq!(batch.len(), 2);
    assert_eq!(batch[0], alone);
    assert_eq!(batch[1], verify(BADGES[0], &g.list, GOLDEN_NOW));
    assert!(batch[1].is_ok());

    // 3. The input as claims signed by the golden badge signer.
    if let Some(envelope) = g.sign_badge(data) {
        let signed = verify(&envelope, &g.list, GOLDEN_NOW);
        check_result(&signed);
        assert!(!matches!(
            signed,
            Err(VerifyError::BadSignature | VerifyError::UnknownSigner(_))
        ));
        if envelope.len() <= MAX_ENVELOPE_LEN {
            let as_text = text::to_text(&envelope);
            assert_eq!(verify_text(&as_text, &g.list, GOLDEN_NOW), signed);
        }
        let batch = verify_batch(&[&envelope, BADGES[1]], &g.list, GOLDEN_NOW);
        assert_eq!(batch[0], signed);
        assert!(batch[1].is_ok());
    }
});
