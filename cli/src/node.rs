//! `tessera node …`: a city IT team's commands.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use tessera_node::access_log;
use tessera_node::config::NodeSettings;
use tessera_node::import::{self, ImportError};
use tessera_node::lifecycle::{self, Ended};
use tessera_node::store::{SledStore, StoreError};
use tessera_node::sunset::{self, Reason, Sunset};
use tessera_node::{load, server};

use crate::fmt;

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Run the city node until Ctrl-C (or SIGTERM), then flush and stop.
    #[command(
        after_help = "Example:\n  tessera node run --config node.toml\n\nA sample configuration is docs/node.toml."
    )]
    Run {
        /// The node's configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Import records from a CSV export into a stopped node's store.
    #[command(
        after_help = "Example:\n  tessera node import --config node.toml lab-export.csv\n\nColumns are listed in docs/OPERATIONS.md. The file is read twice as a\nstream: first every line is checked and counted, then the accepted lines\nare stored in durable batches of max_batch_records. A file with any\ninvalid line imports nothing unless --skip-invalid is given. A file over\n--max-bytes (256 MiB by default; checked before it is read) or --max-rows\n(1,000,000) imports nothing."
    )]
    Import {
        /// The node's configuration file.
        #[arg(long)]
        config: PathBuf,
        /// The CSV file.
        file: PathBuf,
        /// Import the valid lines and list the skipped ones.
        #[arg(long)]
        skip_invalid: bool,
        /// Refuse a file larger than this many bytes (checked before it is read).
        #[arg(long, default_value_t = import::DEFAULT_MAX_BYTES)]
        max_bytes: u64,
        /// Refuse a file of more rows than this (lines after the header).
        #[arg(long, default_value_t = import::DEFAULT_MAX_ROWS)]
        max_rows: u64,
    },
    /// Check a stopped node's access log: every entry's hash, the chain of
    /// links, the resident index and the head.
    #[command(
        name = "verify-access-log",
        after_help = "Example:\n  tessera node verify-access-log --config node.toml\n  tessera node verify-access-log --config node.toml --expect 42:9f86d081…\n\nThe node must be stopped: its data directory is locked while it runs (and\nwhile this runs). Prints the length and head hash, then OK or the first\nproblem with its sequence number; exits non-zero on a problem. See\ndocs/OPERATIONS.md, \"Verifying the access log\"."
    )]
    VerifyAccessLog {
        /// The node's configuration file.
        #[arg(long)]
        config: PathBuf,
        /// An entry the log must still hold unchanged, as SEQUENCE:HASH (a
        /// head printed by an earlier run, or one a resident's app kept):
        /// catches a truncated or rewritten tail.
        #[arg(long)]
        expect: Option<access_log::Checkpoint>,
    },
    /// Make the running node write a consistent backup of its data
    /// directory (BackupStore, operator role), inside its [storage]
    /// backup_dir.
    #[command(
        long_about = "Make the running node write a consistent backup of its data directory.

The node copies its store while it serves (writes wait for the copy, reads go
on), with the access log, the pseudonym key and the policies it signed
itself, syncs it all and writes tessera-backup.toml last; it answers once the
backup is durable. The backup is written on the node's machine, in a new
directory inside [storage] backup_dir. It never holds the master key: back
that up apart, and keep the one whose fingerprint is printed.",
        after_help = "Example:\n  tessera node backup --config node.toml --bundle operators/330100-it --to 2026-12-03\n\nSee docs/OPERATIONS.md, \"Back up and restore\"."
    )]
    Backup {
        /// The node's configuration file (for its address and backup_dir).
        #[arg(long)]
        config: PathBuf,
        /// An operator's bundle directory of the node's city.
        #[arg(long)]
        bundle: PathBuf,
        /// The new directory to write, inside [storage] backup_dir (a
        /// relative path is taken inside it).
        #[arg(long)]
        to: String,
        /// The node's host:port, as its certificate names it; by default
        /// the configured listen address (0.0.0.0 and :: become loopback).
        #[arg(long)]
        node: Option<String>,
    },
    /// Restore a backup into the empty data directory of a stopped node.
    #[command(
        long_about = "Restore a backup into the empty data directory of a stopped node.

Checks the backup's tessera-backup.toml (its format, a store layout this
release reads, the city) and that the configured master key is the one the
backup was written under, copies the backup beside data_dir, opens the copy
and compares what it holds with the marker, then moves it into place. An
existing, non-empty data_dir is refused: move it aside first.",
        after_help = "Example:\n  tessera node restore --from /var/backups/tessera-node/2026-12-03 --config node.toml\n\nSee docs/OPERATIONS.md, \"Back up and restore\"."
    )]
    Restore {
        /// The backup directory (the one holding tessera-backup.toml).
        #[arg(long)]
        from: PathBuf,
        /// The node's configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Switch the city off for good: destroy every record, badge state and
    /// key, and sign a deletion attestation.
    #[command(
        long_about = "Switch the city off for good. The node must be stopped.

Counts the residents, records and badges stored, then destroys the whole data
directory (store, pseudonym key, trust-list cache: every file overwritten with
zeros, synced, unlinked) and the badge-signer key file, signs a deletion
attestation with the node's TLS key, writes it beside the data directory
(attestation-<city>-<time>.pb) and, when [tls] gateway is configured, submits
it to the gateway. Nothing is destroyed unless the attestation can be signed.
An interrupted run is finished by running it again; a run after a finished one
destroys nothing and submits the same attestation again. The node never starts
again on this data directory.",
        after_help = "Example:\n  tessera node sunset --config node.toml\n\nSee docs/OPERATIONS.md, \"Sunset\"."
    )]
    Sunset {
        /// The node's configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Do not ask: destroy at once (for scripts).
        #[arg(long)]
        yes: bool,
    },
}

fn verify_access_log(
    config: &std::path::Path,
    expect: Option<access_log::Checkpoint>,
) -> anyhow::Result<()> {
    let settings = NodeSettings::load(config)?;
    let dir = settings.data_dir.join("store");
    anyhow::ensure!(
        dir.is_dir(),
        "no store at {}: the node has never run with this configuration",
        dir.display()
    );
    let tree = SledStore::open_clear_tree(&dir, access_log::TREE).map_err(|e| match e {
        StoreError::Locked(_) => anyhow::anyhow!(
            "{e}: the data directory is locked while the node runs; stop it, then verify"
        ),
        other => other.into(),
    })?;
    let report = access_log::verify(&tree, expect)
        .with_context(|| format!("reading the access log in {}", dir.display()))?;
    outln!("access log of {}", dir.display());
    outln!("length {}", report.length);
    outln!("head   {}", hex(&report.head_hash));
    match report.problem {
        None => {
            outln!(
                "OK: every entry's hash, link and index entry checks out{}",
                expect.map_or(String::new(), |c| format!(
                    ", and entry {} is as expected",
                    c.sequence
                ))
            );
            outln!("checkpoint {}:{}", report.length, hex(&report.head_hash));
            Ok(())
        }
        Some(problem) => {
            outln!("PROBLEM: {problem}");
            anyhow::bail!("the access log does not verify: {problem}")
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Asks the operator to type the city code; `Ok(false)` if they did not.
fn confirm(settings: &NodeSettings) -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "tessera node sunset destroys every record and key of city {}: confirm on a terminal, or pass --yes",
            settings.city
        );
    }
    let signer = match &settings.signer_token {
        None => format!("the badge-signer key {}", settings.signer_key.display()),
        Some(token) => format!(
            "not the badge-signer key {:?} in token {:?} (destroy it with the token's tools)",
            token.key, token.token
        ),
    };
    out!(
        "This destroys every record, badge state and key of city {} in {}, {signer}.\nIt cannot be undone. Type the city code to go on: ",
        settings.city,
        settings.data_dir.display(),
    );
    std::io::stdout().flush().context("writing the prompt")?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the answer")?;
    Ok(answer.trim() == settings.city.to_string())
}

fn print_sunset(sunset: &Sunset) {
    let c = &sunset.claims;
    if sunset.earlier {
        outln!("this node was already switched off; nothing more to destroy");
    } else if sunset.resumed {
        outln!("finished the sunset an earlier run began");
    }
    outln!(
        "city {:06} switched off at {} ({})",
        c.city,
        fmt::time(c.destroyed_at),
        c.reason
    );
    outln!(
        "  destroyed: {} residents, {} records, {} badges; badge-signer key destroyed: {}",
        c.residents,
        c.records,
        c.badges,
        if c.signer_key_destroyed { "yes" } else { "NO" }
    );
    outln!("  deletion attestation: {}", sunset.file.display());
}

fn report_submission(
    settings: &NodeSettings,
    submitted: Result<bool, String>,
    file: &std::path::Path,
) -> anyhow::Result<()> {
    match submitted {
        Ok(true) => {
            outln!(
                "  submitted to the gateway at {}",
                settings.gateway.as_deref().unwrap_or_default()
            );
            Ok(())
        }
        Ok(false) => {
            outln!(
                "  no gateway configured: send {} to the authority",
                file.display()
            );
            Ok(())
        }
        Err(e) => anyhow::bail!(
            "{e}\neverything is destroyed and the attestation is in {}: run `tessera node sunset` again to resubmit it",
            file.display()
        ),
    }
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled: a server calls it before it
/// binds, so a SIGTERM that arrives as soon as it listens still stops it
/// gracefully instead of killing it. Needs a runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {},
                        _ = int.recv() => {},
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub fn run(cmd: NodeCommand) -> anyhow::Result<()> {
    match cmd {
        NodeCommand::Run { config } => run_node(&config),
        NodeCommand::Import {
            config,
            file,
            skip_invalid,
            max_bytes,
            max_rows,
        } => import_file(
            &config,
            &file,
            skip_invalid,
            import::Limits {
                max_bytes,
                max_rows,
            },
        ),
        NodeCommand::VerifyAccessLog { config, expect } => verify_access_log(&config, expect),
        NodeCommand::Sunset { config, yes } => switch_off(&config, yes),
        NodeCommand::Backup {
            config,
            bundle,
            to,
            node,
        } => backup(&config, &bundle, to, node),
        NodeCommand::Restore { from, config } => restore(&config, &from),
    }
}

/// `tessera node backup`.
fn backup(config: &Path, bundle: &Path, to: String, node: Option<String>) -> anyhow::Result<()> {
    let settings = NodeSettings::load(config)?;
    if settings.backup_dir.is_none() {
        return Err(crate::Usage::new(format!(
            "{} sets no [storage] backup_dir: set one (outside data_dir), restart the node, then \
             back up",
            config.display()
        ))
        .into());
    }
    let addr = node.unwrap_or_else(|| {
        let mut listen = settings.listen;
        if listen.ip().is_unspecified() {
            listen.set_ip(if listen.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        listen.to_string()
    });
    let done = crate::block_on(async {
        crate::creds::node(bundle, &addr)?
            .backup_store(tessera_proto::v1::BackupStoreRequest { directory: to })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| anyhow::anyhow!("the node at {addr} refused: {}", s.message()))
    })?;
    outln!("backup written to {}", done.directory);
    outln!(
        "  {} residents, {} records, {} badge states, {} access-log entries (store layout {})",
        done.residents,
        done.records,
        done.badges,
        done.access_log_length,
        done.layout
    );
    outln!(
        "  encrypted under master key generation {} (fingerprint {}): keep a copy of that key \
         apart from this backup; only it restores it",
        done.master_key_generation,
        hex(&done.master_key_fingerprint)
    );
    Ok(())
}

/// `tessera node restore`.
fn restore(config: &Path, from: &Path) -> anyhow::Result<()> {
    let settings = NodeSettings::load(config)?;
    let marker = tessera_node::backup::restore(&settings, from)?;
    outln!(
        "restored the backup of {} taken at {} into {}",
        marker.city,
        fmt::time(marker.taken_at),
        settings.data_dir.display()
    );
    outln!(
        "  {} residents, {} records, {} badge states, {} access-log entries",
        marker.residents,
        marker.records,
        marker.badges,
        marker.access_log_length
    );
    outln!(
        "  import what the feeds sent since then, then start the node (docs/OPERATIONS.md, \
         \"Back up and restore\")"
    );
    Ok(())
}

/// `tessera node run`.
fn run_node(config: &Path) -> anyhow::Result<()> {
    // Everything the node writes is private to its owner (issue 15).
    tessera_certs::files::restrict_umask();
    let settings = NodeSettings::load(config)?;
    crate::block_on(async {
        let stop = shutdown_signal();
        let listener = server::bind(&settings).await?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let ended = lifecycle::run_node(settings.clone(), listener, stop, |loaded| {
            outln!(
                "node of city {} listening on {addr} ({})",
                loaded.settings.city,
                loaded
                    .city
                    .policies()
                    .describe(tessera_runtime::clock::unix_now())
            );
        })
        .await?;
        match ended {
            Ended::Stopped => {
                outln!("node stopped; store flushed");
                Ok(())
            }
            Ended::SwitchedOff { sunset, submitted } => {
                outln!("the trust list reached its sunset date ([sunset] automatic)");
                print_sunset(&sunset);
                report_submission(&settings, submitted, &sunset.file)
            }
        }
    })
}

/// `tessera node import`.
fn import_file(
    config: &Path,
    file: &Path,
    skip_invalid: bool,
    limits: import::Limits,
) -> anyhow::Result<()> {
    let settings = NodeSettings::load(config)?;
    let input = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let size = input
        .metadata()
        .with_context(|| format!("reading the size of {}", file.display()))?
        .len();
    limits
        .check_size(size)
        .with_context(|| format!("refusing {}", file.display()))?;
    crate::block_on(async {
        let loaded = load::load(settings)?;
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} records ({per_sec}, {eta} left)")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let result = import::import(
            &loaded.city,
            input,
            limits,
            skip_invalid,
            fmt::now(),
            |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            },
        )
        .await;
        bar.finish_and_clear();
        match result {
            Ok(report) => {
                for skipped in &report.skipped {
                    outln!("skipped line {}: {}", skipped.line, skipped.reason);
                }
                outln!(
                    "imported {} records from {} ({} already stored, {} skipped, {} badges revoked)",
                    report.stored,
                    file.display(),
                    report.duplicates,
                    report.skipped.len(),
                    report.revoked
                );
                Ok(())
            }
            Err(ImportError::Invalid(errors)) => {
                for e in &errors {
                    eprintln!("line {}: {}", e.line, e.reason);
                }
                anyhow::bail!(
                    "{} invalid line(s) in {}; nothing was imported (fix them, or pass --skip-invalid)",
                    errors.len(),
                    file.display()
                )
            }
            Err(e) => Err(e.into()),
        }
    })
}

/// `tessera node sunset`.
fn switch_off(config: &Path, yes: bool) -> anyhow::Result<()> {
    let settings = NodeSettings::load(config)?;
    if !yes && !confirm(&settings)? {
        anyhow::bail!("not confirmed: nothing was destroyed");
    }
    let done = sunset::destroy(&settings, Reason::Operator)?;
    print_sunset(&done);
    let submitted =
        crate::block_on(sunset::submit(&settings, &done.signed)).map_err(|e| e.to_string());
    report_submission(&settings, submitted, &done.file)
}
