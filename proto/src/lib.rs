//! The tessera.v1 protobuf standard, shared by every city node, the national
//! gateway and every checkpoint.
//!
//! This crate holds generated code only: the `.proto` files in `tessera/v1/`
//! are the standard, and their comments are its field-by-field reference.
//! Behaviour (signing, verification, authorization) lives in the crates that
//! use these types, never here.
//!
//! Features: with none, the crate is the messages alone (prost), which is
//! all an offline verifier needs; `client` adds the generated gRPC clients
//! and `server` the generated service traits, both over tonic's codegen
//! layer without its transport.

/// Version 1 of the standard, package `tessera.v1`.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/tessera.v1.rs"));
}

pub use v1::*;

/// The encoded `FileDescriptorSet` of every `.proto` file here, for server
/// reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/tessera_descriptor.bin"));

/// Not part of the standard: the echo service `tessera bench` measures as
/// its baseline (gRPC and mutual TLS with nothing behind them).
pub mod bench {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/tessera.bench.v1.rs"));
}
