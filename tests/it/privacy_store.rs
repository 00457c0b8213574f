//! Encryption at rest, erasure and export on a real node over mutual TLS:
//! a stolen data directory shows no record, and after an erasure a copy of
//! the data directory taken before it cannot be decrypted with the key the
//! node keeps.

use std::path::{Path, PathBuf};

use prost::Message;
use tessera_core::CityCode;
use tessera_node::pseudonym::{NationalId, Pseudonym, PseudonymKey};
use tessera_node::store::{SledStore, Store, StoreError};
use tessera_node::vault::{MasterKey, VaultError, read_key_file};
use tessera_proto::v1 as pb;
use tessera_tests::harness::{RunningNode, node_client, write_city_bundle};
use tessera_tests::{TestPki, national_id, test_record, unix_now};
use tokio::net::TcpListener;

use crate::metrics::{free_addr, get, sample, with_metrics};

/// Distinctive values: found in a file only if a record is stored in the
/// clear.
const LAB_A: &str = "LAB-QUASAR-7731";
const PRODUCT_A: &str = "VAX-ORION-4419";
const LAB_B: &str = "LAB-PULSAR-2286";

fn lab_test(id: &str, resident: &str, positive: bool, at: i64, lab: &str) -> pb::Record {
    let mut r = test_record(id, resident, positive, at);
    if let Some(pb::record::Kind::Test(t)) = r.kind.as_mut() {
        t.lab = lab.into();
    }
    r
}

fn vaccination(id: &str, resident: &str, at: i64, product: &str) -> pb::Record {
    pb::Record {
        record_id: id.into(),
        national_id: resident.into(),
        kind: Some(pb::record::Kind::Vaccination(pb::Vaccination {
            product: product.into(),
            dose: 1,
            given_at: at,
        })),
    }
}

/// Every byte of every file under `dir`.
fn raw_bytes(dir: &Path) -> Vec<u8> {
    let mut out = vec![];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(raw_bytes(&path));
        } else {
            out.extend(std::fs::read(&path).unwrap());
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// The pseudonym of `national_id` under the key in `data_dir`.
fn pseudonym(data_dir: &Path, national_id: &str) -> Pseudonym {
    let key = read_key_file(&data_dir.join("pseudonym.key"))
        .unwrap()
        .unwrap();
    PseudonymKey::from_bytes(key).pseudonym(&NationalId::parse(national_id).unwrap())
}

fn master_key(path: &Path) -> MasterKey {
    MasterKey::from_bytes(read_key_file(path).unwrap().unwrap())
}

struct Node {
    pki: TestPki,
    hz: CityCode,
    _dir: tempfile::TempDir,
    bundle: PathBuf,
    metrics: std::net::SocketAddr,
    node: RunningNode,
}

async fn node() -> Node {
    let mut pki = TestPki::new(unix_now()).unwrap();
    let hz = pki.add_city(330_100, "Hangzhou", "127.0.0.1:1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("hz");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = write_city_bundle(&pki, hz, &bundle, listener.local_addr().unwrap()).unwrap();
    let metrics = free_addr();
    with_metrics(&config, metrics);
    let node = RunningNode::start_with(config, listener).await.unwrap();
    Node {
        pki,
        hz,
        _dir: dir,
        bundle,
        metrics,
        node,
    }
}

#[tokio::test]
async fn a_stolen_data_directory_holds_no_record_plaintext() {
    let n = node().await;
    let op = n.pki.operator(n.hz).unwrap();
    let mut client = node_client(&n.pki, n.node.addr, &op).unwrap();
    let resident = national_id(n.hz, 1);
    let now = unix_now();
    let records = vec![
        lab_test("steal-1", &resident, true, now - 60, LAB_A),
        vaccination("steal-2", &resident, now - 3600, PRODUCT_A),
    ];
    client
        .ingest_records(pb::IngestRequest {
            records: records.clone(),
        })
        .await
        .unwrap();
    n.node.stop().await.unwrap();

    let data = n.bundle.join("data");
    let raw = raw_bytes(&data);
    // The scan reads the store: the record ids (keys) are there...
    assert!(contains(&raw, b"steal-1"), "the scan misses the store");
    // ...and what the node would store unencrypted (the record without its
    // ID number) carries the lab code and product: had it been written as
    // it is, the scan would find them.
    for (record, secret) in records.iter().zip([LAB_A, PRODUCT_A]) {
        let mut plain = record.clone();
        plain.national_id.clear();
        assert!(contains(&plain.encode_to_vec(), secret.as_bytes()));
        assert!(
            !contains(&raw, secret.as_bytes()),
            "{secret} is readable in the data directory"
        );
    }
    // The key that decrypts them is not in the directory.
    let key = n.bundle.join("master.key");
    assert!(key.exists() && !key.starts_with(&data));
    // With it, they are there.
    let store = SledStore::open_copy(&data.join("store"), master_key(&key)).unwrap();
    let plain = store
        .records_of(&pseudonym(&data, &resident))
        .unwrap()
        .concat();
    assert!(contains(&plain, LAB_A.as_bytes()) && contains(&plain, PRODUCT_A.as_bytes()));
}

#[tokio::test]
async fn after_erasure_a_copied_data_directory_cannot_be_decrypted() {
    let n = node().await;
    let op = n.pki.operator(n.hz).unwrap();
    let mut client = node_client(&n.pki, n.node.addr, &op).unwrap();
    let erased = national_id(n.hz, 1);
    let kept = national_id(n.hz, 2);
    let now = unix_now();
    client
        .ingest_records(pb::IngestRequest {
            records: vec![
                lab_test("era-1", &erased, true, now - 60, LAB_A),
                vaccination("era-2", &erased, now - 7200, PRODUCT_A),
                lab_test("kept-1", &kept, false, now - 60, LAB_B),
            ],
        })
        .await
        .unwrap();
    let badge = client
        .issue_badge(pb::IssueBadgeRequest {
            national_id: erased.clone(),
            name: "张三".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(badge.colour, pb::Colour::Red as i32);

    // A copy of the data directory, taken with the node stopped (a backup,
    // a stolen disk), and the master key as it is then.
    let config = n.node.config.clone();
    let addr = n.node.addr;
    n.node.stop().await.unwrap();
    let data = n.bundle.join("data");
    let key_path = n.bundle.join("master.key");
    let copy = tempfile::tempdir().unwrap();
    copy_dir(&data, copy.path());
    let old_key = master_key(&key_path);

    let node = RunningNode::start_with(config, TcpListener::bind(addr).await.unwrap())
        .await
        .unwrap();
    let mut client = node_client(&n.pki, node.addr, &op).unwrap();
    let export = client
        .export_records(pb::ExportRequest {
            national_id: erased.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = export
        .records
        .iter()
        .map(|r| r.record_id.as_str())
        .collect();
    assert_eq!(ids, ["era-2", "era-1"], "oldest first");
    assert!(export.records.iter().all(|r| r.national_id.is_empty()));

    let answer = client
        .erase_resident(pb::EraseRequest {
            national_id: erased.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((answer.records, answer.badges), (2, 1));
    let export = client
        .export_records(pb::ExportRequest {
            national_id: erased.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(export.records.is_empty());
    let kept_export = client
        .export_records(pb::ExportRequest {
            national_id: kept.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kept_export.records.len(), 1);
    let mut gateway = node_client(&n.pki, node.addr, &n.pki.gateway).unwrap();
    let status = gateway
        .check_status(pb::CheckStatusRequest {
            badge_ids: vec![badge.badge_id.clone()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.statuses, vec![pb::BadgeStatus::Unknown as i32]);
    let (_, text) = get(n.metrics, "/metrics").await;
    assert_eq!(sample(&text, "tessera_node_erasures_total"), Some(1.0));
    assert_eq!(
        sample(&text, "tessera_retention_deletions_total{kind=\"test\"}"),
        Some(0.0),
        "the sweep at start ran and deleted nothing"
    );
    node.stop().await.unwrap();

    // The copy with the key the node holds now: nothing decrypts, neither
    // the erased resident nor anyone else in it.
    let current = master_key(&key_path);
    assert_ne!(
        current, old_key,
        "the erasure did not rotate the master key"
    );
    assert!(
        !n.bundle.join("master.key.next").exists(),
        "a rotation was left half done"
    );
    let stolen = SledStore::open_copy(&copy.path().join("store"), current).unwrap();
    for who in [&erased, &kept] {
        let err = stolen.records_of(&pseudonym(copy.path(), who)).unwrap_err();
        assert!(
            matches!(err, StoreError::Vault(VaultError::Undecryptable(_))),
            "{err}"
        );
    }
    drop(stolen);
    // The ciphertext is in the copy: only the key stands in the way (which
    // is why an old backup of the master key defeats erasure).
    let stolen = SledStore::open_copy(&copy.path().join("store"), old_key).unwrap();
    let plain = stolen
        .records_of(&pseudonym(copy.path(), &erased))
        .unwrap()
        .concat();
    assert!(contains(&plain, LAB_A.as_bytes()));
    drop(stolen);

    // The live store under the current key: the remaining resident is read,
    // the erased one is gone.
    let live = SledStore::open(&data.join("store"), &key_path).unwrap();
    let plain = live.records_of(&pseudonym(&data, &kept)).unwrap().concat();
    assert!(contains(&plain, LAB_B.as_bytes()));
    assert!(
        live.records_of(&pseudonym(&data, &erased))
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_node_refuses_a_master_key_inside_its_data_directory_or_a_lost_one() {
    let n = node().await;
    let op = n.pki.operator(n.hz).unwrap();
    let mut client = node_client(&n.pki, n.node.addr, &op).unwrap();
    client
        .ingest_records(pb::IngestRequest {
            records: vec![test_record(
                "lost-1",
                &national_id(n.hz, 3),
                false,
                unix_now() - 60,
            )],
        })
        .await
        .unwrap();
    let config = n.node.config.clone();
    n.node.stop().await.unwrap();
    let load =
        || tessera_node::load::load(tessera_node::config::NodeSettings::load(&config).unwrap());

    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}\n[storage]\nmaster_key = \"data/master.key\"\n"),
    )
    .unwrap();
    let err = load().expect_err("started with its key inside the data directory");
    assert!(err.to_string().contains("lies inside data_dir"), "{err}");
    assert!(!n.bundle.join("data/master.key").exists());

    std::fs::write(&config, &text).unwrap();
    let key = n.bundle.join("master.key");
    std::fs::remove_file(&key).unwrap();
    let err = load().expect_err("started without its master key");
    assert!(
        err.to_string()
            .contains("restore the master key from its backup"),
        "{err}"
    );
    assert!(!key.exists(), "a new key was written for an existing store");
}
