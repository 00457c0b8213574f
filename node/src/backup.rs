//! Online backup and restore of a node's data directory.
//!
//! sled admits one process per store, so the running node takes the copy
//! itself (`BackupStore`, operator of this city): the store's tree under the
//! writer lock, so the copy is one state of the store holding every change
//! acknowledged before the call; the access log up to the head it read
//! first; then the pseudonym key, the policies the node signed itself and
//! the cached trust list. Everything is synced, and the marker file
//! ([`MARKER`]) is written last: a directory without it is not a backup.
//!
//! Keys: records stay sealed under their residents' data keys, which stay
//! wrapped under the master key, as in `data_dir`. The master key is never
//! copied; the marker names its generation and fingerprint, and a restore
//! needs that very key. The pseudonym key is copied, as `data_dir` holds
//! it: without it no record can be found by ID number.
//!
//! A restore ([`restore`]) runs with the node stopped, into an empty
//! `data_dir`: it checks the marker (format, layout version, city) and the
//! master key before copying, copies into a temporary directory beside
//! `data_dir`, opens the copy as a store and compares what it holds with
//! the marker, then renames it into place.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::access_log::{self, AccessLog, AccessLogError};
use crate::city::{City, NodeError};
use crate::config::NodeSettings;
use crate::data_dir;
use crate::store::{Census, LAYOUT, SledStore, Store, StoreError};
use crate::vault::KeyFile;

/// The marker file of a finished backup, written last.
pub const MARKER: &str = "tessera-backup.toml";

/// The marker's format.
pub const FORMAT: u32 = 1;

/// What a backup holds, as its marker file says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Marker {
    /// [`FORMAT`].
    pub format: u32,
    /// The store layout version of the copy.
    pub layout: u32,
    /// The city whose node wrote it.
    pub city: String,
    /// When the copy was taken (Unix seconds).
    pub taken_at: i64,
    /// Residents holding a data key.
    pub residents: u64,
    /// Records.
    pub records: u64,
    /// Badge states.
    pub badges: u64,
    /// Access-log entries.
    pub access_log_length: u64,
    /// The master key's generation (erasures rotate it).
    pub master_key_generation: u64,
    /// The master key's fingerprint, hex: only that key restores this.
    pub master_key_fingerprint: String,
    /// The files copied beside `store/`, relative to the backup.
    pub files: Vec<String>,
}

impl Marker {
    fn census(&self) -> Census {
        Census {
            residents: self.residents,
            records: self.records,
            badges: self.badges,
        }
    }
}

/// Why a backup or a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The node has no `[storage] backup_dir`.
    #[error(
        "this node has no [storage] backup_dir: set one in its configuration (outside data_dir) \
         to take backups while it runs"
    )]
    NotConfigured,
    /// The directory asked for cannot be a backup target.
    #[error("backup directory: {0}")]
    Target(String),
    /// The backup cannot be restored (its marker, its layout, the key).
    #[error("{0}")]
    Refused(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The access log failed.
    #[error("access log: {0}")]
    AccessLog(#[from] AccessLogError),
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

impl From<NodeError> for BackupError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Store(s) => Self::Store(s),
            other => Self::Refused(other.to_string()),
        }
    }
}

fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> BackupError {
    let what = what.to_string();
    move |source| BackupError::Io { what, source }
}

/// Where a `BackupStore` request may write: `requested` inside
/// `backup_dir` (a relative path is taken inside it), not existing yet,
/// its parent existing, with no `..`, and outside `data_dir`.
pub fn target(
    backup_dir: Option<&Path>,
    data_dir: &Path,
    requested: &str,
) -> Result<PathBuf, BackupError> {
    let root = backup_dir.ok_or(BackupError::NotConfigured)?;
    let asked = Path::new(requested);
    if requested.is_empty() || asked.components().any(|c| c == Component::ParentDir) {
        return Err(BackupError::Target(format!(
            "{requested:?} is empty or holds `..`: name a new directory inside [storage] backup_dir"
        )));
    }
    let path = if asked.is_absolute() {
        asked.to_path_buf()
    } else {
        root.join(asked)
    };
    if !path.starts_with(root) || path == root {
        return Err(BackupError::Target(format!(
            "{} is not inside [storage] backup_dir {}",
            path.display(),
            root.display()
        )));
    }
    if path.starts_with(data_dir) {
        return Err(BackupError::Target(format!(
            "{} lies inside data_dir",
            path.display()
        )));
    }
    if std::fs::symlink_metadata(&path).is_ok() {
        return Err(BackupError::Target(format!(
            "{} exists already: name a new directory",
            path.display()
        )));
    }
    if !path.parent().is_some_and(Path::is_dir) {
        return Err(BackupError::Target(format!(
            "the parent of {} is not a directory",
            path.display()
        )));
    }
    Ok(path)
}

/// Takes a backup of the running node into `dest` (checked by [`target`]),
/// durably, and returns its marker. On failure `dest` is removed: a
/// directory without a marker is never left for a restore to doubt.
pub async fn take<S: Store>(
    city: &City<S>,
    log: &Arc<AccessLog>,
    data_dir: &Path,
    dest: &Path,
    now: i64,
) -> Result<Marker, BackupError> {
    let taken = take_into(city, log, data_dir, dest, now).await;
    if taken.is_err() {
        let _ = std::fs::remove_dir_all(dest);
    }
    taken
}

async fn take_into<S: Store>(
    city: &City<S>,
    log: &Arc<AccessLog>,
    data_dir: &Path,
    dest: &Path,
    now: i64,
) -> Result<Marker, BackupError> {
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dest)
        .map_err(io(format!("creating {}", dest.display())))?;
    let store_dir = dest.join(data_dir::STORE);
    tessera_certs::files::prepare_sled_dir(&store_dir)
        .map_err(|e| StoreError::Files(e.to_string()))?;
    let db = sled::Config::new()
        .path(&store_dir)
        .open()
        .map_err(StoreError::from)?;
    let copied = city.copy_store(db.clone()).await?;
    let (log, into, data) = (Arc::clone(log), db.clone(), data_dir.to_path_buf());
    let dest_owned = dest.to_path_buf();
    let city_code = city.city().to_string();
    let marker = tokio::task::spawn_blocking(move || -> Result<Marker, BackupError> {
        let tree = into.open_tree(access_log::TREE).map_err(StoreError::from)?;
        let access_log_length = log.copy_into(&tree)?;
        drop(tree);
        into.flush().map_err(StoreError::from)?;
        drop(into);
        drop(db);
        wait_unlocked(&store_dir)?;
        let files = copy_files(&data, &dest_owned)?;
        sync_tree(&dest_owned)?;
        Ok(Marker {
            format: FORMAT,
            layout: copied.layout,
            city: city_code,
            taken_at: now,
            residents: copied.census.residents,
            records: copied.census.records,
            badges: copied.census.badges,
            access_log_length,
            master_key_generation: copied.key_generation,
            master_key_fingerprint: hex::encode(copied.key_fingerprint),
            files,
        })
    })
    .await
    .map_err(|e| BackupError::Refused(format!("backup task failed: {e}")))??;
    write_marker(dest, &marker)?;
    Ok(marker)
}

/// Waits (at most 10 s) until sled's flusher thread lets go of the copy's
/// lock, so no write of it lands after the files are synced.
fn wait_unlocked(store_dir: &Path) -> Result<(), BackupError> {
    let lock = store_dir.join("db");
    let file = std::fs::File::open(&lock).map_err(io(format!("opening {}", lock.display())))?;
    for _ in 0..1000 {
        match file.try_lock() {
            Ok(()) => return file.unlock().map_err(io("unlocking the copy")),
            Err(std::fs::TryLockError::WouldBlock) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("locking the copy")(e)),
        }
    }
    Err(BackupError::Refused(
        "the copied store stayed locked after it was closed".into(),
    ))
}

/// Copies the pseudonym key, the node's own policies and the cached trust
/// list (those present) from `from` to `to`; returns their relative paths.
fn copy_files(from: &Path, to: &Path) -> Result<Vec<String>, BackupError> {
    let mut names = vec![];
    for name in [data_dir::PSEUDONYM_KEY, data_dir::TRUST_CACHE] {
        if from.join(name).is_file() {
            names.push(PathBuf::from(name));
        }
    }
    let policies = from.join(data_dir::POLICY_DIR);
    if policies.is_dir() {
        let mut own: Vec<PathBuf> = std::fs::read_dir(&policies)
            .map_err(io(format!("reading {}", policies.display())))?
            .filter_map(Result::ok)
            .filter(|e| e.path().is_file())
            .map(|e| Path::new(data_dir::POLICY_DIR).join(e.file_name()))
            .collect();
        own.sort();
        if !own.is_empty() {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(to.join(data_dir::POLICY_DIR))
                .map_err(io("creating the policies directory"))?;
        }
        names.extend(own);
    }
    for name in &names {
        let bytes =
            std::fs::read(from.join(name)).map_err(io(format!("reading {}", name.display())))?;
        tessera_certs::files::write_private(&to.join(name), &bytes)
            .map_err(|e| BackupError::Refused(e.to_string()))?;
    }
    Ok(names
        .iter()
        .map(|n| n.to_string_lossy().into_owned())
        .collect())
}

/// Syncs every file and directory under `dir`, and `dir`.
fn sync_tree(dir: &Path) -> Result<(), BackupError> {
    for entry in std::fs::read_dir(dir).map_err(io(format!("reading {}", dir.display())))? {
        let path = entry.map_err(io("listing a directory"))?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(io(format!("syncing {}", path.display())))?;
        }
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("syncing {}", dir.display())))
}

/// Writes the marker durably: a temporary file, synced, renamed, and the
/// directory synced.
fn write_marker(dest: &Path, marker: &Marker) -> Result<(), BackupError> {
    let text = toml::to_string(marker)
        .map_err(|e| BackupError::Refused(format!("encoding the marker: {e}")))?;
    let tmp = dest.join(format!("{MARKER}.tmp"));
    tessera_certs::files::write_private(&tmp, text.as_bytes())
        .map_err(|e| BackupError::Refused(e.to_string()))?;
    std::fs::rename(&tmp, dest.join(MARKER)).map_err(io("renaming the marker into place"))?;
    std::fs::File::open(dest)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("syncing {}", dest.display())))
}

/// Reads and checks the marker of the backup in `dir`: its format, and a
/// layout version this release reads.
pub fn read_marker(dir: &Path) -> Result<Marker, BackupError> {
    let path = dir.join(MARKER);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        BackupError::Refused(format!(
            "{} has no readable {MARKER} ({e}): it is not a finished backup (a backup that \
             failed or is still being written has none)",
            dir.display()
        ))
    })?;
    let marker: Marker = toml::from_str(&text)
        .map_err(|e| BackupError::Refused(format!("{} does not parse: {e}", path.display())))?;
    if marker.format != FORMAT {
        return Err(BackupError::Refused(format!(
            "{} is of backup format {}; this release reads format {FORMAT}",
            path.display(),
            marker.format
        )));
    }
    if marker.layout > LAYOUT {
        return Err(BackupError::Refused(format!(
            "the backup in {} holds store layout {}, written by a newer tessera; this release \
             reads layouts up to {LAYOUT}: restore it with that release (docs/OPERATIONS.md, \
             \"Upgrade\")",
            dir.display(),
            marker.layout
        )));
    }
    Ok(marker)
}

/// Restores the backup in `from` into the empty (or absent) `data_dir` of
/// `settings`, with the node stopped; returns its marker.
pub fn restore(settings: &NodeSettings, from: &Path) -> Result<Marker, BackupError> {
    let marker = read_marker(from)?;
    if marker.city != settings.city.to_string() {
        return Err(BackupError::Refused(format!(
            "the backup in {} is of city {}, this configuration is of city {}",
            from.display(),
            marker.city,
            settings.city
        )));
    }
    for name in std::iter::once(data_dir::STORE).chain(marker.files.iter().map(String::as_str)) {
        if !from.join(name).exists() || Path::new(name).is_absolute() || name.contains("..") {
            return Err(BackupError::Refused(format!(
                "the backup in {} lacks {name}, which its marker lists",
                from.display()
            )));
        }
    }
    check_master_key(&settings.master_key, &marker)?;
    let data = &settings.data_dir;
    if let Ok(mut entries) = std::fs::read_dir(data)
        && entries.next().is_some()
    {
        return Err(BackupError::Refused(format!(
            "data_dir {} is not empty: restore only into an empty data directory (move the old \
             one aside, with the node stopped)",
            data.display()
        )));
    }
    let staging = staging_dir(data)?;
    let _ = std::fs::remove_dir_all(&staging);
    copy_dir(from, &staging)?;
    let _ = std::fs::remove_file(staging.join(MARKER));
    let census = {
        let store = SledStore::open(&staging.join(data_dir::STORE), &settings.master_key)?;
        let census = store.census()?;
        store.flush()?;
        census
    };
    if census != marker.census() {
        return Err(BackupError::Refused(format!(
            "the restored store holds {census:?}, the backup's marker says {:?}: the backup is \
             damaged; nothing was restored (the copy is left in {})",
            marker.census(),
            staging.display()
        )));
    }
    wait_unlocked(&staging.join(data_dir::STORE))?;
    sync_tree(&staging)?;
    if data.exists() {
        std::fs::remove_dir(data).map_err(io(format!("replacing {}", data.display())))?;
    }
    std::fs::rename(&staging, data)
        .map_err(io(format!("moving the copy to {}", data.display())))?;
    if let Some(parent) = data.parent() {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io(format!("syncing {}", parent.display())))?;
    }
    Ok(marker)
}

/// The master key file must hold the key the backup was written under
/// (or a rotation left it as the next key).
fn check_master_key(path: &Path, marker: &Marker) -> Result<(), BackupError> {
    let file = KeyFile::new(path);
    let matches = |key: Option<crate::vault::MasterKey>| {
        key.is_some_and(|k| hex::encode(k.fingerprint()) == marker.master_key_fingerprint)
    };
    let current = file.read().map_err(StoreError::from)?;
    if current.is_none() {
        return Err(BackupError::Refused(format!(
            "no master key at {}: put there the key the backup was written under (generation \
             {}, fingerprint {}…), from where you keep master-key backups",
            path.display(),
            marker.master_key_generation,
            &marker.master_key_fingerprint[..16.min(marker.master_key_fingerprint.len())]
        )));
    }
    if matches(current) || matches(file.read_next().map_err(StoreError::from)?) {
        return Ok(());
    }
    Err(BackupError::Refused(format!(
        "the master key at {} is not the one the backup was written under (generation {}, \
         fingerprint {}…): residents were erased since the backup, or the key is another \
         node's. Only that key restores this backup (docs/OPERATIONS.md, \"Back up and restore\")",
        path.display(),
        marker.master_key_generation,
        &marker.master_key_fingerprint[..16.min(marker.master_key_fingerprint.len())]
    )))
}

fn staging_dir(data: &Path) -> Result<PathBuf, BackupError> {
    let name = data
        .file_name()
        .ok_or_else(|| BackupError::Refused(format!("data_dir {} has no name", data.display())))?;
    let mut staged = name.to_os_string();
    staged.push(".restoring");
    Ok(data.with_file_name(staged))
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), BackupError> {
    tessera_certs::files::private_dir(to).map_err(|e| BackupError::Refused(e.to_string()))?;
    for entry in std::fs::read_dir(from).map_err(io(format!("reading {}", from.display())))? {
        let path = entry.map_err(io("listing a directory"))?.path();
        let Some(name) = path.file_name() else {
            continue;
        };
        if path.is_dir() {
            copy_dir(&path, &to.join(name))?;
        } else {
            let bytes = std::fs::read(&path).map_err(io(format!("reading {}", path.display())))?;
            tessera_certs::files::write_private(&to.join(name), &bytes)
                .map_err(|e| BackupError::Refused(e.to_string()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "backup_tests.rs"]
mod tests;
