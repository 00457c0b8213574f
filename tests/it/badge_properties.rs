//! Property tests: round-trips, single-byte tampering, and decoders that never
//! panic on arbitrary input.

use std::sync::OnceLock;

use proptest::prelude::*;
use prost::Message;
use tessera_core::badge::{BadgeClaims, BadgeSigner, Colour, Envelope, HolderHint};
use tessera_core::trust::CheckedTrustList;
use tessera_core::{BadgeId, CertInfo, CityCode, TrustAnchor, text, verify, verify_text};
use tessera_proto::v1 as pb;
use tessera_tests::{DAY, NOW, TestPki};

struct Fixture {
    pki: TestPki,
    city: CityCode,
    list: CheckedTrustList,
    signer: BadgeSigner,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mut pki = TestPki::new(NOW).unwrap();
        let city = pki.add_city(330_100, "Hangzhou", "127.0.0.1:7001").unwrap();
        let list =
            CheckedTrustList::verify(&pki.trust_list(1).unwrap(), &pki.anchor().unwrap(), NOW)
                .unwrap();
        let signer = pki.badge_signer(city).unwrap();
        Fixture {
            pki,
            city,
            list,
            signer,
        }
    })
}

fn arb_claims() -> impl Strategy<Value = BadgeClaims> {
    (
        any::<[u8; 16]>(),
        prop_oneof![Just(Colour::Green), Just(Colour::Yellow), Just(Colour::Red)],
        -3600i64..3600,
        1i64..30 * DAY,
        1..=u32::MAX,
        "\\PC{0,12}",
        "([0-9]{3}[0-9X]([0-9X]{0,14})?)?",
    )
        .prop_map(
            |(id, colour, offset, length, policy, name, idn)| BadgeClaims {
                issuer_city: fixture().city,
                badge_id: BadgeId::from_bytes(id),
                colour,
                issued_at: NOW + offset,
                valid_until: NOW + offset + length,
                policy_version: policy,
                holder_hint: HolderHint::mask(&name, &idn),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn claims_round_trip_through_signing_text_and_verification(claims in arb_claims()) {
        let f = fixture();
        let bytes = f.signer.sign(&claims).unwrap();
        prop_assert!(bytes.len() <= 160, "envelope of {} bytes", bytes.len());
        let text_form = text::to_text(&bytes);
        prop_assert_eq!(text::from_text(&text_form, 512).unwrap(), bytes.clone());
        let now = claims.issued_at;
        let verified = verify_text(&text_form, &f.list, now).unwrap();
        prop_assert_eq!(verified.claims(), &claims);
        prop_assert_eq!(BadgeClaims::decode(&claims.encode().unwrap()).unwrap(), claims);
    }

    #[test]
    fn flipping_any_byte_of_payload_key_id_or_signature_fails(
        claims in arb_claims(),
        field in 0usize..3,
        index in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let f = fixture();
        let bytes = f.signer.sign(&claims).unwrap();
        let mut msg = pb::SignedBadge::decode(bytes.as_slice()).unwrap();
        let target = match field {
            0 => &mut msg.payload,
            1 => &mut msg.key_id,
            _ => &mut msg.signature,
        };
        let i = index.index(target.len());
        target[i] ^= 1 << bit;
        let now = claims.issued_at;
        prop_assert!(verify(&msg.encode_to_vec(), &f.list, now).is_err());
    }

    #[test]
    fn flipping_any_byte_of_the_encoded_envelope_fails(
        claims in arb_claims(),
        index in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let f = fixture();
        let mut bytes = f.signer.sign(&claims).unwrap();
        let i = index.index(bytes.len());
        bytes[i] ^= 1 << bit;
        let now = claims.issued_at;
        prop_assert!(verify(&bytes, &f.list, now).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic_any_decoder(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let f = fixture();
        let _ = Envelope::decode(&bytes);
        let _ = verify(&bytes, &f.list, NOW);
        let _ = BadgeClaims::decode(&bytes);
        let _ = CheckedTrustList::verify(&bytes, &TrustAnchor::from_der(f.pki.root.der()).unwrap(), NOW);
        let _ = CertInfo::parse(&bytes);
        let _ = TrustAnchor::from_der(&bytes);
    }

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,300}") {
        let f = fixture();
        let _ = text::from_text(&s, 512);
        let _ = verify_text(&s, &f.list, NOW);
        let prefixed = format!("TB1:{s}");
        let _ = verify_text(&prefixed, &f.list, NOW);
    }

    #[test]
    fn base45_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        prop_assert_eq!(text::base45_decode(&text::base45_encode(&bytes), 0).unwrap(), bytes);
    }

    #[test]
    fn mutated_certificates_never_panic(index in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let f = fixture();
        let mut der = f.pki.gateway.der.clone();
        let i = index.index(der.len());
        der[i] = byte;
        let _ = CertInfo::parse(&der);
        let _ = CertInfo::parse_issued_by(&der, &TrustAnchor::from_der(f.pki.root.der()).unwrap());
    }

    #[test]
    fn mutated_trust_lists_never_verify(index in any::<prop::sample::Index>(), bit in 0u8..8) {
        let f = fixture();
        let mut bytes = f.list.signed_bytes().to_vec();
        let i = index.index(bytes.len());
        bytes[i] ^= 1 << bit;
        let root = TrustAnchor::from_der(f.pki.root.der()).unwrap();
        prop_assert!(CheckedTrustList::verify(&bytes, &root, NOW).is_err());
    }
}

#[test]
fn envelope_size_of_a_typical_badge() {
    let f = fixture();
    let claims = tessera_tests::claims(f.city, NOW);
    let bytes = f.signer.sign(&claims).unwrap();
    let text_form = text::to_text(&bytes);
    println!(
        "typical badge: payload {} bytes, envelope {} bytes, text {} characters",
        claims.encode().unwrap().len(),
        bytes.len(),
        text_form.len()
    );
    assert!(
        bytes.len() <= 160,
        "envelope of {} bytes exceeds 160",
        bytes.len()
    );
}
