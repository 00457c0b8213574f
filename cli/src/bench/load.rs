//! The load generator: many calls in flight at once, a warm-up, then a fixed
//! measured window; per-call latency in a histogram. Closed loop by default
//! (each worker sends its next call when the last returns); at a fixed rate,
//! a call that goes out late because the previous one was slow has its
//! latency counted from when it was due, so a server that falls behind shows
//! its queueing (no coordinated omission). A wake-up late by no more than the
//! timer's resolution (1 ms) is the generator's, not the server's, and is not
//! counted.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use tokio::time::Instant;

/// How late tokio's timer may wake a task: its wheel ticks every millisecond.
const TIMER_RESOLUTION: Duration = Duration::from_millis(1);

/// How to drive one phase.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Calls before measuring starts (their results are not counted).
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Calls in flight at once (workers).
    pub concurrency: usize,
    /// Total calls per second to send, or as fast as answers come back.
    pub rate: Option<f64>,
}

/// What one phase measured.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Calls that succeeded in the window.
    pub calls: u64,
    /// Items those calls carried (verifications, records, badges).
    pub items: u64,
    /// Calls that failed in the window.
    pub errors: u64,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// Latency of successful calls, microseconds.
    pub latency: Histogram<u64>,
    /// The window's length.
    pub window: Duration,
}

impl Sample {
    /// This window followed by `next`, as one.
    pub fn merge(mut self, next: Sample) -> anyhow::Result<Sample> {
        self.add(
            next.calls,
            next.items,
            next.errors,
            next.first_error,
            &next.latency,
        )?;
        self.window += next.window;
        Ok(self)
    }

    /// Counts what one task did within this window: its successful calls,
    /// the items they carried, its failures (the first kept if none is yet)
    /// and its latencies.
    pub fn add(
        &mut self,
        calls: u64,
        items: u64,
        errors: u64,
        first_error: Option<String>,
        latency: &Histogram<u64>,
    ) -> anyhow::Result<()> {
        self.calls += calls;
        self.items += items;
        self.errors += errors;
        if self.first_error.is_none() {
            self.first_error = first_error;
        }
        self.latency
            .add(latency)
            .map_err(|e| anyhow::anyhow!("merging latency histograms: {e}"))
    }

    /// Items per second over the window.
    pub fn per_second(&self) -> f64 {
        self.items as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// A latency quantile in milliseconds.
    pub fn ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }
}

pub(super) fn histogram() -> anyhow::Result<Histogram<u64>> {
    // 1 µs to 60 s at 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).context("building a latency histogram")
}

struct Worker {
    calls: u64,
    items: u64,
    errors: u64,
    first_error: Option<String>,
    latency: Histogram<u64>,
}

/// Runs `call(worker, sequence)` under `plan`; a call returns the number of
/// items it carried or why it failed. `sequence` counts calls across all
/// workers, so callers can walk a list of inputs without repeats.
pub async fn drive<F, Fut>(plan: Plan, call: F) -> anyhow::Result<Sample>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<u64, String>> + Send + 'static,
{
    anyhow::ensure!(plan.concurrency > 0, "--concurrency must be at least 1");
    let call = Arc::new(call);
    let sequence = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    let interval = match plan.rate {
        Some(rate) if rate > 0.0 => Some(Duration::from_secs_f64(plan.concurrency as f64 / rate)),
        Some(_) => anyhow::bail!("--rate must be above zero"),
        None => None,
    };
    let mut tasks = Vec::with_capacity(plan.concurrency);
    for worker in 0..plan.concurrency {
        let call = Arc::clone(&call);
        let sequence = Arc::clone(&sequence);
        let mut w = Worker {
            calls: 0,
            items: 0,
            errors: 0,
            first_error: None,
            latency: histogram()?,
        };
        tasks.push(tokio::spawn(async move {
            // Spread the workers' schedules over one interval.
            let mut due = start
                + interval.map_or(Duration::ZERO, |i| {
                    i.mul_f64(worker as f64 / plan.concurrency as f64)
                });
            loop {
                let sent = match interval {
                    Some(i) => {
                        tokio::time::sleep_until(due).await;
                        let now = Instant::now();
                        let at = if now.duration_since(due) > TIMER_RESOLUTION {
                            due
                        } else {
                            now
                        };
                        due += i;
                        at
                    }
                    None => Instant::now(),
                };
                if sent >= end {
                    break;
                }
                let result = call(worker, sequence.fetch_add(1, Ordering::Relaxed)).await;
                let done = Instant::now();
                if sent < measure_from || done > end {
                    continue;
                }
                match result {
                    Ok(items) => {
                        w.calls += 1;
                        w.items += items;
                        let micros = (done - sent).as_micros().max(1);
                        let _ = w.latency.record(u64::try_from(micros).unwrap_or(u64::MAX));
                    }
                    Err(e) => {
                        w.errors += 1;
                        w.first_error.get_or_insert(e);
                    }
                }
            }
            w
        }));
    }
    let mut sample = Sample {
        calls: 0,
        items: 0,
        errors: 0,
        first_error: None,
        latency: histogram()?,
        window: plan.duration,
    };
    for task in tasks {
        let w = task.await.context("a load worker failed")?;
        sample.add(w.calls, w.items, w.errors, w.first_error, &w.latency)?;
    }
    Ok(sample)
}

/// Runs `runs` phases and keeps the one with the median throughput.
pub async fn median_of<F, Fut>(runs: usize, mut phase: F) -> anyhow::Result<Sample>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Sample>>,
{
    let mut samples = Vec::with_capacity(runs.max(1));
    for _ in 0..runs.max(1) {
        samples.push(phase().await?);
    }
    samples.sort_by(|a, b| a.per_second().total_cmp(&b.per_second()));
    let middle = samples.len() / 2;
    Ok(samples.swap_remove(middle))
}

/// Parses a duration such as `10s`, `500ms`, `2m` or `1.5s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 10s, 500ms or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" | "" => value,
        "m" | "min" => value * 60.0,
        _ => return Err(format!("{text:?}: use ms, s or m")),
    };
    if !(0.0..=86_400.0).contains(&seconds) {
        return Err(format!("{text:?} is out of range (0 to 24 h)"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    // Paused time: the clock jumps from one due call to the next, so the
    // count is exact however busy the machine.
    #[tokio::test(start_paused = true)]
    async fn a_fixed_rate_is_kept_and_errors_are_counted() {
        let plan = Plan {
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(500),
            concurrency: 4,
            rate: Some(200.0),
        };
        let sample = drive(plan, |_, seq| async move {
            if seq % 10 == 0 {
                Err(format!("call {seq} failed"))
            } else {
                Ok(2)
            }
        })
        .await
        .unwrap();
        // 200/s for 0.5 s after the warm-up: 100 calls, one in ten failing.
        assert_eq!(sample.calls + sample.errors, 100);
        assert_eq!(sample.errors, 10);
        assert_eq!(sample.items, 2 * sample.calls);
        assert!(sample.first_error.unwrap().ends_with("failed"));
    }
}
