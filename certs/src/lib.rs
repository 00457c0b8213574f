//! tessera-certs: the national PKI.
//!
//! This crate owns the certificate profile of every role ([`profile`]), key
//! and certificate files ([`keys`]), the authority's directory of enrolments
//! and the trust lists built and signed from it ([`authority`]), and mutual
//! TLS: which peers may connect ([`tls`]), what is read of a peer once per
//! connection ([`connection`]), which calls it may make ([`authz`]) and how
//! the caller's identity reaches a gRPC handler ([`grpc`]), and following a
//! gateway's trust list, as city nodes and follower gateways do ([`follow`]),
//! what one client may hold of a server: streams, watches, idle connections
//! ([`limits`]), picking up renewed certificates and keys without a restart
//! ([`reload`]), and the status of a request that does not decode
//! ([`status`]).
//!
//! It must never weaken a check rustls makes: tessera's own checks (role,
//! extended key usage, revocation by the trust list) are added on top of the
//! WebPKI verifiers, never instead of them.

pub mod authority;
pub mod authz;
pub mod connection;
pub mod files;
pub mod follow;
pub mod grpc;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod profile;
pub mod reload;
pub mod standard;
pub mod status;
pub mod tls;

pub use grpc::PeerIdentity;
pub use tls::{TlsIdentity, TrustState};
