//! `tessera`: the one command users install. Parses arguments and calls the
//! libraries; no logic of its own beyond presenting results.

mod authority;
mod fmt;

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
}

fn main() -> ExitCode {
    tessera_certs::tls::install_default_provider();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Authority(cmd) => authority::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
