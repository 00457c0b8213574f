//! `tessera checkpoint …`: a checkpoint station serving the scanner app to
//! its devices (tessera-checkpoint), and the pairing of those devices.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

mod devices;
mod serve;

pub use serve::start_for_federation;

#[derive(Debug, Subcommand)]
pub enum CheckpointCommand {
    /// Run a station: the scanner app over HTTPS and online checks relayed
    /// to the gateway over one mutual-TLS connection, until Ctrl-C.
    #[command(after_help = "Example:
  tessera checkpoint serve --bundle ./authority/verifiers/420000-wuhan-railway-station \\
      --gateway 127.0.0.1:7000 --listen 0.0.0.0:8443 --host 192.168.1.20 --data ./station

Prints the station certificate's SHA-256 fingerprint and a pairing URL
(https://HOST:PORT/#pair=CODE) to open on a device.")]
    Serve(ServeArgs),
    /// Make a new one-time pairing code (valid 10 minutes) for the station
    /// running on DIR, and print its URL.
    #[command(after_help = "Example:\n  tessera checkpoint pair --data ./station")]
    Pair(DataArg),
    /// List the devices paired with the station on DIR.
    #[command(after_help = "Example:\n  tessera checkpoint devices --data ./station")]
    Devices(DataArg),
    /// Revoke a paired device (or every one): its next check is refused,
    /// without a restart.
    #[command(
        after_help = "Example:\n  tessera checkpoint unpair --data ./station 3f9a01c2\n  tessera checkpoint unpair --data ./station --all"
    )]
    Unpair(UnpairArgs),
}

/// `checkpoint serve`'s arguments.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The checkpoint's bundle directory (verifier.crt, verifier.key, root.crt).
    #[arg(long)]
    bundle: PathBuf,
    /// The gateway, as host:port.
    #[arg(long)]
    gateway: String,
    /// Where the station listens for its devices (HTTPS), e.g. 0.0.0.0:8443.
    #[arg(long)]
    listen: SocketAddr,
    /// The station's data directory: trust list, devices, station certificate.
    #[arg(long, default_value = "checkpoint-data")]
    data: PathBuf,
    /// The station's HTTPS certificate chain (PEM); without it a
    /// self-signed one is made once in the data directory.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The key of --tls-cert (PEM, mode 0600).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The name or address devices dial (in the pairing URL and the
    /// self-signed certificate); default: the --listen address.
    #[arg(long)]
    host: Option<String>,
    /// Seconds between trust-list checks at the gateway.
    #[arg(long, default_value_t = 60)]
    refresh_secs: u64,
    /// Serve Prometheus metrics (counters only) on this address.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
}

/// The station's data directory.
#[derive(Debug, Args)]
pub struct DataArg {
    /// The data directory of `checkpoint serve`.
    #[arg(long, default_value = "checkpoint-data")]
    data: PathBuf,
}

/// `checkpoint unpair`'s arguments.
#[derive(Debug, Args)]
pub struct UnpairArgs {
    #[command(flatten)]
    data: DataArg,
    /// The device's id (as `checkpoint devices` lists it).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    device: Option<String>,
    /// Revoke every paired device.
    #[arg(long)]
    all: bool,
}

pub fn run(cmd: CheckpointCommand) -> anyhow::Result<()> {
    match cmd {
        CheckpointCommand::Serve(args) => serve::serve(args),
        CheckpointCommand::Pair(d) => devices::pair(&d.data),
        CheckpointCommand::Devices(d) => devices::list(&d.data),
        CheckpointCommand::Unpair(a) => devices::unpair(&a.data.data, a.device.as_deref()),
    }
}
