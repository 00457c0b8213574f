//! An offline verifier in one file: tessera-core plus three inputs.
//!
//! ```text
//! cargo run -p tessera-core --example verify_offline -- ROOT LIST BADGE [NOW]
//! ```
//!
//! - `ROOT`: the national root certificate, DER or PEM, pinned out of band;
//! - `LIST`: a signed trust list (`.tsl`, as `tessera trust fetch` saves it);
//! - `BADGE`: the badge's QR text (`TB1:…`), or a file holding it;
//! - `NOW`: the time to check at, in Unix seconds (default: the clock).
//!
//! With no arguments it checks the first badge vector of `conformance/`
//! at that vector's time, so the command works from a fresh clone.
//!
//! It prints the verdict and exits 0 for VALID, 1 for any other outcome and
//! 2 when an input cannot be read or the trust list does not verify. Only
//! tessera-core is linked: no runtime, no TLS, no network.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tessera_core::{CheckedTrustList, Freshness, TrustAnchor, verify_text};
use tessera_proto::v1 as pb;

/// What to check: the root and list files, the badge text and the time.
pub struct Inputs {
    pub root: PathBuf,
    pub list: PathBuf,
    pub badge: String,
    pub now: i64,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let inputs = match inputs(&args) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("verify_offline: {e}");
            eprintln!("usage: verify_offline [ROOT LIST BADGE [NOW]]");
            return ExitCode::from(2);
        }
    };
    match check(&inputs) {
        Ok(verdict) => {
            print!("{}", describe(&verdict));
            if verdict.outcome == pb::Outcome::Valid as i32 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("verify_offline: {e}");
            ExitCode::from(2)
        }
    }
}

/// The inputs named by `args`, or the first conformance vector's.
pub fn inputs(args: &[String]) -> Result<Inputs, String> {
    match args {
        [] => conformance_inputs(),
        [root, list, badge] | [root, list, badge, _] => {
            let now = match args.get(3) {
                Some(n) => n
                    .parse()
                    .map_err(|_| format!("NOW must be Unix seconds, not {n:?}"))?,
                None => std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(|e| format!("the clock is before 1970: {e}"))?
                    .as_secs()
                    .try_into()
                    .map_err(|_| "the clock is past the year 292 billion".to_owned())?,
            };
            let badge = if Path::new(badge).is_file() {
                read_to_string(Path::new(badge))?.trim().to_owned()
            } else {
                badge.clone()
            };
            Ok(Inputs {
                root: root.into(),
                list: list.into(),
                badge,
                now,
            })
        }
        _ => Err(format!("expected 0, 3 or 4 arguments, got {}", args.len())),
    }
}

/// The first badge vector of the conformance suite, with its own time.
fn conformance_inputs() -> Result<Inputs, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance");
    let vectors: serde_json::Value =
        serde_json::from_str(&read_to_string(&dir.join("vectors.json"))?)
            .map_err(|e| format!("conformance/vectors.json: {e}"))?;
    let first = &vectors["badge_vectors"][0];
    let field = |name: &str| {
        first[name]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("conformance/vectors.json: first badge vector has no {name}"))
    };
    Ok(Inputs {
        root: dir.join(field("root")?),
        list: dir.join(field("trust_list")?),
        badge: field("text")?,
        now: first["now"]
            .as_i64()
            .ok_or("conformance/vectors.json: first badge vector has no now")?,
    })
}

fn read_to_string(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

/// The verdict on `inputs.badge`: the root and the list must hold (an error
/// otherwise); the badge itself always gets a verdict.
pub fn check(inputs: &Inputs) -> Result<pb::Verdict, String> {
    let root_bytes = std::fs::read(&inputs.root)
        .map_err(|e| format!("reading {}: {e}", inputs.root.display()))?;
    let root_der = match x509_parser::pem::parse_x509_pem(&root_bytes) {
        Ok((_, pem)) => pem.contents,
        Err(_) => root_bytes,
    };
    let root = TrustAnchor::from_der(&root_der)
        .map_err(|e| format!("{} is not a tessera root: {e}", inputs.root.display()))?;
    let list_bytes = std::fs::read(&inputs.list)
        .map_err(|e| format!("reading {}: {e}", inputs.list.display()))?;
    let list = CheckedTrustList::verify(&list_bytes, &root, inputs.now).map_err(|e| {
        format!(
            "{} does not verify against {}: {e}",
            inputs.list.display(),
            inputs.root.display()
        )
    })?;
    if let Freshness::Stale { overdue_secs } = list.freshness(inputs.now) {
        eprintln!(
            "warning: trust list {} is {} h past its next update",
            list.sequence(),
            overdue_secs / 3600
        );
    }
    Ok(match verify_text(&inputs.badge, &list, inputs.now) {
        Ok(badge) => badge.verdict(inputs.now, "offline: signature and validity checked"),
        Err(e) => e.verdict(inputs.now),
    })
}

/// The verdict in a few lines for people.
pub fn describe(v: &pb::Verdict) -> String {
    let outcome = pb::Outcome::try_from(v.outcome).unwrap_or(pb::Outcome::Unspecified);
    let mut out = format!("outcome: {}\nreason: {}\n", outcome.as_str_name(), v.reason);
    if outcome == pb::Outcome::Valid {
        let colour = pb::Colour::try_from(v.colour).unwrap_or(pb::Colour::Unspecified);
        out += &format!(
            "colour: {}\nissuer: {} ({})\nvalid until: {} (Unix seconds)\n",
            colour.as_str_name(),
            v.issuer_name,
            v.issuer_city,
            v.valid_until
        );
    }
    out += &format!("detail: {}\n", v.detail);
    out
}
