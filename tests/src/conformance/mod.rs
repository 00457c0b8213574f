//! The conformance suite under `conformance/`: language-neutral vectors for
//! badge verification and trust-list acceptance, with the files they name.
//!
//! Every expected outcome and reason is written by hand here, from the
//! numbered rules of `docs/PROTOCOL.md`; nothing is computed by running a
//! verifier. Everything is deterministic (fixed keys, serials and times), so
//! `cargo run -p tessera-tests --bin regen-conformance` rewrites the same
//! bytes, and a test compares the committed files with a fresh build.

mod badges;
pub mod craft;
pub mod dercraft;
mod issuing;
mod lists;
pub mod pki;

use std::path::{Path, PathBuf};

use serde::Serialize;

/// One day in seconds.
pub const DAY: i64 = 86_400;
/// The moment most vectors are checked at: 2026-06-01T00:00:00Z.
pub const NOW: i64 = 1_780_272_000;
/// Start of every ordinary certificate's validity.
pub const CERT_NOT_BEFORE: i64 = NOW - 30 * DAY;
/// End of every ordinary certificate's validity.
pub const CERT_NOT_AFTER: i64 = NOW + 365 * DAY;
/// The name of the format, first key of `vectors.json`.
pub const FORMAT: &str = "tessera-conformance/1";

/// The root every vector pins but those of the issuing CA
/// (`issuing::ROOT_ISSUING`).
pub const ROOT_FILE: &str = "root.der";

/// One file of the suite: its path under `conformance/` and its bytes.
pub struct SuiteFile {
    /// Path relative to `conformance/`.
    pub name: String,
    /// Contents.
    pub bytes: Vec<u8>,
}

/// The directory the suite lives in.
pub fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("conformance")
}

/// The expected result of a badge vector.
#[derive(Debug, Clone, Serialize)]
pub struct BadgeExpected {
    /// `VALID`, `MALFORMED`, … (the `Outcome` name without `OUTCOME_`).
    pub outcome: &'static str,
    /// The reason code.
    pub reason: &'static str,
    /// `GREEN`, `YELLOW` or `RED`: VALID only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub colour: Option<&'static str>,
    /// The claims' `valid_until`: VALID only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<i64>,
    /// The claims' `issuer_city`: VALID only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer_city: Option<u32>,
}

/// One badge vector.
#[derive(Debug, Clone, Serialize)]
pub struct BadgeVector {
    /// Unique id, e.g. `badge-042-window-too-long`.
    pub id: String,
    /// The PROTOCOL.md rule it tests, e.g. `C7`.
    pub rule: &'static str,
    /// What is special about it.
    pub description: String,
    /// The pinned root (DER), relative to `conformance/`.
    pub root: &'static str,
    /// The signed trust list the verifier holds, relative to `conformance/`.
    pub trust_list: &'static str,
    /// When the verifier accepted that list (it verifies at this time).
    pub trust_list_accepted_at: i64,
    /// The verifier's clock for the badge check.
    pub now: i64,
    /// The badge as QR text (exactly one of `text` and `envelope_hex`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The badge as envelope bytes, lower-case hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub envelope_hex: Option<String>,
    /// What a verifier must conclude.
    pub expected: BadgeExpected,
}

/// The expected result of a trust-list vector.
#[derive(Debug, Clone, Serialize)]
pub struct ListExpected {
    /// Whether the candidate is accepted.
    pub accepted: bool,
    /// `accepted` or the refusal's reason code.
    pub reason: &'static str,
    /// The accepted list's sequence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// `fresh` or `stale` at `now`, for an accepted list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freshness: Option<&'static str>,
}

/// One trust-list vector.
#[derive(Debug, Clone, Serialize)]
pub struct ListVector {
    /// Unique id.
    pub id: String,
    /// The PROTOCOL.md rule it tests, e.g. `L15`.
    pub rule: &'static str,
    /// What is special about it.
    pub description: String,
    /// The pinned root (DER).
    pub root: &'static str,
    /// The list held, already accepted (absent: none held).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// The list offered.
    pub candidate: String,
    /// The verifier's clock.
    pub now: i64,
    /// What a verifier must conclude.
    pub expected: ListExpected,
}

/// `vectors.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Suite {
    /// [`FORMAT`].
    pub format: &'static str,
    /// Where the format is described.
    pub description: &'static str,
    /// Badge vectors.
    pub badge_vectors: Vec<BadgeVector>,
    /// Trust-list vectors.
    pub trust_list_vectors: Vec<ListVector>,
}

/// The vectors and their files.
pub struct Built {
    /// The parsed vectors.
    pub suite: Suite,
    /// Every file, `vectors.json` included.
    pub files: Vec<SuiteFile>,
}

/// Builds the whole suite from fixed inputs.
pub fn build() -> Built {
    let pki = pki::build();
    let mut files = vec![SuiteFile {
        name: ROOT_FILE.into(),
        bytes: pki.root.der().to_vec(),
    }];
    let held_lists = lists::badge_lists(&pki);
    let mut badge_vectors = badges::vectors(&pki, &held_lists);
    let (mut trust_list_vectors, list_files) = lists::vectors(&pki);
    for (name, bytes) in held_lists.files() {
        files.push(SuiteFile { name, bytes });
    }
    files.extend(list_files);
    let (ica_badges, ica_lists, ica_files) =
        issuing::vectors(&pki, badge_vectors.len(), trust_list_vectors.len());
    badge_vectors.extend(ica_badges);
    trust_list_vectors.extend(ica_lists);
    files.extend(ica_files);
    let suite = Suite {
        format: FORMAT,
        description: "tessera conformance vectors: see conformance/README.md and docs/PROTOCOL.md",
        badge_vectors,
        trust_list_vectors,
    };
    let mut json = serde_json::to_string_pretty(&suite).expect("vectors serialise");
    json.push('\n');
    files.push(SuiteFile {
        name: "vectors.json".into(),
        bytes: json.into_bytes(),
    });
    Built { suite, files }
}
