//! What this binary was built from: the package version and the commit,
//! recorded at build time (`runtime/build.rs`). `tessera --version` prints
//! them and the servers export them as `tessera_build_info`.

/// The package version, e.g. `0.1.0`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The full commit id this binary was built from, or `unknown` when it was
/// built outside a git checkout without `TESSERA_BUILD_COMMIT` set.
pub const COMMIT: &str = env!("TESSERA_BUILD_COMMIT");

/// `VERSION (commit COMMIT)`, as `tessera --version` prints it.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TESSERA_BUILD_COMMIT"),
    ")"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_line_names_the_version_and_a_commit() {
        assert!(VERSION_LINE.starts_with(VERSION));
        assert!(VERSION_LINE.contains(&format!("(commit {COMMIT})")));
        assert!(
            COMMIT == "unknown"
                || (COMMIT.len() >= 7 && COMMIT.chars().all(|c| c.is_ascii_alphanumeric())),
            "{COMMIT}"
        );
    }
}
