//! One verdict per badge: crafted torsion, small-order, non-canonical and
//! `S ≥ L` badges, signed with real badge-signer keys, mixed with good and
//! tampered badges in many random batches, each get the verdict the
//! signature rule gives them, the same as [`verify`] gives, wherever they sit.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::verify_batch;
use crate::badge::Envelope;
use crate::signing::crafted::{self, Kind};
use crate::signing::{BADGE_CONTEXT, signing_input};
use crate::test_pki::{NOW, TestPki, claims};
use crate::verify::{VerifyError, verify};

const CITIES: [u32; 3] = [330_100, 330_100, 420_100];

/// A badge and the verdict the rule gives it: `true` for VALID, `false`
/// for BAD_SIGNATURE.
struct Pooled {
    envelope: Vec<u8>,
    valid: bool,
    what: String,
}

/// Every crafted kind by each of three signers, over two payloads each, and
/// one tampered good badge per payload (its equation fails, so a batch
/// holding it falls back to single checks).
fn pool() -> (crate::CheckedTrustList, Vec<Pooled>) {
    let pki = TestPki::new();
    let signers: Vec<_> = CITIES.iter().map(|c| pki.badge_signer(*c)).collect();
    let list = pki.trust_list(signers.iter().map(|s| s.entry.clone()));
    let mut pool = vec![];
    let mut n = 0;
    for (signer, city) in signers.iter().zip(CITIES) {
        for _ in 0..2 {
            n += 1;
            let payload = claims(city, n).encode().unwrap();
            let input = signing_input(BADGE_CONTEXT, &payload).unwrap();
            for kind in Kind::with_real_key() {
                let c = crafted::craft(&signer.key, &input, kind).unwrap();
                let envelope = Envelope {
                    payload: payload.clone(),
                    key_id: signer.key_id(),
                    signature: c.signature,
                };
                pool.push(Pooled {
                    envelope: envelope.encode(),
                    valid: kind.holds(),
                    what: format!("{kind:?} by signer of {city}"),
                });
                if kind == Kind::Good {
                    let mut bytes = envelope.signature.to_bytes();
                    bytes[40] ^= 0x10;
                    let tampered = Envelope {
                        signature: bytes.as_slice().try_into().unwrap(),
                        ..envelope
                    };
                    pool.push(Pooled {
                        envelope: tampered.encode(),
                        valid: false,
                        what: format!("tampered S by signer of {city}"),
                    });
                }
            }
        }
    }
    (list, pool)
}

#[test]
fn every_badge_gets_one_verdict_in_a_thousand_random_batches() {
    let (list, pool) = pool();
    // The single verdicts, once per distinct badge, against the rule.
    let single: Vec<Result<_, VerifyError>> = pool
        .iter()
        .map(|p| verify(&p.envelope, &list, NOW))
        .collect();
    for (p, v) in pool.iter().zip(&single) {
        match v {
            Ok(_) => assert!(p.valid, "{} verified", p.what),
            Err(e) => {
                assert!(!p.valid, "{} refused: {e}", p.what);
                assert_eq!(e, &VerifyError::BadSignature, "{}", p.what);
            }
        }
    }
    let (good, hostile): (Vec<usize>, Vec<usize>) = (0..pool.len()).partition(|i| pool[*i].valid);
    let mut rng = StdRng::seed_from_u64(0x0e7e_2d1c);
    for round in 0..1_000 {
        // Random size, random share of hostile badges, random positions.
        let n = rng.gen_range(1..=80);
        let hostile_share = rng.gen_range(0.0..=1.0);
        let picks: Vec<usize> = (0..n)
            .map(|_| {
                let from = if rng.gen_bool(hostile_share) {
                    &hostile
                } else {
                    &good
                };
                from[rng.gen_range(0..from.len())]
            })
            .collect();
        let envelopes: Vec<&[u8]> = picks.iter().map(|i| pool[*i].envelope.as_slice()).collect();
        let batch = verify_batch(&envelopes, &list, NOW);
        for (at, (i, got)) in picks.iter().zip(&batch).enumerate() {
            assert_eq!(
                got, &single[*i],
                "round {round}, item {at}: {}",
                pool[*i].what
            );
        }
    }
}
