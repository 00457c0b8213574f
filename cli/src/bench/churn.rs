//! Stream and watch churn for the soak: beside the unary load, tasks that
//! open a `VerifyBatch` stream, send a few badges, read every verdict and
//! close it; and tasks that open a `WatchTrustList` watch, read the first
//! list and drop it; over and over until stopped. Each stream or watch is a
//! call of its own row: its latency is open to close, a failure is any
//! status, a missing or non-VALID verdict, or no list.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use tessera_proto::v1 as pb;
use tessera_proto::v1::gateway_client::GatewayClient;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::transport::Channel;

use super::load::{self, Sample};
use super::scenarios::expect_valid;

/// How long one stream or watch may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How the churn runs.
#[derive(Debug, Clone, Copy)]
pub struct ChurnPlan {
    /// Tasks each opening one `VerifyBatch` stream after another.
    pub streams: usize,
    /// Tasks each opening one `WatchTrustList` watch after another.
    pub watches: usize,
    /// Badges sent on each stream.
    pub badges_per_stream: usize,
    /// Pause between one stream or watch and the next of a task.
    pub pause: Duration,
}

/// Streams and watches churned so far, readable while the churn runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Streams that ended with every verdict VALID.
    pub streams: AtomicU64,
    /// Watches that sent a list and were dropped.
    pub watches: AtomicU64,
    /// Streams and watches that failed.
    pub failed: AtomicU64,
}

/// Churn running in the background; [`Churn::stop`] ends it.
pub struct Churn {
    stop: watch::Sender<bool>,
    streams: Vec<JoinHandle<Tally>>,
    watches: Vec<JoinHandle<Tally>>,
    started: Instant,
    /// What has been churned so far.
    pub progress: Arc<Progress>,
}

/// What one task did.
struct Tally {
    ok: u64,
    items: u64,
    errors: u64,
    first_error: Option<String>,
    latency: Histogram<u64>,
}

impl Tally {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            ok: 0,
            items: 0,
            errors: 0,
            first_error: None,
            latency: load::histogram()?,
        })
    }

    fn record(
        &mut self,
        opened: Instant,
        result: Result<u64, String>,
        done: &AtomicU64,
        failed: &AtomicU64,
    ) {
        match result {
            Ok(items) => {
                self.ok += 1;
                self.items += items;
                done.fetch_add(1, Ordering::Relaxed);
                let micros = opened.elapsed().as_micros().max(1);
                let _ = self
                    .latency
                    .record(u64::try_from(micros).unwrap_or(u64::MAX));
            }
            Err(e) => {
                self.errors += 1;
                failed.fetch_add(1, Ordering::Relaxed);
                self.first_error.get_or_insert(e);
            }
        }
    }
}

impl Churn {
    /// Starts the churn on `clients` (task `i` on connection `i`), its
    /// streams sending `badges` in turn from `walk`.
    pub fn start(
        plan: ChurnPlan,
        clients: &Arc<Vec<GatewayClient<Channel>>>,
        badges: &Arc<Vec<Vec<u8>>>,
        walk: &Arc<AtomicU64>,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(!clients.is_empty(), "the churn has no connection");
        let (stop, stopped) = watch::channel(false);
        let progress = Arc::new(Progress::default());
        let mut streams = Vec::with_capacity(plan.streams);
        for i in 0..plan.streams {
            let client = clients[i % clients.len()].clone();
            let (badges, walk) = (Arc::clone(badges), Arc::clone(walk));
            let (stopped, progress) = (stopped.clone(), Arc::clone(&progress));
            let mut tally = Tally::new()?;
            streams.push(tokio::spawn(async move {
                while !*stopped.borrow() {
                    let opened = Instant::now();
                    let result = one_stream(
                        client.clone(),
                        &badges,
                        &walk,
                        plan.badges_per_stream.max(1),
                    )
                    .await;
                    tally.record(opened, result, &progress.streams, &progress.failed);
                    pause(plan.pause, stopped.clone()).await;
                }
                tally
            }));
        }
        let mut watches = Vec::with_capacity(plan.watches);
        for i in 0..plan.watches {
            let client = clients[i % clients.len()].clone();
            let (stopped, progress) = (stopped.clone(), Arc::clone(&progress));
            let mut tally = Tally::new()?;
            watches.push(tokio::spawn(async move {
                while !*stopped.borrow() {
                    let opened = Instant::now();
                    let result = one_watch(client.clone()).await;
                    tally.record(opened, result, &progress.watches, &progress.failed);
                    pause(plan.pause, stopped.clone()).await;
                }
                tally
            }));
        }
        Ok(Self {
            stop,
            streams,
            watches,
            started: Instant::now(),
            progress,
        })
    }

    /// Stops the churn once each task has finished its stream or watch;
    /// returns the streams' and the watches' samples over the whole run.
    pub async fn stop(self) -> anyhow::Result<(Sample, Sample)> {
        let _ = self.stop.send(true);
        let window = self.started.elapsed();
        let streams = gather(self.streams, window).await?;
        let watches = gather(self.watches, window).await?;
        Ok((streams, watches))
    }
}

/// Waits `pause`, or less if the churn is stopped meanwhile.
async fn pause(pause: Duration, mut stopped: watch::Receiver<bool>) {
    let _ = tokio::time::timeout(pause, stopped.wait_for(|s| *s)).await;
}

async fn gather(tasks: Vec<JoinHandle<Tally>>, window: Duration) -> anyhow::Result<Sample> {
    let mut sample = Sample {
        calls: 0,
        items: 0,
        errors: 0,
        first_error: None,
        latency: load::histogram()?,
        window,
    };
    for task in tasks {
        let t = task.await.context("a churn task failed")?;
        sample.add(t.ok, t.items, t.errors, t.first_error, &t.latency)?;
    }
    Ok(sample)
}

/// One `VerifyBatch` stream of `count` badges: every verdict must come
/// back VALID, then the stream must end. Returns the verdicts read.
async fn one_stream(
    mut client: GatewayClient<Channel>,
    badges: &[Vec<u8>],
    walk: &AtomicU64,
    count: usize,
) -> Result<u64, String> {
    let requests: Vec<pb::VerifyRequest> = (0..count)
        .map(|_| {
            let seq = walk.fetch_add(1, Ordering::Relaxed);
            pb::VerifyRequest {
                badge: Some(pb::verify_request::Badge::Envelope(
                    badges[(seq % badges.len() as u64) as usize].clone(),
                )),
            }
        })
        .collect();
    let call = async {
        let mut verdicts = client
            .verify_batch(futures::stream::iter(requests))
            .await
            .map_err(|e| format!("VerifyBatch: {e}"))?
            .into_inner();
        let mut read = 0u64;
        while let Some(v) = verdicts
            .message()
            .await
            .map_err(|e| format!("VerifyBatch after {read} verdicts: {e}"))?
        {
            expect_valid(&v).map_err(|e| format!("VerifyBatch: {e}"))?;
            read += 1;
        }
        if read != count as u64 {
            return Err(format!("VerifyBatch: {read} verdicts for {count} badges"));
        }
        Ok(read)
    };
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(format!("VerifyBatch: no end within {CALL_TIMEOUT:?}")))
}

/// One `WatchTrustList` watch: the gateway's current list must come first;
/// the watch is then dropped (the gateway sees the stream reset).
async fn one_watch(mut client: GatewayClient<Channel>) -> Result<u64, String> {
    let call = async {
        let mut lists = client
            .watch_trust_list(pb::WatchTrustListRequest { known_sequence: 0 })
            .await
            .map_err(|e| format!("WatchTrustList: {e}"))?
            .into_inner();
        match lists.message().await {
            Ok(Some(list)) if !list.payload.is_empty() => Ok(1),
            Ok(Some(_)) => Err("WatchTrustList: an empty list".to_owned()),
            Ok(None) => Err("WatchTrustList: ended before the first list".to_owned()),
            Err(e) => Err(format!("WatchTrustList: {e}")),
        }
    };
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(format!("WatchTrustList: no list within {CALL_TIMEOUT:?}")))
}
