//! Which devices may ask online checks: one-time pairing codes exchanged
//! for bearer tokens.
//!
//! A pairing code is made by the service at start or by `tessera checkpoint
//! pair` (another process): a file `pairing/<sha256(code)>` holding its
//! expiry. Exchanging it renames that file away first, so two devices
//! presenting the same code cannot both win, then writes the device's file
//! `devices/<sha256(token)>`. Only hashes are stored: a copy of the data
//! directory yields no token and no unused code. Every request looks its
//! token's file up afresh, so `checkpoint unpair` (which removes the file)
//! takes effect at the next request, without a restart.

use std::path::{Path, PathBuf};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::files::{self, DataError};

/// How long a pairing code may be used.
pub const CODE_LIFETIME_SECS: i64 = 600;
/// Length of a token's text: 32 random bytes in base64url, unpadded.
pub const TOKEN_CHARS: usize = 43;

/// Why a pairing failed.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    /// No such code, or it was used already.
    #[error(
        "this pairing code is unknown or was used already: make a new one with `tessera checkpoint pair`"
    )]
    Unknown,
    /// The code is past its lifetime.
    #[error(
        "this pairing code expired (codes last 10 minutes): make a new one with `tessera checkpoint pair`"
    )]
    Expired,
    /// The data directory.
    #[error(transparent)]
    Data(#[from] DataError),
}

/// A pending code's file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PendingCode {
    expires_at: i64,
}

/// A paired device's file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Its short id.
    pub device: String,
    /// When it paired, Unix seconds.
    pub paired_at: i64,
}

/// A newly paired device and its token (shown once, never stored).
#[derive(Debug)]
pub struct Paired {
    /// Its short id.
    pub device: String,
    /// Its bearer token.
    pub token: String,
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// base64url without padding.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// The pairing codes and devices of one data directory.
#[derive(Debug, Clone)]
pub struct Devices {
    data: PathBuf,
}

impl Devices {
    /// The devices of the data directory `data` (prepared by
    /// [`files::prepare`]).
    pub fn new(data: &Path) -> Self {
        Self {
            data: data.to_path_buf(),
        }
    }

    /// Makes a one-time pairing code valid until `now` + 10 minutes.
    pub fn new_code(&self, now: i64) -> Result<String, DataError> {
        let mut bytes = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut bytes);
        let code = hex::encode(bytes);
        let body = serde_json::to_vec(&PendingCode {
            expires_at: now + CODE_LIFETIME_SECS,
        })
        .map_err(|e| DataError {
            path: files::PAIRING.into(),
            source: std::io::Error::other(e),
        })?;
        let path = self.data.join(files::PAIRING).join(sha256_hex(&code));
        files::write_durable(&path, &body)?;
        Ok(code)
    }

    /// Exchanges `code` for a new device and its token.
    pub fn pair(&self, code: &str, now: i64) -> Result<Paired, PairError> {
        // A code is 24 hex digits; anything else is no code of ours (and
        // never reaches the file system as a name).
        if code.len() != 24 || !code.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PairError::Unknown);
        }
        let pending = self
            .data
            .join(files::PAIRING)
            .join(sha256_hex(&code.to_ascii_lowercase()));
        let claimed = pending.with_extension("claimed");
        // The rename is the one-time step: only one exchange can win it.
        match std::fs::rename(&pending, &claimed) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(PairError::Unknown),
            Err(e) => return Err(files::at(&pending)(e).into()),
        }
        let read = std::fs::read(&claimed).map_err(files::at(&claimed));
        let _ = std::fs::remove_file(&claimed);
        files::sync_dir(&claimed)?;
        let expires_at = serde_json::from_slice::<PendingCode>(&read?).map_or(0, |p| p.expires_at);
        if now >= expires_at {
            return Err(PairError::Expired);
        }
        let mut secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        let token = base64url(&secret);
        let mut id = [0u8; 4];
        rand::thread_rng().fill_bytes(&mut id);
        let device = Device {
            device: hex::encode(id),
            paired_at: now,
        };
        let body = serde_json::to_vec(&device).map_err(|e| DataError {
            path: files::DEVICES.into(),
            source: std::io::Error::other(e),
        })?;
        files::write_durable(
            &self.data.join(files::DEVICES).join(sha256_hex(&token)),
            &body,
        )?;
        Ok(Paired {
            device: device.device,
            token,
        })
    }

    /// The device holding `token`, if it is paired now.
    pub fn device(&self, token: &str) -> Option<Device> {
        if token.len() != TOKEN_CHARS
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        let path = self.data.join(files::DEVICES).join(sha256_hex(token));
        let bytes = std::fs::read(path).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Every paired device, oldest first, with its file.
    fn entries(&self) -> Result<Vec<(PathBuf, Device)>, DataError> {
        let dir = self.data.join(files::DEVICES);
        let mut found = vec![];
        for entry in std::fs::read_dir(&dir).map_err(files::at(&dir))? {
            let path = entry.map_err(files::at(&dir))?.path();
            if path.extension().is_some() {
                continue; // a temporary file of a write in progress
            }
            if let Ok(bytes) = std::fs::read(&path)
                && let Ok(device) = serde_json::from_slice::<Device>(&bytes)
            {
                found.push((path, device));
            }
        }
        found.sort_by(|a, b| (a.1.paired_at, &a.1.device).cmp(&(b.1.paired_at, &b.1.device)));
        Ok(found)
    }

    /// Every paired device, oldest first.
    pub fn list(&self) -> Result<Vec<Device>, DataError> {
        Ok(self.entries()?.into_iter().map(|(_, d)| d).collect())
    }

    /// Revokes the device `id` (or every device, for `None`); returns the
    /// ids revoked. Effective at the service's next request.
    pub fn unpair(&self, id: Option<&str>) -> Result<Vec<String>, DataError> {
        let mut revoked = vec![];
        for (path, device) in self.entries()? {
            if id.is_none_or(|id| id == device.device) {
                std::fs::remove_file(&path).map_err(files::at(&path))?;
                revoked.push(device.device);
            }
        }
        if !revoked.is_empty() {
            files::sync_dir(&self.data.join(files::DEVICES).join("x"))?;
        }
        Ok(revoked)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn devices() -> (tempfile::TempDir, Devices) {
        let dir = tempfile::tempdir().unwrap();
        files::prepare(dir.path()).unwrap();
        let d = Devices::new(dir.path());
        (dir, d)
    }

    #[test]
    fn base64url_matches_the_standard_alphabet_unpadded() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(base64url(&[0u8; 32]).len(), TOKEN_CHARS);
    }

    #[test]
    fn a_code_pairs_once_and_the_token_is_stored_only_hashed() {
        let (dir, d) = devices();
        let code = d.new_code(1000).unwrap();
        let paired = d.pair(&code, 1001).unwrap();
        assert_eq!(paired.token.len(), TOKEN_CHARS);
        assert_eq!(d.device(&paired.token).unwrap().device, paired.device);
        assert!(matches!(d.pair(&code, 1002), Err(PairError::Unknown)));
        for entry in walk(dir.path()) {
            let bytes = std::fs::read(&entry).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(&paired.token), "{}", entry.display());
            assert!(!text.contains(&code), "{}", entry.display());
        }
        assert_eq!(d.unpair(Some(&paired.device)).unwrap(), [paired.device]);
        assert!(d.device(&paired.token).is_none());
    }

    #[test]
    fn wrong_malformed_and_expired_codes_are_refused() {
        let (_dir, d) = devices();
        assert!(matches!(
            d.pair("../../etc/passwd", 0),
            Err(PairError::Unknown)
        ));
        assert!(matches!(
            d.pair(&"0".repeat(24), 0),
            Err(PairError::Unknown)
        ));
        let code = d.new_code(0).unwrap();
        assert!(matches!(
            d.pair(&code, CODE_LIFETIME_SECS),
            Err(PairError::Expired)
        ));
        assert!(d.list().unwrap().is_empty());
        assert!(d.device("not a token").is_none());
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = vec![];
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }
}
