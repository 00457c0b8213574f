//! The scenarios: what each starts, drives and judges.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;

use tessera_proto::bench::EchoMessage;
use tessera_proto::v1 as pb;
use tessera_proto::v1::gateway_client::GatewayClient;
use tonic::transport::Channel;

use super::fixture::{self, Fixture};
use super::load::{self, Plan, Sample};
use super::report::{Report, num};
use super::{BenchArgs, baseline, echo};

/// How long each bare baseline (raw Ed25519, raw sled) runs.
fn baseline_window(args: &BenchArgs) -> std::time::Duration {
    args.duration.min(std::time::Duration::from_secs(3))
}

/// The payload of an echo call: a typical badge envelope's size.
const ECHO_PAYLOAD: usize = 133;

/// Baseline E, against the gateway's TLS set-up. Returns its throughput.
pub async fn echo(args: &BenchArgs, report: &mut Report) -> anyhow::Result<f64> {
    let fx = Fixture::start("").await?;
    let server = echo::EchoServerHandle::start(&fx.fed.layout.gateway_bundle).await?;
    let clients = (0..args.connections)
        .map(|_| echo::client(&fx.fed.layout.checkpoint, server.addr))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let clients = Arc::new(clients);
    let sample = load::median_of(args.runs, || {
        let clients = Arc::clone(&clients);
        load::drive(args.plan(), move |worker, _| {
            let mut client = clients[worker % clients.len()].clone();
            async move {
                client
                    .echo(EchoMessage {
                        payload: vec![0x42; ECHO_PAYLOAD],
                    })
                    .await
                    .map(|_| 1)
                    .map_err(|e| e.to_string())
            }
        })
    })
    .await?;
    report.sample("echo (baseline E)", &sample);
    server.stop().await?;
    fx.stop().await?;
    Ok(sample.per_second())
}

/// Where the walk through the badges has got to: shared by every window of
/// a scenario, so that a new window does not start again on badges checked
/// moments ago (which the status cache would answer).
pub(super) type Walk = Arc<AtomicU64>;

/// Unary gateway Verify over `badges`, each verdict expected VALID.
async fn verify_unary(
    fx: &Fixture,
    args: &BenchArgs,
    plan: Plan,
    badges: &Arc<Vec<Vec<u8>>>,
    walk: &Walk,
) -> anyhow::Result<Sample> {
    let clients = Arc::new(fx.gateway_clients(args.connections)?);
    load::median_of(args.runs, || verify_window(&clients, plan, badges, walk)).await
}

/// One window of unary gateway Verify calls on `clients`.
pub(super) async fn verify_window(
    clients: &Arc<Vec<GatewayClient<Channel>>>,
    plan: Plan,
    badges: &Arc<Vec<Vec<u8>>>,
    walk: &Walk,
) -> anyhow::Result<Sample> {
    let (clients, badges, walk) = (Arc::clone(clients), Arc::clone(badges), Arc::clone(walk));
    load::drive(plan, move |worker, _| {
        let mut client = clients[worker % clients.len()].clone();
        let seq = walk.fetch_add(1, Ordering::Relaxed);
        let badge = badges[(seq % badges.len() as u64) as usize].clone();
        async move {
            let verdict = client
                .verify(pb::VerifyRequest {
                    badge: Some(pb::verify_request::Badge::Envelope(badge)),
                })
                .await
                .map_err(|e| e.to_string())?
                .into_inner();
            expect_valid(&verdict).map(|()| 1)
        }
    })
    .await
}

pub(super) fn expect_valid(v: &pb::Verdict) -> Result<(), String> {
    if v.outcome == pb::Outcome::Valid as i32 {
        Ok(())
    } else {
        Err(format!(
            "verdict {:?}: {}",
            pb::Outcome::try_from(v.outcome).unwrap_or(pb::Outcome::Unspecified),
            v.detail
        ))
    }
}

/// Issues the badges a gateway scenario checks, noting the rate reached.
pub(super) async fn badges_for(
    scenario: &str,
    fx: &Fixture,
    count: u64,
    report: &mut Report,
) -> anyhow::Result<Arc<Vec<Vec<u8>>>> {
    let (badges, rate) = fx.issue_badges(count, 256).await?;
    report.note(format!(
        "{scenario} set-up: issued {} badges over {} cities at {}/s (256 IssueBadge calls in flight)",
        num(count as f64),
        fx.fed.layout.cities.len(),
        num(rate)
    ));
    Ok(Arc::new(badges))
}

/// Gateway Verify with the relay off, beside V and E.
pub async fn verify_offline(args: &BenchArgs, e: f64, report: &mut Report) -> anyhow::Result<()> {
    let v = baseline::ed25519_verify(baseline_window(args))?;
    report.rate("raw Ed25519 verify, all cores (V)", v);
    let fx = Fixture::start("enabled = false").await?;
    let badges = badges_for("verify-offline", &fx, args.badges.min(10_000), report).await?;
    let sample = verify_unary(&fx, args, args.plan(), &badges, &Walk::default()).await?;
    fx.stop().await?;
    report.sample("verify-offline (gateway, relay off)", &sample);
    let bound = 1.0 / (1.0 / e + 1.0 / v);
    let x = sample.per_second();
    report.ratio("verify-offline / E", x / e);
    report.ratio("verify-offline / (1/(1/E + 1/V))", x / bound);
    report.target("verify-offline vs 1/(1/E+1/V)", x / bound, 0.8, false, "×");
    Ok(())
}

fn relay_notes(
    scenario: &str,
    fx: &Fixture,
    before: tessera_gateway::relay::RelayStats,
    report: &mut Report,
) {
    let s = fx.fed.relay_stats();
    let (hits, misses) = (
        s.cache_hits - before.cache_hits,
        s.cache_misses - before.cache_misses,
    );
    let (calls, ids) = (s.calls - before.calls, s.ids - before.ids);
    report.note(format!(
        "{scenario}: status cache hit rate {:.1} % ({} hits, {} misses); {} CheckStatus calls carried {} badge ids ({:.1} per call)",
        100.0 * hits as f64 / (hits + misses).max(1) as f64,
        num(hits as f64),
        num(misses as f64),
        num(calls as f64),
        num(ids as f64),
        ids as f64 / calls.max(1) as f64
    ));
}

/// Gateway Verify with live status checks, at full speed then at half.
pub async fn relay(args: &BenchArgs, e: f64, report: &mut Report) -> anyhow::Result<()> {
    let fx = Fixture::start(&args.relay()).await?;
    let badges = badges_for("relay", &fx, args.badges, report).await?;
    let before = fx.fed.relay_stats();
    let walk = Walk::default();
    let max = verify_unary(&fx, args, args.plan(), &badges, &walk).await?;
    relay_notes("relay", &fx, before, report);
    report.sample("relay (gateway Verify + CheckStatus)", &max);
    let half = max.per_second() / 2.0;
    let plan = Plan {
        rate: Some(half.max(1.0)),
        ..args.plan()
    };
    let at_half = verify_unary(&fx, args, plan, &badges, &walk).await?;
    fx.stop().await?;
    report.sample(format!("relay at half of that ({}/s)", num(half)), &at_half);
    report.ratio("relay / E", max.per_second() / e);
    report.target("relay / E", max.per_second() / e, 0.35, false, "×");
    report.target("relay throughput", max.per_second(), 13_000.0, false, "/s");
    report.target("relay p99 at half load", at_half.ms(0.99), 5.0, true, " ms");
    Ok(())
}

/// Gateway VerifyBatch streams, relay on.
pub async fn batch(args: &BenchArgs, e: f64, report: &mut Report) -> anyhow::Result<()> {
    let size = args.batch.unwrap_or(100).clamp(1, 10_000);
    let fx = Fixture::start(&args.relay()).await?;
    let badges = badges_for("batch", &fx, args.badges, report).await?;
    let clients = Arc::new(fx.gateway_clients(args.connections)?);
    let before = fx.fed.relay_stats();
    // Fewer streams than unary calls: each carries `size` badges.
    let plan = Plan {
        concurrency: args
            .concurrency
            .div_ceil(size as usize)
            .max(args.connections),
        ..args.plan()
    };
    let walk = Walk::default();
    let sample = load::median_of(args.runs, || {
        let (clients, badges, walk) =
            (Arc::clone(&clients), Arc::clone(&badges), Arc::clone(&walk));
        load::drive(plan, move |worker, _| {
            let mut client = clients[worker % clients.len()].clone();
            let seq = walk.fetch_add(1, Ordering::Relaxed);
            let requests: Vec<pb::VerifyRequest> = (0..size)
                .map(|i| pb::VerifyRequest {
                    badge: Some(pb::verify_request::Badge::Envelope(
                        badges[((seq * size + i) % badges.len() as u64) as usize].clone(),
                    )),
                })
                .collect();
            async move {
                let mut verdicts = client
                    .verify_batch(futures::stream::iter(requests))
                    .await
                    .map_err(|e| e.to_string())?
                    .into_inner();
                let mut n = 0;
                while let Some(v) = verdicts.message().await.map_err(|e| e.to_string())? {
                    expect_valid(&v)?;
                    n += 1;
                }
                if n == size {
                    Ok(n)
                } else {
                    Err(format!("{n} verdicts for {size} badges"))
                }
            }
        })
    })
    .await?;
    relay_notes("batch", &fx, before, report);
    fx.stop().await?;
    report.sample(
        format!(
            "batch (VerifyBatch, {size}/stream, {} streams)",
            plan.concurrency
        ),
        &sample,
    );
    report.ratio("batch / E", sample.per_second() / e);
    Ok(())
}

/// City node IngestRecords, beside a bare sled batch-and-flush.
pub async fn ingest(args: &BenchArgs, e: f64, report: &mut Report) -> anyhow::Result<()> {
    let size = args.batch.unwrap_or(1000).clamp(1, 10_000);
    let s = baseline::sled_batches(baseline_window(args), size, 120)?;
    report.rate(format!("bare sled batch of {size} + flush (S)"), s);
    let fx = Fixture::start("").await?;
    let clients = Arc::new(fx.node_clients(args.connections)?);
    let now = crate::fmt::now();
    // Each call stores `size` new records of `size` new residents at one city.
    let plan = Plan {
        concurrency: args.concurrency.clamp(1, 16),
        ..args.plan()
    };
    // One walk across the windows: a later window stores new records, not
    // the earlier window's again (which would be duplicates).
    let walk = Walk::default();
    let sample = load::median_of(args.runs, || {
        let (clients, walk) = (Arc::clone(&clients), Arc::clone(&walk));
        load::drive(plan, move |worker, _| {
            let seq = walk.fetch_add(1, Ordering::Relaxed);
            let city = &clients[seq as usize % clients.len()];
            let mut client = city[worker % city.len()].clone();
            let records = (seq * size..(seq + 1) * size)
                .map(|n| fixture::record(n, n, now))
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
    })
    .await?;
    fx.stop().await?;
    report.sample(
        format!("ingest ({size}/call, {} calls in flight)", plan.concurrency),
        &sample,
    );
    report.ratio("ingest / S", sample.per_second() / s);
    report.ratio(
        "ingest calls / E",
        sample.calls as f64 / sample.window.as_secs_f64() / e,
    );
    report.target(
        "ingest records/s",
        sample.per_second(),
        50_000.0,
        false,
        "/s",
    );
    Ok(())
}

/// City node IssueBadge with many residents stored, beside raw signing.
pub async fn issue(args: &BenchArgs, e: f64, report: &mut Report) -> anyhow::Result<()> {
    let sign = baseline::ed25519_sign(baseline_window(args))?;
    report.rate("raw Ed25519 sign, all cores", sign);
    baseline::reset_peak_rss();
    let fx = Fixture::start("").await?;
    let started = Instant::now();
    let residents = args.residents.unwrap_or(100_000);
    let rate = fx.ingest_residents(residents, 5_000).await?;
    report.note(format!(
        "issue set-up: stored {} residents at one city in {:.1} s ({}/s)",
        num(residents as f64),
        started.elapsed().as_secs_f64(),
        num(rate)
    ));
    let clients = Arc::new(fx.node_clients(args.connections)?);
    let sample = load::median_of(args.runs, || {
        let clients = Arc::clone(&clients);
        load::drive(args.plan(), move |worker, seq| {
            let city = &clients[0];
            let mut client = city[worker % city.len()].clone();
            // Spread over the residents without a pattern the store could favour.
            let resident = seq.wrapping_mul(2_654_435_761) % residents;
            async move {
                client
                    .issue_badge(pb::IssueBadgeRequest {
                        national_id: fixture::national_id(resident),
                        name: "Bench Resident".into(),
                    })
                    .await
                    .map(|_| 1)
                    .map_err(|e| e.to_string())
            }
        })
    })
    .await?;
    let peak = baseline::peak_rss();
    // The first city's store, closed: what it holds against what it takes.
    let (disk, logical) = fx
        .stop_and_inspect(|layout| {
            let data = layout
                .cities
                .first()
                .context("the federation has no city")?
                .bundle
                .join("data");
            Ok((
                baseline::disk_usage(&data)?,
                baseline::sled_logical_size(&data.join("store"))?,
            ))
        })
        .await?;
    report.sample(
        format!("issue ({} residents stored)", num(residents as f64)),
        &sample,
    );
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    report.note(format!(
        "issue: the node's store holds {:.1} MiB of keys and values in {:.1} MiB on disk ({} residents, their records and {} badges)",
        mib(logical),
        mib(disk),
        num(residents as f64),
        num(sample.calls as f64)
    ));
    report.target(
        "node disk / logical data",
        disk as f64 / logical.max(1) as f64,
        3.0,
        true,
        "×",
    );
    if let Some(peak) = peak {
        report.note(format!(
            "issue: peak RSS of this process during the scenario (load generator, gateway and three nodes) {:.0} MiB, an upper bound of the node's",
            mib(peak)
        ));
        report.target("node RSS (upper bound)", mib(peak), 1024.0, true, " MiB");
    }
    report.ratio("issue / raw sign", sample.per_second() / sign);
    report.ratio("issue / E", sample.per_second() / e);
    report.target("issue badges/s", sample.per_second(), 20_000.0, false, "/s");
    Ok(())
}

pub(super) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
