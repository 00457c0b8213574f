//! The trust list the station holds: followed from the gateway, verified up
//! to the root, kept durably in the data directory, never rolled back.
//!
//! The list held is the newest one accepted, and its file is the memory of
//! the highest sequence across restarts: at start it is read back (verified
//! against the root as of its own issue time, so a list that went stale
//! while the station was off still sets the floor) and any list with a
//! lower sequence is refused from then on, whoever offers it. A list is put
//! in force only after its bytes are on disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;
use tessera_core::CheckedTrustList;
use tessera_core::trust::TrustListError;
use tessera_proto::v1 as pb;
use tessera_runtime::TrustState;

use crate::files::{self, DataError};

/// Why a list was not put in force.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The list does not verify, or is older than the one held.
    #[error(transparent)]
    List(#[from] TrustListError),
    /// It could not be kept on disk (and so was not put in force).
    #[error("keeping the trust list: {0}")]
    Data(#[from] DataError),
}

/// The list held, and its file.
#[derive(Debug, Clone)]
pub struct TrustCache {
    trust: Arc<TrustState>,
    path: PathBuf,
}

impl TrustCache {
    /// The cache in `data`, over `trust`: the list kept there, if any and if
    /// it verifies, is put in force now.
    pub fn open(trust: Arc<TrustState>, data: &Path) -> Self {
        let path = data.join(files::TRUST_CACHE);
        if let Ok(bytes) = std::fs::read(&path) {
            let issued_at = pb::SignedTrustList::decode(bytes.as_slice())
                .ok()
                .and_then(|s| pb::TrustList::decode(s.payload.as_slice()).ok())
                .map_or(0, |l| l.issued_at);
            match trust.update(&bytes, issued_at) {
                Ok(list) => {
                    tracing::info!(
                        sequence = list.sequence(),
                        "trust list read back from the data directory"
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, file = %path.display(), "ignoring the kept trust list")
                }
            }
        }
        Self { trust, path }
    }

    /// The trust state (root and list in force).
    pub fn trust(&self) -> &Arc<TrustState> {
        &self.trust
    }

    /// The list in force.
    pub fn current(&self) -> Option<Arc<CheckedTrustList>> {
        self.trust.current()
    }

    /// Verifies `bytes` as the successor of the list held at `now`, keeps
    /// them durably, then puts them in force. Returns the new sequence; the
    /// list held already is accepted again without a write.
    pub fn install(&self, bytes: &[u8], now: i64) -> Result<u64, InstallError> {
        let held = self.trust.current();
        if let Some(held) = &held
            && held.signed_bytes() == bytes
        {
            return Ok(held.sequence());
        }
        let next = match &held {
            Some(held) => held.verify_successor(bytes, self.trust.root(), now)?,
            None => CheckedTrustList::verify(bytes, self.trust.root(), now)?,
        };
        files::write_durable(&self.path, bytes)?;
        let sequence = next.sequence();
        self.trust.install(Arc::new(next))?;
        Ok(sequence)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use tessera_certs::authority::{AuthorityDir, InitOptions};
    use tessera_core::TrustAnchor;

    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_rollback_is_refused_before_and_after_a_restart_and_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let mut authority = AuthorityDir::init(
            &tmp.path().join("authority"),
            &InitOptions {
                name: "Test Authority".into(),
                sunset_at: NOW + 365 * 86_400,
            },
            NOW,
        )
        .unwrap();
        let (one, list1) = authority.publish(NOW, 86_400).unwrap();
        let (two, list2) = authority.publish(NOW + 1, 86_400).unwrap();
        assert!(two > one);
        let root = TrustAnchor::from_der(
            &tessera_certs::keys::read_cert(&tmp.path().join("authority/root/root.crt")).unwrap(),
        )
        .unwrap();
        let data = tmp.path().join("station");
        files::prepare(&data).unwrap();
        let state = || Arc::new(TrustState::new(root.clone()).unwrap());

        let cache = TrustCache::open(state(), &data);
        assert_eq!(cache.install(&list2, NOW + 2).unwrap(), two);
        let refused = cache.install(&list1, NOW + 2).unwrap_err();
        assert!(matches!(
            refused,
            InstallError::List(TrustListError::Rollback { .. })
        ));
        assert_eq!(cache.current().unwrap().sequence(), two);
        assert_eq!(std::fs::read(data.join(files::TRUST_CACHE)).unwrap(), list2);

        // A restart reads the highest sequence back and refuses the older
        // list as before; bytes that are no list are refused too.
        let restarted = TrustCache::open(state(), &data);
        assert_eq!(restarted.current().unwrap().sequence(), two);
        assert!(restarted.install(&list1, NOW + 3).is_err());
        assert!(restarted.install(b"not a list", NOW + 3).is_err());
        assert_eq!(std::fs::read(data.join(files::TRUST_CACHE)).unwrap(), list2);
    }
}
