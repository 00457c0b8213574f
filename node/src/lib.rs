//! tessera-node: a city's node, the only place its residents' records live.
//!
//! It owns the record store ([`store`], sled behind the [`store::Store`]
//! trait, with group commit in [`commit`]), what a valid record is
//! ([`records`]), encryption at rest ([`vault`]), residents' pseudonyms ([`pseudonym`]), the scoring policy
//! ([`policy`]), the node's work — ingest, issuance, explanation, status
//! ([`city`]) — who may call what ([`authz`]), the gRPC face ([`service`]),
//! configuration ([`config`]), CSV import ([`import`]), the hash-chained log
//! of operators' reads of residents' records ([`access_log`]), and a node's
//! life: its data directory ([`data_dir`]), loading ([`load`]), when a
//! renewed badge signer may be used ([`signer`]), serving ([`server`]) with
//! what runs beside it ([`tasks`]), switching off for good ([`sunset`]), online backup and restore
//! ([`backup`]), and
//! the one module that strings them together ([`lifecycle`]).
//!
//! It must never send a record, a score's inputs, a name or an ID number out
//! of the city, never store an ID number in clear, and never depend on the
//! gateway crate.

pub mod access_log;
pub mod authz;
pub mod backup;
pub mod city;
pub mod commit;
pub mod config;
pub mod data_dir;
pub mod error;
pub mod import;
pub mod lifecycle;
pub mod load;
pub mod metrics;
pub mod policy;
pub mod policy_set;
pub mod pseudonym;
pub mod records;
pub mod server;
pub mod service;
pub mod signer;
pub mod store;
pub mod sunset;
pub mod tasks;
pub mod vault;
