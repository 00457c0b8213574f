//! Group commit: many writers, one flush. A writer applies its change, then
//! waits until a flush that started after its change has finished. Whichever
//! writer finds no flush running starts one for everybody waiting, so a burst
//! of concurrent batches costs one fsync, not one each.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Mutex, watch};

use crate::store::{Store, StoreError};

/// Coordinates durable acknowledgements over a store.
pub struct GroupCommit<S> {
    store: Arc<S>,
    written: AtomicU64,
    flushed: watch::Sender<u64>,
    leader: Mutex<()>,
}

impl<S: Store> GroupCommit<S> {
    /// Group commit over `store`.
    pub fn new(store: Arc<S>) -> Self {
        Self {
            store,
            written: AtomicU64::new(0),
            flushed: watch::channel(0).0,
            leader: Mutex::new(()),
        }
    }

    /// Returns once every change applied before this call is durable.
    pub async fn durable(&self) -> Result<(), StoreError> {
        let mine = self.written.fetch_add(1, Ordering::SeqCst) + 1;
        let mut seen = self.flushed.subscribe();
        loop {
            if *seen.borrow_and_update() >= mine {
                return Ok(());
            }
            if let Ok(_lead) = self.leader.try_lock() {
                if *self.flushed.borrow() >= mine {
                    return Ok(());
                }
                let target = self.written.load(Ordering::SeqCst);
                let store = Arc::clone(&self.store);
                tokio::task::spawn_blocking(move || store.flush())
                    .await
                    .map_err(|e| StoreError::Corrupt(format!("flush task failed: {e}")))??;
                self.flushed.send_modify(|f| *f = (*f).max(target));
                continue;
            }
            // A flush is running; wait for it (or the next) to finish.
            if seen.changed().await.is_err() {
                return Err(StoreError::Corrupt("group commit closed".into()));
            }
        }
    }
}
