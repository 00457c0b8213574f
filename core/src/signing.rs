//! Which bytes are signed. Every signature in tessera covers a context label,
//! the payload's length and the payload itself, so a signature made for one
//! purpose can never be replayed as another.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// The context of a badge signature.
pub const BADGE_CONTEXT: &[u8] = b"tessera/badge/v1";
/// The context of a trust-list signature.
pub const TRUST_LIST_CONTEXT: &[u8] = b"tessera/trust-list/v1";

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
}
