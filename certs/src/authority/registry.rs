//! The authority's record of what it has issued: `registry.json`, written
//! atomically (temporary file, fsync, rename) so a crash leaves either the old
//! or the new registry, never half of one.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::AuthorityError;

/// Registry format version.
pub const REGISTRY_FORMAT: u32 = 1;

/// Everything the authority has issued.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// Format version.
    pub format: u32,
    /// The authority's display name.
    pub name: String,
    /// When the authority was created (Unix seconds).
    pub created_at: i64,
    /// When the federation switches off (Unix seconds): every trust list
    /// carries it.
    pub sunset_at: i64,
    /// The sequence of the last trust list published; 0 before the first.
    pub last_sequence: u64,
    /// Every certificate issued, in order.
    pub enrolments: Vec<Enrolment>,
}

/// One issued certificate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Enrolment {
    /// The identity URI, e.g. `tessera:city:330100:node`.
    pub identity: String,
    /// Display name.
    pub name: String,
    /// `host:port` for nodes and gateways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Serial number, hex.
    pub serial: String,
    /// Certificate file, relative to the authority directory.
    pub cert_file: String,
    /// Start of validity (Unix seconds).
    pub not_before: i64,
    /// End of validity (Unix seconds).
    pub not_after: i64,
    /// When revoked (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
    /// When a newer certificate of the same party took over from this one
    /// (`rotate-signer`, `renew`). A retired certificate is not revoked: it
    /// stays ACTIVE in the trust lists, so what it signed stays valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<i64>,
    /// When a trust list first carried this certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_at: Option<i64>,
    /// When a retired badge signer was left out of the trust lists, every
    /// badge it signed having expired (`prune-signers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pruned_at: Option<i64>,
    /// A rotated badge signer waiting for a trust list: the bundle's live
    /// certificate (relative to the authority directory) this one is
    /// installed over, with its key, by the next `trust-list publish`
    /// (which lists it). Until then the live files keep the previous signer,
    /// so a node restarted in between signs with a key the lists carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_over: Option<String>,
}

impl Enrolment {
    /// Whether still active: neither revoked nor pruned (retired
    /// certificates are active).
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none() && self.pruned_at.is_none()
    }

    /// Whether this is the certificate in use: active and not retired.
    pub fn is_current(&self) -> bool {
        self.is_active() && self.retired_at.is_none()
    }
}

impl Registry {
    /// Reads and checks `registry.json`.
    pub fn load(path: &Path) -> Result<Self, AuthorityError> {
        let text = fs::read_to_string(path).map_err(|e| AuthorityError::io(path, e))?;
        let registry: Registry =
            serde_json::from_str(&text).map_err(|e| AuthorityError::Registry(e.to_string()))?;
        if registry.format != REGISTRY_FORMAT {
            return Err(AuthorityError::Registry(format!(
                "format {} is not supported (expected {REGISTRY_FORMAT})",
                registry.format
            )));
        }
        Ok(registry)
    }

    /// Writes `registry.json` atomically and durably.
    pub fn save(&self, path: &Path) -> Result<(), AuthorityError> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| AuthorityError::Registry(e.to_string()))?;
        let tmp = path.with_extension("json.tmp");
        // 0600 whatever the umask: the registry lists every certificate
        // issued (issue 15).
        let _ = fs::remove_file(&tmp);
        let mut file = {
            use std::os::unix::fs::OpenOptionsExt;
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| AuthorityError::io(&tmp, e))?
        };
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| AuthorityError::io(&tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| AuthorityError::io(path, e))?;
        if let Some(parent) = path.parent()
            && let Ok(dir) = fs::File::open(parent)
        {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}
