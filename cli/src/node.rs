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
    out!(
        "This destroys every record, badge state and key of city {} in {} and the badge-signer key {}.\nIt cannot be undone. Type the city code to go on: ",
        settings.city,
        settings.data_dir.display(),
        settings.signer_key.display()
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
    }
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
