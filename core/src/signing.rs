//! Which bytes are signed. Every signature in tessera covers a context label,
//! the payload's length and the payload itself, so a signature made for one
//! purpose can never be replayed as another.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

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

/// Checks a signature over `payload` under `context` (strict Ed25519: no
/// malleable or small-order encodings).
pub fn verify(context: &[u8], payload: &[u8], signature: &Signature, key: &VerifyingKey) -> bool {
    signing_input(context, payload)
        .is_some_and(|input| key.verify_strict(&input, signature).is_ok())
}

/// One signature to check in a batch: payload, signature, key.
pub type BatchItem<'a> = (&'a [u8], &'a Signature, &'a VerifyingKey);

/// Checks many signatures under `context` with one batch equation, about
/// twice as fast per signature as [`verify`] on each.
///
/// `true` means every signature holds; `false` means at least one may not
/// (or the batch could not be used), and the caller must check each with
/// [`verify`] to learn which. A batch never refuses signatures that all pass
/// [`verify`], so that fallback keeps results exact.
///
/// The batch equation is not strict Ed25519. A small-order (weak) key would
/// let anyone forge under it, so a batch holding one is refused here and left
/// to [`verify`], which rejects it. What remains: the holder of a signing key
/// can craft a signature (a small-order component in `R`, or a non-canonical
/// encoding of `R`) that may pass the batch although [`verify`] refuses it.
/// Nobody else can: `R` is hashed into the challenge, so altering another
/// party's `R` breaks the signature; and the holder can sign anything anyway.
/// Ruling it out would cost a scalar multiplication per signature, more than
/// batching saves. ed25519-dalek derives the batch's random coefficients from
/// its inputs (a merlin transcript), so this needs no random source.
pub fn verify_batch(context: &[u8], items: &[BatchItem<'_>]) -> bool {
    if items.iter().any(|(_, _, key)| key.is_weak()) {
        return false;
    }
    let Some(inputs) = items
        .iter()
        .map(|(payload, _, _)| signing_input(context, payload))
        .collect::<Option<Vec<_>>>()
    else {
        return false;
    };
    let messages: Vec<&[u8]> = inputs.iter().map(Vec::as_slice).collect();
    let signatures: Vec<Signature> = items.iter().map(|(_, sig, _)| **sig).collect();
    let keys: Vec<VerifyingKey> = items.iter().map(|(_, _, key)| **key).collect();
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_do_not_cross() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let sig = sign(BADGE_CONTEXT, b"payload", &key).unwrap();
        assert!(verify(
            BADGE_CONTEXT,
            b"payload",
            &sig,
            &key.verifying_key()
        ));
        assert!(!verify(
            TRUST_LIST_CONTEXT,
            b"payload",
            &sig,
            &key.verifying_key()
        ));
        assert!(!verify(
            BADGE_CONTEXT,
            b"payloae",
            &sig,
            &key.verifying_key()
        ));
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
        assert!(!verify_batch(TRUST_LIST_CONTEXT, &items));
        assert!(verify_batch(BADGE_CONTEXT, &[]));
        let mut bad = items.clone();
        bad[1].0 = b"tw0";
        assert!(!verify_batch(BADGE_CONTEXT, &bad));
    }

    #[test]
    fn batch_refuses_a_weak_key_that_would_let_anyone_forge() {
        // Key and R both the identity point, s = 0: the batch equation holds
        // for every message, strict verification refuses it.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).unwrap();
        let mut forged = [0u8; 64];
        forged[..32].copy_from_slice(&identity);
        let sig = Signature::from_bytes(&forged);
        let input = signing_input(BADGE_CONTEXT, b"anything").unwrap();
        assert!(ed25519_dalek::verify_batch(&[&input], &[sig], &[weak]).is_ok());
        assert!(!verify(BADGE_CONTEXT, b"anything", &sig, &weak));
        assert!(!verify_batch(BADGE_CONTEXT, &[(b"anything", &sig, &weak)]));
    }
}
