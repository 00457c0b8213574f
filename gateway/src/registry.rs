//! The trust registry: the current signed trust list, verified up to the
//! root, persisted in sled so a restart serves the same list, applied at once
//! to TLS and verification, and announced to watchers.

use std::path::Path;
use std::sync::Arc;

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

/// The gateway's trust registry.
pub struct Registry {
    tree: sled::Tree,
    db: sled::Db,
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
        let previous = self.tree.insert(CURRENT, bytes)?;
        if let Err(e) = self.db.flush_async().await {
            // Not acknowledged, so it must not come into force later either.
            match previous {
                Some(old) => self.tree.insert(CURRENT, old)?,
                None => self.tree.remove(CURRENT)?,
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
