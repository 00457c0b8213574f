//! The trust list: verified once into a [`CheckedTrustList`] that later code
//! queries without re-validating.
//!
//! A list is accepted only if its signer certificate was issued directly by
//! the pinned national root and has the trust-list-signer role, the
//! signature over the exact payload bytes holds, and every entry's
//! certificate was issued by the root or by an issuing CA that is itself an
//! entry of the same list (anywhere in it), and agrees with the entry about
//! role, code and validity. A revoked issuing CA revokes what it issued:
//! [`CheckedTrustList::issuer_of`] and [`CheckedTrustList::chain_refusal`]
//! say so to badge verification and to TLS.
//!
//! A trust-list signer is rotated by listing the old signer REVOKED in the
//! first list the new one signs. A list whose own entries revoke its signer
//! is refused, and so is a successor signed by a signer that the list held
//! revokes: once a verifier holds a list from the new signer, nothing the old
//! signer signs is accepted again, whatever its sequence.

use std::collections::{HashMap, HashSet};

use ed25519_dalek::{Signature, SigningKey};
use prost::Message;
use tessera_proto::v1 as pb;

use crate::cert::{CertError, CertInfo, IssuedBy, IssuingCa, TrustAnchor};
use crate::identity::Role;
use crate::ids::{CityCode, KeyId};
use crate::signing::{self, TRUST_LIST_CONTEXT};

/// The trust-list version this library writes and reads.
pub const TRUST_LIST_VERSION: u32 = 1;
/// Largest signed trust list accepted, in bytes.
pub const MAX_TRUST_LIST_LEN: usize = 16 * 1024 * 1024;
/// How far in the future a list's `issued_at` may lie (clock skew).
pub const CLOCK_SKEW_SECS: i64 = 300;

/// Why one entry of a list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// The certificate is unreadable or not issued by the root.
    #[error(transparent)]
    Certificate(#[from] CertError),
    /// The entry's role differs from its certificate's.
    #[error("entry says role {entry:?} but its certificate says {cert}")]
    RoleMismatch {
        /// Role field of the entry (wire value).
        entry: i32,
        /// Role in the certificate.
        cert: Role,
    },
    /// The entry's code differs from its certificate's.
    #[error("entry says code {entry:06} but its certificate says {cert:06}")]
    CodeMismatch {
        /// Code field of the entry.
        entry: u32,
        /// Code in the certificate.
        cert: u32,
    },
    /// The entry's validity differs from its certificate's.
    #[error("entry validity does not match its certificate")]
    ValidityMismatch,
    /// Status unspecified or unknown.
    #[error("entry status {0} is neither active nor revoked")]
    Status(i32),
    /// A node or gateway without an endpoint.
    #[error("entry of role {0} needs an endpoint")]
    MissingEndpoint(Role),
    /// Roles that are never listed one by one.
    #[error("role {0} is not listed in a trust list (revoke it by serial)")]
    UnlistedRole(Role),
}

/// Why a trust list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustListError {
    /// Larger than [`MAX_TRUST_LIST_LEN`].
    #[error("trust list of {0} bytes exceeds the limit of {MAX_TRUST_LIST_LEN}")]
    TooLarge(usize),
    /// Not a SignedTrustList or TrustList message (e.g. truncated).
    #[error("trust list does not decode: {0}")]
    Malformed(String),
    /// The signer certificate is unreadable or not issued by the root.
    #[error("trust-list signer certificate does not chain to the national root: {0}")]
    UntrustedSigner(CertError),
    /// The signer certificate has another role.
    #[error("trust list signed by a {0} certificate, not a trust-list signer")]
    SignerRole(Role),
    /// The signer certificate is outside its validity.
    #[error("trust-list signer certificate is not valid now")]
    SignerExpired,
    /// The signature does not match.
    #[error("trust-list signature does not match its payload")]
    BadSignature,
    /// The signer is revoked, by the list itself or by the list held.
    #[error(
        "trust list signed by the revoked trust-list signer {0} (the signer was rotated: fetch a list from the new signer)"
    )]
    SignerRevoked(KeyId),
    /// A version this library does not read.
    #[error(
        "trust list version {0} is not supported (this verifier reads version {TRUST_LIST_VERSION})"
    )]
    UnsupportedVersion(u32),
    /// Dates out of order.
    #[error("trust list dates are inconsistent: {0}")]
    Dates(&'static str),
    /// Issued further in the future than clock skew explains.
    #[error("trust list is issued in the future ({issued_at} > now {now})")]
    IssuedInFuture {
        /// The list's issued_at.
        issued_at: i64,
        /// The verifier's clock.
        now: i64,
    },
    /// The federation's sunset date has passed.
    #[error("trust list passed its sunset at {0}: nothing is trusted any more")]
    Sunset(i64),
    /// One entry is invalid.
    #[error("trust list entry {index}: {error}")]
    Entry {
        /// Index in the list.
        index: usize,
        /// What is wrong.
        error: EntryError,
    },
    /// Two entries carry the same certificate.
    #[error("trust list lists key {0} twice")]
    DuplicateKey(KeyId),
    /// A lower sequence than the list held (rollback).
    #[error(
        "trust list sequence {offered} is older than the held sequence {held} (rollback refused)"
    )]
    Rollback {
        /// Sequence held.
        held: u64,
        /// Sequence offered.
        offered: u64,
    },
    /// The held sequence with different contents.
    #[error("trust list sequence {0} is already held with different contents")]
    SequenceReused(u64),
}

impl EntryError {
    /// The stable reason code of this refusal (PROTOCOL.md, list rules).
    pub fn reason(&self) -> &'static str {
        match self {
            EntryError::Certificate(_) => "entry_certificate",
            EntryError::RoleMismatch { .. } => "entry_role_mismatch",
            EntryError::CodeMismatch { .. } => "entry_code_mismatch",
            EntryError::ValidityMismatch => "entry_validity_mismatch",
            EntryError::Status(_) => "entry_status",
            EntryError::MissingEndpoint(_) => "entry_missing_endpoint",
            EntryError::UnlistedRole(_) => "entry_unlisted_role",
        }
    }
}

impl TrustListError {
    /// The stable reason code of this refusal: one per list rule of
    /// PROTOCOL.md, the only place these codes are assigned.
    pub fn reason(&self) -> &'static str {
        match self {
            TrustListError::TooLarge(_) => "list_too_large",
            TrustListError::Malformed(_) => "list_malformed",
            TrustListError::UntrustedSigner(_) => "signer_untrusted",
            TrustListError::SignerRole(_) => "signer_role",
            TrustListError::SignerExpired => "signer_expired",
            TrustListError::BadSignature => "bad_signature",
            TrustListError::SignerRevoked(_) => "signer_revoked",
            TrustListError::UnsupportedVersion(_) => "unsupported_version",
            TrustListError::Dates(_) => "dates_inconsistent",
            TrustListError::IssuedInFuture { .. } => "issued_in_future",
            TrustListError::Sunset(_) => "sunset",
            TrustListError::Entry { error, .. } => error.reason(),
            TrustListError::DuplicateKey(_) => "duplicate_key",
            TrustListError::Rollback { .. } => "rollback",
            TrustListError::SequenceReused(_) => "sequence_reused",
        }
    }
}

/// The reason code of an accepted list.
pub const REASON_ACCEPTED: &str = "accepted";

/// Whether an entry is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryStatus {
    /// Trusted.
    Active,
    /// Revoked at the given time (Unix seconds).
    Revoked {
        /// When.
        at: i64,
    },
}

/// A verified entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedEntry {
    cert: CertInfo,
    issuer: Option<KeyId>,
    der: Vec<u8>,
    name: String,
    endpoint: String,
    status: EntryStatus,
}

impl CheckedEntry {
    /// The certificate's facts.
    pub fn cert(&self) -> &CertInfo {
        &self.cert
    }
    /// The certificate DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
    /// The key id of the issuing-CA entry that issued this certificate;
    /// `None` when the root issued it directly.
    pub fn issuer(&self) -> Option<KeyId> {
        self.issuer
    }
    /// Display name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// `host:port` for nodes and gateways, empty otherwise.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
    /// Active or revoked.
    pub fn status(&self) -> EntryStatus {
        self.status
    }
    /// Whether the entry is revoked.
    pub fn is_revoked(&self) -> bool {
        matches!(self.status, EntryStatus::Revoked { .. })
    }
}

/// How current a list is at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Before `next_update`.
    Fresh,
    /// Past `next_update`: a newer list should exist. Usable, with a warning.
    Stale {
        /// Seconds past `next_update`.
        overdue_secs: i64,
    },
    /// Past `sunset_at`: unusable.
    Sunset,
}

/// A trust list whose signature, signer and entries have been verified.
#[derive(Debug, Clone)]
pub struct CheckedTrustList {
    sequence: u64,
    issued_at: i64,
    next_update: i64,
    sunset_at: i64,
    entries: Vec<CheckedEntry>,
    by_key_id: HashMap<KeyId, usize>,
    revoked_serials: HashSet<Vec<u8>>,
    signer: CertInfo,
    payload: Vec<u8>,
    signed_bytes: Vec<u8>,
    root: TrustAnchor,
    issuing_cas: Vec<IssuingCa>,
}

/// Why a certificate chain that reached the root is refused by the list in
/// force (TLS and per-request authorisation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainRefusal {
    /// Issued by an issuing CA that the list lists REVOKED.
    #[error("issued by revoked issuing CA {}", crate::cert::hex_string(.0))]
    IssuerRevoked(Vec<u8>),
    /// Issued by neither the root nor an issuing CA the list lists.
    #[error("issued by an issuing CA that the trust list in force does not list")]
    IssuerUnlisted,
}

impl CheckedTrustList {
    /// Verifies an encoded SignedTrustList against the root at time `now`.
    pub fn verify(bytes: &[u8], root: &TrustAnchor, now: i64) -> Result<Self, TrustListError> {
        if bytes.len() > MAX_TRUST_LIST_LEN {
            return Err(TrustListError::TooLarge(bytes.len()));
        }
        let signed = pb::SignedTrustList::decode(bytes)
            .map_err(|e| TrustListError::Malformed(e.to_string()))?;
        let signer = CertInfo::parse_issued_by(&signed.signer_certificate, root)
            .map_err(TrustListError::UntrustedSigner)?;
        if signer.identity().role() != Role::TrustListSigner {
            return Err(TrustListError::SignerRole(signer.identity().role()));
        }
        if !signer.valid_at(now) {
            return Err(TrustListError::SignerExpired);
        }
        let signature =
            Signature::from_slice(&signed.signature).map_err(|_| TrustListError::BadSignature)?;
        // A trust-list signer's key is Ed25519 (cert.rs refuses any other).
        let holds = signer.ed25519_key().is_some_and(|key| {
            signing::verify(TRUST_LIST_CONTEXT, &signed.payload, &signature, key)
        });
        if !holds {
            return Err(TrustListError::BadSignature);
        }
        let list = pb::TrustList::decode(signed.payload.as_slice())
            .map_err(|e| TrustListError::Malformed(e.to_string()))?;
        if list.version != TRUST_LIST_VERSION {
            return Err(TrustListError::UnsupportedVersion(list.version));
        }
        if list.next_update < list.issued_at {
            return Err(TrustListError::Dates("next_update is before issued_at"));
        }
        if list.sunset_at < list.next_update {
            return Err(TrustListError::Dates("sunset_at is before next_update"));
        }
        if list.issued_at > now.saturating_add(CLOCK_SKEW_SECS) {
            return Err(TrustListError::IssuedInFuture {
                issued_at: list.issued_at,
                now,
            });
        }
        if now > list.sunset_at {
            return Err(TrustListError::Sunset(list.sunset_at));
        }
        // E1: an entry's issuer may be any issuing-CA entry of the list, so
        // those are read first; one that fails is refused at its own index
        // below.
        let issuing_cas: Vec<IssuingCa> = list
            .entries
            .iter()
            .filter(|e| Role::from_proto(e.role) == Some(Role::IssuingCa))
            .filter_map(|e| IssuingCa::from_der(&e.certificate_der, root).ok())
            .collect();
        let mut entries = Vec::with_capacity(list.entries.len());
        let mut by_key_id = HashMap::with_capacity(list.entries.len());
        for (index, entry) in list.entries.into_iter().enumerate() {
            let checked = check_entry(entry, root, &issuing_cas)
                .map_err(|error| TrustListError::Entry { index, error })?;
            let key_id = checked.cert.key_id();
            if by_key_id.insert(key_id, index).is_some() {
                return Err(TrustListError::DuplicateKey(key_id));
            }
            entries.push(checked);
        }
        let revoked_serials: HashSet<Vec<u8>> = list.revoked_serials.into_iter().collect();
        let signer_key_id = signer.key_id();
        if revoked_serials.contains(signer.serial())
            || by_key_id
                .get(&signer_key_id)
                .and_then(|&i| entries.get(i))
                .is_some_and(CheckedEntry::is_revoked)
        {
            return Err(TrustListError::SignerRevoked(signer_key_id));
        }
        Ok(Self {
            sequence: list.sequence,
            issued_at: list.issued_at,
            next_update: list.next_update,
            sunset_at: list.sunset_at,
            entries,
            by_key_id,
            revoked_serials,
            signer,
            payload: signed.payload,
            signed_bytes: bytes.to_vec(),
            root: root.clone(),
            issuing_cas,
        })
    }

    /// Verifies a list offered to replace this one: refuses a lower sequence
    /// (rollback), the same sequence with different contents, and a list
    /// signed by a trust-list signer that this list revokes (a rotated-out
    /// signer, whatever sequence it writes).
    pub fn verify_successor(
        &self,
        bytes: &[u8],
        root: &TrustAnchor,
        now: i64,
    ) -> Result<Self, TrustListError> {
        let next = Self::verify(bytes, root, now)?;
        if next.sequence < self.sequence {
            return Err(TrustListError::Rollback {
                held: self.sequence,
                offered: next.sequence,
            });
        }
        if next.sequence == self.sequence && next.payload != self.payload {
            return Err(TrustListError::SequenceReused(next.sequence));
        }
        if self.is_revoked(&next.signer) {
            return Err(TrustListError::SignerRevoked(next.signer.key_id()));
        }
        Ok(next)
    }

    /// The sequence number.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }
    /// When signed (Unix seconds).
    pub fn issued_at(&self) -> i64 {
        self.issued_at
    }
    /// When a newer list is due (Unix seconds).
    pub fn next_update(&self) -> i64 {
        self.next_update
    }
    /// When the federation switches off (Unix seconds).
    pub fn sunset_at(&self) -> i64 {
        self.sunset_at
    }
    /// The entries, in list order.
    pub fn entries(&self) -> &[CheckedEntry] {
        &self.entries
    }
    /// Serials revoked without an entry.
    pub fn revoked_serials(&self) -> impl Iterator<Item = &[u8]> {
        self.revoked_serials.iter().map(Vec::as_slice)
    }
    /// The signer certificate's facts.
    pub fn signer_certificate(&self) -> &CertInfo {
        &self.signer
    }
    /// The encoded SignedTrustList, exactly as verified.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.signed_bytes
    }

    /// How current the list is at `now`.
    pub fn freshness(&self, now: i64) -> Freshness {
        if now > self.sunset_at {
            Freshness::Sunset
        } else if now > self.next_update {
            Freshness::Stale {
                overdue_secs: now.saturating_sub(self.next_update),
            }
        } else {
            Freshness::Fresh
        }
    }

    /// The entry whose certificate has this key id, in constant time with
    /// respect to the list's size.
    pub fn by_key_id(&self, key_id: &KeyId) -> Option<&CheckedEntry> {
        self.by_key_id
            .get(key_id)
            .and_then(|&i| self.entries.get(i))
    }

    /// The active city-node entry of a city, if any.
    pub fn city_node(&self, city: CityCode) -> Option<&CheckedEntry> {
        self.entries.iter().find(|e| {
            e.cert.identity().role() == Role::CityNode
                && e.cert.identity().city() == Some(city)
                && !e.is_revoked()
        })
    }

    /// Whether a certificate (already chained to the root) is revoked by this
    /// list: listed as revoked, or its serial is on the revoked-serials list.
    pub fn is_revoked(&self, cert: &CertInfo) -> bool {
        self.revokes(cert.serial(), &cert.key_id())
    }

    /// Whether the certificate with this serial and key id is revoked.
    pub fn revokes(&self, serial: &[u8], key_id: &KeyId) -> bool {
        self.revoked_serials.contains(serial)
            || self.by_key_id(key_id).is_some_and(CheckedEntry::is_revoked)
    }

    /// The issuing-CA entry that issued this entry's certificate; `None`
    /// when the root issued it directly.
    pub fn issuer_of(&self, entry: &CheckedEntry) -> Option<&CheckedEntry> {
        entry.issuer.and_then(|key_id| self.by_key_id(&key_id))
    }

    /// The issuing CAs the list names, revoked ones included, checked
    /// against the root: what a certificate of the federation may be
    /// issued by besides the root.
    pub fn issuing_ca_certs(&self) -> &[IssuingCa] {
        &self.issuing_cas
    }

    /// The issuing-CA entries, in list order.
    pub fn issuing_cas(&self) -> impl Iterator<Item = &CheckedEntry> {
        self.entries
            .iter()
            .filter(|e| e.cert.identity().role() == Role::IssuingCa)
    }

    /// Whether the issuing CA with this certificate is listed and not
    /// revoked.
    pub fn issuing_ca_in_force(&self, der: &[u8]) -> bool {
        self.by_key_id(&KeyId::of_certificate(der))
            .is_some_and(|e| e.cert.identity().role() == Role::IssuingCa && !e.is_revoked())
    }

    /// Whether the issuing CA with this key id and serial (one that issued
    /// a TLS peer's certificate, [`CertInfo::issuing_ca_among`]) is refused:
    /// listed REVOKED, or not listed at all.
    pub fn issuer_refusal(&self, key_id: &KeyId, serial: &[u8]) -> Option<ChainRefusal> {
        match self.by_key_id(key_id) {
            Some(e) if e.cert.identity().role() == Role::IssuingCa => e
                .is_revoked()
                .then(|| ChainRefusal::IssuerRevoked(serial.to_vec())),
            _ => Some(ChainRefusal::IssuerUnlisted),
        }
    }

    /// Whether a certificate that TLS has already chained to the root is
    /// refused for its issuer: issued by an issuing CA this list lists
    /// REVOKED, or by one it does not list. A certificate the root issued
    /// directly passes (its own revocation is [`CheckedTrustList::is_revoked`]).
    pub fn chain_refusal(&self, leaf_der: &[u8]) -> Option<ChainRefusal> {
        match CertInfo::parse_issued_within(leaf_der, &self.root, &self.issuing_cas) {
            Ok((_, IssuedBy::Root)) => None,
            Ok((_, IssuedBy::IssuingCa(index))) => {
                let ca = self.issuing_cas.get(index)?;
                self.by_key_id(&ca.info().key_id())
                    .filter(|e| e.is_revoked())
                    .map(|_| ChainRefusal::IssuerRevoked(ca.info().serial().to_vec()))
            }
            Err(_) => Some(ChainRefusal::IssuerUnlisted),
        }
    }
}

fn check_entry(
    entry: pb::TrustEntry,
    root: &TrustAnchor,
    cas: &[IssuingCa],
) -> Result<CheckedEntry, EntryError> {
    let (cert, by) = CertInfo::parse_issued_within(&entry.certificate_der, root, cas)?;
    let issuer = match by {
        IssuedBy::Root => None,
        IssuedBy::IssuingCa(index) => cas.get(index).map(|ca| ca.info().key_id()),
    };
    let identity = cert.identity();
    if Role::from_proto(entry.role) != Some(identity.role()) {
        return Err(EntryError::RoleMismatch {
            entry: entry.role,
            cert: identity.role(),
        });
    }
    match identity.role() {
        Role::Root | Role::Operator | Role::Verifier | Role::Authority => {
            return Err(EntryError::UnlistedRole(identity.role()));
        }
        Role::CityNode | Role::Gateway if entry.endpoint.is_empty() => {
            return Err(EntryError::MissingEndpoint(identity.role()));
        }
        _ => {}
    }
    if entry.code != identity.scope().code() {
        return Err(EntryError::CodeMismatch {
            entry: entry.code,
            cert: identity.scope().code(),
        });
    }
    if entry.not_before != cert.not_before() || entry.not_after != cert.not_after() {
        return Err(EntryError::ValidityMismatch);
    }
    let status = match pb::EntryStatus::try_from(entry.status) {
        Ok(pb::EntryStatus::Active) => EntryStatus::Active,
        Ok(pb::EntryStatus::Revoked) => EntryStatus::Revoked {
            at: entry.revoked_at,
        },
        _ => return Err(EntryError::Status(entry.status)),
    };
    Ok(CheckedEntry {
        cert,
        issuer,
        der: entry.certificate_der,
        name: entry.name,
        endpoint: entry.endpoint,
        status,
    })
}

/// Signs a trust list: the authority's side of [`CheckedTrustList::verify`].
/// Returns the encoded SignedTrustList.
pub fn sign_trust_list(
    list: &pb::TrustList,
    key: &SigningKey,
    signer_certificate_der: &[u8],
) -> Result<Vec<u8>, TrustListError> {
    let payload = list.encode_to_vec();
    let signature = signing::sign(TRUST_LIST_CONTEXT, &payload, key)
        .ok_or(TrustListError::TooLarge(payload.len()))?;
    let bytes = pb::SignedTrustList {
        payload,
        signature: signature.to_bytes().to_vec(),
        signer_certificate: signer_certificate_der.to_vec(),
    }
    .encode_to_vec();
    if bytes.len() > MAX_TRUST_LIST_LEN {
        return Err(TrustListError::TooLarge(bytes.len()));
    }
    Ok(bytes)
}

#[cfg(test)]
#[path = "trust_tests.rs"]
mod tests;
