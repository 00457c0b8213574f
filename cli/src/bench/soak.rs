//! The soak: relay at half its maximum throughput for a long time, with
//! `VerifyBatch` streams and `WatchTrustList` watches opened and closed
//! throughout, judged on failures and on growth of memory and open files.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::churn::{Churn, ChurnPlan};
use super::load::{Plan, Sample};
use super::report::{Report, num};
use super::scenarios::{Walk, badges_for, mib, verify_window};
use super::{BenchArgs, baseline};
use crate::bench::fixture::Fixture;

/// How often the soak samples memory and open files.
const SOAK_WINDOW: Duration = Duration::from_secs(30);

/// The soak's targets: a run that misses one fails.
pub const SOAK_TARGETS: [&str; 4] = [
    "soak failed verifications",
    "soak failed streams and watches",
    "soak RSS growth after warm-up",
    "soak open-file growth after warm-up",
];

/// Relay at half its maximum throughput for `args.soak`, after
/// `args.soak_warmup` at that rate, while `args.churn_streams` tasks open
/// and close `VerifyBatch` streams and `args.churn_watches` tasks open and
/// drop `WatchTrustList` watches on the same connections, from the start of
/// the warm-up to the end: every verdict must be VALID, every stream and
/// watch must succeed, and this process's resident memory and open files
/// (gateway, nodes and load generator together: an upper bound on each)
/// must not grow.
pub async fn soak(args: &BenchArgs, report: &mut Report) -> anyhow::Result<()> {
    let fx = Fixture::start(&args.relay()).await?;
    let badges = badges_for("soak", &fx, args.badges, report).await?;
    let clients = Arc::new(fx.gateway_clients(args.connections)?);
    let walk = Walk::default();
    let max = verify_window(&clients, args.plan(), &badges, &walk).await?;
    report.sample("soak: relay at full speed", &max);
    let half = (max.per_second() / 2.0).max(1.0);
    let churn = Churn::start(
        ChurnPlan {
            streams: args.churn_streams,
            watches: args.churn_watches,
            badges_per_stream: args.churn_badges,
            pause: args.churn_pause,
        },
        &clients,
        &badges,
        &walk,
    )?;
    let window = SOAK_WINDOW.min(args.soak);
    let plan = Plan {
        warmup: Duration::ZERO,
        duration: window,
        concurrency: args.concurrency,
        rate: Some(half),
    };
    let mut warm = Duration::ZERO;
    let mut warm_errors = 0;
    while warm < args.soak_warmup {
        let s = verify_window(
            &clients,
            Plan {
                duration: window.min(args.soak_warmup - warm),
                ..plan
            },
            &badges,
            &walk,
        )
        .await?;
        warm += s.window;
        warm_errors += s.errors;
    }
    let (rss0, fds0) = (baseline::current_rss()?, baseline::open_fds()?);
    report.note(format!(
        "soak: warm-up {:.0} s at {}/s ({} errors); then RSS {:.1} MiB, {} open files",
        warm.as_secs_f64(),
        num(half),
        warm_errors,
        mib(rss0),
        fds0
    ));
    let started = Instant::now();
    let mut total: Option<Sample> = None;
    let (mut rss_max, mut fds_max) = (rss0, fds0);
    while started.elapsed() < args.soak {
        let left = args.soak.saturating_sub(started.elapsed());
        let s = verify_window(
            &clients,
            Plan {
                duration: window.min(left).max(Duration::from_millis(100)),
                ..plan
            },
            &badges,
            &walk,
        )
        .await?;
        let (rss, fds) = (baseline::current_rss()?, baseline::open_fds()?);
        rss_max = rss_max.max(rss);
        fds_max = fds_max.max(fds);
        let p = &churn.progress;
        report.note(format!(
            "soak t+{:>4.0} s: {}/s, {} errors, p99 {:.2} ms, RSS {:.1} MiB, {} open files; \
             churned so far {} streams, {} watches, {} failed",
            started.elapsed().as_secs_f64(),
            num(s.per_second()),
            s.errors,
            s.ms(0.99),
            mib(rss),
            fds,
            p.streams.load(Ordering::Relaxed),
            p.watches.load(Ordering::Relaxed),
            p.failed.load(Ordering::Relaxed),
        ));
        total = Some(match total {
            None => s,
            Some(t) => t.merge(s)?,
        });
    }
    let total = total.context("the soak ran no window")?;
    let (rss1, fds1) = (baseline::current_rss()?, baseline::open_fds()?);
    let (streams, watches) = churn.stop().await?;
    fx.stop().await?;
    report.sample(
        format!("soak at half of full speed ({}/s)", num(half)),
        &total,
    );
    report.sample(
        format!("soak churn: VerifyBatch streams of {}", args.churn_badges),
        &streams,
    );
    report.sample("soak churn: WatchTrustList watches", &watches);
    report.note(format!(
        "soak: {} verifications in {:.0} s, {} failed; RSS {:.1} → {:.1} MiB (peak {:.1}), open files {} → {} (peak {})",
        num(total.items as f64),
        total.window.as_secs_f64(),
        total.errors,
        mib(rss0),
        mib(rss1),
        mib(rss_max),
        fds0,
        fds1,
        fds_max
    ));
    report.note(format!(
        "soak churn over warm-up and soak ({:.0} s): {} VerifyBatch streams ({} tasks, {} badges \
         each, {} verdicts) and {} WatchTrustList watches ({} tasks) opened and closed, {} \
         failed",
        streams.window.as_secs_f64(),
        streams.calls,
        args.churn_streams,
        args.churn_badges,
        streams.items,
        watches.calls,
        args.churn_watches,
        streams.errors + watches.errors
    ));
    let [failed, churn_failed, rss_growth, fd_growth] = SOAK_TARGETS;
    report.target(failed, total.errors as f64, 0.0, true, "");
    report.target(
        churn_failed,
        (streams.errors + watches.errors) as f64,
        0.0,
        true,
        "",
    );
    report.target(
        rss_growth,
        100.0 * (rss1 as f64 / rss0.max(1) as f64 - 1.0),
        10.0,
        true,
        " %",
    );
    report.target(fd_growth, fds1 as f64 - fds0 as f64, 0.0, true, "");
    Ok(())
}
