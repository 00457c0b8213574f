//! `tessera trust-list fetch`: a checkpoint or node keeps an offline copy of
//! the trust list in force at the gateway.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use prost::Message;
use tessera_core::trust::CheckedTrustList;
use tessera_proto::v1 as pb;

use crate::{creds, fmt};

#[derive(Debug, Subcommand)]
pub enum TrustListCommand {
    /// Fetch the list in force at the gateway, verify it against the root and
    /// save it, refusing one older than the copy already at --out.
    #[command(
        after_help = "Example:\n  tessera trust-list fetch --gateway 127.0.0.1:7000 --bundle verifiers/420000-wuhan-station --out trust-list.tsl"
    )]
    Fetch {
        /// The gateway, host:port.
        #[arg(long)]
        gateway: String,
        /// Your bundle directory (certificate, key, root.crt).
        #[arg(long)]
        bundle: PathBuf,
        /// Where the offline copy lives; replaced only by a newer list.
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(cmd: TrustListCommand) -> anyhow::Result<()> {
    match cmd {
        TrustListCommand::Fetch {
            gateway,
            bundle,
            out,
        } => fetch(&gateway, &bundle, &out),
    }
}

/// `tessera trust-list fetch`.
fn fetch(gateway: &str, bundle: &Path, out: &Path) -> anyhow::Result<()> {
    let root = creds::root(&bundle.join("root.crt"))?;
    let now = fmt::now();
    let held = match std::fs::read(out) {
        Ok(bytes) => Some(
            CheckedTrustList::verify(&bytes, &root, now).with_context(|| {
                format!(
                    "the copy at {} does not verify; remove it to start afresh",
                    out.display()
                )
            })?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", out.display())),
    };
    let known = held.as_ref().map_or(0, CheckedTrustList::sequence);
    let response = crate::block_on(async {
        let mut client = creds::gateway(bundle, gateway)?;
        client
            .fetch_trust_list(pb::FetchTrustListRequest {
                known_sequence: known,
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| anyhow::anyhow!("the gateway at {gateway} refused: {}", s.message()))
    })?;
    let Some(list) = response.list else {
        outln!(
            "trust list {known} at {} is current (the gateway holds {})",
            out.display(),
            response.current_sequence
        );
        return Ok(());
    };
    let bytes = list.encode_to_vec();
    let checked = match &held {
        Some(held) => held.verify_successor(&bytes, &root, now)?,
        None => CheckedTrustList::verify(&bytes, &root, now)?,
    };
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("replacing {}", out.display()))?;
    outln!(
        "trust list {} saved to {} (next update {}, sunset {})",
        checked.sequence(),
        out.display(),
        fmt::time(checked.next_update()),
        fmt::time(checked.sunset_at())
    );
    Ok(())
}
