//! Rewrites the conformance suite under `conformance/` (vectors.json, the
//! root and the trust lists it names).
//!
//! `cargo run -p tessera-tests --bin regen-conformance` — after an intended
//! change of a rule or of the vectors; the conformance test fails until then.

fn main() -> anyhow::Result<()> {
    let dir = tessera_tests::conformance::suite_dir();
    let built = tessera_tests::conformance::build();
    let lists = dir.join("lists");
    if lists.exists() {
        // Vectors may be renumbered: no stale candidate file may stay behind.
        std::fs::remove_dir_all(&lists)?;
    }
    for file in &built.files {
        let path = dir.join(&file.name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &file.bytes)?;
    }
    println!(
        "wrote {} files under {}: {} badge vectors, {} trust-list vectors",
        built.files.len(),
        dir.display(),
        built.suite.badge_vectors.len(),
        built.suite.trust_list_vectors.len()
    );
    Ok(())
}
