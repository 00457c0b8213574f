//! Node throughput, in-process on real sled files: records ingested per second
//! with durable acknowledgement, and badges issued per second with a large
//! store, each beside a baseline measured in the same run.
//!
//! `cargo bench -p tessera-node --bench node_throughput`
//! (`TESSERA_BENCH_RESIDENTS=100000` for a quicker run; default 1,000,000).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

use std::sync::Arc;
use std::time::Instant;

use tessera_certs::keys;
use tessera_certs::profile::{CertRequest, RootCa};
use tessera_core::badge::BadgeSigner;
use tessera_core::{CityCode, Identity, Role, Scope};
use tessera_node::city::City;
use tessera_node::policy::Policy;
use tessera_node::pseudonym::{PseudonymKey, check_character};
use tessera_node::store::{SledStore, Store};
use tessera_proto::v1 as pb;

const BATCH: usize = 10_000;

fn id(n: u64) -> String {
    let first17 = format!("330106{:011}", n);
    format!("{first17}{}", check_character(first17.as_bytes()).unwrap())
}

fn record(n: u64, now: i64) -> pb::Record {
    pb::Record {
        record_id: format!("lab-{n}"),
        national_id: id(n),
        kind: Some(pb::record::Kind::Test(pb::TestResult {
            kind: pb::TestKind::Pcr as i32,
            positive: false,
            sampled_at: now - 3600 - (n % 7200) as i64,
            lab: "HZ-LAB-01".into(),
        })),
    }
}

fn signer(now: i64) -> BadgeSigner {
    let root_id = Identity::new(Role::Root, Scope::Nation).unwrap();
    let root = RootCa::create(
        &CertRequest {
            identity: root_id,
            common_name: "bench root".into(),
            hosts: vec![],
            not_before: now - 86_400,
            not_after: now + 86_400 * 365,
            serial: None,
        },
        keys::generate_key(),
    )
    .unwrap();
    let city: CityCode = "330100".parse().unwrap();
    let key = keys::generate_key();
    let der = root
        .issue(
            &CertRequest {
                identity: Identity::new(Role::BadgeSigner, Scope::City(city)).unwrap(),
                common_name: "bench signer".into(),
                hosts: vec![],
                not_before: now - 86_400,
                not_after: now + 86_400 * 365,
                serial: None,
            },
            &key,
        )
        .unwrap();
    BadgeSigner::new(key, &der).unwrap()
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        // Built and run as a test (`cargo test --all-targets`): nothing to do.
        println!("node_throughput: run with `cargo bench -p tessera-node --bench node_throughput`");
        return;
    }
    let residents: u64 = std::env::var("TESSERA_BENCH_RESIDENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let dir = tempfile::tempdir().unwrap();

    // Baseline: the same number of records, pre-encoded, written to sled in
    // batches of 10,000 with one flush per batch: storage alone.
    let base = sled::open(dir.path().join("baseline")).unwrap();
    let start = Instant::now();
    for chunk_start in (0..residents).step_by(BATCH) {
        let mut batch = sled::Batch::default();
        for n in chunk_start..(chunk_start + BATCH as u64).min(residents) {
            batch.insert(
                format!("lab-{n}").as_bytes(),
                prost::Message::encode_to_vec(&record(n, now)),
            );
        }
        base.apply_batch(batch).unwrap();
        base.flush().unwrap();
    }
    let baseline = residents as f64 / start.elapsed().as_secs_f64();
    drop(base);

    let store = Arc::new(SledStore::open(&dir.path().join("node")).unwrap());
    let city = Arc::new(City::new(
        Arc::clone(&store),
        Policy::default_policy().unwrap(),
        signer(now),
        PseudonymKey::from_bytes([9; 32]),
        BATCH,
    ));
    // Ingest: 2 concurrent writers, batches of 10,000, each acknowledged only
    // once durable.
    let start = Instant::now();
    rt.block_on(async {
        let mut tasks = vec![];
        for w in 0..2u64 {
            let city = Arc::clone(&city);
            tasks.push(tokio::spawn(async move {
                let mut n = w * BATCH as u64;
                while n < residents {
                    let end = (n + BATCH as u64).min(residents);
                    let batch: Vec<pb::Record> = (n..end).map(|i| record(i, now)).collect();
                    let out = city.ingest(&batch, now).await.unwrap();
                    assert_eq!(out.stored as u64, end - n);
                    n += 2 * BATCH as u64;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let ingest = residents as f64 / start.elapsed().as_secs_f64();

    // Issue: 8 concurrent callers, 20,000 badges for random residents of the
    // full store; each durable before it is returned.
    let issues = 20_000u64;
    let start = Instant::now();
    rt.block_on(async {
        let mut tasks = vec![];
        for w in 0..8u64 {
            let city = Arc::clone(&city);
            tasks.push(tokio::spawn(async move {
                for i in 0..issues / 8 {
                    let n = (w * 7919 + i * 104_729) % residents;
                    city.issue(&id(n), "王芳", now).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let issue = issues as f64 / start.elapsed().as_secs_f64();
    // Baseline for issuance: signing alone, on one core.
    let s = signer(now);
    let claims = tessera_core::BadgeClaims {
        issuer_city: "330100".parse().unwrap(),
        badge_id: tessera_core::BadgeId::from_bytes([1; 16]),
        colour: tessera_core::Colour::Green,
        issued_at: now,
        valid_until: now + 3600,
        policy_version: 1,
        holder_hint: tessera_core::HolderHint::mask("王芳", &id(1)),
    };
    let start = Instant::now();
    for _ in 0..issues {
        s.sign(&claims).unwrap();
    }
    let sign_only = issues as f64 / start.elapsed().as_secs_f64();
    store.flush().unwrap();

    println!("residents stored:                 {residents}");
    println!("baseline sled batch+flush:        {baseline:>10.0} records/s");
    println!(
        "ingest (validated, durable ack):  {ingest:>10.0} records/s  ({:.2} x baseline)",
        ingest / baseline
    );
    println!("baseline badge signing, 1 core:   {sign_only:>10.0} badges/s");
    println!(
        "issue (score, sign, durable):     {issue:>10.0} badges/s  ({:.2} x signing)",
        issue / sign_only
    );
}
