//! `tessera verify`: a checkpoint's check of a badge, offline from a cached
//! trust list or online through the gateway.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tessera_core::trust::{CheckedTrustList, Freshness};
use tessera_core::{text, verify_text};
use tessera_proto::v1 as pb;

use crate::{creds, fmt};

/// Exit status of a verification that ran: 0 for VALID, 10 + the outcome's
/// wire number otherwise (12 REVOKED … 19 STATUS_UNAVAILABLE).
pub fn exit_code(outcome: pb::Outcome) -> u8 {
    match outcome {
        pb::Outcome::Valid => 0,
        other => 10 + u8::try_from(other as i32).unwrap_or(0),
    }
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  tessera verify --offline --trust-list trust-list.tsl --root root.crt 'TB1:…'
  tessera verify --gateway 127.0.0.1:7000 --bundle verifiers/420000-wuhan-station < badge.txt
  tessera verify --gateway 127.0.0.1:7000 --bundle DIR --json 'TB1:…'

Exit status: 0 VALID; 12 REVOKED, 13 EXPIRED, 14 NOT_YET_VALID, 15 BAD_SIGNATURE,
16 UNKNOWN_SIGNER, 17 SIGNER_REVOKED, 18 MALFORMED, 19 STATUS_UNAVAILABLE;
10 for an outcome this build does not know; 1 when the check could not be made;
2 for a usage error.")]
pub struct VerifyArgs {
    /// The badge's QR text; read from standard input when absent or `-`.
    text: Option<String>,
    /// Check offline against a cached signed trust list (no network).
    #[arg(long, requires = "trust_list", conflicts_with = "gateway")]
    offline: bool,
    /// The cached signed trust list: required with --offline; with --gateway,
    /// a gateway certificate it revokes is refused (advised).
    #[arg(long)]
    trust_list: Option<PathBuf>,
    /// The national root certificate, for --offline (default: the bundle's root.crt).
    #[arg(long, required_unless_present_any = ["bundle", "gateway"])]
    root: Option<PathBuf>,
    /// Check online through the gateway at host:port.
    #[arg(long, required_unless_present = "offline", requires = "bundle")]
    gateway: Option<String>,
    /// The checkpoint's bundle directory (verifier.crt, verifier.key, root.crt).
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// Print the verdict as JSON.
    #[arg(long)]
    json: bool,
    /// With --offline, refuse a trust list past its next update instead of warning.
    #[arg(long, requires = "offline")]
    refuse_stale: bool,
}

/// The badge text from an argument, or from standard input when absent or `-`.
pub fn read_text(arg: Option<String>) -> anyhow::Result<String> {
    match arg.as_deref() {
        Some(t) if t != "-" => Ok(t.to_owned()),
        _ => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the badge text from standard input")?;
            // Not trimmed here: the decoder trims exactly the characters
            // PROTOCOL.md names (rule T1), so a badge read from standard
            // input gets the verdict it gets everywhere else.
            Ok(s)
        }
    }
}

fn offline(args: &VerifyArgs, badge: &str, now: i64) -> anyhow::Result<pb::Verdict> {
    let root_path = match (&args.root, &args.bundle) {
        (Some(r), _) => r.clone(),
        (None, Some(b)) => b.join("root.crt"),
        (None, None) => {
            anyhow::bail!("--offline needs --root ROOT.crt (or --bundle DIR holding root.crt)")
        }
    };
    let root = creds::root(&root_path)?;
    let list_path = args
        .trust_list
        .as_ref()
        .context("--offline needs --trust-list FILE")?;
    let bytes =
        std::fs::read(list_path).with_context(|| format!("reading {}", list_path.display()))?;
    let list = CheckedTrustList::verify(&bytes, &root, now).with_context(|| {
        format!(
            "{} does not verify against {}",
            list_path.display(),
            root_path.display()
        )
    })?;
    if let Freshness::Stale { overdue_secs } = list.freshness(now) {
        let msg = format!(
            "trust list {} is stale: {} h past its next update ({})",
            list.sequence(),
            overdue_secs / 3600,
            fmt::time(list.next_update())
        );
        if args.refuse_stale {
            anyhow::bail!("{msg}; fetch a fresh list, or drop --refuse-stale");
        }
        eprintln!("warning: {msg}");
    }
    Ok(match verify_text(badge, &list, now) {
        Ok(v) => v.verdict(
            now,
            "offline: signature and validity checked; status at the issuing city not asked",
        ),
        Err(e) => e.verdict(now),
    })
}

/// Prints a verdict for people or, with `json`, for machines.
pub fn print(v: &pb::Verdict, json: bool) {
    let outcome = pb::Outcome::try_from(v.outcome).unwrap_or(pb::Outcome::Unspecified);
    let colour = pb::Colour::try_from(v.colour).unwrap_or(pb::Colour::Unspecified);
    let name = |s: &str| {
        s.trim_start_matches("OUTCOME_")
            .trim_start_matches("COLOUR_")
            .to_owned()
    };
    if json {
        let value = serde_json::json!({
            "outcome": name(outcome.as_str_name()),
            "colour": if v.signature_valid || v.colour != 0 { Some(name(colour.as_str_name()).to_lowercase()) } else { None },
            "valid_until": (v.valid_until != 0).then(|| fmt::time(v.valid_until)),
            "issuer_city": (v.issuer_city != 0).then_some(v.issuer_city),
            "issuer_name": (!v.issuer_name.is_empty()).then_some(v.issuer_name.as_str()),
            "signature_valid": v.signature_valid,
            "checked_at": fmt::time(v.checked_at),
            "detail": v.detail,
            "reason": v.reason,
        });
        println!("{value}");
        return;
    }
    println!("{}", name(outcome.as_str_name()));
    if v.colour != 0 {
        println!(
            "  colour       {}",
            name(colour.as_str_name()).to_lowercase()
        );
        println!("  valid until  {}", fmt::time(v.valid_until));
        println!("  issued by    {} ({:06})", v.issuer_name, v.issuer_city);
    }
    if !v.detail.is_empty() {
        println!("  detail       {}", v.detail);
    }
    if !v.reason.is_empty() {
        println!("  reason       {}", v.reason);
    }
}

/// Runs `tessera verify`; returns the outcome for the exit status.
pub fn run(args: VerifyArgs) -> anyhow::Result<pb::Outcome> {
    let badge = read_text(args.text.clone())?;
    let now = fmt::now();
    let verdict = if args.offline {
        offline(&args, &badge, now)?
    } else {
        let gateway = args
            .gateway
            .as_deref()
            .context("give --offline or --gateway HOST:PORT")?;
        let bundle = args
            .bundle
            .as_deref()
            .context("--gateway needs --bundle DIR with the checkpoint's certificate")?;
        // Malformed text is refused here, without a round trip.
        if let Err(e) = text::from_text(&badge, tessera_core::badge::MAX_ENVELOPE_LEN) {
            tessera_core::VerifyError::from(e).verdict(now)
        } else {
            crate::node::runtime()?.block_on(async {
                let mut client =
                    creds::gateway_with_list(bundle, gateway, args.trust_list.as_deref())?;
                client
                    .verify(pb::VerifyRequest {
                        badge: Some(pb::verify_request::Badge::QrText(badge)),
                    })
                    .await
                    .map(tonic::Response::into_inner)
                    .map_err(|s| {
                        anyhow::anyhow!(
                            "the gateway at {gateway} refused the check: {}",
                            s.message()
                        )
                    })
            })?
        }
    };
    print(&verdict, args.json);
    Ok(pb::Outcome::try_from(verdict.outcome).unwrap_or(pb::Outcome::Unspecified))
}
