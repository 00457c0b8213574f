//! `tessera`: the one command users install. Parses arguments and calls the
//! libraries; no logic of its own beyond presenting results.

#[macro_use]
mod out;

mod authority;
mod badge;
mod bench;
mod checkpoint;
mod creds;
mod demo;
mod federation;
mod fmt;
mod gateway;
mod keygen;
mod node;
mod policy;
mod qr;
mod resident;
mod trust;
mod verify;

use std::process::ExitCode;

// glibc's allocator showed as a sixth of the gateway's time under load
// (`tessera bench relay`, see docs/BENCHMARKS.md); mimalloc does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// A usage error found after the arguments were parsed: exit status 2, as
/// for the ones clap finds.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(String);

impl Usage {
    /// A usage error saying `what`.
    pub fn new(what: impl Into<String>) -> Self {
        Self(what.into())
    }
}

/// Reports `e` and gives the exit status: 2 for a usage error, 3 when a
/// `tessera resident` command found nothing held, else 1.
fn failed(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    if e.chain().any(|cause| cause.is::<Usage>()) {
        ExitCode::from(2)
    } else if e.chain().any(|cause| cause.is::<resident::NotFound>()) {
        ExitCode::from(resident::NOT_FOUND)
    } else {
        ExitCode::FAILURE
    }
}

/// tessera: health badges recognised across provinces without pooling records.
#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version = tessera_runtime::build::VERSION_LINE,
    propagate_version = true
)]
struct Cli {
    /// How logs (on standard error) are written: `text` for people, `json`
    /// (one object per line) for log collectors. RUST_LOG sets the level.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line: timestamp, level, target, and fields (the
    /// message among them).
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The national authority: root of trust, enrolment, revocation, trust lists.
    #[command(subcommand)]
    Authority(authority::AuthorityCommand),
    /// Make your own key pair(s) and certificate signing requests for the
    /// authority to enrol you (`authority enrol-… --csr`).
    Keygen(keygen::KeygenArgs),
    /// A city node: run it, import records into it.
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// A help desk's commands about one resident: explain, export, erase,
    /// access log, correct (operator bundle; exit 3 when nothing is held).
    #[command(subcommand)]
    Resident(resident::ResidentCommand),
    /// The national gateway: run it.
    #[command(subcommand)]
    Gateway(gateway::GatewayCommand),
    /// A city's scoring policy: sign, publish with notice, show in plain words.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// A checkpoint's check of a badge, offline or through the gateway.
    Verify(verify::VerifyArgs),
    /// A checkpoint station: the scanner app for its devices, and pairing.
    #[command(subcommand)]
    Checkpoint(checkpoint::CheckpointCommand),
    /// Keep an offline copy of the trust list in force at the gateway.
    #[command(subcommand)]
    TrustList(trust::TrustListCommand),
    /// Issue, read and render badges.
    #[command(subcommand)]
    Badge(badge::BadgeCommand),
    /// A whole local federation telling its story, checked step by step.
    Demo(demo::DemoArgs),
    /// Load scenarios against the gateway and city nodes, beside baselines.
    Bench(bench::BenchArgs),
    /// A persistent local federation to point other commands at.
    #[command(subcommand)]
    Federation(FederationCommand),
}

#[derive(Debug, Subcommand)]
enum FederationCommand {
    /// Create (or reuse) and run a local federation until Ctrl-C. For local
    /// use only: its authority makes every party's keys and keeps copies.
    Up(federation::UpArgs),
}

fn main() -> ExitCode {
    tessera_runtime::tls::install_default_provider();
    let cli = Cli::parse();
    // Servers log what they do; the demo's story is its own output.
    let default_level = if matches!(cli.command, Command::Demo(_) | Command::Bench(_)) {
        "warn"
    } else {
        "info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // Colour codes only for a person at a terminal: a journal, a file or a
    // log shipper gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::util::SubscriberInitExt::init(logs(
        filter,
        cli.log_format,
        ansi,
        std::io::stderr,
    ));
    let status = match run(cli.command) {
        Ok(status) => status,
        Err(e) => failed(&e),
    };
    // Output that could not be written, other than to a reader that went
    // away (`| head -n1`), is a failure.
    match out::failure() {
        Some(e) => {
            eprintln!("error: writing standard output: {e}");
            ExitCode::FAILURE
        }
        None => status,
    }
}

/// Whether an event is logged beside `filter`: sled's own events only at
/// `info` and above, whatever RUST_LOG says, since its debug and trace
/// output prints store keys, which hold badge and record ids
/// (docs/OPERATIONS.md, section 9).
fn not_store_keys(meta: &tracing::Metadata<'_>) -> bool {
    let target = meta.target();
    let sled = target == "sled" || target.starts_with("sled::");
    !sled || *meta.level() <= tracing::Level::INFO
}

/// The one log subscriber: `filter` (RUST_LOG), sled capped at `info`, in
/// `format`, with colour codes only if `ansi`, written to `writer`.
fn logs<W>(
    filter: tracing_subscriber::EnvFilter,
    format: LogFormat,
    ansi: bool,
    writer: W,
) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(writer);
    let layer = match format {
        LogFormat::Text => layer.boxed(),
        LogFormat::Json => layer.json().boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(layer.with_filter(tracing_subscriber::filter::filter_fn(not_store_keys)))
}

/// The process's one async runtime, built here before the command does
/// anything: a multi-threaded tokio runtime, and for a server one that
/// already listens for SIGHUP.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The runtime of a server (`node run`, `gateway run`, `federation up`), built before
/// anything else the command does: SIGHUP asks a server to look at its certificate files again
/// (`certs/src/reload.rs`), but its default action ends the process, so a log
/// rotation that sends it while the server starts (opening its store, checking
/// its trust list) would kill it. Registering a listener here replaces that
/// default for the life of the process (tokio never unregisters a handler);
/// a SIGHUP that arrives before the certificate watcher listens is dropped.
fn server_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let rt = runtime()?;
    #[cfg(unix)]
    {
        let _in_runtime = rt.enter();
        let _dropped_but_still_installed =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .context("installing the SIGHUP handler")?;
    }
    Ok(rt)
}

/// Runs `future` to completion on the process's runtime (entered in
/// [`run`]), from synchronous command code.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(future)
}

/// Whether `command` runs a server, which needs SIGHUP handled from the
/// start ([`server_runtime`]).
fn serves(command: &Command) -> bool {
    matches!(
        command,
        Command::Node(node::NodeCommand::Run { .. })
            | Command::Gateway(gateway::GatewayCommand::Run { .. })
            | Command::Federation(FederationCommand::Up(_))
            | Command::Checkpoint(checkpoint::CheckpointCommand::Serve(_))
    )
}

/// Runs `command`; the exit status of a command that ran.
fn run(command: Command) -> anyhow::Result<ExitCode> {
    let runtime = if serves(&command) {
        server_runtime()?
    } else {
        runtime()?
    };
    let _in_runtime = runtime.enter();
    let result = match command {
        Command::Authority(cmd) => authority::run(cmd),
        Command::Keygen(args) => keygen::run(args),
        Command::Node(cmd) => node::run(cmd),
        Command::Gateway(cmd) => gateway::run(cmd),
        Command::Badge(cmd) => badge::run(cmd),
        Command::Resident(cmd) => resident::run(cmd),
        Command::Policy(cmd) => policy::run(cmd),
        Command::Checkpoint(cmd) => checkpoint::run(cmd),
        Command::TrustList(cmd) => trust::run(cmd),
        Command::Federation(FederationCommand::Up(args)) => federation::up(args),
        Command::Bench(args) => bench::run(args),
        Command::Verify(args) => {
            return verify::run(args).map(|outcome| ExitCode::from(verify::exit_code(outcome)));
        }
        Command::Demo(args) => match demo::run(args) {
            Ok(true) => Ok(()),
            Ok(false) => Err(anyhow::anyhow!(
                "the demo's story did not hold: see the table above"
            )),
            Err(e) => Err(e),
        },
    };
    result.map(|()| ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn sled_logs_no_more_than_info_even_at_rust_log_trace() {
        for format in [LogFormat::Text, LogFormat::Json] {
            let captured = Captured::default();
            let writer = captured.clone();
            let filter = tracing_subscriber::EnvFilter::new("trace,sled=trace,sled::tree=trace");
            let subscriber = logs(filter, format, false, move || writer.clone());
            tracing::subscriber::with_default(subscriber, || {
                tracing::trace!(target: "sled::tree", "key b\"badge-7f3a\"");
                tracing::debug!(target: "sled", "key b\"record-42\"");
                tracing::info!(target: "sled::pagecache", "sled info kept");
                tracing::trace!(target: "tessera_node", "tessera trace kept");
            });
            let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
            assert!(!text.contains("badge-7f3a"), "{text}");
            assert!(!text.contains("record-42"), "{text}");
            assert!(text.contains("sled info kept"), "{text}");
            assert!(text.contains("tessera trace kept"), "{text}");
        }
    }

    #[test]
    fn logs_carry_colour_codes_only_when_asked() {
        for ansi in [false, true] {
            let captured = Captured::default();
            let writer = captured.clone();
            let filter = tracing_subscriber::EnvFilter::new("info");
            let subscriber = logs(filter, LogFormat::Text, ansi, move || writer.clone());
            tracing::subscriber::with_default(subscriber, || {
                tracing::warn!(target: "tessera_node", city = 330100, "a warning");
            });
            let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
            assert!(text.contains("a warning"), "{text}");
            assert_eq!(text.contains('\u{1b}'), ansi, "{text:?}");
        }
    }
}
