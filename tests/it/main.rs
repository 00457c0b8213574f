//! End-to-end tests of tessera, one module per scenario.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod authz_matrix;
mod badge_properties;
mod follow;
mod gateway;
mod golden;
mod hostile;
mod metrics;
mod mtls;
mod node;
mod policy;
mod relay_faults;
mod rotation;
mod standard_services;
mod trust_list;
mod verify_errors;
