//! tessera-certs: the national PKI.
//!
//! This crate owns the certificate profile of every role ([`profile`]), key
//! and certificate files ([`keys`]) and the modes every private file and
//! data directory keeps ([`files`]), the certificate signing requests a
//! party makes for its own keys and the authority checks ([`request`]), and
//! the authority's directory of enrolments and the trust lists built and
//! signed from it ([`authority`]). The authority never needs a party's
//! private key: it certifies the key of a checked request.
//! Serving over mutual TLS with these certificates is `tessera-runtime`'s.

pub mod authority;
pub mod ca_key;
pub mod files;
pub mod keys;
pub mod pkcs11;
pub mod profile;
pub mod request;
