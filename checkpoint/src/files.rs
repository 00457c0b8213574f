//! The station's data directory: which files it holds, and the one way a
//! file in it is written (temporary file, fsync, rename, fsync of the
//! directory), so that a crash leaves the old content or the new, never half.

use std::path::{Path, PathBuf};

/// The newest trust list accepted, its exact bytes.
pub const TRUST_CACHE: &str = "trust-list.tsl";
/// The station's self-signed TLS certificate and key (when no --tls-cert).
pub const STATION_CERT: &str = "station.crt";
/// The key of [`STATION_CERT`].
pub const STATION_KEY: &str = "station.key";
/// Where the running service says it listens, for `checkpoint pair`.
pub const STATION_URL: &str = "station-url";
/// One file per pending pairing code, named by the code's SHA-256.
pub const PAIRING: &str = "pairing";
/// One file per paired device, named by its token's SHA-256.
pub const DEVICES: &str = "devices";

/// Why a file of the data directory could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct DataError {
    /// The file.
    pub path: String,
    /// The cause.
    pub source: std::io::Error,
}

/// The error for `path`.
pub fn at(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError {
        path: path.display().to_string(),
        source,
    }
}

/// Creates the data directory and its subdirectories, private to the owner.
pub fn prepare(data: &Path) -> Result<(), DataError> {
    for dir in [data.to_path_buf(), data.join(PAIRING), data.join(DEVICES)] {
        tessera_certs::files::private_dir(&dir).map_err(|e| DataError {
            path: dir.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
    }
    Ok(())
}

/// Writes `bytes` to `path` durably (mode 0600): acknowledged only once the
/// content and the directory entry are on disk.
pub fn write_durable(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    let tmp: PathBuf = path.with_extension("tmp");
    tessera_certs::files::write_private(&tmp, bytes).map_err(|e| DataError {
        path: tmp.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })?;
    std::fs::rename(&tmp, path).map_err(at(path))?;
    sync_dir(path)
}

/// Makes a rename or removal in `path`'s directory durable.
pub fn sync_dir(path: &Path) -> Result<(), DataError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(at(dir))
}
