//! tessera-runtime: what a tessera server runs on, shared by the city node
//! and the national gateway.
//!
//! It owns mutual TLS: which peers may connect ([`tls`], with the holder of
//! the trust list in force, [`TrustState`]), what is read of a peer once per
//! connection ([`connection`]), which calls it may make ([`authz`]) and how
//! the caller's identity reaches a gRPC handler ([`grpc`]); what one client
//! may hold of a server: streams, watches, idle connections ([`limits`]);
//! the status of a request that does not decode ([`status`]); waiting for
//! room after a full disk ([`disk`]); the standard
//! health and reflection services ([`standard`]); Prometheus metrics and
//! their endpoint ([`metrics`]); following a gateway's trust list, as city
//! nodes and follower gateways do ([`follow`]); and picking up renewed
//! certificates and keys without a restart ([`reload`]); and the one serve
//! skeleton both servers call with their routes, their authorization table
//! and the tasks that run beside them ([`serve`]).
//!
//! The PKI itself (certificate profiles, key files, the authority) is
//! `tessera-certs`, below this crate. It must never weaken a check rustls
//! makes: tessera's own checks (role, extended key usage, revocation by the
//! trust list) are added on top of the WebPKI verifiers, never instead of
//! them.

mod allowed;
pub mod authz;
pub mod build;
mod calls;
pub mod clock;
pub mod connection;
pub mod disk;
pub mod follow;
pub mod grpc;
pub mod limits;
pub mod metrics;
mod peer;
pub mod process_metrics;
mod ready;
pub mod reload;
pub mod serve;
pub mod standard;
pub mod status;
pub mod tls;

pub use grpc::PeerIdentity;
pub use tls::{TlsIdentity, TrustState};
