#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code
//! What verifying a badge costs, against raw Ed25519 with the same key.
//!
//! `cargo bench -p tessera-core --bench verify` (release build, a few
//! minutes). Every key and certificate is made at start-up: a root, badge
//! signers and two signed trust lists, one of 10 entries and one of 10,000.
//!
//! - `raw_ed25519_verify`: ed25519-dalek's `verify_strict` (cofactorless, no
//!   longer what tessera uses; kept as the library's own figure) of a
//!   55-byte message under the badge signer's key;
//! - `signature_rule_verify`: `signing::verify`, the signature rule every
//!   badge, trust list and policy goes through, of the same payload;
//! - `badge_verify`, `badge_verify_10k_entries`: `tessera_core::verify` of a
//!   typical badge with each list;
//! - `batch_verify/N` vs `single_verify/N`: N distinct badges through
//!   `verify_batch` or N calls of `verify`, reported per badge.

#[path = "../src/test_pki.rs"]
mod test_pki;

use std::hint::black_box;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::Signer;
use tessera_core::signing::{self, BADGE_CONTEXT};
use tessera_core::{CheckedTrustList, verify, verify_batch};

use test_pki::{Leaf, NOW, TestPki, claims};

/// Badge signers in the small list (the trust-list signer is the tenth).
const SMALL_SIGNERS: usize = 9;
/// Entries of the large list, the trust-list signer's included.
const LARGE_ENTRIES: usize = 10_000;
/// Batch sizes.
const BATCHES: [usize; 3] = [16, 64, 256];

/// City `i` of a made-up but valid numbering: provinces 11 to 82, cities
/// 01 to 99 in each.
fn city_code(i: usize) -> u32 {
    let i = u32::try_from(i).unwrap();
    (11 + i / 9_900 % 72) * 10_000 + (i / 99 % 100) * 100 + (i % 99 + 1)
}

struct Setup {
    signers: Vec<Leaf>,
    small: CheckedTrustList,
    large: CheckedTrustList,
}

fn setup() -> Setup {
    let started = Instant::now();
    let pki = TestPki::new();
    let signers: Vec<Leaf> = (0..SMALL_SIGNERS)
        .map(|i| pki.badge_signer(city_code(i)))
        .collect();
    let small = pki.trust_list(signers.iter().map(|s| s.entry.clone()));
    let extra = LARGE_ENTRIES - 1 - SMALL_SIGNERS;
    let large = pki.trust_list(
        signers
            .iter()
            .map(|s| s.entry.clone())
            .chain((0..extra).map(|i| pki.badge_signer(city_code(SMALL_SIGNERS + i)).entry)),
    );
    assert_eq!(small.entries().len(), SMALL_SIGNERS + 1);
    assert_eq!(large.entries().len(), LARGE_ENTRIES);
    eprintln!(
        "set-up: {} entries issued, lists signed and checked in {:.1?} ({} bytes signed list)",
        LARGE_ENTRIES + SMALL_SIGNERS + 1,
        started.elapsed(),
        large.signed_bytes().len()
    );
    Setup {
        signers,
        small,
        large,
    }
}

/// `n` distinct badges, round robin over the small list's signers.
fn badges(setup: &Setup, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let signer = &setup.signers[i % setup.signers.len()];
            let code = signer.entry.code;
            signer
                .badge_signer()
                .sign(&claims(code, u64::try_from(i).unwrap()))
                .unwrap()
        })
        .collect()
}

fn single(c: &mut Criterion, setup: &Setup) {
    let signer = &setup.signers[0];
    let message = [0x5a_u8; 55];
    let signature = signer.key.sign(&message);
    let public = signer.key.verifying_key();
    c.bench_function("raw_ed25519_verify", |b| {
        b.iter(|| public.verify_strict(black_box(&message), black_box(&signature)))
    });
    let signature = signing::sign(BADGE_CONTEXT, &message, &signer.key).unwrap();
    assert!(signing::verify(
        BADGE_CONTEXT,
        &message,
        &signature,
        &public
    ));
    c.bench_function("signature_rule_verify", |b| {
        b.iter(|| signing::verify(BADGE_CONTEXT, black_box(&message), &signature, &public))
    });

    let envelope = badges(setup, 1).remove(0);
    eprintln!("typical badge: {} bytes of envelope", envelope.len());
    for (name, list) in [
        ("badge_verify", &setup.small),
        ("badge_verify_10k_entries", &setup.large),
    ] {
        verify(&envelope, list, NOW).unwrap();
        c.bench_function(name, |b| b.iter(|| verify(black_box(&envelope), list, NOW)));
    }
}

fn batched(c: &mut Criterion, setup: &Setup) {
    let mut group = c.benchmark_group("batch_vs_single");
    for n in BATCHES {
        let envelopes = badges(setup, n);
        let refs: Vec<&[u8]> = envelopes.iter().map(Vec::as_slice).collect();
        assert!(
            verify_batch(&refs, &setup.small, NOW)
                .iter()
                .all(Result::is_ok)
        );
        group.throughput(Throughput::Elements(u64::try_from(n).unwrap()));
        group.bench_with_input(BenchmarkId::new("batch_verify", n), &refs, |b, refs| {
            b.iter(|| verify_batch(black_box(refs), &setup.small, NOW))
        });
        group.bench_with_input(BenchmarkId::new("single_verify", n), &refs, |b, refs| {
            b.iter(|| {
                refs.iter()
                    .map(|e| verify(black_box(e), &setup.small, NOW))
                    .collect::<Vec<_>>()
            })
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    let setup = setup();
    single(c, &setup);
    batched(c, &setup);
}

criterion_group!(verify_benches, benches);
criterion_main!(verify_benches);
