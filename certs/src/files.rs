//! Files the servers keep: private directories and files whatever the
//! process umask, secret keys checked before use, sled directories made
//! ready to open (a snapshot temp a failed start left is removed) and a full
//! disk told apart from other I/O errors.

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a file or directory was refused or could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// An I/O error on a path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// A secret key others may read.
    #[error(
        "{path} is readable by group or others (mode {mode:03o}): a private key must be 0600; run `chmod 600 {path}`"
    )]
    Exposed {
        /// The key file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// A secret key in a directory others may write (they could swap it).
    #[error(
        "{path} sits in {dir}, which others can write (mode {mode:03o}): run `chmod o-w {dir}` or keep the key elsewhere"
    )]
    OpenDirectory {
        /// The key file.
        path: String,
        /// Its directory.
        dir: String,
        /// The directory's permission bits.
        mode: u32,
    },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> FileError + '_ {
    move |source| FileError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Whether an I/O error says the disk (or the caller's quota on it) is full.
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || matches!(e.raw_os_error(), Some(28 | 122))
}

/// Sets the process umask to 077, so that every file and directory the
/// process creates from now on (sled's logs and snapshots included) is
/// private to its owner whatever umask it was started with. For the
/// servers' processes (`tessera node run`, `tessera gateway run`).
pub fn restrict_umask() {
    let _ = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// What a server needs free beside its store to start or to take writes
/// again after a full disk: more than sled needs to go on (a log segment
/// is 512 KiB, a snapshot a few KiB).
pub const ROOM_BYTES: usize = 2 * 1024 * 1024;

/// Whether `dir` has room for `bytes` written durably: writes and removes
/// a probe file (`room-probe.tmp`). Any error counts as no room.
pub fn has_room(dir: &Path, bytes: usize) -> bool {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let probe = dir.join("room-probe.tmp");
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&probe)
        .and_then(|mut f| {
            f.write_all(&vec![0u8; bytes])?;
            f.sync_all()
        });
    let _ = std::fs::remove_file(&probe);
    written.is_ok()
}

/// Creates `dir` (and missing parents) with mode 0700, and tightens it to
/// 0700 if it exists with wider permissions.
pub fn private_dir(dir: &Path) -> Result<(), FileError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_at(dir))?;
    tighten(dir, 0o700)
}

fn tighten(path: &Path, mode: u32) -> Result<(), FileError> {
    let meta = std::fs::symlink_metadata(path).map_err(io_at(path))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    if meta.permissions().mode() & 0o777 & !mode != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(io_at(path))?;
    }
    Ok(())
}

/// Tightens `dir` and everything under it: directories to 0700, files to
/// 0600 (symbolic links are left alone). For directories whose content
/// another library creates with the umask's modes (sled's).
pub fn tighten_tree(dir: &Path) -> Result<(), FileError> {
    tighten(dir, 0o700)?;
    for entry in std::fs::read_dir(dir).map_err(io_at(dir))? {
        let path = entry.map_err(io_at(dir))?.path();
        let meta = std::fs::symlink_metadata(&path).map_err(io_at(&path))?;
        if meta.is_dir() {
            tighten_tree(&path)?;
        } else if meta.is_file() {
            tighten(&path, 0o600)?;
        }
    }
    Ok(())
}

/// Refuses a secret key file (a private key, the master key, the
/// pseudonym key) that group or others may read, or that sits in a
/// directory others may write; the error names the file and the `chmod`
/// to run. A file that does not exist passes (its reader reports it).
pub fn check_secret(path: &Path) -> Result<(), FileError> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_at(path)(e)),
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(FileError::Exposed {
            path: path.display().to_string(),
            mode,
        });
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir_mode = std::fs::metadata(dir)
        .map_err(io_at(dir))?
        .permissions()
        .mode()
        & 0o7777;
    if dir_mode & 0o002 != 0 {
        return Err(FileError::OpenDirectory {
            path: path.display().to_string(),
            dir: dir.display().to_string(),
            mode: dir_mode & 0o777,
        });
    }
    Ok(())
}

/// Writes `bytes` to `path` with mode 0600 (creating or replacing its
/// content; an existing file is tightened), for files kept in a data
/// directory (a cached trust list, `registry.json`).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_at(path))?;
    tighten(path, 0o600)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_at(path))
}

/// Removes the snapshot temps (`snap.<lsn>.generating`) sled left in `dir`
/// and returns what it removed. sled writes a snapshot to such a temp and
/// renames it when complete, so a temp is never a snapshot sled relies on;
/// but sled 0.34 reads one left by a start that failed (a full disk leaves
/// it empty) as the newest snapshot and refuses to open ("Read corrupted
/// data", upstream issue 1527). Does nothing while another process holds
/// the directory's lock (its sled may be writing a temp right now).
pub fn remove_snapshot_temps(dir: &Path) -> Result<Vec<(PathBuf, u64)>, FileError> {
    let db = dir.join("db");
    let lock = match std::fs::OpenOptions::new().read(true).write(true).open(&db) {
        Ok(file) => Some(file),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_at(&db)(e)),
    };
    if let Some(file) = &lock
        && file.try_lock().is_err()
    {
        return Ok(Vec::new());
    }
    let mut removed = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(io_at(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_at(dir))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            let path = entry.path();
            let len = entry.metadata().map_err(io_at(&path))?.len();
            std::fs::remove_file(&path).map_err(io_at(&path))?;
            removed.push((path, len));
        }
    }
    if !removed.is_empty() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_at(dir))?;
    }
    Ok(removed)
}

/// Makes a sled directory ready to open: created 0700 (or tightened),
/// snapshot temps a failed start left removed (each logged), and what sled
/// wrote before tightened to 0700 directories and 0600 files.
pub fn prepare_sled_dir(dir: &Path) -> Result<(), FileError> {
    private_dir(dir)?;
    for (path, len) in remove_snapshot_temps(dir)? {
        tracing::warn!(
            file = %path.display(),
            bytes = len,
            "removed a snapshot temp that an earlier start left (a full disk leaves it empty); \
             sled reads the store from its log and the last complete snapshot"
        );
    }
    tighten_tree(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_dir_and_tighten_tree_set_modes_whatever_existed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::create_dir(dir.join("blobs")).unwrap();
        std::fs::set_permissions(dir.join("blobs"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::fs::write(dir.join("db"), b"x").unwrap();
        std::fs::set_permissions(dir.join("db"), std::fs::Permissions::from_mode(0o666)).unwrap();
        tighten_tree(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("blobs")), 0o700);
        assert_eq!(mode(&dir.join("db")), 0o600);
    }

    #[test]
    fn secrets_readable_by_others_or_in_open_directories_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let key = tmp.path().join("node.key");
        std::fs::write(&key, b"k").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = check_secret(&key).unwrap_err().to_string();
        assert!(e.contains(&format!("chmod 600 {}", key.display())), "{e}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        check_secret(&key).unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_secret(&key).unwrap_err().to_string();
        assert!(
            e.contains(&format!("chmod o-w {}", tmp.path().display())),
            "{e}"
        );
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        check_secret(&tmp.path().join("absent.key")).unwrap();
    }

    #[test]
    fn an_empty_snapshot_temp_is_removed_and_sled_opens() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        {
            let db = sled::open(&dir).unwrap();
            db.insert(b"kept", b"yes").unwrap();
            db.flush().unwrap();
        }
        let temp = dir.join("snap.00000000000FFFFF.generating");
        std::fs::write(&temp, b"").unwrap();
        // What the stray temp does to sled when left in place.
        assert!(sled::open(&dir).is_err());
        // The failed open's threads may hold the store's lock for a moment
        // after it returns (a failed start is another process, gone by the
        // time the node starts again): wait until the lock is free, since
        // the clean-up rightly leaves a locked store alone.
        let db_file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join("db"))
            .unwrap();
        let mut tries = 0;
        while db_file.try_lock().is_err() {
            tries += 1;
            assert!(tries < 3000, "the failed open never released the lock");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        db_file.unlock().unwrap();
        prepare_sled_dir(&dir).unwrap();
        assert!(!temp.exists());
        let db = sled::open(&dir).unwrap();
        assert_eq!(db.get(b"kept").unwrap().as_deref(), Some(&b"yes"[..]));
    }

    #[test]
    fn a_snapshot_temp_is_kept_while_another_process_holds_the_store() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("store");
        let db = sled::open(&dir).unwrap();
        let temp = dir.join("snap.00000000000FFFFF.generating");
        std::fs::write(&temp, b"").unwrap();
        assert!(remove_snapshot_temps(&dir).unwrap().is_empty());
        assert!(temp.exists());
        drop(db);
    }
}
