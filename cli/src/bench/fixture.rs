//! What the scenarios measure, started in this process: a whole federation
//! (authority, gateway, three city nodes, a checkpoint, operators) in a
//! temporary directory on loopback, with real certificates, mutual TLS and
//! sled files, and the clients and inputs the load needs.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use futures::StreamExt;
use tessera_node::pseudonym::check_character;
use tessera_proto::v1 as pb;
use tessera_proto::v1::city_node_client::CityNodeClient;
use tessera_proto::v1::gateway_client::GatewayClient;
use tonic::transport::Channel;

use crate::creds;
use crate::federation::{Federation, Layout};

/// A federation started for a benchmark; removed with its directory.
pub struct Fixture {
    /// The running federation.
    pub fed: Federation,
    dir: tempfile::TempDir,
}

/// A valid national ID number (GB 11643 checksum) for synthetic resident `n`.
pub fn national_id(n: u64) -> String {
    let first17 = format!("110101{:011}", n % 100_000_000_000);
    let check = check_character(first17.as_bytes()).unwrap_or('0');
    format!("{first17}{check}")
}

/// A negative test result for resident `resident`, id unique per `record`.
pub fn record(record: u64, resident: u64, now: i64) -> pb::Record {
    pb::Record {
        record_id: format!("bench-{record}"),
        national_id: national_id(resident),
        kind: Some(pb::record::Kind::Test(pb::TestResult {
            kind: pb::TestKind::Pcr as i32,
            positive: false,
            sampled_at: now - 3600 - (record % 7200) as i64,
            lab: "BENCH-LAB".into(),
        })),
    }
}

impl Fixture {
    /// Starts a federation whose gateway's `[relay]` section holds `relay`.
    pub async fn start(relay: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let (layout, listeners) = Layout::create(dir.path(), 0, relay).await?;
        let fed = Federation::start(layout, listeners).await?;
        Ok(Self { fed, dir })
    }

    /// `n` checkpoint clients of the gateway, each on its own connection.
    pub fn gateway_clients(&self, n: usize) -> anyhow::Result<Vec<GatewayClient<Channel>>> {
        let l = &self.fed.layout;
        (0..n.max(1))
            .map(|_| {
                creds::gateway(&l.checkpoint, &l.gateway.to_string())
                    .map(|c| c.max_decoding_message_size(64 * 1024 * 1024))
            })
            .collect()
    }

    /// `n` operator clients of each city's node: `[city][connection]`.
    pub fn node_clients(&self, n: usize) -> anyhow::Result<Vec<Vec<CityNodeClient<Channel>>>> {
        self.fed
            .layout
            .cities
            .iter()
            .map(|c| {
                (0..n.max(1))
                    .map(|_| creds::node(&c.operator, &c.node.to_string()))
                    .collect()
            })
            .collect()
    }

    /// Issues `total` badges spread over the cities (residents 0..total), with
    /// `concurrency` calls in flight; returns their envelopes in a shuffled
    /// order and the issuance rate reached.
    pub async fn issue_badges(
        &self,
        total: u64,
        concurrency: usize,
    ) -> anyhow::Result<(Vec<Vec<u8>>, f64)> {
        let clients = Arc::new(self.node_clients(2)?);
        let cities = clients.len() as u64;
        let started = Instant::now();
        let results: Vec<anyhow::Result<Vec<u8>>> = futures::stream::iter(0..total)
            .map(|n| {
                let clients = Arc::clone(&clients);
                async move {
                    let city = &clients[(n % cities) as usize];
                    let mut client = city[(n / cities) as usize % city.len()].clone();
                    let issued = client
                        .issue_badge(pb::IssueBadgeRequest {
                            national_id: national_id(n),
                            name: "Bench Resident".into(),
                        })
                        .await
                        .with_context(|| format!("issuing badge {n}"))?;
                    Ok(issued.into_inner().badge)
                }
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let rate = total as f64 / started.elapsed().as_secs_f64().max(1e-9);
        let mut badges = results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
        use rand::seq::SliceRandom;
        badges.shuffle(&mut rand::thread_rng());
        Ok((badges, rate))
    }

    /// Stores one record for each of `residents` residents of the first city,
    /// in batches of `batch`; returns the rate reached.
    pub async fn ingest_residents(&self, residents: u64, batch: u64) -> anyhow::Result<f64> {
        let clients = self.node_clients(2)?;
        let first = clients.first().context("the federation has no city")?;
        let now = crate::fmt::now();
        let batch = batch.max(1);
        let started = Instant::now();
        let calls = residents.div_ceil(batch);
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..calls)
            .map(|call| {
                let mut client = first[call as usize % first.len()].clone();
                async move {
                    let records = (call * batch..((call + 1) * batch).min(residents))
                        .map(|n| record(n, n, now))
                        .collect();
                    client
                        .ingest_records(pb::IngestRequest { records })
                        .await
                        .with_context(|| format!("storing residents batch {call}"))?;
                    Ok(())
                }
            })
            .buffer_unordered(4)
            .collect()
            .await;
        results.into_iter().collect::<anyhow::Result<()>>()?;
        Ok(residents as f64 / started.elapsed().as_secs_f64().max(1e-9))
    }

    /// Stops everything and removes the directory.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop_and_inspect(|_| Ok(())).await
    }

    /// Stops everything (nodes flush and close their stores), runs
    /// `inspect` on the files left, then removes the directory.
    pub async fn stop_and_inspect<T>(
        self,
        inspect: impl FnOnce(&Layout) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let layout = self.fed.layout.clone();
        self.fed.stop_all().await?;
        let out = inspect(&layout);
        self.dir
            .close()
            .context("removing the benchmark's directory")?;
        out
    }
}
