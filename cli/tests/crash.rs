//! Crash safety: a node process killed with SIGKILL in the middle of a large
//! ingest, at several random points, keeps every acknowledged record, and no
//! batch is ever half applied.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::sync::{Arc, Mutex};

use common::{Authority, id};
use rand::Rng;
use tessera_proto::v1 as pb;

const BATCH: u32 = 1000;
const BATCHES_PER_RUN: u32 = 40;
const RUNS: u32 = 3;

fn batch(run: u32, b: u32, now: i64) -> pb::IngestRequest {
    pb::IngestRequest {
        records: (0..BATCH)
            .map(|i| pb::Record {
                record_id: format!("crash-{run}-{b}-{i}"),
                national_id: id(i % 500),
                kind: Some(pb::record::Kind::Test(pb::TestResult {
                    kind: pb::TestKind::Pcr as i32,
                    positive: false,
                    sampled_at: now - 3600,
                    lab: "LAB".into(),
                })),
            })
            .collect(),
    }
}

fn kill9(child: &mut std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_kill_9_and_batches_are_never_half_applied() {
    let a = Authority::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut total_acked = 0u32;
    for run in 0..RUNS {
        let mut node = a.start_node();
        let kill_after = rand::thread_rng().gen_range(5..BATCHES_PER_RUN - 5);
        let acked: Arc<Mutex<Vec<u32>>> = Arc::default();
        // Two writers, so a batch is in flight at the moment of the kill.
        let mut writers = vec![];
        for w in 0..2 {
            let mut op = a.client("operators/330100-hangzhou-cdc/operator");
            let acked = Arc::clone(&acked);
            writers.push(tokio::spawn(async move {
                let mut b = w;
                while b < BATCHES_PER_RUN {
                    match op.ingest_records(batch(run, b, now)).await {
                        Ok(r) => {
                            assert_eq!(r.into_inner().stored, BATCH);
                            acked.lock().unwrap().push(b);
                        }
                        Err(_) => return,
                    }
                    b += 2;
                }
            }));
        }
        loop {
            if acked.lock().unwrap().len() as u32 >= kill_after {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        kill9(&mut node);
        for w in writers {
            w.await.unwrap();
        }
        let acked = acked.lock().unwrap().clone();
        total_acked += acked.len() as u32 * BATCH;

        let node = a.start_node();
        let mut op = a.client("operators/330100-hangzhou-cdc/operator");
        for b in 0..BATCHES_PER_RUN {
            let r = op
                .ingest_records(batch(run, b, now))
                .await
                .unwrap()
                .into_inner();
            if acked.contains(&b) {
                assert_eq!(
                    (r.stored, r.duplicates),
                    (0, BATCH),
                    "run {run}: acknowledged batch {b} lost records over kill -9 after {kill_after} batches"
                );
            } else {
                assert!(
                    r.stored == BATCH || r.duplicates == BATCH,
                    "run {run}: batch {b} was half applied: {} stored, {} already there",
                    r.stored,
                    r.duplicates
                );
            }
        }
        common::stop(node);
    }
    assert!(
        total_acked >= 5 * BATCH * RUNS,
        "too few records were acknowledged to test anything"
    );
    println!("{total_acked} acknowledged records survived {RUNS} kill -9s");
}
