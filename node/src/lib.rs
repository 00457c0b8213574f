//! tessera-node: a city's node, the only place its residents' records live.
//!
//! It will own the record store (sled, behind a store trait), the scoring
//! policy, badge issuance and the status service answered to the gateway. It
//! must never send a record, a score's inputs, a name or an ID number out of
//! the city, and never depend on the gateway crate.
//!
//! This crate is a skeleton until the city-node issue builds it; the badge
//! signing it will use already lives in `tessera_core::badge::BadgeSigner`.
