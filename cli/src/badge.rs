//! `tessera badge …`: issuing, reading and rendering badges, for a city's app
//! backend and for testing.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use tessera_core::badge::{BadgeClaims, Envelope, MAX_ENVELOPE_LEN};
use tessera_core::text;
use tessera_proto::v1 as pb;

use crate::verify::Given;
use crate::{creds, fmt, qr};

#[derive(Debug, Subcommand)]
pub enum BadgeCommand {
    /// Ask a city node to score a resident and sign a badge (operator role).
    #[command(after_help = "Example:
  tessera badge issue --node 127.0.0.1:7101 --bundle operators/330100-hangzhou-cdc \\
      --id 33010619900101123X --name 李华 --png badge.png --svg badge.svg")]
    Issue {
        /// The city node, host:port.
        #[arg(long)]
        node: String,
        /// The operator's bundle directory (operator.crt, operator.key, root.crt).
        #[arg(long)]
        bundle: PathBuf,
        /// The resident's national ID number.
        #[arg(long)]
        id: String,
        /// The resident's name (only its first character goes in the badge).
        #[arg(long)]
        name: String,
        /// Also save the QR code as PNG.
        #[arg(long)]
        png: Option<PathBuf>,
        /// Also save the QR code as SVG.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// Decode a badge's text and print its claims, WITHOUT verifying it.
    #[command(
        after_help = "Example:\n  tessera badge show 'TB1:…'\n\nTo check a badge, use `tessera verify`."
    )]
    Show {
        /// The badge's QR text; read from standard input when absent or `-`.
        text: Option<String>,
    },
    /// Draw a badge's QR code in the terminal and/or save it as PNG or SVG.
    #[command(
        after_help = "Example:\n  tessera badge render 'TB1:…' --png badge.png --svg badge.svg"
    )]
    Render {
        /// The badge's QR text; read from standard input when absent or `-`.
        text: Option<String>,
        /// Save as PNG.
        #[arg(long)]
        png: Option<PathBuf>,
        /// Save as SVG.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
}

/// The claims of badge text, decoded without any verification.
pub fn describe(badge: &str) -> anyhow::Result<String> {
    let bytes = text::from_text(badge, MAX_ENVELOPE_LEN).context("not a badge")?;
    let envelope = Envelope::decode(&bytes).context("not a badge")?;
    let c = BadgeClaims::decode(&envelope.payload).context("the badge's claims do not decode")?;
    Ok(format!(
        "  issuer city  {}\n  colour       {}\n  issued at    {}\n  valid until  {}\n  policy       version {}\n  holder       {} (ID ending {})\n  badge id     {}\n  signed by    key {}\n  envelope     {} bytes, text {} characters",
        c.issuer_city,
        c.colour,
        fmt::time(c.issued_at),
        fmt::time(c.valid_until),
        c.policy_version,
        c.holder_hint.masked_name(),
        c.holder_hint.id_tail(),
        c.badge_id,
        envelope.key_id,
        bytes.len(),
        badge.trim().len()
    ))
}

/// The badge text for `show` and `render`, from the argument or standard
/// input: none at all is a usage error.
fn badge_text(arg: Option<String>) -> anyhow::Result<String> {
    match crate::verify::read_text(arg)? {
        Given::Text(t) if t.trim_matches(text::TRIMMED).is_empty() => Err(crate::Usage::new(
            "no badge text: give it as an argument or on standard input",
        )
        .into()),
        Given::Text(t) => Ok(t),
        Given::TooLong => anyhow::bail!(
            "not a badge: more than {} bytes on standard input",
            crate::verify::input_limit()
        ),
    }
}

pub fn run(cmd: BadgeCommand) -> anyhow::Result<()> {
    match cmd {
        BadgeCommand::Issue {
            node,
            bundle,
            id,
            name,
            png,
            svg,
        } => issue(&node, &bundle, id, name, png.as_deref(), svg.as_deref()),
        BadgeCommand::Show { text } => show(text),
        BadgeCommand::Render { text, png, svg } => render(text, png.as_deref(), svg.as_deref()),
    }
}

/// `tessera badge issue`.
fn issue(
    node: &str,
    bundle: &Path,
    national_id: String,
    name: String,
    png: Option<&Path>,
    svg: Option<&Path>,
) -> anyhow::Result<()> {
    let badge = crate::block_on(async {
        let mut client = creds::node(bundle, node)?;
        client
            .issue_badge(pb::IssueBadgeRequest { national_id, name })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| anyhow::anyhow!("the node at {node} refused: {}", s.message()))
    })?;
    outln!("{}", qr::terminal(&badge.qr_text)?);
    outln!("{}", badge.qr_text);
    outln!("{}", describe(&badge.qr_text)?);
    qr::save(&badge.qr_text, png, svg)
}

/// `tessera badge show`.
fn show(text: Option<String>) -> anyhow::Result<()> {
    let text = badge_text(text)?;
    outln!("NOT VERIFIED — decoded claims only (check with `tessera verify`):");
    outln!("{}", describe(&text)?);
    Ok(())
}

/// `tessera badge render`.
fn render(text: Option<String>, png: Option<&Path>, svg: Option<&Path>) -> anyhow::Result<()> {
    let text = badge_text(text)?;
    describe(&text)?;
    let text = text.trim_matches(tessera_core::text::TRIMMED);
    if png.is_none() && svg.is_none() {
        outln!("{}", qr::terminal(text)?);
    }
    qr::save(text, png, svg)
}
