//! The benchmark's results: one row per measured window, the ratios and
//! targets they are judged by, and notes; printed as a table or JSON.

use serde::Serialize;

use super::BenchArgs;
use super::load::Sample;

/// One measured window (or a baseline that is only a rate).
#[derive(Debug, Serialize)]
pub struct Row {
    /// What was measured.
    pub name: String,
    /// Items (verifications, records, badges) per second.
    pub per_second: f64,
    /// Successful calls in the window.
    pub calls: u64,
    /// Failed calls in the window.
    pub errors: u64,
    /// Latency quantiles in milliseconds (absent for bare baselines).
    pub p50_ms: Option<f64>,
    /// 90th percentile.
    pub p90_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// 99.9th percentile.
    pub p999_ms: Option<f64>,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

/// A target from issue 6 / docs/BENCHMARKS.md, judged on this run.
#[derive(Debug, Serialize)]
pub struct Target {
    /// What is compared.
    pub what: String,
    /// The figure reached.
    pub value: f64,
    /// The goal, in words.
    pub goal: String,
    /// Whether this run met it.
    pub met: bool,
}

/// Everything one `tessera bench` run found.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The scenario asked for.
    pub scenario: String,
    /// Cores the machine offers.
    pub cores: usize,
    /// The measured window and warm-up, in seconds.
    pub duration_s: f64,
    /// Warm-up seconds.
    pub warmup_s: f64,
    /// Calls in flight.
    pub concurrency: usize,
    /// Connections.
    pub connections: usize,
    /// Runs per window (the median is reported).
    pub runs: usize,
    /// Whether this binary was built with optimisations.
    pub release_build: bool,
    /// The rows.
    pub rows: Vec<Row>,
    /// Ratios by name.
    pub ratios: Vec<(String, f64)>,
    /// Targets.
    pub targets: Vec<Target>,
    /// Notes (cache hit rates, set-up rates).
    pub notes: Vec<String>,
}

impl Report {
    /// An empty report for `args`.
    pub fn new(args: &BenchArgs) -> Self {
        Self {
            scenario: clap::ValueEnum::to_possible_value(&args.scenario)
                .map_or_else(String::new, |v| v.get_name().to_owned()),
            cores: super::baseline::cores(),
            duration_s: args.duration.as_secs_f64(),
            warmup_s: args.warmup.as_secs_f64(),
            concurrency: args.concurrency,
            connections: args.connections,
            runs: args.runs,
            release_build: !cfg!(debug_assertions),
            rows: vec![],
            ratios: vec![],
            targets: vec![],
            notes: vec![],
        }
    }

    /// Adds a measured window.
    pub fn sample(&mut self, name: impl Into<String>, s: &Sample) {
        let (p50, p90, p99, p999) = if s.calls > 0 {
            (
                Some(s.ms(0.50)),
                Some(s.ms(0.90)),
                Some(s.ms(0.99)),
                Some(s.ms(0.999)),
            )
        } else {
            (None, None, None, None)
        };
        self.rows.push(Row {
            name: name.into(),
            per_second: s.per_second(),
            calls: s.calls,
            errors: s.errors,
            p50_ms: p50,
            p90_ms: p90,
            p99_ms: p99,
            p999_ms: p999,
            first_error: s.first_error.clone(),
        });
    }

    /// Adds a baseline that is only a rate.
    pub fn rate(&mut self, name: impl Into<String>, per_second: f64) {
        self.rows.push(Row {
            name: name.into(),
            per_second,
            calls: 0,
            errors: 0,
            p50_ms: None,
            p90_ms: None,
            p99_ms: None,
            p999_ms: None,
            first_error: None,
        });
    }

    /// Adds a ratio.
    pub fn ratio(&mut self, name: impl Into<String>, value: f64) {
        self.ratios.push((name.into(), value));
    }

    /// Adds a target: met when `value >= goal` (or `<=` when `at_most`).
    pub fn target(&mut self, what: &str, value: f64, goal: f64, at_most: bool, unit: &str) {
        let met = if at_most {
            value <= goal
        } else {
            value >= goal
        };
        self.targets.push(Target {
            what: what.into(),
            value,
            goal: format!("{} {}{unit}", if at_most { "≤" } else { "≥" }, num(goal)),
            met,
        });
    }

    /// Adds a note.
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Prints the report.
    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            outln!("{}", serde_json::to_string_pretty(self)?);
            return Ok(());
        }
        outln!(
            "tessera bench {} — {} cores, {} build, {} s windows after {} s warm-up, {} in flight over {} connections, median of {}",
            self.scenario,
            self.cores,
            if self.release_build {
                "release"
            } else {
                "DEBUG (figures not representative)"
            },
            self.duration_s,
            self.warmup_s,
            self.concurrency,
            self.connections,
            self.runs
        );
        outln!(
            "  {:<44} {:>11} {:>8} {:>8} {:>8} {:>8} {:>7}",
            "window",
            "per second",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9",
            "errors"
        );
        let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
        for r in &self.rows {
            outln!(
                "  {:<44} {:>11} {:>8} {:>8} {:>8} {:>8} {:>7}",
                r.name,
                num(r.per_second),
                ms(r.p50_ms),
                ms(r.p90_ms),
                ms(r.p99_ms),
                ms(r.p999_ms),
                r.errors
            );
            if let Some(e) = &r.first_error {
                outln!("      first error: {e}");
            }
        }
        for (name, value) in &self.ratios {
            outln!("  ratio {name}: {value:.3}");
        }
        for t in &self.targets {
            outln!(
                "  target {}: {} (goal {}) {}",
                t.what,
                num(t.value),
                t.goal,
                if t.met { "met" } else { "NOT met" }
            );
        }
        for n in &self.notes {
            outln!("  note: {n}");
        }
        Ok(())
    }

    /// An error when any window had failed calls.
    pub fn failed_calls(&self) -> anyhow::Result<()> {
        let failed: u64 = self.rows.iter().map(|r| r.errors).sum();
        anyhow::ensure!(
            failed == 0,
            "{failed} calls failed: the figures above do not measure what they claim"
        );
        Ok(())
    }
}

impl Report {
    /// An error when a run missed any of the targets named in `judged`.
    pub fn missed_targets(&self, judged: &[&str]) -> anyhow::Result<()> {
        let missed: Vec<&str> = self
            .targets
            .iter()
            .filter(|t| !t.met && judged.contains(&t.what.as_str()))
            .map(|t| t.what.as_str())
            .collect();
        anyhow::ensure!(missed.is_empty(), "targets NOT met: {}", missed.join(", "));
        Ok(())
    }
}

/// A figure with thousands separators, or two decimals when small.
pub fn num(v: f64) -> String {
    if v.abs() < 100.0 {
        return format!("{v:.2}");
    }
    let digits = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 && c != '-' {
            out.push(',');
        }
        out.push(c);
    }
    out
}
