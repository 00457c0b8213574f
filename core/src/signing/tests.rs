use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::traits::IsIdentity;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::crafted::{self, Crafted, Kind};
use super::rule::is_canonical;
use super::*;

#[test]
fn contexts_do_not_cross() {
    let key = SigningKey::from_bytes(&[7; 32]);
    let sig = sign(BADGE_CONTEXT, b"payload", &key).unwrap();
    let public = key.verifying_key();
    assert!(verify(BADGE_CONTEXT, b"payload", &sig, &public));
    assert!(!verify(TRUST_LIST_CONTEXT, b"payload", &sig, &public));
    assert!(!verify(BADGE_CONTEXT, b"payloae", &sig, &public));
}

#[test]
fn input_layout_is_context_length_payload() {
    let input = signing_input(b"ctx", b"ab").unwrap();
    assert_eq!(input, b"ctx\0\0\0\x02ab");
}

fn signed(seed: u8, payload: &'static [u8]) -> (&'static [u8], Signature, VerifyingKey) {
    let key = SigningKey::from_bytes(&[seed; 32]);
    let sig = sign(BADGE_CONTEXT, payload, &key).unwrap();
    (payload, sig, key.verifying_key())
}

#[test]
fn batch_holds_only_when_every_signature_does() {
    let good = [signed(1, b"one"), signed(2, b"two"), signed(3, b"three")];
    let items: Vec<BatchItem<'_>> = good.iter().map(|(p, s, k)| (*p, s, k)).collect();
    assert!(verify_batch(BADGE_CONTEXT, &items));
    assert_eq!(verify_each(BADGE_CONTEXT, &items), [true; 3]);
    assert!(!verify_batch(TRUST_LIST_CONTEXT, &items));
    assert!(verify_batch(BADGE_CONTEXT, &[]));
    assert!(verify_each(BADGE_CONTEXT, &[]).is_empty());
    let mut bad = items.clone();
    bad[1].0 = b"tw0";
    assert!(!verify_batch(BADGE_CONTEXT, &bad));
    assert_eq!(verify_each(BADGE_CONTEXT, &bad), [true, false, true]);
}

#[test]
fn a_weak_key_that_would_let_anyone_forge_is_refused_alone_and_in_a_batch() {
    // Key and R both the identity point, S = 0: [8](SB − R − kA) is the
    // identity for every message, and only step 2 stands in the way.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = VerifyingKey::from_bytes(&identity).unwrap();
    let mut forged = [0u8; 64];
    forged[..32].copy_from_slice(&identity);
    let sig = Signature::from_bytes(&forged);
    assert!(!verify(BADGE_CONTEXT, b"anything", &sig, &weak));
    let item: BatchItem<'_> = (b"anything", &sig, &weak);
    assert!(!verify_batch(BADGE_CONTEXT, &[item]));
    let (p, s, k) = signed(4, b"good");
    assert_eq!(
        verify_each(BADGE_CONTEXT, &[item, (p, &s, &k)]),
        [false, true]
    );
}

#[test]
fn canonical_encodings_are_exactly_y_below_p_without_a_sign_on_x_zero() {
    let le = |low: u8, high: u8| {
        let mut e = [0xff; 32];
        e[0] = low;
        e[31] = high;
        e
    };
    let small = |y: u8, sign: bool| {
        let mut e = [0; 32];
        e[0] = y;
        e[31] = if sign { 0x80 } else { 0 };
        e
    };
    // p − 1, p, p + 18 = 2^255 − 1; then the same with the sign bit.
    assert!(is_canonical(&le(0xec, 0x7f)));
    assert!(!is_canonical(&le(0xed, 0x7f)));
    assert!(!is_canonical(&le(0xff, 0x7f)));
    assert!(!is_canonical(&le(0xec, 0xff)), "x = 0 for y = p − 1");
    assert!(!is_canonical(&le(0xed, 0xff)));
    assert!(is_canonical(&le(0xeb, 0xff)));
    assert!(is_canonical(&small(1, false)));
    assert!(!is_canonical(&small(1, true)), "x = 0 for y = 1");
    assert!(is_canonical(&small(0, true)), "x = ±√−1 for y = 0");
    assert!(is_canonical(&small(2, true)));
}

#[test]
fn the_crafted_sets_are_what_the_rule_speaks_of() {
    // 8 distinct points of order dividing 8, the identity first.
    for (i, t) in EIGHT_TORSION.iter().enumerate() {
        assert!(t.mul_by_cofactor().is_identity());
        assert_eq!(t.is_identity(), i == 0);
        assert_eq!(EIGHT_TORSION.iter().filter(|u| *u == t).count(), 1);
    }
    // 8 canonical encodings and 6 non-canonical ones: y = 0 and y = 1 as
    // y + p with either sign, and the sign bit on y = 1 and y = p − 1.
    let encodings = crafted::small_order_encodings();
    assert_eq!(encodings.len(), 14);
    assert_eq!(encodings.iter().filter(|e| is_canonical(e)).count(), 8);
    assert!(!crafted::non_canonical_large_order().is_empty());
    // The crafted key expansion is RFC 8032's: a good crafted signature is
    // byte for byte the one ed25519-dalek makes.
    let key = SigningKey::from_bytes(&[9; 32]);
    let good = crafted::craft(&key, b"input", Kind::Good).unwrap();
    assert_eq!(good.signature, key.sign(b"input"));
}

/// Every crafted kind over `input`, with a real key and with hostile keys.
fn all_crafted(key: &SigningKey, input: &[u8]) -> Vec<Crafted> {
    Kind::with_real_key()
        .into_iter()
        .chain(Kind::with_hostile_key())
        .map(|kind| crafted::craft(key, input, kind).unwrap())
        .collect()
}

#[test]
fn every_crafted_signature_gets_the_rules_verdict_alone_and_batched() {
    let key = SigningKey::from_bytes(&[11; 32]);
    let payload = b"a badge payload";
    let input = signing_input(BADGE_CONTEXT, payload).unwrap();
    let all = all_crafted(&key, &input);
    assert_eq!(all.iter().filter(|c| c.kind.holds()).count(), 8);
    let (gp, gs, gk) = signed(12, b"neighbour");
    for c in &all {
        let want = c.kind.holds();
        let item: BatchItem<'_> = (payload, &c.signature, &c.key);
        assert_eq!(
            verify(BADGE_CONTEXT, payload, &c.signature, &c.key),
            want,
            "{:?}",
            c.kind
        );
        assert_eq!(verify_batch(BADGE_CONTEXT, &[item]), want, "{:?}", c.kind);
        let pair = [(gp, &gs, &gk), item];
        assert_eq!(
            verify_each(BADGE_CONTEXT, &pair),
            [true, want],
            "{:?}",
            c.kind
        );
        assert_eq!(verify_batch(BADGE_CONTEXT, &pair), want, "{:?}", c.kind);
    }
    // What changed: cofactorless strict verification refuses torsion in R.
    for c in all.iter().filter(|c| matches!(c.kind, Kind::TorsionInR(_))) {
        assert!(c.key.verify_strict(&input, &c.signature).is_err());
    }
}

#[test]
fn random_batches_of_crafted_signatures_agree_with_the_rule() {
    let keys: Vec<SigningKey> = (20..24).map(|s| SigningKey::from_bytes(&[s; 32])).collect();
    let payloads: Vec<Vec<u8>> = (0..3u8).map(|n| vec![n; 40]).collect();
    let mut pool: Vec<(usize, Crafted)> = vec![];
    for key in &keys {
        for (p, payload) in payloads.iter().enumerate() {
            let input = signing_input(BADGE_CONTEXT, payload).unwrap();
            pool.extend(all_crafted(key, &input).into_iter().map(|c| (p, c)));
        }
    }
    let mut rng = StdRng::seed_from_u64(0x7e55_e7a1);
    for round in 0..300 {
        let n = rng.gen_range(1..=80);
        let picks: Vec<&(usize, Crafted)> = (0..n)
            .map(|_| &pool[rng.gen_range(0..pool.len())])
            .collect();
        let items: Vec<BatchItem<'_>> = picks
            .iter()
            .map(|(p, c)| (payloads[*p].as_slice(), &c.signature, &c.key))
            .collect();
        let want: Vec<bool> = picks.iter().map(|(_, c)| c.kind.holds()).collect();
        assert_eq!(verify_each(BADGE_CONTEXT, &items), want, "round {round}");
        assert_eq!(
            verify_batch(BADGE_CONTEXT, &items),
            want.iter().all(|w| *w),
            "round {round}"
        );
    }
}
