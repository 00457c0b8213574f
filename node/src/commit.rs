//! Group commit: many writers, one flush. A writer applies its change, then
//! waits for the flusher's lock; whoever holds it flushes everything applied
//! so far, so writers that queued behind one flush are all covered by the
//! next. A burst of concurrent batches costs one fsync per round, not one
//! each, and a flush that fails or is cancelled leaves the lock to the next
//! waiter instead of stranding it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Mutex;

use crate::store::{Store, StoreError};

/// Coordinates durable acknowledgements over a store.
pub struct GroupCommit<S> {
    store: Arc<S>,
    written: AtomicU64,
    /// The highest write ticket known durable, guarded by the flusher lock.
    flushed: Mutex<u64>,
}

impl<S: Store> GroupCommit<S> {
    /// Group commit over `store`.
    pub fn new(store: Arc<S>) -> Self {
        Self {
            store,
            written: AtomicU64::new(0),
            flushed: Mutex::new(0),
        }
    }

    /// Returns once every change applied before this call is durable.
    pub async fn durable(&self) -> Result<(), StoreError> {
        let mine = self.written.fetch_add(1, Ordering::SeqCst) + 1;
        let mut flushed = self.flushed.lock().await;
        if *flushed >= mine {
            return Ok(());
        }
        // Everything applied before this read is covered by this flush.
        let target = self.written.load(Ordering::SeqCst);
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || store.flush())
            .await
            .map_err(|e| StoreError::Corrupt(format!("flush task failed: {e}")))??;
        *flushed = (*flushed).max(target);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_all_return_and_share_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            SledStore::open(&dir.path().join("store"), &dir.path().join("master.key")).unwrap(),
        );
        let commit = Arc::new(GroupCommit::new(store));
        let mut tasks = vec![];
        for _ in 0..64 {
            let c = Arc::clone(&commit);
            tasks.push(tokio::spawn(async move { c.durable().await }));
        }
        for t in tasks {
            tokio::time::timeout(std::time::Duration::from_secs(30), t)
                .await
                .expect("a writer was never acknowledged")
                .unwrap()
                .unwrap();
        }
        assert_eq!(*commit.flushed.lock().await, 64);
    }
}
