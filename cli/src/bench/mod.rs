//! `tessera bench`: load on the gateway and the city nodes, each scenario
//! beside baselines measured in the same run on the same machine, so that
//! the figures are ratios that survive a noisy or different machine.

mod baseline;
mod churn;
mod echo;
mod erase;
mod fixture;
mod flood;
mod handshake;
mod idle;
mod load;
mod report;
mod scenarios;
mod soak;
mod station;

use std::time::Duration;

use clap::{Args, ValueEnum};

use self::load::Plan;
use self::report::Report;

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Baseline E: a trivial echo service with the gateway's mutual-TLS
    /// set-up, nothing behind it.
    Echo,
    /// Gateway Verify with the relay turned off: signature and trust list
    /// only. Also measures V, raw Ed25519 verification on all cores.
    VerifyOffline,
    /// Gateway Verify with a live status check at the issuing city's node,
    /// over --badges distinct badges from three cities (reports the status
    /// cache's hit rate); then again at half the throughput reached, for
    /// latency.
    Relay,
    /// Gateway VerifyBatch streams of --batch badges each, relay on.
    Batch,
    /// City node IngestRecords: batches of --batch records, durable before
    /// the answer. Also measures a bare sled batch-and-flush.
    Ingest,
    /// City node IssueBadge with --residents residents stored: score, sign,
    /// store durably. Also measures raw Ed25519 signing on all cores.
    Issue,
    /// Resident memory of a gateway process holding --idle idle mutual-TLS
    /// connections (each after a handshake and one call).
    IdleConnections,
    /// Resident memory of a gateway process while one connection opens
    /// --streams VerifyBatch streams at once, past the limit it announces
    /// (three floods in a row), and what it refused.
    StreamFlood,
    /// Full mutual-TLS handshakes per second: each call a new connection to
    /// the gateway (no session resumption) and one WhoAmI.
    Handshake,
    /// `checkpoint serve`: POST /api/verify from --concurrency HTTPS
    /// devices, relayed over the station's one gateway connection, beside
    /// the gateway's Verify over one connection (D1), relay on.
    Checkpoint,
    /// City node EraseResident with --residents residents stored (one
    /// million unless given): latency of erasures one after the other, and
    /// IngestRecords at that city alone and beside one erasure per second.
    Erase,
    /// Every scenario above, one after the other (not soak).
    All,
    /// Relay at half its maximum throughput for --soak (10 minutes by
    /// default) after --soak-warmup, while --churn-streams tasks open and
    /// close VerifyBatch streams and --churn-watches tasks open and drop
    /// WatchTrustList watches throughout: every verdict must be VALID,
    /// every stream and watch must succeed, and resident memory and open
    /// files must not grow. Not part of `all`.
    Soak,
}

/// `tessera bench`.
#[derive(Debug, Args)]
#[command(
    after_help = "Every scenario starts what it measures in this process (a whole federation
on 127.0.0.1 in a temporary directory, real certificates, mutual TLS and sled
files) and runs the echo baseline E first, in the same run, so each figure is
also printed as a ratio. Targets (docs/BENCHMARKS.md) are shown as met or not.

Examples:
  tessera bench relay --duration 10s
  tessera bench verify-offline --runs 3
  tessera bench issue --residents 1000000
  tessera bench erase --residents 1000000 --runs 3
  tessera bench all --duration 5s --json
  tessera bench soak --soak 10m

Build with --release for figures worth reporting: cargo run --release -- bench relay"
)]
pub struct BenchArgs {
    /// The scenario.
    #[arg(value_enum)]
    scenario: Scenario,
    /// Length of each measured window.
    #[arg(long, default_value = "10s", value_parser = load::parse_duration)]
    duration: Duration,
    /// Load before each window, not counted.
    #[arg(long, default_value = "2s", value_parser = load::parse_duration)]
    warmup: Duration,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
    /// Connections the calls are spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Measure each window this many times and report the median.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Distinct badges issued before the gateway scenarios (relay, batch;
    /// verify-offline uses at most 10,000). They are checked in turn, so the
    /// status cache (5 s) only helps when fewer than 5 s of checks pass
    /// before a badge comes round again: the hit rate is reported.
    #[arg(long, default_value_t = 250_000)]
    badges: u64,
    /// Residents stored before the issue scenario (100,000 unless given)
    /// and the erase scenario (1,000,000 unless given).
    #[arg(long)]
    residents: Option<u64>,
    /// Badges per VerifyBatch stream; records per IngestRecords call.
    #[arg(long)]
    batch: Option<u64>,
    /// Send at this many calls per second instead of as fast as answers
    /// come back (relay's second window is always at half its maximum).
    #[arg(long)]
    rate: Option<f64>,
    /// The gateway's `relay.concurrency_per_node`: CheckStatus calls in
    /// flight to one node; checks waiting meanwhile share the next call.
    #[arg(long, default_value_t = 4)]
    node_calls: usize,
    /// The gateway's `relay.cache_ttl_ms` in relay and batch: 0 sends every
    /// check to its node.
    #[arg(long, default_value_t = 5000)]
    cache_ms: u64,
    /// How long the soak runs at half speed, after its warm-up.
    #[arg(long, default_value = "10m", value_parser = load::parse_duration)]
    soak: Duration,
    /// The soak's warm-up at half speed, before memory and open files are
    /// first read.
    #[arg(long, default_value = "1m", value_parser = load::parse_duration)]
    soak_warmup: Duration,
    /// Soak: tasks that open a VerifyBatch stream of --churn-badges badges,
    /// read every verdict and close it, over and over (0: no stream churn).
    #[arg(long, default_value_t = 4)]
    churn_streams: usize,
    /// Soak: badges sent on each churned stream.
    #[arg(long, default_value_t = 8)]
    churn_badges: usize,
    /// Soak: tasks that open a WatchTrustList watch, read the first list
    /// and drop it, over and over (0: no watch churn). At most half the
    /// gateway's max_watches_per_caller (4), since a dropped watch gives
    /// its place back only once the gateway has seen the reset.
    #[arg(long, default_value_t = 2)]
    churn_watches: usize,
    /// Soak: each churn task's pause between one stream or watch and the
    /// next.
    #[arg(long, default_value = "50ms", value_parser = load::parse_duration)]
    churn_pause: Duration,
    /// Connections the idle-connections scenario opens.
    #[arg(long, default_value_t = 10_000)]
    idle: usize,
    /// Streams the stream-flood scenario opens on one connection.
    #[arg(long, default_value_t = 20_000)]
    streams: u32,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

impl BenchArgs {
    /// The gateway's `[relay]` lines for a scenario with the relay on.
    fn relay(&self) -> String {
        format!(
            "concurrency_per_node = {}\ncache_ttl_ms = {}",
            self.node_calls, self.cache_ms
        )
    }

    fn plan(&self) -> Plan {
        Plan {
            warmup: self.warmup,
            duration: self.duration,
            concurrency: self.concurrency,
            rate: self.rate,
        }
    }
}

/// Runs `tessera bench`. Fails when any call failed: the figures would then
/// measure something else; the soak also fails when it misses a target.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.runs >= 1, "--runs must be at least 1");
    anyhow::ensure!(args.connections >= 1, "--connections must be at least 1");
    anyhow::ensure!(args.badges >= 1, "--badges must be at least 1");
    anyhow::ensure!(
        args.residents.is_none_or(|n| n >= 1),
        "--residents must be at least 1"
    );
    anyhow::ensure!(
        args.churn_watches <= tessera_runtime::limits::DEFAULT_MAX_WATCHES_PER_CALLER / 2,
        "--churn-watches must be at most {}: half the gateway's max_watches_per_caller, as a \
         dropped watch gives its place back only once the gateway has seen the reset",
        tessera_runtime::limits::DEFAULT_MAX_WATCHES_PER_CALLER / 2
    );
    let report = crate::block_on(async {
        let mut report = Report::new(&args);
        // Memory and erasure need no throughput baseline.
        let e = if matches!(
            args.scenario,
            Scenario::IdleConnections | Scenario::StreamFlood | Scenario::Erase
        ) {
            0.0
        } else {
            scenarios::echo(&args, &mut report).await?
        };
        let list: &[Scenario] = match args.scenario {
            Scenario::All => &[
                Scenario::VerifyOffline,
                Scenario::Relay,
                Scenario::Batch,
                Scenario::Ingest,
                Scenario::Issue,
                Scenario::IdleConnections,
                Scenario::StreamFlood,
                Scenario::Handshake,
                Scenario::Checkpoint,
                Scenario::Erase,
            ],
            Scenario::Echo => &[],
            ref one => std::slice::from_ref(one),
        };
        for scenario in list {
            match scenario {
                Scenario::VerifyOffline => scenarios::verify_offline(&args, e, &mut report).await?,
                Scenario::Relay => scenarios::relay(&args, e, &mut report).await?,
                Scenario::Batch => scenarios::batch(&args, e, &mut report).await?,
                Scenario::Ingest => scenarios::ingest(&args, e, &mut report).await?,
                Scenario::Issue => scenarios::issue(&args, e, &mut report).await?,
                Scenario::IdleConnections => idle::idle_connections(args.idle, &mut report).await?,
                Scenario::StreamFlood => flood::stream_flood(args.streams, &mut report).await?,
                Scenario::Handshake => handshake::handshake(&args, e, &mut report).await?,
                Scenario::Soak => soak::soak(&args, &mut report).await?,
                Scenario::Checkpoint => station::checkpoint(&args, e, &mut report).await?,
                Scenario::Erase => erase::erase_scenario(&args, &mut report).await?,
                Scenario::Echo | Scenario::All => {}
            }
        }
        anyhow::Ok(report)
    })?;
    report.print(args.json)?;
    report.failed_calls()?;
    if args.scenario == Scenario::Soak {
        report.missed_targets(&soak::SOAK_TARGETS)?;
    }
    Ok(())
}
