//! `tessera node …`: a city IT team's commands.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use tessera_node::config::NodeSettings;
use tessera_node::import::{self, ImportError};
use tessera_node::server;

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
        after_help = "Example:\n  tessera node import --config node.toml lab-export.csv\n\nColumns are listed in docs/OPERATIONS.md. A file with any invalid line\nimports nothing unless --skip-invalid is given."
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
    },
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
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
        NodeCommand::Run { config } => {
            let settings = NodeSettings::load(&config)?;
            let rt = runtime()?;
            rt.block_on(async {
                let stop = shutdown_signal();
                let loaded = server::load(settings)?;
                let listener = server::bind(&loaded.settings).await?;
                let addr = listener.local_addr().context("reading the bound address")?;
                println!(
                    "node of city {} listening on {addr} ({})",
                    loaded.settings.city,
                    loaded
                        .city
                        .policies()
                        .describe(tessera_node::service::unix_now())
                );
                server::serve(&loaded, listener, stop).await?;
                println!("node stopped; store flushed");
                Ok(())
            })
        }
        NodeCommand::Import {
            config,
            file,
            skip_invalid,
        } => {
            let settings = NodeSettings::load(&config)?;
            let input = std::fs::File::open(&file)
                .with_context(|| format!("opening {}", file.display()))?;
            let rt = runtime()?;
            rt.block_on(async {
                let loaded = server::load(settings)?;
                let bar = ProgressBar::new(0);
                bar.set_style(
                    ProgressStyle::with_template("{bar:40} {pos}/{len} records ({per_sec}, {eta} left)")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                let result = import::import(&loaded.city, input, skip_invalid, fmt::now(), |done, total| {
                    bar.set_length(total);
                    bar.set_position(done);
                })
                .await;
                bar.finish_and_clear();
                match result {
                    Ok(report) => {
                        for skipped in &report.skipped {
                            println!("skipped line {}: {}", skipped.line, skipped.reason);
                        }
                        println!(
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
    }
}
