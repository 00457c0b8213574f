//! The scanner app's TypeScript offline verifier (`web/src/verify`), written
//! from PROTOCOL.md with `@noble/curves` and its own DER reader, against
//! every conformance vector: `web/scripts/conformance.ts` run by `tsx` in
//! Node.js, as `npm run conformance` in `web/` runs it.
//!
//! It needs Node.js 20 or newer and `web/node_modules` (`npm ci` in `web/`).
//! Without them the test says it is skipped, unless `TESSERA_REQUIRE_WEB=1`
//! (as in `.ci/run`), where it fails instead.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::path::Path;
use std::process::Command;

use common::assert_every_vector_passed;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

const HOW_WEB: &str = "(cd web && npm ci) with Node.js 20.19 or newer on PATH \
    (from the repository root; .ci/run does this)";

fn required() -> bool {
    std::env::var("TESSERA_REQUIRE_WEB").is_ok_and(|v| v == "1")
}

/// Whether Node.js and the app's packages are there; `false` when the test
/// is skipped.
fn web() -> bool {
    let tsx = Path::new(REPO).join("web/node_modules/tsx/dist/cli.mjs");
    let runs = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if runs && tsx.is_file() {
        return true;
    }
    let what = if runs {
        "web/node_modules is missing"
    } else {
        "no node on PATH"
    };
    assert!(!required(), "TESSERA_REQUIRE_WEB=1 but {what}: {HOW_WEB}");
    eprintln!("skipped: {what}: {HOW_WEB}");
    false
}

/// The TypeScript verifier agrees with every badge vector and every
/// trust-list vector (each list under `conformance/lists/` is a vector's
/// list), and says how many it ran.
#[test]
fn the_typescript_verifier_agrees_with_every_conformance_vector() {
    if !web() {
        return;
    }
    let dir = Path::new(REPO).join("web");
    let out = Command::new("node")
        .arg(dir.join("node_modules/tsx/dist/cli.mjs"))
        .arg(dir.join("scripts/conformance.ts"))
        .arg("--vectors")
        .arg(Path::new(REPO).join("conformance"))
        .current_dir(&dir)
        .output()
        .expect("run the TypeScript conformance runner");
    assert_every_vector_passed(&out);
}
