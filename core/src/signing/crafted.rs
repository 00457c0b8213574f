//! Hostile Ed25519 signatures, made on purpose, for tests of the signature
//! rule (see [`crate::signing`]): torsion in `R`, small-order and
//! non-canonical `R` and `A`, `S ≥ L`. Built only for tests (the
//! `crafted-signatures` feature); nothing real is ever signed with it.
//!
//! Each [`Crafted`] carries, in its [`Kind`], the verdict the rule gives it,
//! known from how it was made, so a test compares an implementation against
//! the rule and not against itself. The secret scalar and nonce are derived
//! from the key's seed as RFC 8032 (5.1.5, 5.1.6) says.

use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha512};

/// L = 2^252 + 27742317777372353535851937790883648493, little-endian.
pub const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// p = 2^255 − 19, little-endian.
const P: [u8; 32] = [
    0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
];

/// How a signature was made, and so what the rule says of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An ordinary RFC 8032 signature.
    Good,
    /// `R = rB + T` for the small-order `T = EIGHT_TORSION[i]` (i in 1..8),
    /// `S = r + k·a` for that `R`: holds by the cofactored equation.
    TorsionInR(usize),
    /// `R` is a small-order point, encoded as given (canonically or not), and
    /// `S = k·a`: the equation holds, step 3 refuses it.
    SmallOrderR([u8; 32]),
    /// `R` encoded with `y ≥ p`, a point not of small order: step 3.
    NonCanonicalR([u8; 32]),
    /// `S + L` in place of a good `S`: step 1.
    SPlusL,
    /// `S = L`: step 1.
    SEqualsL,
    /// A small-order key, encoded as given (canonically or not), with
    /// `R = rB`, `S = r`: the equation holds for any message, step 2 refuses.
    SmallOrderA([u8; 32]),
    /// A key encoded with `y ≥ p`, a point not of small order: step 2.
    NonCanonicalA([u8; 32]),
}

impl Kind {
    /// Whether the signature rule accepts a signature made this way.
    pub fn holds(&self) -> bool {
        matches!(self, Kind::Good | Kind::TorsionInR(_))
    }

    /// Every kind made with a real key: good, the 7 torsions, the small-order
    /// and non-canonical `R`, and the two `S ≥ L`.
    pub fn with_real_key() -> Vec<Kind> {
        let mut kinds = vec![Kind::Good];
        kinds.extend((1..8).map(Kind::TorsionInR));
        kinds.extend(small_order_encodings().into_iter().map(Kind::SmallOrderR));
        kinds.extend(
            non_canonical_large_order()
                .into_iter()
                .map(Kind::NonCanonicalR),
        );
        kinds.extend([Kind::SPlusL, Kind::SEqualsL]);
        kinds
    }

    /// Every kind whose key is itself hostile.
    pub fn with_hostile_key() -> Vec<Kind> {
        let mut kinds: Vec<Kind> = small_order_encodings()
            .into_iter()
            .map(Kind::SmallOrderA)
            .collect();
        kinds.extend(
            non_canonical_large_order()
                .into_iter()
                .map(Kind::NonCanonicalA),
        );
        kinds
    }
}

/// A crafted signature and the key it is to be checked against.
#[derive(Debug, Clone)]
pub struct Crafted {
    /// How it was made.
    pub kind: Kind,
    /// The signature.
    pub signature: Signature,
    /// The key: `key`'s own, or the hostile one of the kind.
    pub key: VerifyingKey,
}

/// The 8 small-order points' canonical encodings, then every non-canonical
/// encoding of one (`y ≥ p`, or the sign bit set on a point with `x = 0`)
/// that decodes.
pub fn small_order_encodings() -> Vec<[u8; 32]> {
    let canonical: Vec<[u8; 32]> = EIGHT_TORSION.iter().map(|t| t.compress().0).collect();
    let sign_flipped = canonical.iter().map(|c| {
        let mut c = *c;
        c[31] |= 0x80;
        c
    });
    let non_canonical: Vec<[u8; 32]> = y_at_least_p()
        .chain(sign_flipped)
        .filter(|e| !canonical.contains(e))
        .filter(|e| decodes_to(e, EdwardsPoint::is_small_order))
        .collect();
    canonical.into_iter().chain(non_canonical).collect()
}

/// Encodings with `y ≥ p` of points not of small order.
pub fn non_canonical_large_order() -> Vec<[u8; 32]> {
    y_at_least_p()
        .filter(|e| decodes_to(e, |p| !p.is_small_order()))
        .collect()
}

/// Every 32-byte string whose `y` is `p + j` (j = 0..18, the only `y ≥ p`
/// below 2^255), with either sign bit.
fn y_at_least_p() -> impl Iterator<Item = [u8; 32]> {
    (0..19u8).flat_map(|j| {
        let mut e = P;
        e[0] += j;
        let mut signed = e;
        signed[31] |= 0x80;
        [e, signed]
    })
}

fn decodes_to(encoding: &[u8; 32], test: impl Fn(&EdwardsPoint) -> bool) -> bool {
    CompressedEdwardsY(*encoding)
        .decompress()
        .is_some_and(|p| test(&p))
}

/// SHA-512 of `parts`, little-endian, mod L.
fn hash_to_scalar(parts: &[&[u8]]) -> Scalar {
    let mut hash = Sha512::new();
    for part in parts {
        hash.update(part);
    }
    Scalar::from_bytes_mod_order_wide(&hash.finalize().into())
}

fn signature(r: &[u8; 32], s: &[u8; 32]) -> Signature {
    let mut bytes = [0u8; 64];
    bytes[..32].copy_from_slice(r);
    bytes[32..].copy_from_slice(s);
    Signature::from_bytes(&bytes)
}

/// `a + b` of two 256-bit little-endian integers (both below 2^255 here).
fn add(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut sum = [0u8; 32];
    let mut carry = 0u16;
    for (out, (x, y)) in sum.iter_mut().zip(a.iter().zip(b)) {
        let s = u16::from(*x) + u16::from(*y) + carry;
        *out = s.to_le_bytes()[0];
        carry = s >> 8;
    }
    sum
}

/// A secret key as RFC 8032 expands it: the clamped scalar `a` and the
/// nonce prefix.
struct Expanded {
    a: Scalar,
    prefix: [u8; 32],
    public: [u8; 32],
}

impl Expanded {
    fn new(key: &SigningKey) -> Self {
        let h = Sha512::digest(key.to_bytes());
        let mut clamped = [0u8; 32];
        clamped.copy_from_slice(&h[..32]);
        clamped[0] &= 248;
        clamped[31] &= 127;
        clamped[31] |= 64;
        let mut prefix = [0u8; 32];
        prefix.copy_from_slice(&h[32..]);
        let a = Scalar::from_bytes_mod_order(clamped);
        let public = EdwardsPoint::mul_base(&a).compress().0;
        Self { a, prefix, public }
    }

    /// `R_bytes || S` for `R = rB + extra` and `S = r + k·a`, `r` the nonce.
    fn sign_with(&self, input: &[u8], extra: &EdwardsPoint) -> ([u8; 32], [u8; 32]) {
        let r = hash_to_scalar(&[&self.prefix, input]);
        let big_r = (EdwardsPoint::mul_base(&r) + extra).compress().0;
        let k = hash_to_scalar(&[&big_r, &self.public, input]);
        (big_r, (r + k * self.a).to_bytes())
    }
}

/// A signature of `kind` over the signing input `input`: made with `key`
/// for the kinds of [`Kind::with_real_key`], with the kind's own key for the
/// others. `None` only if a hostile key does not decode.
pub fn craft(key: &SigningKey, input: &[u8], kind: Kind) -> Option<Crafted> {
    let expanded = Expanded::new(key);
    let identity = EIGHT_TORSION[0];
    let (signature, key) = match kind {
        Kind::Good => {
            let (r, s) = expanded.sign_with(input, &identity);
            (signature(&r, &s), key.verifying_key())
        }
        Kind::TorsionInR(i) => {
            let (r, s) = expanded.sign_with(input, EIGHT_TORSION.get(i)?);
            (signature(&r, &s), key.verifying_key())
        }
        Kind::SmallOrderR(r) | Kind::NonCanonicalR(r) => {
            let k = hash_to_scalar(&[&r, &expanded.public, input]);
            (
                signature(&r, &(k * expanded.a).to_bytes()),
                key.verifying_key(),
            )
        }
        Kind::SPlusL | Kind::SEqualsL => {
            let (r, s) = expanded.sign_with(input, &identity);
            let s = if kind == Kind::SPlusL { add(&s, &L) } else { L };
            (signature(&r, &s), key.verifying_key())
        }
        Kind::SmallOrderA(a) | Kind::NonCanonicalA(a) => {
            let r = hash_to_scalar(&[&expanded.prefix, &a, input]);
            let big_r = EdwardsPoint::mul_base(&r).compress().0;
            (
                signature(&big_r, &r.to_bytes()),
                VerifyingKey::from_bytes(&a).ok()?,
            )
        }
    };
    Some(Crafted {
        kind,
        signature,
        key,
    })
}
