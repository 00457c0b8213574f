//! Encryption at rest: the master key file, residents' data keys and sealed
//! record values (ChaCha20-Poly1305).
//!
//! - The **master key** (32 random bytes, hex in a 0600 file) lives outside
//!   the data directory. It only wraps keys: since store layout 3, the top
//!   level of a tree of **node keys**, each wrapping the node keys below it
//!   (AAD binds each to its place in the tree).
//! - Each resident has a random 32-byte **data key**, stored wrapped under
//!   the key of its bottom node in that tree (AAD binds it to the
//!   resident's pseudonym); layouts 1 and 2 wrapped it under the master key.
//! - Each record value is **sealed** under its resident's data key (AAD binds
//!   it to the pseudonym, the record's type and time, and the record id, so
//!   values cannot be swapped between keys).
//! - So are the colour and issue time of each badge the node issued (AAD:
//!   the pseudonym, the badge id and its end of validity); its state stays
//!   in the clear for status checks.
//!
//! Erasing a resident deletes their wrapped data key and **replaces every
//! key on its path** to the root, the master key included, re-wrapping the
//! siblings on the path under the new keys (see `store/erase.rs` and
//! `store/keytree.rs`): the old master key is overwritten and removed, so a
//! copy of the data directory taken before the erasure cannot open the
//! erased data key with any key that exists afterwards. A replacement of
//! the master key goes through `master.key.next` so that a crash at any
//! point leaves one key that opens the store: [`KeyFile::recover`] decides
//! which by the fingerprint the store records.

use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::pseudonym::Pseudonym;

/// Bytes of a master or data key.
pub const KEY_LEN: usize = 32;
/// Bytes of a nonce.
pub const NONCE_LEN: usize = 12;
/// Bytes a sealed value adds to its plaintext (nonce and tag).
pub const OVERHEAD: usize = NONCE_LEN + 16;

const WRAP_DOMAIN: &[u8] = b"tessera/v1 data key";
const RECORD_DOMAIN: &[u8] = b"tessera/v1 record";
const RECORD_FINGERPRINT_DOMAIN: &[u8] = b"tessera/v1 record fingerprint";
const BADGE_DOMAIN: &[u8] = b"tessera/v1 badge";
const FINGERPRINT_DOMAIN: &[u8] = b"tessera/v1 master key fingerprint";
const NODE_DOMAIN: &[u8] = b"tessera/v3 node key";
const LEAF_DOMAIN: &[u8] = b"tessera/v3 data key under a node key";

/// Why a key file could not be used or a value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// A key file is missing, unreadable, malformed or cannot be written.
    #[error("{path}: {reason}")]
    KeyFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A value does not open under the key given: another key, or tampered.
    #[error("{0} does not decrypt under this key (wrong key, erased, or tampered)")]
    Undecryptable(&'static str),
}

fn key_file_error(path: &Path, reason: impl std::fmt::Display) -> VaultError {
    VaultError::KeyFile {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
}

/// Encrypts `msg` under `key` with a fresh random nonce: nonce ‖ ciphertext.
fn seal(key: &[u8; KEY_LEN], aad: &[u8], msg: &[u8]) -> Vec<u8> {
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    let nonce: [u8; NONCE_LEN] = random();
    let mut out = Vec::with_capacity(OVERHEAD + msg.len());
    out.extend_from_slice(&nonce);
    // Encryption fails only for messages over 256 GiB.
    if let Ok(ct) = cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg, aad }) {
        out.extend_from_slice(&ct);
    }
    out
}

fn open(
    key: &[u8; KEY_LEN],
    aad: &[u8],
    sealed: &[u8],
    what: &'static str,
) -> Result<Vec<u8>, VaultError> {
    if sealed.len() < OVERHEAD {
        return Err(VaultError::Undecryptable(what));
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    ChaCha20Poly1305::new(Key::from_slice(key))
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| VaultError::Undecryptable(what))
}

/// The key that wraps every data key. Wiped from memory when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey([u8; KEY_LEN]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", hex::encode(&self.fingerprint()[..8]))
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl MasterKey {
    /// A new random key.
    pub fn generate() -> Self {
        Self(random())
    }

    /// A key from its bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// SHA-256 over a domain string and the key: names the key in the
    /// store's meta entry without revealing it.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(FINGERPRINT_DOMAIN);
        h.update(self.0);
        h.finalize().into()
    }

    fn wrap_aad(resident: &Pseudonym) -> Vec<u8> {
        [WRAP_DOMAIN, resident.as_bytes().as_slice()].concat()
    }

    /// `data_key` wrapped for `resident`: nonce ‖ ciphertext ‖ tag.
    pub fn wrap(&self, resident: &Pseudonym, data_key: &DataKey) -> Vec<u8> {
        seal(&self.0, &Self::wrap_aad(resident), &data_key.0)
    }

    /// The data key of `resident` from its wrapped form.
    pub fn unwrap(&self, resident: &Pseudonym, wrapped: &[u8]) -> Result<DataKey, VaultError> {
        let mut plain = open(&self.0, &Self::wrap_aad(resident), wrapped, "a data key")?;
        let key = <[u8; KEY_LEN]>::try_from(plain.as_slice())
            .map(DataKey)
            .map_err(|_| VaultError::Undecryptable("a data key"));
        plain.zeroize();
        key
    }
}

impl MasterKey {
    /// The master key as the root of the store's key tree: the key that
    /// wraps the tree's first level (see `store/keytree.rs`).
    pub fn as_node_key(&self) -> NodeKey {
        NodeKey(self.0)
    }
}

/// A key of the store's key tree (layout 3): it wraps the keys of its
/// children, other node keys or, at the bottom, residents' data keys.
/// Wiped from memory when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeKey([u8; KEY_LEN]);

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeKey(..)")
    }
}

impl Drop for NodeKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl NodeKey {
    /// A new random key.
    pub fn generate() -> Self {
        Self(random())
    }

    /// The key of the child node named `child` (its place in the tree,
    /// authenticated), wrapped under this key.
    pub fn wrap_node(&self, child: &[u8], key: &NodeKey) -> Vec<u8> {
        seal(&self.0, &[NODE_DOMAIN, child].concat(), &key.0)
    }

    /// The key of the child node `child` from its wrapped form.
    pub fn unwrap_node(&self, child: &[u8], wrapped: &[u8]) -> Result<NodeKey, VaultError> {
        let mut plain = open(
            &self.0,
            &[NODE_DOMAIN, child].concat(),
            wrapped,
            "a node key",
        )?;
        let key = <[u8; KEY_LEN]>::try_from(plain.as_slice())
            .map(NodeKey)
            .map_err(|_| VaultError::Undecryptable("a node key"));
        plain.zeroize();
        key
    }

    /// `resident`'s data key wrapped under this (bottom-level) node key.
    pub fn wrap_data(&self, resident: &Pseudonym, data_key: &DataKey) -> Vec<u8> {
        let aad = [LEAF_DOMAIN, resident.as_bytes().as_slice()].concat();
        seal(&self.0, &aad, &data_key.0)
    }

    /// `resident`'s data key from its form wrapped by [`NodeKey::wrap_data`].
    pub fn unwrap_data(&self, resident: &Pseudonym, wrapped: &[u8]) -> Result<DataKey, VaultError> {
        let aad = [LEAF_DOMAIN, resident.as_bytes().as_slice()].concat();
        let mut plain = open(&self.0, &aad, wrapped, "a data key")?;
        let key = <[u8; KEY_LEN]>::try_from(plain.as_slice())
            .map(DataKey)
            .map_err(|_| VaultError::Undecryptable("a data key"));
        plain.zeroize();
        key
    }
}

/// A resident's data key. Wiped from memory when dropped.
#[derive(Clone)]
pub struct DataKey([u8; KEY_LEN]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

fn record_aad(resident: &Pseudonym, header: &[u8], record_id: &[u8]) -> Vec<u8> {
    [
        RECORD_DOMAIN,
        resident.as_bytes().as_slice(),
        header,
        record_id,
    ]
    .concat()
}

impl DataKey {
    /// A new random key.
    pub fn generate() -> Self {
        Self(random())
    }

    /// Seals a record value. `header` (fixed length) and `record_id` are
    /// authenticated, not encrypted: they are stored in the clear beside it.
    pub fn seal(
        &self,
        resident: &Pseudonym,
        header: &[u8],
        record_id: &[u8],
        plain: &[u8],
    ) -> Vec<u8> {
        seal(&self.0, &record_aad(resident, header, record_id), plain)
    }

    /// Opens a value sealed by [`DataKey::seal`] with the same resident,
    /// header and record id.
    pub fn open(
        &self,
        resident: &Pseudonym,
        header: &[u8],
        record_id: &[u8],
        sealed: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        open(
            &self.0,
            &record_aad(resident, header, record_id),
            sealed,
            "a record",
        )
    }
}

impl DataKey {
    /// Seals a record's content fingerprint for the record-id index: in the
    /// clear it would confirm a guessed record to whoever holds a copy.
    pub fn seal_fingerprint(
        &self,
        resident: &Pseudonym,
        record_id: &[u8],
        fingerprint: &[u8; 32],
    ) -> Vec<u8> {
        let aad = [
            RECORD_FINGERPRINT_DOMAIN,
            resident.as_bytes().as_slice(),
            record_id,
        ]
        .concat();
        seal(&self.0, &aad, fingerprint)
    }

    /// Opens a fingerprint sealed by [`DataKey::seal_fingerprint`].
    pub fn open_fingerprint(
        &self,
        resident: &Pseudonym,
        record_id: &[u8],
        sealed: &[u8],
    ) -> Result<[u8; 32], VaultError> {
        let aad = [
            RECORD_FINGERPRINT_DOMAIN,
            resident.as_bytes().as_slice(),
            record_id,
        ]
        .concat();
        let plain = open(&self.0, &aad, sealed, "a record fingerprint")?;
        <[u8; 32]>::try_from(plain.as_slice())
            .map_err(|_| VaultError::Undecryptable("a record fingerprint"))
    }
}

fn badge_aad(resident: &Pseudonym, badge_id: &[u8], valid_until: i64) -> Vec<u8> {
    [
        BADGE_DOMAIN,
        resident.as_bytes().as_slice(),
        badge_id,
        &valid_until.to_be_bytes(),
    ]
    .concat()
}

impl DataKey {
    /// Seals what a badge's stored state keeps secret (its colour and issue
    /// time). `badge_id` and `valid_until` are authenticated, not
    /// encrypted: they are stored in the clear beside it.
    pub fn seal_badge(
        &self,
        resident: &Pseudonym,
        badge_id: &[u8],
        valid_until: i64,
        plain: &[u8],
    ) -> Vec<u8> {
        seal(&self.0, &badge_aad(resident, badge_id, valid_until), plain)
    }

    /// Opens a value sealed by [`DataKey::seal_badge`] with the same
    /// resident, badge id and end of validity.
    pub fn open_badge(
        &self,
        resident: &Pseudonym,
        badge_id: &[u8],
        valid_until: i64,
        sealed: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        open(
            &self.0,
            &badge_aad(resident, badge_id, valid_until),
            sealed,
            "a badge",
        )
    }
}

/// Reads a file holding 32 hex-encoded bytes; `None` if it does not exist.
pub fn read_key_file(path: &Path) -> Result<Option<[u8; KEY_LEN]>, VaultError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(key_file_error(path, e)),
    };
    let mut bytes = hex::decode(text.trim())
        .map_err(|_| key_file_error(path, "is not 32 hex-encoded bytes"))?;
    let key = <[u8; KEY_LEN]>::try_from(bytes.as_slice())
        .map_err(|_| key_file_error(path, "is not 32 hex-encoded bytes"));
    bytes.zeroize();
    key.map(Some)
}

/// The master key's file and its rotation companion `<file>.next`.
#[derive(Debug, Clone)]
pub struct KeyFile {
    path: PathBuf,
}

impl KeyFile {
    /// The key file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The key file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where a rotation writes the next key before the store uses it.
    pub fn next_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".next");
        PathBuf::from(name)
    }

    fn sync_dir(&self) -> Result<(), VaultError> {
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| key_file_error(dir, format!("syncing the directory: {e}")))
    }

    fn write_new(&self, path: &Path, key: &MasterKey) -> Result<(), VaultError> {
        let mut text = hex::encode(key.0);
        text.push('\n');
        let written = tessera_certs::keys::write_new_file(path, text.as_bytes(), true)
            .map_err(|e| key_file_error(path, e));
        text.zeroize();
        written?;
        self.sync_dir()
    }

    /// The current key, if the file exists.
    pub fn read(&self) -> Result<Option<MasterKey>, VaultError> {
        Ok(read_key_file(&self.path)?.map(MasterKey))
    }

    /// The next key, if a rotation left one.
    pub fn read_next(&self) -> Result<Option<MasterKey>, VaultError> {
        Ok(read_key_file(&self.next_path())?.map(MasterKey))
    }

    /// Creates the key file (0600, durable); refuses to overwrite one.
    pub fn create(&self, key: &MasterKey) -> Result<(), VaultError> {
        self.write_new(&self.path, key)
    }

    /// Rotation step 1: writes the next key durably beside the current one.
    /// Refuses if one is already there.
    pub fn write_next(&self, key: &MasterKey) -> Result<(), VaultError> {
        self.write_new(&self.next_path(), key)
    }

    /// Overwrites a key file's content in place with zeros (same length, so
    /// it still parses but names no key) and syncs it.
    fn overwrite(path: &Path) -> Result<(), VaultError> {
        let mut file = match std::fs::OpenOptions::new().write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(key_file_error(path, e)),
        };
        let zeros = format!("{}\n", "0".repeat(2 * KEY_LEN));
        file.write_all(zeros.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| key_file_error(path, format!("overwriting: {e}")))
    }

    /// Rotation step 3 (after the store is durably re-wrapped under the
    /// next key): overwrites the old key, renames the next key over it and
    /// syncs the directory.
    pub fn promote_next(&self) -> Result<(), VaultError> {
        Self::overwrite(&self.path)?;
        std::fs::rename(self.next_path(), &self.path)
            .map_err(|e| key_file_error(&self.next_path(), format!("renaming: {e}")))?;
        self.sync_dir()
    }

    /// Rolls a rotation back that never reached the store: overwrites and
    /// removes the next key.
    pub fn discard_next(&self) -> Result<(), VaultError> {
        let next = self.next_path();
        Self::overwrite(&next)?;
        match std::fs::remove_file(&next) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(key_file_error(&next, format!("removing: {e}"))),
        }
        self.sync_dir()
    }

    /// The key the store was last written under (`expected`, its
    /// fingerprint as the store records it), finishing or rolling back a
    /// rotation a crash interrupted: if the next key is the expected one the
    /// store was re-wrapped, so it replaces the current file; if the current
    /// key is, the rotation never reached the store, so the next key is
    /// discarded.
    pub fn recover(&self, expected: &[u8; 32]) -> Result<MasterKey, VaultError> {
        let current = self.read()?;
        // A next key that does not parse was cut short while being written:
        // the rotation cannot have reached the store.
        let next = self.read_next().unwrap_or(None);
        if let Some(next) = next
            && next.fingerprint() == *expected
        {
            tracing::warn!(
                file = %self.path.display(),
                "finishing a master-key rotation that a stop interrupted"
            );
            self.promote_next()?;
            return Ok(next);
        }
        match current {
            Some(current) if current.fingerprint() == *expected => {
                if self.next_path().exists() {
                    tracing::warn!(
                        file = %self.path.display(),
                        "rolling back a master-key rotation that a stop interrupted"
                    );
                    self.discard_next()?;
                }
                Ok(current)
            }
            Some(_) => Err(key_file_error(
                &self.path,
                format!(
                    "is not the master key this store was written under (fingerprint {}…): \
                     restore the right key from its backup",
                    hex::encode(&expected[..8])
                ),
            )),
            None => Err(key_file_error(
                &self.path,
                "is missing but a store exists: restore the master key from its backup \
                 (without it no stored record can be read)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resident(b: u8) -> Pseudonym {
        Pseudonym::from_slice(&[b; 32]).unwrap()
    }

    #[test]
    fn a_wrapped_key_opens_only_under_its_master_key_and_for_its_resident() {
        let master = MasterKey::generate();
        let data = DataKey::generate();
        let wrapped = master.wrap(&resident(1), &data);
        assert!(master.unwrap(&resident(1), &wrapped).is_ok());
        assert!(master.unwrap(&resident(2), &wrapped).is_err());
        assert!(
            MasterKey::generate()
                .unwrap(&resident(1), &wrapped)
                .is_err()
        );
        let mut tampered = wrapped.clone();
        tampered[20] ^= 1;
        assert!(master.unwrap(&resident(1), &tampered).is_err());
    }

    #[test]
    fn a_node_key_opens_only_under_its_parent_and_at_its_place() {
        let parent = NodeKey::generate();
        let child = NodeKey::generate();
        let wrapped = parent.wrap_node(&[2, 0, 1], &child);
        assert_eq!(parent.unwrap_node(&[2, 0, 1], &wrapped).unwrap(), child);
        assert!(parent.unwrap_node(&[2, 0, 2], &wrapped).is_err());
        assert!(
            NodeKey::generate()
                .unwrap_node(&[2, 0, 1], &wrapped)
                .is_err()
        );
        // A data key under a node key is bound to its resident, and is not
        // a node key (nor a data key under the master key).
        let data = DataKey::generate();
        let leaf = parent.wrap_data(&resident(1), &data);
        assert!(parent.unwrap_data(&resident(1), &leaf).is_ok());
        assert!(parent.unwrap_data(&resident(2), &leaf).is_err());
        assert!(parent.unwrap_node(&[4, 1, 1], &leaf).is_err());
        let master = MasterKey::generate();
        let legacy = master.wrap(&resident(1), &data);
        assert!(
            master
                .as_node_key()
                .unwrap_data(&resident(1), &legacy)
                .is_err()
        );
    }

    #[test]
    fn a_sealed_record_is_bound_to_resident_header_and_id() {
        let key = DataKey::generate();
        let sealed = key.seal(&resident(1), b"h", b"lab-1", b"secret lab");
        assert_eq!(
            key.open(&resident(1), b"h", b"lab-1", &sealed).unwrap(),
            b"secret lab"
        );
        assert!(key.open(&resident(2), b"h", b"lab-1", &sealed).is_err());
        assert!(key.open(&resident(1), b"g", b"lab-1", &sealed).is_err());
        assert!(key.open(&resident(1), b"h", b"lab-2", &sealed).is_err());
        assert!(
            !sealed.windows(10).any(|w| w == b"secret lab"),
            "the plaintext shows through"
        );
    }

    #[test]
    fn recovery_picks_the_key_the_store_names_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let file = KeyFile::new(dir.path().join("master.key"));
        let old = MasterKey::generate();
        let new = MasterKey::generate();
        file.create(&old).unwrap();
        file.write_next(&new).unwrap();
        // The store still names the old key: the rotation is rolled back.
        assert_eq!(file.recover(&old.fingerprint()).unwrap(), old);
        assert!(!file.next_path().exists());
        // The store names the new key: the rotation is finished.
        file.write_next(&new).unwrap();
        assert_eq!(file.recover(&new.fingerprint()).unwrap(), new);
        assert!(!file.next_path().exists());
        assert_eq!(file.read().unwrap().unwrap(), new);
        // Neither: refused, nothing changed.
        let err = file
            .recover(&MasterKey::generate().fingerprint())
            .unwrap_err();
        assert!(err.to_string().contains("restore the right key"), "{err}");
        std::fs::remove_file(file.path()).unwrap();
        let err = file.recover(&new.fingerprint()).unwrap_err();
        assert!(err.to_string().contains("is missing"), "{err}");
    }
}
