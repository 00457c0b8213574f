//! Waiting for room after a full disk, shared by the city node and the
//! gateway: once a store's disk filled, sled keeps its first I/O error and
//! refuses every later write in the same database, so a server says it
//! takes no writes ([`Health::writable`]) and, once there is room again,
//! stops so that its caller opens the store afresh and serves again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::standard::Health;

/// How often a server whose disk is full looks for room again (and, before
/// that, whether its store has noted a full disk).
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Resolves once the store whose data directory is `dir` found its disk
/// full (`is_full`, polled every [`PROBE_EVERY`]) and there is room again:
/// twice [`tessera_certs::files::ROOM_BYTES`] free, so that the reopened
/// store starts. While the disk is full the writes' health name and the
/// server as a whole (`""`) read NOT_SERVING, and an error line says what
/// `server` (the node, the gateway) still does.
pub async fn room_after_full_disk(
    is_full: impl Fn() -> bool,
    dir: &Path,
    health: &Health,
    server: &str,
) {
    let mut every = tokio::time::interval(PROBE_EVERY);
    while !is_full() {
        every.tick().await;
    }
    health.writable(false).await;
    tracing::error!(
        data_dir = %dir.display(),
        "the disk is full: health reads NOT_SERVING for writes, changes are refused with \
         RESOURCE_EXHAUSTED, reads go on; the {server} reopens its store once there is room"
    );
    let dir: PathBuf = dir.to_path_buf();
    loop {
        every.tick().await;
        let dir = dir.clone();
        if tokio::task::spawn_blocking(move || {
            tessera_certs::files::has_room(&dir, 2 * tessera_certs::files::ROOM_BYTES)
        })
        .await
        .unwrap_or(false)
        {
            tracing::warn!("the disk has room again: stopping to reopen the store");
            return;
        }
    }
}

/// How long [`reopen`] waits for a store to open again.
pub const REOPEN_TRIES: u32 = 150;

/// Opens a server's store again after its disk filled and has room again
/// (`open`), waiting (bounded: [`REOPEN_TRIES`] times 100 ms) while
/// `passing` says its error will pass: the store closed before still holds
/// its lock (connections still draining) or the room is taken again.
pub async fn reopen<T, E, F>(
    mut open: impl FnMut() -> F,
    passing: impl Fn(&E) -> bool,
) -> Result<T, E>
where
    F: std::future::Future<Output = Result<T, E>>,
{
    let mut tries = 0;
    loop {
        match open().await {
            Err(e) if tries < REOPEN_TRIES && passing(&e) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            opened => return opened,
        }
    }
}
