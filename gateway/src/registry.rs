//! The trust registry: the current signed trust list, verified up to the
//! root, persisted in sled so a restart serves the same list, applied at once
//! to TLS and verification, and announced to watchers.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tessera_core::CheckedTrustList;
use tessera_core::trust::TrustListError;
use tessera_runtime::TrustState;
use tokio::sync::{Mutex, watch};

const CURRENT: &[u8] = b"current";

/// Why a list was not put in force. The list in force is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The list does not verify.
    #[error("trust list refused: {0}")]
    Invalid(#[from] TrustListError),
    /// Not newer than the list in force.
    #[error("trust list sequence {offered} is not newer than the sequence {held} in force")]
    NotNewer {
        /// Sequence in force.
        held: u64,
        /// Sequence offered.
        offered: u64,
    },
    /// Storage failed.
    #[error("trust registry storage: {0}")]
    Storage(#[from] sled::Error),
    /// The disk holding the registry is full.
    #[error(
        "the disk holding the trust registry {0} is full (no space left on device, or less than 2 MiB free): free space on it, then start again"
    )]
    DiskFull(String),
    /// The registry's directory could not be prepared (modes, a stray
    /// snapshot temp).
    #[error("trust registry directory: {0}")]
    Files(#[from] tessera_certs::files::FileError),
}

/// Whether a write to the gateway's database (trust lists, policies,
/// attestations: one sled database) failed on a full disk. sled keeps its
/// first I/O error and refuses every later write in the same database, so
/// once set it stays set until the gateway reopens its database
/// ([`crate::server::Served::DiskFreed`]).
#[derive(Debug, Clone, Default)]
pub struct DiskFull(Arc<AtomicBool>);

/// Whether `e` is sled's report of a full disk.
pub fn is_disk_full(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if tessera_certs::files::is_disk_full(io))
}

impl DiskFull {
    /// Whether a write failed on a full disk since the database was opened.
    pub fn is_full(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Notes a write that failed on a full disk (logged once).
    pub fn noting<T>(&self, result: Result<T, sled::Error>) -> Result<T, sled::Error> {
        if let Err(e) = &result
            && is_disk_full(e)
            && !self.0.swap(true, Ordering::SeqCst)
        {
            tracing::error!(
                error = %e,
                "the gateway's disk is full: uploads are refused until there is room"
            );
        }
        result
    }
}

impl PublishError {
    /// Whether the list was refused because the disk is full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            PublishError::DiskFull(_) => true,
            PublishError::Storage(e) => is_disk_full(e),
            _ => false,
        }
    }
}

/// The gateway's trust registry.
pub struct Registry {
    tree: sled::Tree,
    db: sled::Db,
    dir: String,
    disk: DiskFull,
    trust: Arc<TrustState>,
    updates: watch::Sender<Option<Arc<CheckedTrustList>>>,
    publishing: Mutex<()>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("trust", &self.trust)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Opens the registry in `dir` and puts its stored list in force. The
    /// directory is kept 0700 and its files 0600; a snapshot temp a failed
    /// start left is removed; on a full disk it fails with
    /// [`PublishError::DiskFull`] and leaves nothing that breaks the next
    /// start.
    pub fn open(dir: &Path, trust: Arc<TrustState>, now: i64) -> Result<Self, PublishError> {
        tessera_certs::files::prepare_sled_dir(dir)?;
        match Self::open_db(dir, trust, now) {
            Err(PublishError::Storage(sled::Error::Io(io)))
                if tessera_certs::files::is_disk_full(&io) =>
            {
                // sled may leave an empty snapshot temp as it closes.
                let _ = tessera_certs::files::remove_snapshot_temps(dir);
                Err(PublishError::DiskFull(dir.display().to_string()))
            }
            opened => opened,
        }
    }

    fn open_db(dir: &Path, trust: Arc<TrustState>, now: i64) -> Result<Self, PublishError> {
        let db = sled::open(dir)?;
        let tree = db.open_tree("trust")?;
        if let Some(bytes) = tree.get(CURRENT)? {
            trust.update(&bytes, now)?;
        }
        let (updates, _) = watch::channel(trust.current());
        Ok(Self {
            tree,
            db,
            dir: dir.display().to_string(),
            disk: DiskFull::default(),
            trust,
            updates,
            publishing: Mutex::new(()),
        })
    }

    /// The gateway's database, for the other trees kept beside the
    /// registry's (published policies, collected deletion attestations).
    pub fn db(&self) -> sled::Db {
        self.db.clone()
    }

    /// Whether a write to the gateway's database failed on a full disk
    /// (shared with the policies and attestations kept beside the
    /// registry's tree).
    pub fn disk(&self) -> &DiskFull {
        &self.disk
    }

    /// The registry's directory, for messages.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// The trust state this registry feeds.
    pub fn trust(&self) -> &Arc<TrustState> {
        &self.trust
    }

    /// Verifies `bytes` up to the root, refuses a sequence not above the one
    /// in force, persists it durably, then puts it in force and announces it.
    pub async fn publish(
        &self,
        bytes: &[u8],
        now: i64,
    ) -> Result<Arc<CheckedTrustList>, PublishError> {
        let _one_at_a_time = self.publishing.lock().await;
        if self.disk.is_full() {
            return Err(PublishError::DiskFull(self.dir.clone()));
        }
        let next = match self.trust.current() {
            Some(held) => {
                let next = held
                    .verify_successor(bytes, self.trust.root(), now)
                    .map_err(|e| match e {
                        TrustListError::Rollback { held, offered } => {
                            PublishError::NotNewer { held, offered }
                        }
                        TrustListError::SequenceReused(seq) => PublishError::NotNewer {
                            held: seq,
                            offered: seq,
                        },
                        other => PublishError::Invalid(other),
                    })?;
                if next.sequence() <= held.sequence() {
                    return Err(PublishError::NotNewer {
                        held: held.sequence(),
                        offered: next.sequence(),
                    });
                }
                next
            }
            None => CheckedTrustList::verify(bytes, self.trust.root(), now)?,
        };
        let previous = self.disk.noting(self.tree.insert(CURRENT, bytes))?;
        if let Err(e) = self.disk.noting(self.db.flush_async().await) {
            // Not acknowledged, so it must not come into force later either.
            match previous {
                Some(old) => self.disk.noting(self.tree.insert(CURRENT, old))?,
                None => self.disk.noting(self.tree.remove(CURRENT))?,
            };
            return Err(e.into());
        }
        let next = Arc::new(next);
        self.trust.install(Arc::clone(&next))?;
        self.updates.send_replace(Some(Arc::clone(&next)));
        tracing::info!(sequence = next.sequence(), "trust list in force");
        Ok(next)
    }

    /// Receives every list put in force from now on (and the current one).
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<CheckedTrustList>>> {
        self.updates.subscribe()
    }
}
