//! Online backup (`BackupStore`) while records stream in, and a restore
//! into a fresh data directory that a node then serves from.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_core::CityCode;
use tessera_node::config::NodeSettings;
use tessera_proto::v1 as pb;
use tessera_tests::harness::{RunningNode, node_client, write_city_bundle};
use tessera_tests::wait::wait;
use tessera_tests::{TestPki, national_id, test_record, unix_now};
use tokio::net::TcpListener;
use tonic::Code;

/// Records per batch, all of one resident.
const BATCH: usize = 10;

/// A city's bundle in `dir` whose node may back up into `dir/backups`.
async fn node_with_backups(pki: &TestPki, city: CityCode, dir: &std::path::Path) -> RunningNode {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = write_city_bundle(pki, city, dir, listener.local_addr().unwrap()).unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[storage]\nbackup_dir = \"backups\"\n");
    std::fs::write(&config, text).unwrap();
    std::fs::create_dir_all(dir.join("backups")).unwrap();
    RunningNode::start_with(config, listener).await.unwrap()
}

/// The acknowledged batches, as (resident, record ids), in order.
type Acked = Arc<Mutex<Vec<(String, Vec<String>)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_during_ingest_holds_every_record_acknowledged_before_it_began() {
    let mut pki = TestPki::new(unix_now()).unwrap();
    let hz = pki.add_city(330_100, "Hangzhou", "127.0.0.1:1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("hz");
    let node = node_with_backups(&pki, hz, &first).await;
    let op = pki.operator(hz).unwrap();

    // A feed that sends batch after batch until told to stop, noting each
    // batch once the node acknowledged it (durably stored).
    let acked: Acked = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let feed = {
        let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
        let mut client = node_client(&pki, node.addr, &op).unwrap();
        let now = unix_now();
        tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let resident = national_id(hz, n);
                let ids: Vec<String> = (0..BATCH).map(|i| format!("feed-{n}-{i}")).collect();
                let records = ids
                    .iter()
                    .map(|id| test_record(id, &resident, false, now - 3600))
                    .collect();
                client
                    .ingest_records(pb::IngestRequest { records })
                    .await
                    .unwrap();
                acked.lock().unwrap().push((resident, ids));
                n += 1;
            }
        })
    };
    let count = || acked.lock().unwrap().len();
    wait("the feed to store a few batches", Duration::from_secs(60))
        .until_async(async || count() >= 5)
        .await;

    let before: Vec<(String, Vec<String>)> = acked.lock().unwrap().clone();
    let mut client = node_client(&pki, node.addr, &op).unwrap();
    let answer = client
        .backup_store(pb::BackupStoreRequest {
            directory: "during-ingest".into(),
        })
        .await
        .unwrap()
        .into_inner();
    // The feed went on while the copy was taken, and after.
    let after_backup = count();
    wait(
        "the feed to go on after the backup",
        Duration::from_secs(60),
    )
    .until_async(async || count() >= after_backup + 2)
    .await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    feed.await.unwrap();
    node.stop().await.unwrap();

    let backup = first.join("backups/during-ingest");
    assert_eq!(answer.directory, backup.display().to_string());
    assert!(
        answer.records >= (before.len() * BATCH) as u64,
        "{answer:?}"
    );
    assert_eq!(answer.layout, tessera_node::store::LAYOUT);
    assert_eq!(answer.master_key_fingerprint.len(), 32);
    // The master key is not in the backup; the pseudonym key is.
    assert!(backup.join("pseudonym.key").is_file());
    assert!(
        !tessera_tests::scan::files_under(&backup)
            .unwrap()
            .iter()
            .any(|p| {
                std::fs::read(p).unwrap() == std::fs::read(first.join("master.key")).unwrap()
            })
    );

    // A fresh node of the same city: its bundle, the master key the backup
    // was written under, and an empty data directory to restore into.
    let second = dir.path().join("hz-restored");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = write_city_bundle(&pki, hz, &second, listener.local_addr().unwrap()).unwrap();
    std::fs::copy(first.join("master.key"), second.join("master.key")).unwrap();
    let settings = NodeSettings::load(&config).unwrap();
    let marker = tessera_node::backup::restore(&settings, &backup).unwrap();
    assert_eq!(marker.records, answer.records);
    let restored = RunningNode::start_with(config, listener).await.unwrap();
    let mut client = node_client(&pki, restored.addr, &op).unwrap();
    for (resident, ids) in &before {
        let records = client
            .export_records(pb::ExportRequest {
                national_id: resident.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .records;
        let mut held: Vec<String> = records.into_iter().map(|r| r.record_id).collect();
        held.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(held, want, "resident {resident} after restore");
    }
    // The restored node takes new records.
    client
        .ingest_records(pb::IngestRequest {
            records: vec![test_record(
                "after-restore",
                &national_id(hz, 9999),
                false,
                unix_now() - 60,
            )],
        })
        .await
        .unwrap();
    restored.stop().await.unwrap();
}

#[tokio::test]
async fn a_backup_is_refused_without_a_backup_dir_or_outside_it() {
    let mut pki = TestPki::new(unix_now()).unwrap();
    let hz = pki.add_city(330_100, "Hangzhou", "127.0.0.1:1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let op = pki.operator(hz).unwrap();

    let plain = RunningNode::start(&pki, hz, &dir.path().join("plain"))
        .await
        .unwrap();
    let mut client = node_client(&pki, plain.addr, &op).unwrap();
    let refused = client
        .backup_store(pb::BackupStoreRequest {
            directory: "b".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("backup_dir"), "{refused:?}");
    plain.stop().await.unwrap();

    let node = node_with_backups(&pki, hz, &dir.path().join("hz")).await;
    let mut client = node_client(&pki, node.addr, &op).unwrap();
    for bad in ["../escape", "/tmp/elsewhere", "", "missing-parent/b"] {
        let refused = client
            .backup_store(pb::BackupStoreRequest {
                directory: bad.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{bad}: {refused:?}");
    }
    client
        .backup_store(pb::BackupStoreRequest {
            directory: "once".into(),
        })
        .await
        .unwrap();
    let again = client
        .backup_store(pb::BackupStoreRequest {
            directory: "once".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::InvalidArgument, "{again:?}");
    assert!(again.message().contains("exists"), "{again:?}");
    assert!(!dir.path().join("escape").exists());
    node.stop().await.unwrap();
}
