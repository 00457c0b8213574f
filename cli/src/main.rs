//! `tessera`: the one command users install. Parses arguments and calls the
//! libraries; no logic of its own beyond presenting results.

mod authority;
mod fmt;
mod gateway;
mod node;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// tessera: health badges recognised across provinces without pooling records.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The national authority: root of trust, enrolment, revocation, trust lists.
    #[command(subcommand)]
    Authority(authority::AuthorityCommand),
    /// A city node: run it, import records into it.
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// The national gateway: run it.
    #[command(subcommand)]
    Gateway(gateway::GatewayCommand),
}

fn main() -> ExitCode {
    tessera_certs::tls::install_default_provider();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Authority(cmd) => authority::run(cmd),
        Command::Node(cmd) => node::run(cmd),
        Command::Gateway(cmd) => gateway::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
