//! The badge: claims, the signed envelope, and signing by a city.

use std::sync::Arc;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
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
/// Most asterisks after the first character of a masked name.
pub const MAX_MASK_STARS: usize = 3;
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
    /// character and gets one asterisk per further character, at most
    /// [`MAX_MASK_STARS`]; the ID number keeps its last four characters. A
    /// name or ID number that gives no valid form (an ID shorter than four
    /// characters, or one whose tail is not digits and `X`) is refused when
    /// the claims are encoded, as a verifier would refuse it.
    pub fn mask(name: &str, national_id: &str) -> Self {
        let name = name.trim();
        let mut chars = name.chars();
        let masked_name = match chars.next() {
            Some(first) => format!(
                "{first}{}",
                "*".repeat(chars.count().clamp(1, MAX_MASK_STARS))
            ),
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
        let hint = Self {
            masked_name: hint.masked_name,
            id_tail: hint.id_tail,
        };
        hint.check()?;
        Ok(hint)
    }

    /// The only forms a hint may take (PROTOCOL.md, rules C9 and C10): a
    /// masked name is empty or one character followed by one to three `*`;
    /// an ID tail is empty or exactly four of `0`-`9` and `X`. Anything else
    /// could carry a full name or ID number.
    fn check(&self) -> Result<(), ClaimsError> {
        let mut name = self.masked_name.chars();
        let name_ok = match name.next() {
            None => true,
            Some(_) => {
                let stars = name.clone().count();
                (1..=MAX_MASK_STARS).contains(&stars) && name.all(|c| c == '*')
            }
        };
        if !name_ok {
            return Err(ClaimsError::MaskedNameForm);
        }
        let tail_ok = self.id_tail.is_empty()
            || (self.id_tail.chars().count() == ID_TAIL_CHARS
                && self.id_tail.chars().all(|c| c.is_ascii_digit() || c == 'X'));
        if !tail_ok {
            return Err(ClaimsError::IdTailForm);
        }
        Ok(())
    }
}

/// Why claims were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
    /// The policy version is 0: policies are numbered from 1.
    #[error("badge policy version is 0 (policies are numbered from 1)")]
    PolicyVersionZero,
    /// The masked name is not one character followed by one to three `*`.
    #[error("badge masked name is not one character followed by 1 to 3 asterisks")]
    MaskedNameForm,
    /// The ID tail is not four of `0`-`9` and `X`.
    #[error("badge ID tail is not 4 characters of 0-9 and X")]
    IdTailForm,
}

impl ClaimsError {
    /// The stable reason code of this refusal (PROTOCOL.md, outcome table).
    pub fn reason(&self) -> &'static str {
        match self {
            ClaimsError::Decode(_) => "claims_decode",
            ClaimsError::UnsupportedVersion(_) => "unsupported_version",
            ClaimsError::IssuerCity(_) => "issuer_city_invalid",
            ClaimsError::BadgeIdLength(_) => "badge_id_length",
            ClaimsError::Colour(_) => "colour_invalid",
            ClaimsError::EmptyWindow { .. } => "empty_window",
            ClaimsError::WindowTooLong(_) => "window_too_long",
            ClaimsError::PolicyVersionZero => "policy_version_zero",
            ClaimsError::MaskedNameForm => "masked_name_form",
            ClaimsError::IdTailForm => "id_tail_form",
        }
    }
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
        if self.policy_version == 0 {
            return Err(ClaimsError::PolicyVersionZero);
        }
        let hint = &self.holder_hint;
        hint.check()?;
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
        if msg.policy_version == 0 {
            return Err(ClaimsError::PolicyVersionZero);
        }
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
#[non_exhaustive]
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

impl EnvelopeError {
    /// The stable reason code of this refusal (PROTOCOL.md, outcome table).
    pub fn reason(&self) -> &'static str {
        match self {
            EnvelopeError::TooLarge(_) => "envelope_too_large",
            EnvelopeError::Decode(_) => "envelope_decode",
            EnvelopeError::KeyIdLength(_) => "key_id_length",
            EnvelopeError::SignatureLength(_) => "signature_length",
            EnvelopeError::EmptyPayload => "empty_payload",
        }
    }
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
#[non_exhaustive]
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
    /// The key could not sign (a hardware token's error, for instance):
    /// a failure of this issuance, not of its input.
    #[error("the badge-signer key could not sign: {0}")]
    Key(String),
}

/// An Ed25519 key that signs badges: in memory ([`SigningKey`]) or held
/// elsewhere (a PKCS#11 token) so the private half is never in the
/// process. Called from many threads at once.
pub trait BadgeKey: Send + Sync {
    /// The public half, compared with the certificate's.
    fn public_key(&self) -> VerifyingKey;
    /// A pure Ed25519 signature over `message`, or why none could be made.
    fn sign(&self, message: &[u8]) -> Result<[u8; 64], SignError>;
}

impl BadgeKey for SigningKey {
    fn public_key(&self) -> VerifyingKey {
        self.verifying_key()
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], SignError> {
        Ok(self
            .try_sign(message)
            .map_err(|e| SignError::Key(e.to_string()))?
            .to_bytes())
    }
}

/// A city's badge-signing key bound to its certificate.
pub struct BadgeSigner {
    key: Arc<dyn BadgeKey>,
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
        Self::with_key(Arc::new(key), certificate_der)
    }

    /// Binds a key held anywhere ([`BadgeKey`]) to its certificate,
    /// checking role and that the key's public half is the certificate's.
    pub fn with_key(key: Arc<dyn BadgeKey>, certificate_der: &[u8]) -> Result<Self, SignError> {
        let cert = CertInfo::parse(certificate_der)?;
        let identity = cert.identity();
        let city = match (identity.role(), identity.city()) {
            (Role::BadgeSigner, Some(city)) => city,
            (role, _) => return Err(SignError::NotBadgeSigner(role)),
        };
        if cert.ed25519_key() != Some(&key.public_key()) {
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
        let signature = self
            .sign_context(BADGE_CONTEXT, &payload)?
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

    /// The key this signer signs with (to compare with a certificate).
    pub fn public_key(&self) -> VerifyingKey {
        self.key.public_key()
    }

    /// Signs `payload` under `context` (badges', or a policy document's);
    /// `Ok(None)` only for a payload over 4 GiB, an error when the key
    /// cannot sign.
    pub(crate) fn sign_context(
        &self,
        context: &[u8],
        payload: &[u8],
    ) -> Result<Option<Signature>, SignError> {
        let Some(input) = signing::signing_input(context, payload) else {
            return Ok(None);
        };
        Ok(Some(Signature::from_bytes(&self.key.sign(&input)?)))
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

    fn claims_with(masked_name: &str, id_tail: &str, policy_version: u32) -> Vec<u8> {
        pb::BadgeClaims {
            version: CLAIMS_VERSION,
            issuer_city: 330_100,
            badge_id: vec![7; 16],
            colour: pb::Colour::Green as i32,
            issued_at: 1_000,
            valid_until: 2_000,
            policy_version,
            holder_hint: Some(pb::HolderHint {
                masked_name: masked_name.into(),
                id_tail: id_tail.into(),
            }),
        }
        .encode_to_vec()
    }

    #[test]
    fn only_the_masked_forms_decode() {
        for (name, tail) in [("张**", "123X"), ("L*", "0042"), ("W***", ""), ("", "")] {
            let claims = BadgeClaims::decode(&claims_with(name, tail, 1)).unwrap();
            assert_eq!(claims.holder_hint.masked_name(), name);
        }
        for name in ["Zhang Sanfeng", "张三丰", "Z", "Z****", "ZZ*", "*"] {
            assert_eq!(
                BadgeClaims::decode(&claims_with(name, "123X", 1)),
                Err(ClaimsError::MaskedNameForm),
                "{name}"
            );
        }
        for tail in ["12", "123x", "33010619900101123X", "12 3", "１２３４"] {
            assert_eq!(
                BadgeClaims::decode(&claims_with("张**", tail, 1)),
                Err(ClaimsError::IdTailForm),
                "{tail}"
            );
        }
        assert_eq!(
            BadgeClaims::decode(&claims_with("张**", "123X", 0)),
            Err(ClaimsError::PolicyVersionZero)
        );
    }

    #[test]
    fn the_signer_refuses_what_a_verifier_would_refuse() {
        let claims = BadgeClaims::decode(&claims_with("张**", "123X", 1)).unwrap();
        let zero = BadgeClaims {
            policy_version: 0,
            ..claims.clone()
        };
        assert_eq!(zero.encode(), Err(ClaimsError::PolicyVersionZero));
        let short_id = BadgeClaims {
            holder_hint: HolderHint::mask("Li", "12"),
            ..claims
        };
        assert_eq!(short_id.encode(), Err(ClaimsError::IdTailForm));
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
