//! The signature rule's steps (see [`crate::signing`]): the preconditions,
//! once per signature, then the cofactored equation, alone or summed over a
//! batch.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha512};

/// p = 2^255 − 19, little-endian.
const P: [u8; 32] = {
    let mut p = [0xff; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
};

/// y = 1 (the identity's y) and y = p − 1 (the point of order 2's y): the
/// only two y with x = 0, little-endian.
const Y_ONE: [u8; 32] = {
    let mut y = [0; 32];
    y[0] = 1;
    y
};
const Y_MINUS_ONE: [u8; 32] = {
    let mut y = P;
    y[0] = 0xec;
    y
};

/// Domain label of the batch coefficients' hash.
const BATCH_LABEL: &[u8] = b"tessera/ed25519-batch-coefficients/v1";

/// Whether `bytes` is the canonical encoding of a point, if it is one:
/// `y < p`, and no sign bit on a point with `x = 0`. (Whether `y` is on the
/// curve at all is for decompression to say.)
pub(crate) fn is_canonical(bytes: &[u8; 32]) -> bool {
    let mut y = *bytes;
    let sign_bit = y[31] >> 7 == 1;
    y[31] &= 0x7f;
    // Little-endian: compare from the most significant byte down.
    let below_p = y.iter().rev().cmp(P.iter().rev()) == Ordering::Less;
    let x_is_zero = y == Y_ONE || y == Y_MINUS_ONE;
    below_p && !(x_is_zero && sign_bit)
}

/// Steps 2 and 3: a canonical encoding of a point that is not of small order.
fn checked_point(bytes: &[u8; 32]) -> Option<EdwardsPoint> {
    if !is_canonical(bytes) {
        return None;
    }
    let point = CompressedEdwardsY(*bytes).decompress()?;
    (!point.is_small_order()).then_some(point)
}

/// SHA-512 of `parts`, read little-endian and reduced mod L.
fn hash_to_scalar(parts: &[&[u8]]) -> Scalar {
    let mut hash = Sha512::new();
    for part in parts {
        hash.update(part);
    }
    Scalar::from_bytes_mod_order_wide(&hash.finalize().into())
}

/// A signature that passed steps 1 to 4: everything the equation needs.
pub(crate) struct Checked<'a> {
    input: &'a [u8],
    signature: &'a Signature,
    key: &'a VerifyingKey,
    s: Scalar,
    r: EdwardsPoint,
    a: EdwardsPoint,
    k: Scalar,
}

impl<'a> Checked<'a> {
    /// Steps 1 to 4 for `signature` by `key` over the signing input `input`;
    /// `None` if any precondition fails.
    pub(crate) fn new(
        input: &'a [u8],
        signature: &'a Signature,
        key: &'a VerifyingKey,
    ) -> Option<Self> {
        let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(*signature.s_bytes()))?;
        let a_bytes = key.as_bytes();
        if !is_canonical(a_bytes) {
            return None;
        }
        // A VerifyingKey always holds the decompression of its bytes.
        let a = key.to_edwards();
        if a.is_small_order() {
            return None;
        }
        let r_bytes = signature.r_bytes();
        let r = checked_point(r_bytes)?;
        let k = hash_to_scalar(&[r_bytes, a_bytes, input]);
        Some(Self {
            input,
            signature,
            key,
            s,
            r,
            a,
            k,
        })
    }

    /// Step 5: `[8]([S]B − R − [k]A)` is the identity.
    pub(crate) fn holds(&self) -> bool {
        let sb_minus_ka =
            EdwardsPoint::vartime_double_scalar_mul_basepoint(&self.k, &-self.a, &self.s);
        (sb_minus_ka - self.r).mul_by_cofactor().is_identity()
    }
}

/// The batch's coefficients `z_i`: 128 bits each, from SHA-512 over every
/// input of the batch, so a signer cannot choose them and no random source
/// is needed.
fn coefficients(context: &[u8], batch: &[&Checked<'_>]) -> Vec<Scalar> {
    let mut transcript = Sha512::new();
    transcript.update(BATCH_LABEL);
    transcript.update((context.len() as u64).to_le_bytes());
    transcript.update(context);
    transcript.update((batch.len() as u64).to_le_bytes());
    for item in batch {
        transcript.update(item.key.as_bytes());
        transcript.update(item.signature.to_bytes());
        transcript.update((item.input.len() as u64).to_le_bytes());
        transcript.update(item.input);
    }
    let seed = transcript.finalize();
    (0..batch.len() as u64)
        .map(|i| {
            let block = Sha512::new()
                .chain_update(seed)
                .chain_update(i.to_le_bytes())
                .finalize();
            let mut z = [0u8; 16];
            z.copy_from_slice(&block[..16]);
            Scalar::from(u128::from_le_bytes(z))
        })
        .collect()
}

/// Whether `[8](Σ z_i R_i + Σ z_i k_i A_i − (Σ z_i S_i) B)` is the identity:
/// true whenever every item holds alone, and (but for a 2^-128 chance) only
/// then. Items signed by the same key share one term for it.
pub(crate) fn batch_holds(context: &[u8], batch: &[&Checked<'_>]) -> bool {
    let z = coefficients(context, batch);
    let mut b_coefficient = Scalar::ZERO;
    let mut by_key: BTreeMap<&[u8; 32], (Scalar, EdwardsPoint)> = BTreeMap::new();
    for (item, z) in batch.iter().zip(&z) {
        b_coefficient -= z * item.s;
        by_key
            .entry(item.key.as_bytes())
            .or_insert((Scalar::ZERO, item.a))
            .0 += z * item.k;
    }
    let scalars = std::iter::once(b_coefficient)
        .chain(z.iter().copied())
        .chain(by_key.values().map(|(za, _)| *za));
    let points = std::iter::once(ED25519_BASEPOINT_POINT)
        .chain(batch.iter().map(|item| item.r))
        .chain(by_key.values().map(|(_, a)| *a));
    EdwardsPoint::vartime_multiscalar_mul(scalars, points)
        .mul_by_cofactor()
        .is_identity()
}
