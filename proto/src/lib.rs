//! The tessera.v1 protobuf standard, shared by every city node, the national
//! gateway and every checkpoint.
//!
//! This crate holds generated code only: the `.proto` files in `tessera/v1/`
//! are the standard, and their comments are its field-by-field reference.
//! Behaviour (signing, verification, authorization) lives in the crates that
//! use these types, never here.

/// Version 1 of the standard, package `tessera.v1`.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("tessera.v1");
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
    tonic::include_proto!("tessera.bench.v1");
}
