//! Looking for secrets on disk: every file under a directory, searched for
//! byte strings. Shared by the gateway's test in `tests/it/gateway.rs` and the
//! demo's in `cli/tests/demo.rs` (which includes this file by path: it uses
//! only `std`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// A byte string to look for, with a label to report it by.
#[derive(Debug, Clone)]
pub struct Needle {
    /// What it is, for the report (e.g. "badge id 3f…").
    pub label: String,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl Needle {
    /// A text needle (an ID number, a record id, a lab code).
    pub fn text(kind: &str, s: &str) -> Self {
        Self {
            label: format!("{kind} {s:?}"),
            bytes: s.as_bytes().to_vec(),
        }
    }

    /// A binary id, as raw bytes and as lower- and upper-case hex.
    pub fn id(kind: &str, id: &[u8]) -> [Self; 3] {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        [
            Self {
                label: format!("{kind} {hex} (raw bytes)"),
                bytes: id.to_vec(),
            },
            Self {
                label: format!("{kind} {hex} (hex)"),
                bytes: hex.as_bytes().to_vec(),
            },
            Self {
                label: format!("{kind} {hex} (HEX)"),
                bytes: hex.to_uppercase().into_bytes(),
            },
        ]
    }
}

/// Every regular file under `dir`, at any depth.
pub fn files_under(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Where any needle occurs in any file under `dir`: one line per hit,
/// "LABEL in PATH"; empty when none does. Also returns how many files were
/// searched, so a caller can tell an empty directory from a clean one.
/// Needles are grouped by length and every window of a file is looked up
/// once per length, so thousands of needles cost little more than one.
pub fn find(dir: &Path, needles: &[Needle]) -> std::io::Result<(usize, Vec<String>)> {
    let mut by_len: HashMap<usize, HashMap<&[u8], Vec<&str>>> = HashMap::new();
    for n in needles.iter().filter(|n| !n.bytes.is_empty()) {
        by_len
            .entry(n.bytes.len())
            .or_default()
            .entry(n.bytes.as_slice())
            .or_default()
            .push(&n.label);
    }
    let files = files_under(dir)?;
    let mut hits = vec![];
    for file in &files {
        let bytes = std::fs::read(file)?;
        let mut found = HashSet::new();
        for (len, set) in &by_len {
            for w in bytes.windows(*len) {
                if let Some(labels) = set.get(w) {
                    found.extend(labels.iter().copied());
                }
            }
        }
        let mut found: Vec<_> = found.into_iter().collect();
        found.sort_unstable();
        hits.extend(
            found
                .into_iter()
                .map(|label| format!("{label} in {}", file.display())),
        );
    }
    Ok((files.len(), hits))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    #[test]
    fn a_planted_needle_is_found_at_any_depth_in_any_form() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        let id = [0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4];
        std::fs::write(deep.join("raw"), [&b"xx"[..], &id, b"yy"].concat()).unwrap();
        std::fs::write(dir.path().join("hex"), b"...DEADBEEF01020304...").unwrap();
        std::fs::write(dir.path().join("text"), b"lab LAB-01 here").unwrap();
        std::fs::write(dir.path().join("clean"), b"nothing").unwrap();
        let mut needles = Needle::id("badge id", &id).to_vec();
        needles.push(Needle::text("lab", "LAB-01"));
        needles.push(Needle::text("lab", "LAB-02"));
        let (files, hits) = find(dir.path(), &needles).unwrap();
        assert_eq!(files, 4);
        assert_eq!(hits.len(), 3, "{hits:#?}");
        assert!(
            hits.iter()
                .any(|h| h.contains("(raw bytes)") && h.ends_with("raw"))
        );
        assert!(
            hits.iter()
                .any(|h| h.contains("(HEX)") && h.ends_with("hex"))
        );
        assert!(
            hits.iter()
                .any(|h| h.contains("LAB-01") && h.ends_with("text"))
        );
    }
}
