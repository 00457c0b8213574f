//! Bytes the vectors need that tessera's own signing code refuses to make:
//! claims with any field value, envelopes of any shape, and Ed25519
//! signatures with chosen `R`, `S` and keys (small-order, torsion,
//! non-canonical encodings). Pure arithmetic on curve25519-dalek; nothing
//! here runs a verifier.

use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::SigningKey;
use prost::Message;
use sha2::{Digest, Sha512};
use tessera_core::signing::{self, BADGE_CONTEXT};
use tessera_proto::v1 as pb;

/// The group order L, little-endian.
pub const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// `p + 1` = `2^255 - 18`, little-endian: a non-canonical encoding of y = 1
/// (the identity point).
pub const IDENTITY_NON_CANONICAL: [u8; 32] = {
    let mut b = [0xff; 32];
    b[0] = 0xee;
    b[31] = 0x7f;
    b
};

/// The identity point with the sign bit set (x = 0, sign 1): non-canonical.
pub const IDENTITY_SIGN_BIT: [u8; 32] = {
    let mut b = [0; 32];
    b[0] = 1;
    b[31] = 0x80;
    b
};

/// `p` itself, little-endian: a non-canonical encoding of y = 0 (a point of
/// order 4).
pub const Y_ZERO_NON_CANONICAL: [u8; 32] = {
    let mut b = [0xff; 32];
    b[0] = 0xed;
    b[31] = 0x7f;
    b
};

/// The 8 points of small order, canonically encoded, in curve25519-dalek's
/// order (0 the identity, 4 the point of order 2, 2 and 6 of order 4, the
/// odd ones of order 8).
pub fn small_order_points() -> [[u8; 32]; 8] {
    EIGHT_TORSION.map(|p| p.compress().to_bytes())
}

/// A point of order 8.
pub fn torsion(index: usize) -> EdwardsPoint {
    EIGHT_TORSION[index % 8]
}

/// The secret scalar of an Ed25519 key (RFC 8032: the clamped first half of
/// SHA-512 of the seed).
pub fn secret_scalar(key: &SigningKey) -> Scalar {
    let h = Sha512::digest(key.to_bytes());
    let mut a = [0u8; 32];
    a.copy_from_slice(&h[..32]);
    a[0] &= 248;
    a[31] &= 127;
    a[31] |= 64;
    Scalar::from_bytes_mod_order(a)
}

/// A fixed scalar derived from a label.
pub fn scalar(label: &str) -> Scalar {
    let h = Sha512::digest(format!("tessera conformance scalar {label}").as_bytes());
    let mut wide = [0u8; 64];
    wide.copy_from_slice(&h);
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// `[s]B + torsion`, encoded.
pub fn public_point(s: &Scalar, torsion: &EdwardsPoint) -> [u8; 32] {
    (EdwardsPoint::mul_base(s) + torsion).compress().to_bytes()
}

fn challenge(r_bytes: &[u8; 32], a_bytes: &[u8; 32], payload: &[u8]) -> Scalar {
    let m = signing::signing_input(BADGE_CONTEXT, payload).expect("small payload");
    let mut h = Sha512::new();
    h.update(r_bytes);
    h.update(a_bytes);
    h.update(&m);
    let mut wide = [0u8; 64];
    wide.copy_from_slice(&h.finalize());
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// A signature by the holder of `a` (public encoding `a_bytes`) whose `R` is
/// `[r]B + r_torsion`: `S = r + k·a`, `k = H(R || A || M)`. With a torsion
/// component the cofactored equation holds and the cofactorless one fails.
pub fn sign_with_torsion(
    a: &Scalar,
    a_bytes: &[u8; 32],
    r: &Scalar,
    r_torsion: &EdwardsPoint,
    payload: &[u8],
) -> [u8; 64] {
    let r_bytes = public_point(r, r_torsion);
    let k = challenge(&r_bytes, a_bytes, payload);
    let s = r + k * a;
    join(&r_bytes, &s.to_bytes())
}

/// A signature whose `R` is the given encoding (of a point of small order,
/// canonical or not) with `S = k·a`: a holder of `a` "signing" with nonce 0
/// plus a small-order point, which a verifier without the R checks accepts.
pub fn sign_with_r_bytes(
    a: &Scalar,
    a_bytes: &[u8; 32],
    r_bytes: [u8; 32],
    payload: &[u8],
) -> [u8; 64] {
    let k = challenge(&r_bytes, a_bytes, payload);
    join(&r_bytes, &(k * a).to_bytes())
}

/// A signature by a key whose point `A` has small order: `R` = identity,
/// `S` = 0. `[S]B = R + [k]A` holds up to the cofactor for every message.
pub fn small_order_key_signature() -> [u8; 64] {
    let mut sig = [0u8; 64];
    sig[0] = 1;
    sig
}

/// `R || S`.
pub fn join(r: &[u8; 32], s: &[u8; 32]) -> [u8; 64] {
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(r);
    sig[32..].copy_from_slice(s);
    sig
}

/// `S + L` as a 256-bit little-endian integer (S < L, so it fits).
pub fn add_l(s: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(s[i]) + u16::from(L[i]) + carry;
        out[i] = (sum & 0xff) as u8;
        carry = sum >> 8;
    }
    out
}

/// The Ed25519 base point, encoded.
pub fn base_point() -> [u8; 32] {
    ED25519_BASEPOINT_POINT.compress().to_bytes()
}

/// The first y in 2..=18 whose encoding plus p (non-canonical) decodes to a
/// point that is not of small order: a non-canonical public key.
pub fn non_canonical_large_order_key() -> [u8; 32] {
    for y in 2u8..=18 {
        let mut b = Y_ZERO_NON_CANONICAL;
        b[0] = b[0].wrapping_add(y);
        let point = curve25519_dalek::edwards::CompressedEdwardsY(b).decompress();
        if point.is_some_and(|p| !p.is_small_order()) {
            return b;
        }
    }
    panic!("no non-canonical large-order point with y < 19")
}

/// The first 32 bytes `y` (y = 2, 3, ...) that decode to no curve point
/// at all: `(y^2 - 1) / (d y^2 + 1)` has no square root mod p.
pub fn not_a_point() -> [u8; 32] {
    for y in 2u8..=255 {
        let mut b = [0u8; 32];
        b[0] = y;
        if curve25519_dalek::edwards::CompressedEdwardsY(b)
            .decompress()
            .is_none()
        {
            return b;
        }
    }
    panic!("no y below 256 is off the curve")
}

/// Ordinary Ed25519 over the badge signing input.
pub fn sign(key: &SigningKey, payload: &[u8]) -> [u8; 64] {
    signing::sign(BADGE_CONTEXT, payload, key)
        .expect("small payload")
        .to_bytes()
}

/// A `SignedBadge` with any field values.
pub fn envelope(payload: &[u8], key_id: &[u8], signature: &[u8]) -> Vec<u8> {
    pb::SignedBadge {
        payload: payload.to_vec(),
        key_id: key_id.to_vec(),
        signature: signature.to_vec(),
    }
    .encode_to_vec()
}

/// Encoded claims with any field values.
pub fn claims(c: &pb::BadgeClaims) -> Vec<u8> {
    c.encode_to_vec()
}
