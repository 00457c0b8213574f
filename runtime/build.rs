//! Records the commit this build was made from, for `tessera --version` and
//! the `tessera_build_info` metric: `TESSERA_BUILD_COMMIT` when set (a build
//! from a source archive, or a packager's own record), else `git rev-parse
//! HEAD` in the source tree, else "unknown". Git's HEAD and the ref it names
//! are watched, so a new commit rebuilds this crate and nothing else.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=TESSERA_BUILD_COMMIT");
    let commit = match std::env::var("TESSERA_BUILD_COMMIT") {
        Ok(given) if !given.trim().is_empty() => given.trim().to_owned(),
        _ => {
            if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
                let dir = PathBuf::from(dir);
                println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
                if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
                    // A worktree's branch refs live in the common directory.
                    let common = git(&["rev-parse", "--git-common-dir"])
                        .map(PathBuf::from)
                        .unwrap_or_else(|| dir.clone());
                    let common = if common.is_absolute() {
                        common
                    } else {
                        std::env::current_dir().unwrap_or_default().join(common)
                    };
                    println!(
                        "cargo:rerun-if-changed={}",
                        common.join(&reference).display()
                    );
                    println!(
                        "cargo:rerun-if-changed={}",
                        common.join("packed-refs").display()
                    );
                }
            }
            git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".to_owned())
        }
    };
    println!("cargo:rustc-env=TESSERA_BUILD_COMMIT={commit}");
}
