//! The journal of a command that writes several files: `D/journal.json`,
//! written (durably) before the first file and removed after the last.
//!
//! A command records the files it is about to create and the steps it will
//! take once `registry.json` records the change (installing a new pair over
//! the live files, removing a pruned signer's key), with a digest of the
//! registry as it was. If the process dies in between, the journal stays,
//! and every later command refuses to run ([`check`]) with what was half
//! done and how to finish or undo it: `tessera authority recover` ([`recover`])
//! finishes the steps if the registry was written (the change is recorded,
//! so its files must be in place), and otherwise removes what was created
//! (nothing was recorded, so nothing refers to those files). Either way the
//! directory is usable again.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[cfg(test)]
use super::Registry;
use super::{AuthorityError, REGISTRY};

/// The journal's file name in the authority directory.
pub const JOURNAL: &str = "journal.json";

/// Replaces `path` with `bytes` by writing a temporary file beside it and
/// renaming it over `path`, so a reader sees the old or the new contents,
/// never a part.
pub(super) fn install(path: &Path, bytes: &[u8], private: bool) -> Result<(), AuthorityError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    crate::keys::write_new_file(&tmp, bytes, private)?;
    std::fs::rename(&tmp, path).map_err(|e| AuthorityError::io(path, e))?;
    if let Some(parent) = path.parent()
        && let Ok(dir) = std::fs::File::open(parent)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// A step taken once the registry records the change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Step {
    /// Copy `from` over `to` (temporary file and rename).
    Install {
        /// The file to copy, relative to the authority directory.
        from: String,
        /// The file to replace, relative to the authority directory.
        to: String,
    },
    /// Remove `path` (a retired key).
    Remove {
        /// The file, relative to the authority directory.
        path: String,
    },
}

/// What a command in progress is doing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    /// The command, as the operator typed it (`renew`, `publish`, ...).
    pub command: String,
    /// When it started (Unix seconds).
    pub started_at: i64,
    /// SHA-256 of `registry.json` before the command, hex; empty when there
    /// was none (`init`).
    pub registry_before: String,
    /// Files and directories the command creates, relative to the directory.
    pub creates: Vec<String>,
    /// Steps after the registry records the change.
    pub then: Vec<Step>,
}

/// How [`recover`] left the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// No journal: nothing was interrupted.
    Clean,
    /// The registry had recorded the change: its remaining steps were done.
    Finished {
        /// The interrupted command.
        command: String,
        /// What was done.
        done: Vec<String>,
    },
    /// The registry had not recorded the change: the files it created were
    /// removed.
    Undone {
        /// The interrupted command.
        command: String,
        /// What was removed.
        removed: Vec<String>,
    },
}

fn digest_of(path: &Path) -> Result<String, AuthorityError> {
    match fs::read(path) {
        Ok(bytes) => Ok(hex::encode(Sha256::digest(&bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(AuthorityError::io(path, e)),
    }
}

fn rel(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir).unwrap_or(path).display().to_string()
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

impl Journal {
    /// A journal for `command` in `dir`, creating `creates` and then doing
    /// `then`; paths may be absolute (under `dir`) or relative to it.
    pub fn new(
        dir: &Path,
        command: &str,
        now: i64,
        creates: &[PathBuf],
        then: Vec<Step>,
    ) -> Result<Self, AuthorityError> {
        Ok(Self {
            command: command.to_owned(),
            started_at: now,
            registry_before: digest_of(&dir.join(REGISTRY))?,
            creates: creates.iter().map(|p| rel(dir, p)).collect(),
            then,
        })
    }

    /// An install step from `from` to `to` (absolute or relative to `dir`).
    pub fn install(dir: &Path, from: &Path, to: &Path) -> Step {
        Step::Install {
            from: rel(dir, from),
            to: rel(dir, to),
        }
    }

    /// Writes the journal durably; refuses if one is already there.
    pub fn begin(&self, dir: &Path) -> Result<(), AuthorityError> {
        check(dir)?;
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| AuthorityError::Registry(e.to_string()))?;
        let path = dir.join(JOURNAL);
        let tmp = dir.join("journal.json.tmp");
        crate::files::write_private(&tmp, text.as_bytes())?;
        fs::rename(&tmp, &path).map_err(|e| AuthorityError::io(&path, e))?;
        sync_dir(dir);
        Ok(())
    }

    /// Does the steps after the registry was written, then removes the
    /// journal.
    pub fn complete(&self, dir: &Path) -> Result<Vec<String>, AuthorityError> {
        let done = self.run_steps(dir)?;
        end(dir)?;
        Ok(done)
    }

    /// Removes what the command created, then the journal: the command
    /// failed before the registry recorded anything.
    pub fn abandon(&self, dir: &Path) -> Result<Vec<String>, AuthorityError> {
        let mut removed = vec![];
        for p in self.creates.iter().rev() {
            let path = dir.join(p);
            let result = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            match result {
                Ok(()) => removed.push(p.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(AuthorityError::io(&path, e)),
            }
        }
        end(dir)?;
        Ok(removed)
    }

    fn run_steps(&self, dir: &Path) -> Result<Vec<String>, AuthorityError> {
        let mut done = vec![];
        for step in &self.then {
            match step {
                Step::Install { from, to } => {
                    let bytes = fs::read(dir.join(from))
                        .map_err(|e| AuthorityError::io(&dir.join(from), e))?;
                    // Every authority file is 0600 (see `create_dir`).
                    install(&dir.join(to), &bytes, true)?;
                    done.push(format!("installed {from} as {to}"));
                }
                Step::Remove { path } => match fs::remove_file(dir.join(path)) {
                    Ok(()) => done.push(format!("removed {path}")),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(AuthorityError::io(&dir.join(path), e)),
                },
            }
        }
        Ok(done)
    }

    /// Whether `registry.json` changed since the journal was written.
    pub(super) fn committed(&self, dir: &Path) -> Result<bool, AuthorityError> {
        Ok(digest_of(&dir.join(REGISTRY))? != self.registry_before)
    }

    fn load(dir: &Path) -> Result<Option<Self>, AuthorityError> {
        let path = dir.join(JOURNAL);
        match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| AuthorityError::Registry(format!("{JOURNAL}: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(AuthorityError::io(&path, e)),
        }
    }
}

fn end(dir: &Path) -> Result<(), AuthorityError> {
    let path = dir.join(JOURNAL);
    match fs::remove_file(&path) {
        Ok(()) => {
            sync_dir(dir);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(AuthorityError::io(&path, e)),
    }
}

/// Refuses with [`AuthorityError::Interrupted`] if a command was
/// interrupted in `dir`, saying what it had done and how to finish or undo
/// it.
pub fn check(dir: &Path) -> Result<(), AuthorityError> {
    let Some(journal) = Journal::load(dir)? else {
        return Ok(());
    };
    let state = if journal.committed(dir)? {
        let steps: Vec<String> = journal
            .then
            .iter()
            .map(|s| match s {
                Step::Install { from, to } => format!("install {from} as {to}"),
                Step::Remove { path } => format!("remove {path}"),
            })
            .collect();
        format!(
            "registry.json records its change, but these steps may not be done: {}. \
             `tessera authority recover --dir {}` finishes it",
            if steps.is_empty() {
                "none".to_owned()
            } else {
                steps.join(", ")
            },
            dir.display()
        )
    } else {
        format!(
            "registry.json does not record it, and it may have written {}. \
             `tessera authority recover --dir {}` undoes it (removes those), then run it again",
            if journal.creates.is_empty() {
                "nothing".to_owned()
            } else {
                journal.creates.join(", ")
            },
            dir.display()
        )
    };
    Err(AuthorityError::Interrupted {
        command: journal.command,
        started_at: journal.started_at,
        state,
    })
}

/// Finishes or undoes an interrupted command (see the module's docs).
pub fn recover(dir: &Path) -> Result<Recovered, AuthorityError> {
    if !dir.is_dir() {
        return Err(AuthorityError::MissingDirectory(dir.display().to_string()));
    }
    let Some(journal) = Journal::load(dir)? else {
        return Ok(Recovered::Clean);
    };
    if journal.committed(dir)? {
        let done = journal.complete(dir)?;
        Ok(Recovered::Finished {
            command: journal.command,
            done,
        })
    } else {
        let removed = journal.abandon(dir)?;
        Ok(Recovered::Undone {
            command: journal.command,
            removed,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::authority::{AuthorityDir, InitOptions, RenewTarget};

    const NOW: i64 = 1_800_000_000;

    fn authority(tmp: &Path) -> AuthorityDir {
        let options = InitOptions {
            name: "Test authority".into(),
            sunset_at: NOW + 700 * 86_400,
        };
        let mut a = AuthorityDir::init(&tmp.join("a"), &options, NOW).unwrap();
        a.enrol_city("330100".parse().unwrap(), "Hangzhou", "127.0.0.1:7101", NOW)
            .unwrap();
        a
    }

    fn interrupted(dir: &Path) -> String {
        match AuthorityDir::open(dir) {
            Err(e @ AuthorityError::Interrupted { .. }) => e.to_string(),
            other => panic!("expected Interrupted, got {other:?}"),
        }
    }

    #[test]
    fn a_renewal_killed_before_the_registry_is_written_is_named_and_undone() {
        let tmp = tempfile::tempdir().unwrap();
        let a = authority(tmp.path());
        let dir = a.dir().to_path_buf();
        let bundle = dir.join("cities/330100");
        let registry = fs::read(dir.join(REGISTRY)).unwrap();
        // What `renew` does up to the registry: journal, archive, new pair.
        let journal = Journal::new(
            &dir,
            "renew",
            NOW,
            &[bundle.join("node.2.crt"), bundle.join("node.2.key")],
            vec![Journal::install(
                &dir,
                &bundle.join("node.2.key"),
                &bundle.join("node.key"),
            )],
        )
        .unwrap();
        journal.begin(&dir).unwrap();
        fs::write(bundle.join("node.2.crt"), b"half").unwrap();

        let message = interrupted(&dir);
        assert!(message.contains("`renew`"), "{message}");
        assert!(message.contains("does not record it"), "{message}");
        assert!(message.contains("cities/330100/node.2.crt"), "{message}");
        assert!(message.contains("tessera authority recover"), "{message}");

        let r = recover(&dir).unwrap();
        assert!(
            matches!(&r, Recovered::Undone { command, removed } if command == "renew" && removed.len() == 1),
            "{r:?}"
        );
        assert!(!bundle.join("node.2.crt").exists());
        assert_eq!(fs::read(dir.join(REGISTRY)).unwrap(), registry);
        // Usable again: the renewal runs as if never tried.
        let mut a = AuthorityDir::open(&dir).unwrap();
        let r = a
            .renew(&RenewTarget::City("330100".parse().unwrap()), NOW + 1)
            .unwrap();
        assert_eq!(r.new.cert_file, "cities/330100/node.2.crt");
        assert!(!dir.join(JOURNAL).exists());
        assert_eq!(recover(&dir).unwrap(), Recovered::Clean);
    }

    #[test]
    fn a_renewal_killed_after_the_registry_is_written_is_named_and_finished() {
        let tmp = tempfile::tempdir().unwrap();
        let a = authority(tmp.path());
        let dir = a.dir().to_path_buf();
        let bundle = dir.join("cities/330100");
        let new_key = bundle.join("badge-signer.key");
        let journal = Journal::new(
            &dir,
            "renew",
            NOW,
            &[],
            vec![Journal::install(&dir, &new_key, &bundle.join("node.key"))],
        )
        .unwrap();
        journal.begin(&dir).unwrap();
        // The registry was written, the live key not yet replaced.
        let mut registry = Registry::load(&dir.join(REGISTRY)).unwrap();
        registry.last_sequence += 1;
        registry.save(&dir.join(REGISTRY)).unwrap();

        let message = interrupted(&dir);
        assert!(message.contains("records its change"), "{message}");
        assert!(
            message.contains("install cities/330100/badge-signer.key as cities/330100/node.key"),
            "{message}"
        );
        assert!(matches!(recover(&dir).unwrap(), Recovered::Finished { .. }));
        assert_eq!(
            fs::read(bundle.join("node.key")).unwrap(),
            fs::read(&new_key).unwrap()
        );
        AuthorityDir::open(&dir).unwrap();
    }

    #[test]
    fn an_init_killed_half_way_is_named_and_undone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a");
        fs::create_dir(&dir).unwrap();
        let journal = Journal::new(
            &dir,
            "init",
            NOW,
            &[dir.join("root"), dir.join(REGISTRY)],
            vec![],
        )
        .unwrap();
        journal.begin(&dir).unwrap();
        fs::create_dir(dir.join("root")).unwrap();
        fs::write(dir.join("root/root.key"), b"half").unwrap();
        let options = InitOptions {
            name: "Again".into(),
            sunset_at: NOW + 700 * 86_400,
        };
        // Neither init nor any other command runs on the half directory.
        let err = AuthorityDir::init(&dir, &options, NOW).unwrap_err();
        assert!(err.to_string().contains("`init`"), "{err}");
        assert!(interrupted(&dir).contains("recover"));
        assert!(matches!(recover(&dir).unwrap(), Recovered::Undone { .. }));
        assert!(!dir.join("root").exists());
        AuthorityDir::init(&dir, &options, NOW).unwrap();
        assert!(!dir.join(JOURNAL).exists());
    }

    #[test]
    fn a_refused_command_leaves_no_journal_and_no_files() {
        let tmp = tempfile::tempdir().unwrap();
        let mut a = authority(tmp.path());
        let bundle = a.dir().join("cities/330100");
        // The live certificate no longer matches the registry: refused.
        fs::copy(bundle.join("badge-signer.crt"), bundle.join("node.crt")).unwrap();
        a.renew(&RenewTarget::City("330100".parse().unwrap()), NOW)
            .unwrap_err();
        assert!(!a.dir().join(JOURNAL).exists());
        assert!(!bundle.join("node.2.crt").exists());
        AuthorityDir::open(a.dir()).unwrap();
    }
}
