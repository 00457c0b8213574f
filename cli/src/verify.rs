//! `tessera verify`: a checkpoint's check of a badge, offline from a cached
//! trust list or online through the gateway.

use std::io::{BufRead, Read};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tessera_core::trust::{CheckedTrustList, Freshness};
use tessera_core::{text, verify_text};
use tessera_proto::v1 as pb;
use tessera_proto::v1::gateway_client::GatewayClient;
use tonic::transport::Channel;

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
2 for a usage error. With --stream, the status of the first badge that was not
VALID (0 when every one was).

Standard input: at most 1024 bytes are read as one badge (with --stream, as one
line); more is MALFORMED (text_too_long) and is not read further. Bytes that
are not UTF-8 are MALFORMED (text_invalid_character). A closed output (`| head
-n1`) ends the command quietly with its usual status.")]
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
    /// Check one badge per line of standard input, printing one verdict
    /// (with --json, one object) per line as each line arrives, until the
    /// input ends: for a scanner that keeps the pipe open.
    #[arg(long, conflicts_with = "text")]
    stream: bool,
}

/// Room beside the longest badge text for what a scanner or a copy adds
/// around it (spaces, tabs, CR LF).
const INPUT_MARGIN: usize = 252;

/// Most bytes of standard input read as one badge (with `--stream`, as one
/// line): the longest badge text and [`INPUT_MARGIN`]. Anything longer is
/// no badge and is not read further: MALFORMED, `text_too_long`.
pub fn input_limit() -> usize {
    text::max_text_chars(tessera_core::badge::MAX_ENVELOPE_LEN) + INPUT_MARGIN
}

/// Badge text as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Given {
    /// The text. Bytes of standard input that are not UTF-8 stand as
    /// U+FFFD, which no badge holds: such text is MALFORMED.
    Text(String),
    /// Standard input held more than [`input_limit`] bytes.
    TooLong,
}

impl Given {
    /// The verdict on text that cannot be a badge before it is looked at:
    /// `None` for text to check.
    fn refused(&self, now: i64) -> Option<pb::Verdict> {
        match self {
            Given::Text(_) => None,
            Given::TooLong => {
                let max = text::max_text_chars(tessera_core::badge::MAX_ENVELOPE_LEN);
                let mut v = tessera_core::VerifyError::from(text::TextError::TooLong {
                    len: input_limit() + 1,
                    max,
                })
                .verdict(now);
                v.detail = format!(
                    "badge text: more than {} bytes on standard input (not read further); no badge text is longer than {max} characters",
                    input_limit()
                );
                Some(v)
            }
        }
    }
}

/// The badge text from an argument, or from standard input (at most
/// [`input_limit`] bytes) when absent or `-`.
pub fn read_text(arg: Option<String>) -> anyhow::Result<Given> {
    match arg {
        Some(t) if t != "-" => Ok(Given::Text(t)),
        _ => read_bounded(std::io::stdin().lock())
            .context("reading the badge text from standard input"),
    }
}

/// Reads all of `input` up to [`input_limit`] bytes. Not trimmed here: the
/// decoder trims exactly the characters PROTOCOL.md names (rule T1), so a
/// badge read from standard input gets the verdict it gets everywhere else.
fn read_bounded(input: impl Read) -> std::io::Result<Given> {
    let limit = input_limit();
    let mut bytes = Vec::with_capacity(limit + 1);
    input
        .take(u64::try_from(limit + 1).unwrap_or(u64::MAX))
        .read_to_end(&mut bytes)?;
    Ok(if bytes.len() > limit {
        Given::TooLong
    } else {
        Given::Text(String::from_utf8_lossy(&bytes).into_owned())
    })
}

/// The next line of `input` (without its LF), at most `limit` bytes kept:
/// a longer line is read to its end and dropped, as [`Given::TooLong`].
/// `None` at the end of the input.
fn next_line(input: &mut impl BufRead, limit: usize) -> std::io::Result<Option<Given>> {
    let mut line = Vec::new();
    let (mut any, mut over) = (false, false);
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            break;
        }
        any = true;
        let newline = buf.iter().position(|&b| b == b'\n');
        let chunk = &buf[..newline.unwrap_or(buf.len())];
        if !over && line.len() + chunk.len() > limit {
            over = true;
            line = Vec::new();
        }
        if !over {
            line.extend_from_slice(chunk);
        }
        let used = newline.map_or(buf.len(), |i| i + 1);
        input.consume(used);
        if newline.is_some() {
            break;
        }
    }
    Ok(any.then(|| {
        if over {
            Given::TooLong
        } else {
            Given::Text(String::from_utf8_lossy(&line).into_owned())
        }
    }))
}

/// Where badges are checked: a trust list read once, or a gateway.
enum Checker {
    Offline(Box<CheckedTrustList>),
    Online(Box<Online>),
}

/// A gateway to check through.
struct Online {
    client: GatewayClient<Channel>,
    gateway: String,
}

impl Checker {
    fn new(args: &VerifyArgs) -> anyhow::Result<Self> {
        if args.offline {
            return Ok(Checker::Offline(Box::new(offline_list(args, fmt::now())?)));
        }
        let gateway = args
            .gateway
            .as_deref()
            .ok_or_else(|| crate::Usage::new("give --offline or --gateway HOST:PORT"))?;
        let bundle = args.bundle.as_deref().ok_or_else(|| {
            crate::Usage::new("--gateway needs --bundle DIR with the checkpoint's certificate")
        })?;
        let client = crate::block_on(async {
            creds::gateway_with_list(bundle, gateway, args.trust_list.as_deref())
        })?;
        Ok(Checker::Online(Box::new(Online {
            client,
            gateway: gateway.to_owned(),
        })))
    }

    /// The verdict on `given` at `now`; an error when the check could not
    /// be made.
    fn check(&mut self, given: &Given, now: i64) -> anyhow::Result<pb::Verdict> {
        if let Some(verdict) = given.refused(now) {
            return Ok(verdict);
        }
        let Given::Text(badge) = given else {
            anyhow::bail!("no badge text");
        };
        match self {
            Checker::Offline(list) => Ok(match verify_text(badge, list, now) {
                Ok(v) => v.verdict(
                    now,
                    "offline: signature and validity checked; status at the issuing city not asked",
                ),
                Err(e) => e.verdict(now),
            }),
            Checker::Online(online) => {
                let Online { client, gateway } = &mut **online;
                // Malformed text is refused here, without a round trip.
                if let Err(e) = text::from_text(badge, tessera_core::badge::MAX_ENVELOPE_LEN) {
                    return Ok(tessera_core::VerifyError::from(e).verdict(now));
                }
                crate::block_on(async {
                    client
                        .verify(pb::VerifyRequest {
                            badge: Some(pb::verify_request::Badge::QrText(badge.clone())),
                        })
                        .await
                        .map(tonic::Response::into_inner)
                        .map_err(|s| {
                            anyhow::anyhow!(
                                "the gateway at {gateway} refused the check: {}",
                                s.message()
                            )
                        })
                })
            }
        }
    }
}

/// The offline trust list, verified against the root at `now`; a stale
/// list is refused with `--refuse-stale`, else warned about.
fn offline_list(args: &VerifyArgs, now: i64) -> anyhow::Result<CheckedTrustList> {
    let root_path = match (&args.root, &args.bundle) {
        (Some(r), _) => r.clone(),
        (None, Some(b)) => b.join("root.crt"),
        (None, None) => {
            return Err(crate::Usage::new(
                "--offline needs --root ROOT.crt (or --bundle DIR holding root.crt)",
            )
            .into());
        }
    };
    let root = creds::root(&root_path)?;
    let list_path = args
        .trust_list
        .as_ref()
        .ok_or_else(|| crate::Usage::new("--offline needs --trust-list FILE"))?;
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
    Ok(list)
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
        outln!("{value}");
        return;
    }
    outln!("{}", name(outcome.as_str_name()));
    if v.colour != 0 {
        outln!(
            "  colour       {}",
            name(colour.as_str_name()).to_lowercase()
        );
        outln!("  valid until  {}", fmt::time(v.valid_until));
        outln!("  issued by    {} ({:06})", v.issuer_name, v.issuer_city);
    }
    if !v.detail.is_empty() {
        outln!("  detail       {}", v.detail);
    }
    if !v.reason.is_empty() {
        outln!("  reason       {}", v.reason);
    }
}

/// Runs `tessera verify`; returns the outcome for the exit status.
pub fn run(args: VerifyArgs) -> anyhow::Result<pb::Outcome> {
    if args.stream {
        return stream(&args);
    }
    let given = read_text(args.text.clone())?;
    let mut checker = Checker::new(&args)?;
    let verdict = checker.check(&given, fmt::now())?;
    print(&verdict, args.json);
    Ok(outcome(&verdict))
}

fn outcome(v: &pb::Verdict) -> pb::Outcome {
    pb::Outcome::try_from(v.outcome).unwrap_or(pb::Outcome::Unspecified)
}

/// `--stream`: one badge per line of standard input, one verdict printed
/// (and flushed) as each line arrives, until the input ends or the output
/// is closed. Blank lines are skipped. The outcome is that of the first
/// badge that was not VALID (VALID when every one was).
fn stream(args: &VerifyArgs) -> anyhow::Result<pb::Outcome> {
    let mut checker = Checker::new(args)?;
    let mut input = std::io::stdin().lock();
    let mut first_refusal = None;
    while !crate::out::closed() {
        let Some(given) = next_line(&mut input, input_limit())
            .context("reading badge text from standard input")?
        else {
            break;
        };
        if matches!(&given, Given::Text(t) if t.trim_matches(text::TRIMMED).is_empty()) {
            continue;
        }
        let verdict = checker.check(&given, fmt::now())?;
        print(&verdict, args.json);
        let outcome = outcome(&verdict);
        if outcome != pb::Outcome::Valid {
            first_refusal.get_or_insert(outcome);
        }
    }
    Ok(first_refusal.unwrap_or(pb::Outcome::Valid))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn standard_input_is_read_up_to_the_limit_and_no_further() {
        let limit = input_limit();
        // The help text names this figure.
        assert_eq!(limit, 1024);
        let at = vec![b' '; limit];
        assert_eq!(
            read_bounded(&at[..]).unwrap(),
            Given::Text(" ".repeat(limit))
        );
        let over = vec![b' '; limit + 1];
        assert_eq!(read_bounded(&over[..]).unwrap(), Given::TooLong);
        let v = Given::TooLong.refused(0).unwrap();
        assert_eq!(v.outcome, pb::Outcome::Malformed as i32);
        assert_eq!(v.reason, "text_too_long");
    }

    #[test]
    fn lines_are_split_bounded_and_an_overlong_one_is_dropped_whole() {
        let limit = 8;
        let text = b"TB1:AB\r\n0123456789abc\nlast";
        let mut input = std::io::BufReader::with_capacity(3, &text[..]);
        let mut lines = vec![];
        while let Some(line) = next_line(&mut input, limit).unwrap() {
            lines.push(line);
        }
        assert_eq!(
            lines,
            vec![
                Given::Text("TB1:AB\r".into()),
                Given::TooLong,
                Given::Text("last".into())
            ]
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_make_text_no_badge_holds() {
        let Given::Text(t) = read_bounded(&b"TB1:\xff\xfe"[..]).unwrap() else {
            unreachable!("short input")
        };
        let err = text::from_text(&t, tessera_core::badge::MAX_ENVELOPE_LEN).unwrap_err();
        assert_eq!(err.reason(), "text_invalid_character");
    }
}
