//! End-to-end tests of tessera, one module per scenario.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod access_log;
mod authz_matrix;
mod backup;
mod badge_properties;
mod conformance;
mod correction;
mod follow;
mod garbage_bodies;
mod gateway;
mod golden;
mod hostile;
mod limits;
mod metrics;
mod mtls;
mod node;
mod one_verdict;
mod pkcs11;
mod policy;
mod policy_properties;
mod privacy_store;
mod relay_faults;
mod rotation;
mod standard_services;
mod sunset;
mod trust_list;
mod unlinkable;
mod verify_errors;
mod verify_requests;
