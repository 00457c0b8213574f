//! The authority's signing keys, wherever they are kept: a certificate
//! authority's P-256 key ([`CaKey`]: the root, the issuing CA) and the
//! trust-list signer's Ed25519 key ([`ListSignerKey`]), each either a key
//! file loaded into memory or a key in a PKCS#11 token that signs without
//! ever leaving it. Code that signs takes these types and does not care
//! which; `authority::custody` decides, from the authority's
//! configuration, which one a command gets.

use tessera_core::badge::{BadgeKey, SignError};
use tessera_core::signing::{TRUST_LIST_CONTEXT, signing_input};
use tessera_core::trust::{MAX_TRUST_LIST_LEN, TrustListError};
use tessera_proto::v1 as pb;

use crate::keys::{KeyError, SigningKey, TlsKey};
use crate::pkcs11::TokenKey;
use crate::pkcs11::ec::TokenCaKey;

/// A certificate authority's ECDSA P-256 key: signs certificates through
/// rcgen's `SigningKey` (ecdsa-with-SHA256, the signature DER-encoded).
pub enum CaKey {
    /// A key file's key, in memory (RFC 6979 nonces: reproducible bytes).
    File(TlsKey),
    /// A key in a token.
    Token(TokenCaKey),
}

impl std::fmt::Debug for CaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CaKey::File(key) => f.debug_tuple("File").field(key).finish(),
            CaKey::Token(key) => f.debug_tuple("Token").field(key).finish(),
        }
    }
}

impl From<TlsKey> for CaKey {
    fn from(key: TlsKey) -> Self {
        CaKey::File(key)
    }
}

impl From<TokenCaKey> for CaKey {
    fn from(key: TokenCaKey) -> Self {
        CaKey::Token(key)
    }
}

impl CaKey {
    /// The PEM text to write to the key file, for a file key; `None` for a
    /// key in a token (there is no file to write).
    pub fn file_pem(&self) -> Result<Option<String>, KeyError> {
        match self {
            CaKey::File(key) => key.to_pem().map(Some),
            CaKey::Token(_) => Ok(None),
        }
    }
}

impl CaKey {
    /// The error for a failed rcgen signature: what the token answered,
    /// when the key is a token's and it failed, else rcgen's error.
    pub fn explain(&self, e: rcgen::Error) -> crate::profile::IssueError {
        match (self, &e) {
            (CaKey::Token(key), rcgen::Error::RemoteKeyError) => match key.take_failure() {
                Some(why) => crate::profile::IssueError::Signing(why),
                None => e.into(),
            },
            _ => e.into(),
        }
    }
}

impl rcgen::PublicKeyData for CaKey {
    fn der_bytes(&self) -> &[u8] {
        match self {
            CaKey::File(key) => rcgen::PublicKeyData::der_bytes(key),
            CaKey::Token(key) => rcgen::PublicKeyData::der_bytes(key),
        }
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for CaKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        match self {
            CaKey::File(key) => rcgen::SigningKey::sign(key, msg),
            CaKey::Token(key) => rcgen::SigningKey::sign(key, msg),
        }
    }
}

/// The trust-list signer's Ed25519 key.
pub enum ListSignerKey {
    /// A key file's key, in memory.
    File(SigningKey),
    /// A key in a token (`CKM_EDDSA`).
    Token(TokenKey),
}

impl std::fmt::Debug for ListSignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListSignerKey::File(_) => f.write_str("File(<redacted>)"),
            ListSignerKey::Token(key) => f.debug_tuple("Token").field(key).finish(),
        }
    }
}

impl BadgeKey for ListSignerKey {
    fn public_key(&self) -> ed25519_dalek::VerifyingKey {
        match self {
            ListSignerKey::File(key) => key.verifying_key(),
            ListSignerKey::Token(key) => key.public_key(),
        }
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], SignError> {
        match self {
            ListSignerKey::File(key) => BadgeKey::sign(key, message),
            ListSignerKey::Token(key) => BadgeKey::sign(key, message),
        }
    }
}

/// Why a trust list could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum ListSignError {
    /// The list is too large (see [`TrustListError::TooLarge`]).
    #[error(transparent)]
    List(#[from] TrustListError),
    /// The key did not sign (a token unplugged, a session lost).
    #[error("the trust-list signer key did not sign: {0}")]
    Key(String),
}

impl ListSignerKey {
    /// Signs `list` as `tessera_core::trust::sign_trust_list` does (the
    /// same context and encoding), with whichever key this is.
    pub fn sign_list(
        &self,
        list: &pb::TrustList,
        signer_certificate_der: &[u8],
    ) -> Result<Vec<u8>, ListSignError> {
        use prost::Message as _;
        let payload = list.encode_to_vec();
        let input = signing_input(TRUST_LIST_CONTEXT, &payload)
            .ok_or(TrustListError::TooLarge(payload.len()))?;
        let signature =
            BadgeKey::sign(self, &input).map_err(|e| ListSignError::Key(e.to_string()))?;
        let bytes = pb::SignedTrustList {
            payload,
            signature: signature.to_vec(),
            signer_certificate: signer_certificate_der.to_vec(),
        }
        .encode_to_vec();
        if bytes.len() > MAX_TRUST_LIST_LEN {
            return Err(TrustListError::TooLarge(bytes.len()).into());
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// Signing through [`ListSignerKey`] gives the very bytes
    /// `tessera_core::trust::sign_trust_list` gives (Ed25519 is
    /// deterministic), so a list signed through a token is the same kind
    /// of list.
    #[test]
    fn a_list_signed_through_the_key_type_is_the_core_signature() {
        let key = crate::keys::generate_signer_key();
        let list = pb::TrustList {
            version: tessera_core::trust::TRUST_LIST_VERSION,
            sequence: 7,
            issued_at: 1_790_000_000,
            next_update: 1_790_086_400,
            sunset_at: 1_800_000_000,
            entries: vec![],
            revoked_serials: vec![vec![0x41; 16]],
        };
        let certificate = b"a signer certificate".to_vec();
        let core = tessera_core::trust::sign_trust_list(&list, &key, &certificate).unwrap();
        let ours = ListSignerKey::File(key)
            .sign_list(&list, &certificate)
            .unwrap();
        assert_eq!(ours, core);
    }
}
