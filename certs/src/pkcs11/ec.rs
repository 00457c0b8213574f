//! ECDSA P-256 keys in a PKCS#11 token: the authority's root and issuing-CA
//! keys. The token signs a SHA-256 digest computed here (`CKM_ECDSA`, the
//! mechanism every token offers, rather than `CKM_ECDSA_SHA256`, which some
//! do not) and answers `r || s`; certificates carry the signature as a DER
//! `ECDSA-Sig-Value`, so [`TokenCaKey::sign_der`] converts it, after
//! checking it against the public key.
//!
//! Unlike the file key's RFC 6979 nonce, a token's nonce is its own:
//! the same request signed twice gives different certificate bytes.

use std::sync::Mutex;

use cryptoki::context::Pkcs11;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki::slot::Slot;
use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use sha2::{Digest as _, Sha256};

use super::{TokenError, TokenKeyRef, check_label_free, find_one, open, token_err, value_hidden};

/// DER of the P-256 curve's object identifier (1.2.840.10045.3.1.7), the
/// `CKA_EC_PARAMS` of a P-256 key.
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// The P-256 public key of a public-key object, as the uncompressed SEC1
/// point certificates carry: `CKA_EC_POINT` is that point, as a DER OCTET
/// STRING (PKCS#11) or bare (some tokens).
fn point_of(
    r: &TokenKeyRef,
    session: &Session,
    object: ObjectHandle,
) -> Result<(Vec<u8>, VerifyingKey), TokenError> {
    let attrs = session
        .get_attributes(object, &[AttributeType::EcPoint])
        .map_err(token_err(r, "reading the public key"))?;
    let bad = || TokenError::BadPoint {
        token: r.token.clone(),
        key: r.key.clone(),
        algorithm: "ECDSA P-256",
    };
    let point = attrs
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => Some(p),
            _ => None,
        })
        .ok_or_else(bad)?;
    let raw: &[u8] = match point.as_slice() {
        [0x04, 0x41, rest @ ..] if rest.len() == 65 => rest,
        bare if bare.len() == 65 => bare,
        _ => return Err(bad()),
    };
    let key = VerifyingKey::from_sec1_bytes(raw).map_err(|_| bad())?;
    Ok((raw.to_vec(), key))
}

/// Generates a P-256 key pair inside the token, labelled `r.key`: the
/// private half sensitive and not extractable, both halves kept in the
/// token. Refuses a label already in use. Returns the public key as an
/// uncompressed SEC1 point.
pub fn generate_p256(r: &TokenKeyRef) -> Result<Vec<u8>, TokenError> {
    let (_pkcs11, _slot, session) = open(r)?;
    check_label_free(r, &session)?;
    let label = r.key.as_bytes().to_vec();
    let public = [
        Attribute::Token(true),
        Attribute::Verify(true),
        Attribute::EcParams(P256_PARAMS.to_vec()),
        Attribute::Label(label.clone()),
    ];
    let private = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Label(label),
    ];
    let (public_handle, _) = session
        .generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
        .map_err(token_err(r, "generating a P-256 key pair"))?;
    point_of(r, &session, public_handle).map(|(point, _)| point)
}

/// A certificate authority's P-256 key held in a token.
pub struct TokenCaKey {
    r: TokenKeyRef,
    pkcs11: Pkcs11,
    slot: Slot,
    private: ObjectHandle,
    point: Vec<u8>,
    public: VerifyingKey,
    sessions: Mutex<Vec<Session>>,
    /// Why the last signature through rcgen failed (its error has no room
    /// for the token's answer).
    failure: Mutex<Option<String>>,
}

impl std::fmt::Debug for TokenCaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCaKey")
            .field("token", &self.r.token)
            .field("key", &self.r.key)
            .finish_non_exhaustive()
    }
}

impl TokenCaKey {
    /// Opens the token, logs in with the PIN file and finds the key pair
    /// by label; signs once to check the private key answers for the
    /// public key of that label.
    pub fn open(r: &TokenKeyRef) -> Result<Self, TokenError> {
        let (pkcs11, slot, session) = open(r)?;
        let private = find_one(
            r,
            &session,
            ObjectClass::PRIVATE_KEY,
            KeyType::EC,
            "private",
        )?;
        let public_handle = find_one(r, &session, ObjectClass::PUBLIC_KEY, KeyType::EC, "public")?;
        let (point, public) = point_of(r, &session, public_handle)?;
        let key = Self {
            r: r.clone(),
            pkcs11,
            slot,
            private,
            point,
            public,
            sessions: Mutex::new(vec![session]),
            failure: Mutex::new(None),
        };
        key.sign_der(b"tessera token probe")?;
        Ok(key)
    }

    /// The public key as an uncompressed SEC1 point.
    pub fn point(&self) -> &[u8] {
        &self.point
    }

    /// Where the key lives.
    pub fn key_ref(&self) -> &TokenKeyRef {
        &self.r
    }

    /// Why the last signature asked through rcgen's `SigningKey` failed,
    /// once: rcgen reports only that a remote key failed.
    pub fn take_failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|mut f| f.take())
    }

    /// Whether the token refuses to reveal the private key's value, as a
    /// sensitive, non-extractable key must (see [`super::TokenKey::value_is_hidden`]).
    pub fn value_is_hidden(&self) -> Result<bool, TokenError> {
        let session = self.session()?;
        let hidden = value_hidden(&self.r, &session, self.private);
        self.give_back(session);
        hidden
    }

    fn session(&self) -> Result<Session, TokenError> {
        let pooled = self.sessions.lock().ok().and_then(|mut pool| pool.pop());
        match pooled {
            Some(session) => Ok(session),
            None => self
                .pkcs11
                .open_ro_session(self.slot)
                .map_err(token_err(&self.r, "opening a session")),
        }
    }

    fn give_back(&self, session: Session) {
        if let Ok(mut pool) = self.sessions.lock() {
            pool.push(session);
        }
    }

    /// ECDSA P-256 with SHA-256 over `message`, as a DER `ECDSA-Sig-Value`;
    /// the signature is checked against the public key before it is
    /// returned.
    pub fn sign_der(&self, message: &[u8]) -> Result<Vec<u8>, TokenError> {
        let digest = Sha256::digest(message);
        let session = self.session()?;
        let answer = session.sign(&Mechanism::Ecdsa, self.private, &digest);
        // A session that failed is dropped (closed), not pooled.
        let raw = answer.map_err(token_err(&self.r, "signing"))?;
        self.give_back(session);
        let signature = Signature::from_slice(&raw).map_err(|_| TokenError::Token {
            token: self.r.token.clone(),
            action: "signing",
            detail: format!("a signature of {} bytes, not r || s of 64", raw.len()),
        })?;
        if self.public.verify_prehash(&digest, &signature).is_err() {
            return Err(TokenError::Token {
                token: self.r.token.clone(),
                action: "checking a signature",
                detail: format!(
                    "the private key labelled {:?} does not sign for the public key of that label",
                    self.r.key
                ),
            });
        }
        Ok(signature.to_der().as_bytes().to_vec())
    }
}

impl rcgen::PublicKeyData for TokenCaKey {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for TokenCaKey {
    /// rcgen's error carries no detail: the token's answer is logged and
    /// kept for [`TokenCaKey::take_failure`].
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.sign_der(msg).map_err(|e| {
            tracing::error!(error = %e, "the token did not sign a certificate");
            if let Ok(mut failure) = self.failure.lock() {
                *failure = Some(e.to_string());
            }
            rcgen::Error::RemoteKeyError
        })
    }
}
