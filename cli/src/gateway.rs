//! `tessera gateway …`: the national authority's gateway.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use tessera_gateway::config::GatewaySettings;
use tessera_gateway::server;

use crate::node::shutdown_signal;

#[derive(Debug, Subcommand)]
pub enum GatewayCommand {
    /// Run the gateway until Ctrl-C (or SIGTERM).
    #[command(
        after_help = "Example:\n  tessera gateway run --config gateway.toml\n\nA sample configuration is docs/gateway.toml. Upload trust lists with\n`tessera authority trust-list publish --gateway HOST:PORT`."
    )]
    Run {
        /// The gateway's configuration file.
        #[arg(long)]
        config: PathBuf,
    },
}

pub fn run(cmd: GatewayCommand) -> anyhow::Result<()> {
    match cmd {
        GatewayCommand::Run { config } => run_gateway(&config),
    }
}

/// `tessera gateway run`.
fn run_gateway(config: &Path) -> anyhow::Result<()> {
    // Everything the gateway writes is private to its owner (issue 15).
    tessera_certs::files::restrict_umask();
    let settings = GatewaySettings::load(config)?;
    crate::block_on(async {
        let stop = shutdown_signal();
        let loaded = server::load(settings).await?;
        let listener = server::bind(&loaded.settings).await?;
        let addr = listener.local_addr().context("reading the bound address")?;
        match loaded.registry.trust().current() {
            Some(list) => outln!(
                "gateway listening on {addr}; trust list {} in force",
                list.sequence()
            ),
            None => outln!(
                "gateway listening on {addr}; no trust list yet: upload one with \
                 `tessera authority trust-list publish --dir D --gateway ENDPOINT` \
                 (the endpoint the gateway was enrolled with)"
            ),
        }
        // Serves again, reloaded, after a full disk has room again.
        tessera_gateway::lifecycle::run(loaded, listener, None, stop, |_| {}).await?;
        outln!("gateway stopped");
        Ok(())
    })
}
