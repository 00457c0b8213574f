//! Embeds the built scanner app: every file under `../web/dist` becomes a
//! row (path, bytes, content type) of a static table, so that `cargo build`
//! never needs npm. An absent directory embeds nothing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "ogg" => "audio/ogg",
        _ => "application/octet-stream",
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        println!("cargo:rerun-if-changed={}", path.display());
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.is_file() {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let dist = manifest.join("../web/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let mut files = vec![];
    if dist.is_dir() {
        walk(&dist, &mut files)?;
    }
    files.sort();
    let mut table = String::from("/// Every file of `web/dist`: path, bytes, content type.\n");
    table.push_str("pub static ASSETS: &[(&str, &[u8], &str)] = &[\n");
    for file in &files {
        let rel = file.strip_prefix(&dist)?;
        let url: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let abs = file.canonicalize()?;
        writeln!(
            table,
            "    ({:?}, include_bytes!({:?}), {:?}),",
            format!("/{}", url.join("/")),
            abs.display().to_string(),
            content_type(file)
        )?;
    }
    table.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("assets.rs");
    std::fs::write(out, table)?;
    Ok(())
}
