//! tessera-certs: the national PKI.
//!
//! This crate owns the certificate profile of every role ([`profile`]), key
//! and certificate files ([`keys`]) and the modes every private file and
//! data directory keeps ([`files`]), and the authority's directory of
//! enrolments and the trust lists built and signed from it ([`authority`]).
//! Serving over mutual TLS with these certificates is `tessera-runtime`'s.

pub mod authority;
pub mod files;
pub mod keys;
pub mod profile;
pub mod request;
