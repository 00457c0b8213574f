//! Rewrites the golden vectors under `tests/golden/`.
//!
//! `cargo run -p tessera-tests --bin regen-golden` — only after an intended
//! change of the wire format; the golden test fails until then.

fn main() -> anyhow::Result<()> {
    let dir = tessera_tests::golden::golden_dir();
    std::fs::create_dir_all(&dir)?;
    for file in tessera_tests::golden::build() {
        let path = dir.join(file.name);
        std::fs::write(&path, &file.bytes)?;
        println!("wrote {} ({} bytes)", path.display(), file.bytes.len());
    }
    Ok(())
}
