//! A node's life: load, serve, reopen after a full disk, and, with
//! `[sunset] automatic`, switch off for good at the trust list's sunset
//! date. The only module that knows both serving ([`crate::server`]) and
//! destruction ([`crate::sunset`]).

use std::time::Duration;

use crate::config::NodeSettings;
use crate::error::StartError;
use crate::load::{self, Loaded};
use crate::server::{self, Served};
use crate::store::StoreError;
use crate::sunset::{self, Reason, Sunset, SunsetError};
use tessera_runtime::clock::unix_now;
use tessera_runtime::disk;
use tessera_runtime::serve::{self, Stop};

/// How a node run ended.
#[derive(Debug)]
pub enum Ended {
    /// Stopped by its shutdown signal.
    Stopped,
    /// Switched off at its sunset date (`[sunset] automatic`): everything
    /// destroyed, the attestation signed and, if a gateway is configured,
    /// submitted (`submitted` says whether that worked).
    SwitchedOff {
        /// The sunset.
        sunset: Sunset,
        /// Whether the gateway took the attestation (`Ok(false)`: no
        /// gateway configured).
        submitted: Result<bool, String>,
    },
}

/// Runs a node until `shutdown` resolves or, with `[sunset] automatic`,
/// until the trust list in force reaches its sunset date; then it stops
/// accepting calls, destroys everything, signs and submits the attestation.
/// A node whose list is already past its sunset (or whose earlier sunset
/// was interrupted) does that at once without serving. `listening` is
/// called once the node is loaded, before it serves.
pub async fn run_node(
    settings: NodeSettings,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
    listening: impl FnOnce(&Loaded),
) -> Result<Ended, SunsetError> {
    if settings.sunset_automatic && sunset::due_at_start(&settings, unix_now()) {
        drop(listener);
        return switch_off(&settings).await;
    }
    let loaded = load::load(settings)?;
    listening(&loaded);
    run_loaded(loaded, listener, shutdown).await
}

/// Runs a node already loaded, as [`run_node`] does once it has loaded it:
/// serves until `shutdown` resolves, opens it afresh each time a full disk
/// has room again, and, with `[sunset] automatic`, switches it off at the
/// trust list's sunset date.
pub async fn run_loaded(
    loaded: Loaded,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<Ended, SunsetError> {
    let settings = loaded.settings.clone();
    // `shutdown` may end any of the serves below.
    let reload_from = &settings;
    let serving = |stop: Stop| async move {
        let mut served = server::serve(&loaded, listener, stop.signal()).await?;
        drop(loaded);
        // A disk that filled and has room again: open everything afresh
        // (sled keeps its first I/O error in an open database) and serve
        // again, unless asked to stop meanwhile.
        while served == Served::DiskFreed && !stop.requested() {
            let loaded = load_after_full_disk(reload_from).await?;
            let listener = server::bind(reload_from).await?;
            tracing::info!("store reopened after a full disk: serving again");
            served = server::serve(&loaded, listener, stop.signal()).await?;
        }
        Ok::<Served, SunsetError>(served)
    };
    match serve::until_stopped(shutdown, serving).await? {
        Served::Stopped | Served::DiskFreed => Ok(Ended::Stopped),
        Served::SunsetDue => switch_off(&settings).await,
    }
}

/// Loads the node again after its store's disk filled and has room again,
/// waiting while the store closed before still holds its lock or while the
/// room is taken again ([`disk::reopen`]).
async fn load_after_full_disk(settings: &NodeSettings) -> Result<Loaded, SunsetError> {
    let loaded = disk::reopen(
        || std::future::ready(load::load(settings.clone())),
        |e| {
            matches!(
                e,
                StartError::Store(StoreError::Locked(_) | StoreError::DiskFull(_))
            )
        },
    )
    .await;
    Ok(loaded?)
}

async fn switch_off(settings: &NodeSettings) -> Result<Ended, SunsetError> {
    // Connections still draining may hold the store open for a moment after
    // the server stopped: wait for its lock, bounded.
    let mut tries = 0;
    let sunset = loop {
        let settings = settings.clone();
        match tokio::task::spawn_blocking(move || sunset::destroy(&settings, Reason::Sunset)).await
        {
            Ok(Err(SunsetError::Running(_))) if tries < 150 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(result) => break result?,
            Err(e) => {
                return Err(SunsetError::Io {
                    what: "the destruction task".into(),
                    source: std::io::Error::other(e.to_string()),
                });
            }
        }
    };
    let submitted = sunset::submit(settings, &sunset.signed)
        .await
        .map_err(|e| e.to_string());
    match &submitted {
        Ok(true) => tracing::warn!("deletion attestation submitted to the gateway"),
        Ok(false) => {}
        Err(e) => tracing::error!(error = %e, "deletion attestation not submitted"),
    }
    Ok(Ended::SwitchedOff { sunset, submitted })
}
