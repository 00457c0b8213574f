//! `tessera bench erase`: EraseResident among --residents residents stored
//! at one city (latency of erasures one after the other), and IngestRecords
//! at that city alone and beside a stream of one erasure per second, as a
//! ratio of the two windows of the same run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tessera_proto::v1 as pb;
use tessera_proto::v1::city_node_client::CityNodeClient;
use tonic::transport::Channel;

use super::BenchArgs;
use super::fixture::{self, Fixture};
use super::load::{self, Plan, Sample};
use super::report::{Report, num};

/// Erasures timed one after the other (at most half the residents).
const TIMED_ERASURES: u64 = 200;

/// Erases resident `n` of the fixture; their record must have been there.
async fn erase(client: &mut CityNodeClient<Channel>, n: u64) -> Result<(), String> {
    let erased = client
        .erase_resident(pb::EraseRequest {
            national_id: fixture::national_id(n),
        })
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    if erased.records == 1 {
        Ok(())
    } else {
        Err(format!(
            "resident {n}: {} records erased, not 1",
            erased.records
        ))
    }
}

/// Erasure latency and ingest beside erasures, at the first city.
pub async fn erase_scenario(args: &BenchArgs, report: &mut Report) -> anyhow::Result<()> {
    let residents = args.residents.unwrap_or(1_000_000);
    let fx = Fixture::start("").await?;
    let started = Instant::now();
    let rate = fx.ingest_residents(residents, 5_000).await?;
    report.note(format!(
        "erase set-up: stored {} residents at one city in {:.1} s ({}/s)",
        num(residents as f64),
        started.elapsed().as_secs_f64(),
        num(rate)
    ));
    let clients = fx.node_clients(args.connections)?;
    let city: Arc<Vec<CityNodeClient<Channel>>> =
        Arc::new(clients.into_iter().next().context("no city")?);
    // Residents are erased from the last stored down, each once.
    let next_erased = Arc::new(AtomicU64::new(residents));
    let take = |next: &AtomicU64| -> Option<u64> {
        next.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .ok()
            .map(|n| n - 1)
    };

    // Latency: erasures one after the other, nothing else running.
    let count = TIMED_ERASURES.min(residents / 2).max(1);
    let mut latency = load::histogram()?;
    let mut client = city[0].clone();
    let mut worst = Duration::ZERO;
    let window = Instant::now();
    for _ in 0..count {
        let n = take(&next_erased).context("no resident left to erase")?;
        let at = Instant::now();
        erase(&mut client, n).await.map_err(anyhow::Error::msg)?;
        let took = at.elapsed();
        worst = worst.max(took);
        latency.record(took.as_micros().max(1) as u64)?;
    }
    let erasures = Sample {
        calls: count,
        items: count,
        errors: 0,
        first_error: None,
        latency,
        window: window.elapsed(),
    };
    report.sample(
        format!(
            "erase ({} residents stored, one at a time)",
            num(residents as f64)
        ),
        &erasures,
    );
    report.note(format!(
        "erase: {count} erasures, median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        erasures.ms(0.5),
        erasures.ms(0.99),
        worst.as_secs_f64() * 1000.0
    ));
    report.target("erasure p99", erasures.ms(0.99), 20.0, true, " ms");

    // Ingest at the same city, alone, then beside one erasure a second.
    let size = args.batch.unwrap_or(1000).clamp(1, 10_000);
    let plan = Plan {
        concurrency: args.concurrency.clamp(1, 16),
        ..args.plan()
    };
    let walk = Arc::new(AtomicU64::new(0));
    let first_new = residents;
    let ingest = |plan: Plan| {
        let (city, walk) = (Arc::clone(&city), Arc::clone(&walk));
        let now = crate::fmt::now();
        load::drive(plan, move |worker, _| {
            let seq = walk.fetch_add(1, Ordering::Relaxed);
            let mut client = city[worker % city.len()].clone();
            // New residents, past those stored at set-up.
            let records = (seq * size..(seq + 1) * size)
                .map(|n| fixture::record(first_new + n, first_new + n, now))
                .collect();
            async move {
                let stored = client
                    .ingest_records(pb::IngestRequest { records })
                    .await
                    .map_err(|e| e.to_string())?
                    .into_inner()
                    .stored;
                Ok(u64::from(stored))
            }
        })
    };
    let alone = load::median_of(args.runs, || ingest(plan)).await?;
    report.sample(format!("ingest at that city ({size}/call)"), &alone);

    let stop = Arc::new(AtomicBool::new(false));
    let stream = {
        let (stop, next, mut client) =
            (Arc::clone(&stop), Arc::clone(&next_erased), city[0].clone());
        tokio::spawn(async move {
            let mut latency = load::histogram()?;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut failed = None;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let Some(n) = take(&next) else { break };
                let at = Instant::now();
                match erase(&mut client, n).await {
                    Ok(()) => latency.record(at.elapsed().as_micros().max(1) as u64)?,
                    Err(e) => failed = failed.or(Some(e)),
                }
            }
            anyhow::Ok((latency, failed))
        })
    };
    let beside = load::median_of(args.runs, || ingest(plan)).await;
    stop.store(true, Ordering::Relaxed);
    let (during, failed) = stream.await.context("the erasure stream panicked")??;
    let beside = beside?;
    fx.stop().await?;
    if let Some(e) = failed {
        anyhow::bail!("an erasure beside ingest failed: {e}");
    }
    report.sample(
        format!("ingest beside one erasure per second ({size}/call)"),
        &beside,
    );
    report.note(format!(
        "erase: {} erasures ran beside ingest, p99 {:.2} ms, max {:.2} ms",
        during.len(),
        during.value_at_quantile(0.99) as f64 / 1000.0,
        during.max() as f64 / 1000.0
    ));
    let ratio = beside.per_second() / alone.per_second().max(1e-9);
    report.ratio("ingest beside erasures / ingest alone", ratio);
    report.target("ingest beside erasures / alone", ratio, 0.9, false, "×");
    Ok(())
}
