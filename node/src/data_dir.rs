//! The node's data directory: what lives in it, under which names, and the
//! rules its files obey (the master key outside it, the pseudonym key never
//! replaced while a store exists, the markers of a switched-off node). It
//! reads and lists files; it decides nothing about what they hold.

use std::path::{Path, PathBuf};

use prost::Message;
use tessera_certs::keys;
use tessera_core::{CheckedTrustList, TrustAnchor};
use tessera_proto::v1 as pb;

use crate::config::NodeSettings;
use crate::error::{StartError, io};
use crate::pseudonym::PseudonymKey;

/// The store's directory, inside the data directory.
pub const STORE: &str = "store";

/// The pseudonym secret, inside the data directory.
pub const PSEUDONYM_KEY: &str = "pseudonym.key";

/// The newest trust list fetched, kept in the data directory.
pub const TRUST_CACHE: &str = "trust-list.tsl";

/// Where the node keeps the policy it signed itself at its first start.
pub const POLICY_DIR: &str = "policies";

/// The marker of a sunset in progress, in the data directory: an encoded
/// `DeletionAttestation` with the counts taken before destroying and
/// `destroyed_at` 0.
pub const PENDING: &str = "sunset.pending";

/// The marker of a finished sunset, in the data directory: a copy of the
/// signed attestation.
pub const DONE: &str = "sunset-attestation.pb";

/// Whether the data directory says this node was switched off (finished or
/// in progress): such a node must not start again.
pub fn switched_off(data_dir: &Path) -> Option<PathBuf> {
    [DONE, PENDING]
        .iter()
        .map(|name| data_dir.join(name))
        .find(|p| p.exists())
}

/// Every signed policy file the node holds: those configured under
/// `[badges] policies`, then those in `data_dir/policies` (the one a node
/// signed itself at its first start), in name order.
pub fn signed_policy_files(settings: &NodeSettings) -> Result<Vec<PathBuf>, StartError> {
    let dir = settings.data_dir.join(POLICY_DIR);
    let mut paths = settings.policies.clone();
    if dir.is_dir() {
        let mut own: Vec<_> = std::fs::read_dir(&dir)
            .map_err(io(format!("reading {}", dir.display())))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "signed"))
            .collect();
        own.sort();
        paths.extend(own);
    }
    Ok(paths)
}

/// The trust list a node holds (the configured file or the newer one it
/// fetched), verified as of its own issue time so that a list past its
/// sunset is still read: only its sequence and sunset date are used.
pub fn held_trust_list(settings: &NodeSettings, root: &TrustAnchor) -> Option<CheckedTrustList> {
    let candidates = settings
        .trust_list
        .iter()
        .cloned()
        .chain(std::iter::once(settings.data_dir.join(TRUST_CACHE)));
    candidates
        .filter_map(|path| std::fs::read(path).ok())
        .filter_map(|bytes| {
            let signed = pb::SignedTrustList::decode(bytes.as_slice()).ok()?;
            let list = pb::TrustList::decode(signed.payload.as_slice()).ok()?;
            CheckedTrustList::verify(&bytes, root, list.issued_at).ok()
        })
        .max_by_key(CheckedTrustList::sequence)
}

/// Reads the pseudonym secret from the data directory, creating it on first
/// start.
pub fn pseudonym_key(data_dir: &Path) -> Result<PseudonymKey, StartError> {
    let path = data_dir.join(PSEUDONYM_KEY);
    if !path.exists() && data_dir.join(STORE).exists() {
        // A new secret would silently orphan every stored record.
        return Err(StartError::Io {
            what: format!(
                "{} is missing but a store exists beside it: restore the key from backup \
                 (a new key would make every stored record unreachable)",
                path.display()
            ),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    if !path.exists() {
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
        keys::write_new_file(&path, hex::encode(bytes).as_bytes(), true)?;
        // The key's directory entry must be durable before any record
        // pseudonymised with it is.
        std::fs::File::open(data_dir)
            .and_then(|d| d.sync_all())
            .map_err(io(format!("syncing {}", data_dir.display())))?;
    }
    let text = std::fs::read_to_string(&path).map_err(io(format!("reading {}", path.display())))?;
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| StartError::Io {
            what: format!("{} is not 32 hex-encoded bytes", path.display()),
            source: std::io::Error::from(std::io::ErrorKind::InvalidData),
        })?;
    Ok(PseudonymKey::from_bytes(bytes))
}

/// Refuses a master key file inside the data directory: a copy of the
/// directory (a backup, a stolen disk) must not carry the key that decrypts
/// it.
pub fn check_master_key_outside(settings: &NodeSettings) -> Result<(), StartError> {
    let data = std::fs::canonicalize(&settings.data_dir)
        .map_err(io(format!("resolving {}", settings.data_dir.display())))?;
    let key = &settings.master_key;
    let parent = match key.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let parent = std::fs::canonicalize(parent).map_err(io(format!(
        "the directory of the master key {}",
        key.display()
    )))?;
    if parent.starts_with(&data) {
        return Err(StartError::Io {
            what: format!(
                "[storage] master_key {} lies inside data_dir {}: a copy of the data \
                 directory would carry the key that decrypts it; keep the key elsewhere \
                 (default: master.key beside the configuration file)",
                key.display(),
                settings.data_dir.display()
            ),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        });
    }
    Ok(())
}
