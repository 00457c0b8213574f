//! tessera-core: the badge and the trust list, as pure functions.
//!
//! This crate owns which bytes are signed and when an Ed25519 signature holds
//! ([`signing`]), the badge claims and envelope ([`badge`]), its QR text form
//! ([`text`]), how certificates are read ([`cert`]), the trust list and its verification up to the national root
//! ([`trust`]), deletion attestations ([`attestation`]), and badge verification, one at a time ([`verify`](mod@verify)) or many at
//! once ([`batch`]).
//!
//! It must never do I/O: no files, no sockets, no clocks (every check takes
//! `now` in Unix seconds), no tokio, no rustls, no sled. An offline verifier is
//! this crate plus a trust-list file and the pinned root certificate.

#[cfg(test)]
extern crate self as tessera_core;

pub mod attestation;
pub mod badge;
pub mod batch;
pub mod cert;
pub mod identity;
pub mod ids;
pub mod policy;
pub mod policy_doc;
pub mod signing;
pub mod text;
pub mod trust;
pub mod verify;

#[cfg(test)]
mod test_pki;

pub use badge::{BadgeClaims, BadgeSigner, Colour, HolderHint};
pub use batch::verify_batch;
pub use cert::{CertInfo, TrustAnchor};
pub use identity::{Identity, Role, Scope};
pub use ids::{BadgeId, CityCode, KeyId, ProvinceCode};
pub use trust::{CheckedTrustList, Freshness};
pub use verify::{VerifiedBadge, VerifyError, verify, verify_text};

/// Re-exported so callers build keys with the same Ed25519 implementation.
pub use ed25519_dalek;
