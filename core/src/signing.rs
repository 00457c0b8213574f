//! Which bytes are signed, and when an Ed25519 signature holds.
//!
//! Every signature in tessera covers a context label, the payload's length
//! and the payload itself, so a signature made for one purpose can never be
//! replayed as another.
//!
//! # The signature rule
//!
//! One rule decides every Ed25519 signature tessera checks (badges, trust
//! lists, policies), alone or in a batch, so that the same bytes always get
//! the same answer. For a signature `R_bytes (32) || S_bytes (32)` by the
//! public key `A_bytes (32)` over the signing input `M` ([`signing_input`]):
//!
//! 1. `S` is `S_bytes` read as a little-endian integer; `S < L`, where
//!    `L = 2^252 + 27742317777372353535851937790883648493`.
//! 2. `A_bytes` is a canonical encoding (`y < p = 2^255 − 19`, and not the
//!    encoding of a point with `x = 0` and the sign bit set), decodes to a
//!    curve point, and that point is not of small order (not one of the 8
//!    points whose order divides 8).
//! 3. `R_bytes` meets the same three conditions as `A_bytes`.
//! 4. `k = SHA-512(R_bytes || A_bytes || M)`, read as a 512-bit
//!    little-endian integer, reduced mod `L`.
//! 5. The signature holds iff `[8]([S]B − R − [k]A)` is the identity
//!    (the cofactored equation).
//!
//! Failing any step refuses the signature. So a signature whose `R` carries a
//! small-order component (`R = rB + T`), made by the key holder, holds on
//! every path; a small-order or non-canonical `R` or `A`, or `S ≥ L`, is
//! refused on every path. Only a cofactored equation lets a batch and a
//! single check agree on every input ("Taming the many EdDSAs", Chalkias et
//! al. 2020). The preconditions refuse all that ed25519-dalek's
//! `verify_strict` refuses, and a non-canonical `A` besides (ZIP 215, by
//! contrast, accepts non-canonical and small-order `R` and `A`); the
//! equation is where they differ: `verify_strict` is cofactorless, so it
//! refused torsion in `R` that a batch could accept.
//!
//! A batch ([`verify_batch`]) first applies steps 1–3 to every item (an item
//! failing them is refused and left out), then checks one cofactored
//! equation over the rest, `[8](Σ z_i R_i + Σ z_i k_i A_i − (Σ z_i S_i) B)`
//! = identity, with 128-bit coefficients `z_i` derived by SHA-512 from every
//! input of the batch (context, each `A`, `R`, `S` and message, and the
//! count): inputs are fixed before the coefficients are known, so no random
//! source is needed. If that equation fails, each remaining item is checked
//! alone. Each item's result is always the single rule's result.

mod rule;

#[cfg(any(test, feature = "crafted-signatures"))]
pub mod crafted;

#[cfg(test)]
mod tests;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use rule::Checked;

/// The context of a badge signature.
pub const BADGE_CONTEXT: &[u8] = b"tessera/badge/v1";
/// The context of a trust-list signature.
pub const TRUST_LIST_CONTEXT: &[u8] = b"tessera/trust-list/v1";
/// The context of a scoring-policy signature (same badge-signer key as
/// badges, different context: neither signature passes as the other).
pub const POLICY_CONTEXT: &[u8] = b"tessera/policy/v1";

/// `context || u32-big-endian(len(payload)) || payload`.
///
/// Payloads are bounded far below 4 GiB by the decoders, so the length always
/// fits; a longer payload is refused rather than truncated.
pub fn signing_input(context: &[u8], payload: &[u8]) -> Option<Vec<u8>> {
    let len = u32::try_from(payload.len()).ok()?;
    let mut input = Vec::with_capacity(context.len() + 4 + payload.len());
    input.extend_from_slice(context);
    input.extend_from_slice(&len.to_be_bytes());
    input.extend_from_slice(payload);
    Some(input)
}

/// Signs `payload` under `context`; `None` only for a payload over 4 GiB.
pub fn sign(context: &[u8], payload: &[u8], key: &SigningKey) -> Option<Signature> {
    signing_input(context, payload).map(|input| key.sign(&input))
}

/// Checks a signature over `payload` under `context` by the signature rule
/// (see the module docs).
pub fn verify(context: &[u8], payload: &[u8], signature: &Signature, key: &VerifyingKey) -> bool {
    signing_input(context, payload).is_some_and(|input| {
        Checked::new(&input, signature, key).is_some_and(|checked| checked.holds())
    })
}

/// One signature to check in a batch: payload, signature, key.
pub type BatchItem<'a> = (&'a [u8], &'a Signature, &'a VerifyingKey);

/// Checks many signatures under `context` with one batch equation, faster
/// per signature than [`verify`] on each.
///
/// `true` means every signature holds by the signature rule; `false` means
/// at least one does not, and the caller checks each with [`verify`] to learn
/// which. The answer is "[`verify`] holds for every item": the batch
/// equation is the single equation summed, so it never refuses a batch of
/// good signatures, and a forger's chance to make it accept a bad one is
/// 2^-128 per attempt (the coefficients hash every input).
pub fn verify_batch(context: &[u8], items: &[BatchItem<'_>]) -> bool {
    let Some(inputs) = items
        .iter()
        .map(|(payload, _, _)| signing_input(context, payload))
        .collect::<Option<Vec<_>>>()
    else {
        return false;
    };
    let Some(checked) = items
        .iter()
        .zip(&inputs)
        .map(|((_, signature, key), input)| Checked::new(input, signature, key))
        .collect::<Option<Vec<_>>>()
    else {
        return false;
    };
    match checked.as_slice() {
        [] => true,
        [one] => one.holds(),
        _ => rule::batch_holds(context, &checked.iter().collect::<Vec<_>>()),
    }
}

/// For each item, whether its signature holds by the signature rule, found
/// with one batch equation over the items that pass the preconditions, and
/// single checks of those only when the equation fails.
pub(crate) fn verify_each(context: &[u8], items: &[BatchItem<'_>]) -> Vec<bool> {
    let inputs: Vec<Option<Vec<u8>>> = items
        .iter()
        .map(|(payload, _, _)| signing_input(context, payload))
        .collect();
    let checked: Vec<Option<Checked<'_>>> = items
        .iter()
        .zip(&inputs)
        .map(|((_, signature, key), input)| {
            input
                .as_deref()
                .and_then(|input| Checked::new(input, signature, key))
        })
        .collect();
    let passing: Vec<&Checked<'_>> = checked.iter().flatten().collect();
    // A batch of one is no faster than checking it alone.
    let all_hold = passing.len() > 1 && rule::batch_holds(context, &passing);
    checked
        .iter()
        .map(|c| c.as_ref().is_some_and(|c| all_hold || c.holds()))
        .collect()
}
