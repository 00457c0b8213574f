//! tessera-checkpoint: a checkpoint station (`tessera checkpoint serve`).
//!
//! It owns what a railway station's checkpoint runs beside its scanners:
//! the checkpoint's private key and its one mutual-TLS channel to the
//! gateway ([`relay`]), the trust list followed from the gateway and kept
//! durably ([`trust`]), the devices paired with it ([`devices`]), the
//! station's own HTTPS certificate ([`station_tls`]), the scanner app
//! embedded at build time ([`assets`]) and the HTTPS API the app calls
//! ([`api`], served by [`server`]).
//!
//! It must never hand a private key to a browser, log or store a badge text
//! or a verdict (only counters, [`counters`]), accept a trust list that does
//! not verify against the root or that is older than one it held, or depend
//! on the node or the gateway crates: it speaks to the gateway only through
//! the protocol.

pub mod api;
pub mod assets;
pub mod counters;
pub mod devices;
pub mod files;
pub mod relay;
pub mod server;
pub mod station_tls;
pub mod trust;

pub use server::{Settings, StartError, Station};
