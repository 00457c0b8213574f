//! The badge: claims, the signed envelope, and signing by a city.

use ed25519_dalek::{Signature, SigningKey};
use prost::Message;
use tessera_proto::v1 as pb;

use crate::cert::{CertError, CertInfo};
use crate::identity::Role;
use crate::ids::{BadgeId, CityCode, CodeError, KeyId};
use crate::signing::{self, BADGE_CONTEXT};
use crate::text;

/// The claims version this library writes and reads.
pub const CLAIMS_VERSION: u32 = 1;
/// Largest envelope accepted, in bytes. A typical badge is under 160.
pub const MAX_ENVELOPE_LEN: usize = 512;
/// Longest masked name kept in a badge, in characters.
pub const MAX_MASKED_NAME_CHARS: usize = 16;
/// Characters of the ID number kept in a badge.
pub const ID_TAIL_CHARS: usize = 4;
/// Longest validity window a badge may carry (30 days).
pub const MAX_VALIDITY_SECS: i64 = 30 * 86_400;

/// The colour band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Colour {
    /// No risk found.
    Green,
    /// Elevated risk.
    Yellow,
    /// High risk.
    Red,
}

impl Colour {
    /// The wire value.
    pub fn to_proto(self) -> pb::Colour {
        match self {
            Colour::Green => pb::Colour::Green,
            Colour::Yellow => pb::Colour::Yellow,
            Colour::Red => pb::Colour::Red,
        }
    }

    /// Reads a wire value; `None` for unspecified or unknown values.
    pub fn from_proto(value: i32) -> Option<Self> {
        match pb::Colour::try_from(value).ok()? {
            pb::Colour::Unspecified => None,
            pb::Colour::Green => Some(Colour::Green),
            pb::Colour::Yellow => Some(Colour::Yellow),
            pb::Colour::Red => Some(Colour::Red),
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Colour::Green => "green",
            Colour::Yellow => "yellow",
            Colour::Red => "red",
        }
    }
}

impl std::fmt::Display for Colour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Masked holder details: enough to compare with an ID card, too little to
/// identify anyone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HolderHint {
    masked_name: String,
    id_tail: String,
}

impl HolderHint {
    /// Masks a holder's name and ID number: the name keeps its first
    /// character, the ID number its last four.
    pub fn mask(name: &str, national_id: &str) -> Self {
        let name = name.trim();
        let mut chars = name.chars();
        let masked_name = match chars.next() {
            Some(first) => format!("{first}{}", "*".repeat(chars.count().clamp(1, 3))),
            None => String::new(),
        };
        let id: Vec<char> = national_id.trim().chars().collect();
        let id_tail = id[id.len().saturating_sub(ID_TAIL_CHARS)..]
            .iter()
            .collect();
        Self {
            masked_name,
            id_tail,
        }
    }

    /// The masked name, e.g. "张**".
    pub fn masked_name(&self) -> &str {
        &self.masked_name
    }

    /// The ID number's last four characters.
    pub fn id_tail(&self) -> &str {
        &self.id_tail
    }

    fn from_proto(hint: Option<pb::HolderHint>) -> Result<Self, ClaimsError> {
        let hint = hint.unwrap_or_default();
        if hint.masked_name.chars().count() > MAX_MASKED_NAME_CHARS
            || hint.id_tail.chars().count() > ID_TAIL_CHARS
        {
            return Err(ClaimsError::HintTooLong);
        }
        Ok(Self {
            masked_name: hint.masked_name,
            id_tail: hint.id_tail,
        })
    }
}

/// Why claims were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    /// Not a BadgeClaims message.
    #[error("badge claims do not decode: {0}")]
    Decode(String),
    /// A version this library does not read.
    #[error(
        "badge claims version {0} is not supported (this verifier reads version {CLAIMS_VERSION})"
    )]
    UnsupportedVersion(u32),
    /// The issuer city code is malformed.
    #[error("badge issuer city is invalid: {0}")]
    IssuerCity(#[from] CodeError),
    /// The badge id is not 16 bytes.
    #[error("badge id must be 16 bytes, found {0}")]
    BadgeIdLength(usize),
    /// Colour unspecified or unknown.
    #[error("badge colour is unspecified or unknown ({0})")]
    Colour(i32),
    /// valid_until is not after issued_at.
    #[error("badge validity window is empty (valid_until {valid_until} <= issued_at {issued_at})")]
    EmptyWindow {
        /// Start.
        issued_at: i64,
        /// End.
        valid_until: i64,
    },
    /// The window is longer than [`MAX_VALIDITY_SECS`].
    #[error("badge validity window of {0} s exceeds the 30-day maximum")]
    WindowTooLong(i64),
    /// The holder hint carries more than a masked name and an ID tail.
    #[error("badge holder hint is longer than a masked name and a 4-character ID tail")]
    HintTooLong,
}

fn check_window(issued_at: i64, valid_until: i64) -> Result<(), ClaimsError> {
    if valid_until <= issued_at {
        return Err(ClaimsError::EmptyWindow {
            issued_at,
            valid_until,
        });
    }
    let length = valid_until.saturating_sub(issued_at);
    if length > MAX_VALIDITY_SECS {
        return Err(ClaimsError::WindowTooLong(length));
    }
    Ok(())
}

/// What a city states about a resident's badge.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BadgeClaims {
    /// The issuing city.
    pub issuer_city: CityCode,
    /// The badge's random id.
    pub badge_id: BadgeId,
    /// The colour band.
    pub colour: Colour,
    /// Issued at, Unix seconds.
    pub issued_at: i64,
    /// Valid until, Unix seconds.
    pub valid_until: i64,
    /// The scoring policy version.
    pub policy_version: u32,
    /// Masked holder details.
    pub holder_hint: HolderHint,
}

impl BadgeClaims {
    /// Checks the window and encodes the claims as signed payload bytes.
    pub fn encode(&self) -> Result<Vec<u8>, ClaimsError> {
        check_window(self.issued_at, self.valid_until)?;
        let hint = &self.holder_hint;
        if hint.masked_name.chars().count() > MAX_MASKED_NAME_CHARS
            || hint.id_tail.chars().count() > ID_TAIL_CHARS
        {
            return Err(ClaimsError::HintTooLong);
        }
        let msg = pb::BadgeClaims {
            version: CLAIMS_VERSION,
            issuer_city: self.issuer_city.get(),
            badge_id: self.badge_id.as_bytes().to_vec(),
            colour: self.colour.to_proto() as i32,
            issued_at: self.issued_at,
            valid_until: self.valid_until,
            policy_version: self.policy_version,
            holder_hint: Some(pb::HolderHint {
                masked_name: hint.masked_name.clone(),
                id_tail: hint.id_tail.clone(),
            }),
        };
        Ok(msg.encode_to_vec())
    }

    /// Decodes and checks signed payload bytes. Call only after the signature
    /// over exactly these bytes has been verified.
    pub fn decode(payload: &[u8]) -> Result<Self, ClaimsError> {
        let msg =
            pb::BadgeClaims::decode(payload).map_err(|e| ClaimsError::Decode(e.to_string()))?;
        if msg.version != CLAIMS_VERSION {
            return Err(ClaimsError::UnsupportedVersion(msg.version));
        }
        let issuer_city = CityCode::new(msg.issuer_city)?;
        let badge_id = BadgeId::from_slice(&msg.badge_id)
            .ok_or(ClaimsError::BadgeIdLength(msg.badge_id.len()))?;
        let colour = Colour::from_proto(msg.colour).ok_or(ClaimsError::Colour(msg.colour))?;
        check_window(msg.issued_at, msg.valid_until)?;
        Ok(Self {
            issuer_city,
            badge_id,
            colour,
            issued_at: msg.issued_at,
            valid_until: msg.valid_until,
            policy_version: msg.policy_version,
            holder_hint: HolderHint::from_proto(msg.holder_hint)?,
        })
    }
}

/// Why envelope bytes are not a badge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Larger than [`MAX_ENVELOPE_LEN`].
    #[error("badge of {0} bytes exceeds the limit of {MAX_ENVELOPE_LEN}")]
    TooLarge(usize),
    /// Not a SignedBadge message.
    #[error("badge envelope does not decode: {0}")]
    Decode(String),
    /// The key id is not 8 bytes.
    #[error("badge key id must be 8 bytes, found {0}")]
    KeyIdLength(usize),
    /// The signature is not 64 bytes.
    #[error("badge signature must be 64 bytes, found {0}")]
    SignatureLength(usize),
    /// No payload.
    #[error("badge payload is empty")]
    EmptyPayload,
}

/// A decoded, not yet verified, envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The claims bytes exactly as signed.
    pub payload: Vec<u8>,
    /// Which certificate signed it.
    pub key_id: KeyId,
    /// The signature.
    pub signature: Signature,
}

impl Envelope {
    /// Decodes envelope bytes, refusing anything oversized or misshapen.
    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        if bytes.len() > MAX_ENVELOPE_LEN {
            return Err(EnvelopeError::TooLarge(bytes.len()));
        }
        let msg =
            pb::SignedBadge::decode(bytes).map_err(|e| EnvelopeError::Decode(e.to_string()))?;
        let key_id =
            KeyId::from_slice(&msg.key_id).ok_or(EnvelopeError::KeyIdLength(msg.key_id.len()))?;
        let signature = Signature::from_slice(&msg.signature)
            .map_err(|_| EnvelopeError::SignatureLength(msg.signature.len()))?;
        if msg.payload.is_empty() {
            return Err(EnvelopeError::EmptyPayload);
        }
        Ok(Self {
            payload: msg.payload,
            key_id,
            signature,
        })
    }

    /// Encodes the envelope.
    pub fn encode(&self) -> Vec<u8> {
        pb::SignedBadge {
            payload: self.payload.clone(),
            key_id: self.key_id.as_bytes().to_vec(),
            signature: self.signature.to_bytes().to_vec(),
        }
        .encode_to_vec()
    }
}

/// Why a city could not sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The signer certificate is unreadable.
    #[error("badge signer certificate: {0}")]
    Certificate(#[from] CertError),
    /// The certificate is not a badge signer's.
    #[error("certificate has role {0}, not badge-signer")]
    NotBadgeSigner(Role),
    /// The private key does not match the certificate.
    #[error("badge signing key does not match its certificate")]
    KeyMismatch,
    /// The claims name another city than the certificate.
    #[error("badge names city {claimed} but the signer belongs to {signer}")]
    WrongCity {
        /// City in the claims.
        claimed: CityCode,
        /// City of the certificate.
        signer: CityCode,
    },
    /// The claims are invalid.
    #[error(transparent)]
    Claims(#[from] ClaimsError),
    /// The badge would outlive the signer certificate.
    #[error(
        "badge valid until {valid_until} would outlive its signer certificate (until {not_after}): renew the badge-signer certificate"
    )]
    OutlivesSigner {
        /// The badge's end.
        valid_until: i64,
        /// The certificate's end.
        not_after: i64,
    },
    /// The envelope would exceed [`MAX_ENVELOPE_LEN`].
    #[error("signed badge of {0} bytes would exceed the limit of {MAX_ENVELOPE_LEN}")]
    TooLarge(usize),
}

/// A city's badge-signing key bound to its certificate.
pub struct BadgeSigner {
    key: SigningKey,
    key_id: KeyId,
    city: CityCode,
    not_after: i64,
}

impl std::fmt::Debug for BadgeSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BadgeSigner")
            .field("key", &"<redacted>")
            .field("key_id", &self.key_id)
            .field("city", &self.city)
            .finish()
    }
}

impl BadgeSigner {
    /// Binds a key to its certificate, checking role and key match.
    pub fn new(key: SigningKey, certificate_der: &[u8]) -> Result<Self, SignError> {
        let cert = CertInfo::parse(certificate_der)?;
        let identity = cert.identity();
        let city = match (identity.role(), identity.city()) {
            (Role::BadgeSigner, Some(city)) => city,
            (role, _) => return Err(SignError::NotBadgeSigner(role)),
        };
        if cert.ed25519_key() != Some(&key.verifying_key()) {
            return Err(SignError::KeyMismatch);
        }
        Ok(Self {
            key,
            key_id: cert.key_id(),
            city,
            not_after: cert.not_after(),
        })
    }

    /// The key id badges will carry.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The city this signer speaks for.
    pub fn city(&self) -> CityCode {
        self.city
    }

    /// The end of the signer certificate's validity: no badge may outlive it.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// Signs claims into envelope bytes.
    pub fn sign(&self, claims: &BadgeClaims) -> Result<Vec<u8>, SignError> {
        if claims.issuer_city != self.city {
            return Err(SignError::WrongCity {
                claimed: claims.issuer_city,
                signer: self.city,
            });
        }
        if claims.valid_until > self.not_after {
            return Err(SignError::OutlivesSigner {
                valid_until: claims.valid_until,
                not_after: self.not_after,
            });
        }
        let payload = claims.encode()?;
        let signature = signing::sign(BADGE_CONTEXT, &payload, &self.key)
            .ok_or(SignError::TooLarge(payload.len()))?;
        let bytes = Envelope {
            payload,
            key_id: self.key_id,
            signature,
        }
        .encode();
        if bytes.len() > MAX_ENVELOPE_LEN {
            return Err(SignError::TooLarge(bytes.len()));
        }
        Ok(bytes)
    }

    /// Signs `payload` under another context than badges' (a policy
    /// document); `None` only for a payload over 4 GiB.
    pub(crate) fn sign_context(
        &self,
        context: &[u8],
        payload: &[u8],
    ) -> Option<ed25519_dalek::Signature> {
        signing::sign(context, payload, &self.key)
    }

    /// Signs claims into the QR text form.
    pub fn sign_text(&self, claims: &BadgeClaims) -> Result<String, SignError> {
        self.sign(claims).map(|bytes| text::to_text(&bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_keeps_first_character_and_id_tail() {
        let hint = HolderHint::mask("张三丰", "33010619900101123X");
        assert_eq!(hint.masked_name(), "张**");
        assert_eq!(hint.id_tail(), "123X");
        let hint = HolderHint::mask("Li", "12");
        assert_eq!(hint.masked_name(), "L*");
        assert_eq!(hint.id_tail(), "12");
        assert_eq!(HolderHint::mask("", "").masked_name(), "");
    }

    #[test]
    fn envelope_shape_is_enforced() {
        assert!(matches!(
            Envelope::decode(&[0u8; 600]),
            Err(EnvelopeError::TooLarge(600))
        ));
        let short_key = pb::SignedBadge {
            payload: vec![1],
            key_id: vec![1; 7],
            signature: vec![0; 64],
        };
        assert!(matches!(
            Envelope::decode(&short_key.encode_to_vec()),
            Err(EnvelopeError::KeyIdLength(7))
        ));
        let short_sig = pb::SignedBadge {
            payload: vec![1],
            key_id: vec![1; 8],
            signature: vec![0; 63],
        };
        assert!(matches!(
            Envelope::decode(&short_sig.encode_to_vec()),
            Err(EnvelopeError::SignatureLength(63))
        ));
    }
}
