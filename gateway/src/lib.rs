//! tessera-gateway: the national gateway.
//!
//! It owns the trust registry and its distribution ([`registry`]), who may
//! call what ([`authz`]), the verdict on a badge ([`verdict`]) and the relay of
//! status checks to city nodes ([`relay`]), the gRPC face ([`service`]),
//! configuration ([`config`]), start-up ([`server`]), serving again after a
//! full disk ([`lifecycle`]), the public read-only copy of the trust list
//! and every city's scoring policies ([`public`]) and the deletion
//! attestations it collects from cities at sunset ([`attestations`]), which
//! a follower copies from its peer with the policies ([`pool`]).
//!
//! It must never see a record, a name or an ID number, never tell a city node
//! who checked a badge or where, never keep a per-badge log (only aggregate
//! counters, and status answers in memory for at most the cache lifetime),
//! and never depend on the node crate.

pub mod attestations;
pub mod authz;
pub mod config;
pub mod lifecycle;
pub mod metrics;
pub mod policies;
pub mod pool;
pub mod public;
pub mod public_page;
pub mod registry;
pub mod relay;
pub mod server;
pub mod service;
pub mod verdict;
