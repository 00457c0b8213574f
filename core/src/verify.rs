//! Verifying a badge against a checked trust list, offline.
//!
//! The signature is checked over the exact payload bytes before anything in
//! them is believed; only then are the claims decoded and their window
//! compared with the caller's clock.

use ed25519_dalek::{Signature, VerifyingKey};
use tessera_proto::v1 as pb;

use crate::badge::{BadgeClaims, ClaimsError, Envelope, EnvelopeError, MAX_ENVELOPE_LEN};
use crate::identity::Role;
use crate::ids::{CityCode, KeyId};
use crate::signing::{self, BADGE_CONTEXT};
use crate::text::{self, TextError};
use crate::trust::{CheckedEntry, CheckedTrustList, Freshness};

/// How far in the future a badge's `issued_at` may lie: the same clock-skew
/// allowance as for trust lists.
pub use crate::trust::CLOCK_SKEW_SECS;

/// Why a badge did not verify. Each variant is one failure a checkpoint can
/// name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The text form is wrong.
    #[error("badge text: {0}")]
    Text(#[from] TextError),
    /// The envelope bytes are wrong.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// No entry has this key id.
    #[error("no trusted badge signer has key id {0}")]
    UnknownSigner(KeyId),
    /// The key id names a certificate that may not sign badges.
    #[error("key {key_id} belongs to a {role} certificate, which may not sign badges")]
    WrongSignerRole {
        /// The key id.
        key_id: KeyId,
        /// Its role.
        role: Role,
    },
    /// The signature does not match the payload.
    #[error("badge signature does not match")]
    BadSignature,
    /// The signer has been revoked.
    #[error("badge signer {0} has been revoked")]
    SignerRevoked(KeyId),
    /// The issuing CA that issued the signer's certificate has been revoked
    /// (V10a).
    #[error("badge signer {signer} was issued by the revoked issuing CA {issuer}")]
    IssuerRevoked {
        /// The signer's key id.
        signer: KeyId,
        /// The issuing CA's key id.
        issuer: KeyId,
    },
    /// The claims are unreadable (after a good signature).
    #[error(transparent)]
    Claims(ClaimsError),
    /// A claims version this verifier does not read.
    #[error("badge version {0} is not supported")]
    UnsupportedVersion(u32),
    /// A signer of one city signed for another.
    #[error("badge names city {claimed} but was signed by a key of {signer}")]
    IssuerMismatch {
        /// City in the claims.
        claimed: CityCode,
        /// City of the signer.
        signer: CityCode,
    },
    /// Issued outside the signer certificate's validity, or valid past it.
    #[error(
        "badge window {issued_at}..{valid_until} is not within its signer certificate's validity"
    )]
    SignerNotValidAtIssue {
        /// When the badge says it was issued.
        issued_at: i64,
        /// When it says it expires.
        valid_until: i64,
    },
    /// The validity window has ended.
    #[error("badge expired at {valid_until}")]
    Expired {
        /// End of the window.
        valid_until: i64,
    },
    /// The validity window has not started.
    #[error("badge is not valid before {issued_at}")]
    NotYetValid {
        /// Start of the window.
        issued_at: i64,
    },
    /// The trust list is past its sunset.
    #[error("the trust list passed its sunset: nothing is trusted any more")]
    TrustListSunset,
    /// A request that carries neither envelope bytes nor text.
    #[error("no badge in the request (neither envelope nor text)")]
    NoBadge,
}

/// The reason code of a badge that passed every check of
/// [`verify`]: signature, signer and window hold; the issuing city's status
/// was not asked.
pub const REASON_VALID: &str = "valid";

impl VerifyError {
    /// The stable, machine-readable reason code of this failure: one per
    /// rule of PROTOCOL.md, the only place these codes are assigned.
    pub fn reason(&self) -> &'static str {
        match self {
            VerifyError::Text(e) => e.reason(),
            VerifyError::Envelope(e) => e.reason(),
            VerifyError::Claims(e) => e.reason(),
            VerifyError::UnsupportedVersion(_) => "unsupported_version",
            VerifyError::NoBadge => "no_badge",
            VerifyError::TrustListSunset => "trust_list_sunset",
            VerifyError::UnknownSigner(_) => "unknown_signer",
            VerifyError::WrongSignerRole { .. } => "wrong_signer_role",
            VerifyError::BadSignature => "bad_signature",
            VerifyError::SignerRevoked(_) => "signer_revoked",
            VerifyError::IssuerRevoked { .. } => "issuer_revoked",
            VerifyError::IssuerMismatch { .. } => "issuer_mismatch",
            VerifyError::SignerNotValidAtIssue { .. } => "signer_not_valid_at_issue",
            VerifyError::NotYetValid { .. } => "not_yet_valid",
            VerifyError::Expired { .. } => "expired",
        }
    }

    /// The verdict outcome a checkpoint shows for this failure.
    pub fn outcome(&self) -> pb::Outcome {
        match self {
            VerifyError::NoBadge
            | VerifyError::Text(_)
            | VerifyError::Envelope(_)
            | VerifyError::Claims(_)
            | VerifyError::UnsupportedVersion(_) => pb::Outcome::Malformed,
            VerifyError::UnknownSigner(_)
            | VerifyError::WrongSignerRole { .. }
            | VerifyError::TrustListSunset => pb::Outcome::UnknownSigner,
            VerifyError::BadSignature
            | VerifyError::IssuerMismatch { .. }
            | VerifyError::SignerNotValidAtIssue { .. } => pb::Outcome::BadSignature,
            VerifyError::SignerRevoked(_) | VerifyError::IssuerRevoked { .. } => {
                pb::Outcome::SignerRevoked
            }
            VerifyError::Expired { .. } => pb::Outcome::Expired,
            VerifyError::NotYetValid { .. } => pb::Outcome::NotYetValid,
        }
    }
}

/// A badge whose signature, signer and window have been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedBadge {
    claims: BadgeClaims,
    key_id: KeyId,
    issuer_name: String,
}

impl VerifiedBadge {
    /// The verified claims.
    pub fn claims(&self) -> &BadgeClaims {
        &self.claims
    }
    /// The signer's key id.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }
    /// The issuing city's display name from the trust list.
    pub fn issuer_name(&self) -> &str {
        &self.issuer_name
    }

    /// The verdict on this badge as far as its signature and validity go:
    /// VALID, with `detail`. Online checks then add the city's status.
    pub fn verdict(&self, now: i64, detail: &str) -> pb::Verdict {
        let c = &self.claims;
        pb::Verdict {
            outcome: pb::Outcome::Valid as i32,
            colour: c.colour.to_proto() as i32,
            valid_until: c.valid_until,
            issuer_city: c.issuer_city.get(),
            issuer_name: self.issuer_name.clone(),
            checked_at: now,
            signature_valid: true,
            detail: detail.to_owned(),
            reason: REASON_VALID.to_owned(),
        }
    }
}

impl VerifyError {
    /// The verdict a checkpoint shows for this failure.
    pub fn verdict(&self, now: i64) -> pb::Verdict {
        pb::Verdict {
            outcome: self.outcome() as i32,
            checked_at: now,
            detail: self.to_string(),
            reason: self.reason().to_owned(),
            ..pb::Verdict::default()
        }
    }
}

/// Verifies envelope bytes against a trust list at time `now` (Unix seconds).
pub fn verify(
    envelope: &[u8],
    trust: &CheckedTrustList,
    now: i64,
) -> Result<VerifiedBadge, VerifyError> {
    let badge = Unverified::read(envelope, trust, now)?;
    if !badge.signature_holds() {
        return Err(VerifyError::BadSignature);
    }
    badge.accept(now)
}

/// A badge that passed every check that comes before its signature: the list
/// is not past its sunset, the envelope decodes, and its key id names a badge
/// signer of the list. Nothing in its payload is believed yet.
///
/// [`verify`] and [`crate::batch::verify_batch`] share these steps, so the
/// two cannot drift apart.
pub(crate) struct Unverified<'t> {
    envelope: Envelope,
    entry: &'t CheckedEntry,
    issuer: Option<&'t CheckedEntry>,
    key: &'t VerifyingKey,
    signer_city: CityCode,
}

impl<'t> Unverified<'t> {
    /// The checks before the signature, in [`verify`]'s order.
    pub(crate) fn read(
        envelope: &[u8],
        trust: &'t CheckedTrustList,
        now: i64,
    ) -> Result<Self, VerifyError> {
        if trust.freshness(now) == Freshness::Sunset {
            return Err(VerifyError::TrustListSunset);
        }
        let envelope = Envelope::decode(envelope)?;
        let entry = trust
            .by_key_id(&envelope.key_id)
            .ok_or(VerifyError::UnknownSigner(envelope.key_id))?;
        let role = entry.cert().identity().role();
        // A badge signer's key is Ed25519: cert.rs refuses any other.
        let signer = (entry.cert().identity().city(), entry.cert().ed25519_key());
        let (signer_city, key) = match (role, signer) {
            (Role::BadgeSigner, (Some(city), Some(key))) => (city, key),
            _ => {
                return Err(VerifyError::WrongSignerRole {
                    key_id: envelope.key_id,
                    role,
                });
            }
        };
        Ok(Self {
            envelope,
            entry,
            issuer: trust.issuer_of(entry),
            key,
            signer_city,
        })
    }

    /// The payload exactly as signed.
    pub(crate) fn payload(&self) -> &[u8] {
        &self.envelope.payload
    }

    /// The envelope's signature.
    pub(crate) fn signature(&self) -> &Signature {
        &self.envelope.signature
    }

    /// The signer's public key.
    pub(crate) fn public_key(&self) -> &VerifyingKey {
        self.key
    }

    /// Whether the signature holds on its own, by the signature rule
    /// ([`crate::signing`]).
    pub(crate) fn signature_holds(&self) -> bool {
        signing::verify(
            BADGE_CONTEXT,
            self.payload(),
            self.signature(),
            self.public_key(),
        )
    }

    /// The checks after the signature: signer status, claims, issuer and
    /// window. Call only once the signature is known to hold.
    pub(crate) fn accept(self, now: i64) -> Result<VerifiedBadge, VerifyError> {
        let Self {
            envelope,
            entry,
            issuer,
            signer_city,
            ..
        } = self;
        let signer = entry.cert();
        if entry.is_revoked() {
            return Err(VerifyError::SignerRevoked(envelope.key_id));
        }
        // V10a: a revoked issuing CA revokes every signer it issued.
        if let Some(issuer) = issuer.filter(|i| i.is_revoked()) {
            return Err(VerifyError::IssuerRevoked {
                signer: envelope.key_id,
                issuer: issuer.cert().key_id(),
            });
        }
        let claims = BadgeClaims::decode(&envelope.payload).map_err(|e| match e {
            ClaimsError::UnsupportedVersion(v) => VerifyError::UnsupportedVersion(v),
            other => VerifyError::Claims(other),
        })?;
        if claims.issuer_city != signer_city {
            return Err(VerifyError::IssuerMismatch {
                claimed: claims.issuer_city,
                signer: signer_city,
            });
        }
        // A badge may not outlive the certificate that signed it: a leaked key
        // of an expired signer cannot mint badges valid for ever.
        // V13 holds for the issuing CA's certificate too, if any.
        let within = |cert: &crate::cert::CertInfo| {
            cert.valid_at(claims.issued_at) && claims.valid_until <= cert.not_after()
        };
        if !within(signer) || issuer.is_some_and(|i| !within(i.cert())) {
            return Err(VerifyError::SignerNotValidAtIssue {
                issued_at: claims.issued_at,
                valid_until: claims.valid_until,
            });
        }
        if claims.issued_at > now.saturating_add(CLOCK_SKEW_SECS) {
            return Err(VerifyError::NotYetValid {
                issued_at: claims.issued_at,
            });
        }
        if now > claims.valid_until {
            return Err(VerifyError::Expired {
                valid_until: claims.valid_until,
            });
        }
        Ok(VerifiedBadge {
            claims,
            key_id: envelope.key_id,
            issuer_name: entry.name().to_owned(),
        })
    }
}

/// The envelope bytes a `VerifyRequest` carries: its envelope as is, its
/// text decoded (rule T1 to T6 of PROTOCOL.md), or [`VerifyError::NoBadge`].
pub fn request_envelope(
    request: &pb::VerifyRequest,
) -> Result<std::borrow::Cow<'_, [u8]>, VerifyError> {
    match &request.badge {
        Some(pb::verify_request::Badge::Envelope(bytes)) => Ok(std::borrow::Cow::Borrowed(bytes)),
        Some(pb::verify_request::Badge::QrText(t)) => Ok(std::borrow::Cow::Owned(text::from_text(
            t,
            MAX_ENVELOPE_LEN,
        )?)),
        None => Err(VerifyError::NoBadge),
    }
}

/// Verifies the QR text form.
pub fn verify_text(
    badge_text: &str,
    trust: &CheckedTrustList,
    now: i64,
) -> Result<VerifiedBadge, VerifyError> {
    let bytes = text::from_text(badge_text, MAX_ENVELOPE_LEN)?;
    verify(&bytes, trust, now)
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
