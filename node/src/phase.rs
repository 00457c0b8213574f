//! Phase timers for one profiling run of issuance (`TESSERA_PHASES=1`):
//! the serial work under the writer lock, summed per phase and printed to
//! stderr every 50,000 issuances; and two switches that bring back the
//! earlier path in the same binary for an A/B run (`TESSERA_ISSUE_UNLOGGED`:
//! no issuance entries; `TESSERA_SERIAL_SIGN`: one signature after the
//! other). Temporary: removed after the measurement.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The phases timed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Phase {
    /// Appending the batch's access-log entries.
    Log = 0,
    /// Reading and scoring the resident's records.
    Records = 1,
    /// Reading the resident's badges.
    Badges = 2,
    /// Signing.
    Sign = 3,
    /// The batch's store write.
    Apply = 4,
    /// The whole decision of a batch.
    Decide = 5,
}

const NAMES: [&str; 6] = ["log", "records", "badges", "sign", "apply", "decide"];
static NANOS: [AtomicU64; 6] = [const { AtomicU64::new(0) }; 6];
static ISSUED: AtomicU64 = AtomicU64::new(0);
static BATCHES: AtomicU64 = AtomicU64::new(0);

fn on() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("TESSERA_PHASES").is_some())
}

/// Starts timing (`None` when the timers are off).
pub(crate) fn start() -> Option<Instant> {
    on().then(Instant::now)
}

/// Adds the time since `started` to `phase`.
pub(crate) fn add(phase: Phase, started: Option<Instant>) {
    if let Some(t) = started {
        let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
        NANOS[phase as usize].fetch_add(ns, Ordering::Relaxed);
    }
}

/// Counts a decided batch of `n` issuances and prints the sums now and then.
pub(crate) fn batch(n: usize) {
    if !on() {
        return;
    }
    BATCHES.fetch_add(1, Ordering::Relaxed);
    let before = ISSUED.fetch_add(n as u64, Ordering::Relaxed);
    let after = before + n as u64;
    if before / 50_000 != after / 50_000 {
        let batches = BATCHES.load(Ordering::Relaxed);
        let per: Vec<String> = NAMES
            .iter()
            .zip(&NANOS)
            .map(|(name, ns)| {
                format!(
                    "{name} {:.1} µs",
                    ns.load(Ordering::Relaxed) as f64 / after as f64 / 1000.0
                )
            })
            .collect();
        eprintln!(
            "phases: {after} issuances in {batches} batches ({:.1} per batch); per issuance: {}",
            after as f64 / batches as f64,
            per.join(", ")
        );
    }
}

fn flag(name: &str, cell: &'static OnceLock<bool>) -> bool {
    *cell.get_or_init(|| std::env::var_os(name).is_some())
}

/// Whether issuances are left out of the log (the earlier behaviour).
pub(crate) fn unlogged() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    flag("TESSERA_ISSUE_UNLOGGED", &ON)
}

/// Whether a batch is signed on one thread (the earlier behaviour).
pub(crate) fn serial_sign() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    flag("TESSERA_SERIAL_SIGN", &ON)
}
