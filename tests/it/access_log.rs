//! The access log (issue 8, access transparency) through a real node over
//! mutual TLS: every operator read of a resident's records is logged before
//! it is answered, every issuance is logged, a resident can check the
//! entries about them, concurrent
//! reads never fork the chain, and an edited, removed, reordered or
//! truncated log is detected — by mutating the node's real sled files.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tessera_core::CityCode;
use tessera_node::access_log::{self, Checkpoint, Entry, Problem};
use tessera_node::config::NodeSettings;
use tessera_proto::v1 as pb;
use tessera_tests::harness::{RunningNode, node_client};
use tessera_tests::wait::wait;
use tessera_tests::{TestPki, national_id, test_record, unix_now};
use tonic::Code;

struct Node {
    pki: TestPki,
    hz: CityCode,
    _dir: tempfile::TempDir,
    node: RunningNode,
}

async fn start() -> Node {
    let mut pki = TestPki::new(unix_now()).unwrap();
    let hz = pki.add_city(330_100, "Hangzhou", "127.0.0.1:1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = RunningNode::start(&pki, hz, &dir.path().join("hz"))
        .await
        .unwrap();
    Node {
        pki,
        hz,
        _dir: dir,
        node,
    }
}

fn store_dir(config: &Path) -> PathBuf {
    NodeSettings::load(config).unwrap().data_dir.join("store")
}

/// `lp(x)`: u32 big-endian length, then the bytes (docs/PROTOCOL.md).
fn lp(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The entry hash exactly as docs/PROTOCOL.md ("Access log") defines it,
/// written from the document and not from the node's code: what a
/// resident's app computes.
pub(crate) fn documented_hash(e: &pb::AccessEntry, subject: &[u8]) -> Vec<u8> {
    let mut m = vec![];
    lp(&mut m, b"tessera/access-log/v1");
    m.extend_from_slice(&e.sequence.to_be_bytes());
    m.extend_from_slice(&e.at.to_be_bytes());
    lp(&mut m, e.action.as_bytes());
    lp(&mut m, e.actor_serial.as_bytes());
    m.extend_from_slice(&e.actor_city.to_be_bytes());
    lp(&mut m, &e.previous_hash);
    lp(&mut m, subject);
    Sha256::digest(&m).to_vec()
}

async fn explain(
    c: &mut tessera_proto::v1::city_node_client::CityNodeClient<tonic::transport::Channel>,
    id: &str,
) -> Result<pb::ExplainResponse, tonic::Status> {
    c.explain(pb::ExplainRequest {
        national_id: id.into(),
    })
    .await
    .map(tonic::Response::into_inner)
}

async fn access_log(
    c: &mut tessera_proto::v1::city_node_client::CityNodeClient<tonic::transport::Channel>,
    id: &str,
) -> pb::AccessLogResponse {
    c.access_log(pb::AccessLogRequest {
        national_id: id.into(),
    })
    .await
    .unwrap()
    .into_inner()
}

#[tokio::test]
async fn every_operator_read_is_logged_and_the_resident_can_check_the_entries_about_them() {
    let f = start().await;
    let op = f.pki.operator(f.hz).unwrap();
    let mut c = node_client(&f.pki, f.node.addr, &op).unwrap();
    let me = c.who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner();
    let (a, b) = (national_id(f.hz, 1), national_id(f.hz, 2));
    c.ingest_records(pb::IngestRequest {
        records: vec![
            test_record("a-1", &a, false, unix_now() - 3600),
            test_record("b-1", &b, false, unix_now() - 3600),
        ],
    })
    .await
    .unwrap();
    // Ingest is not a read of a resident's records: no entry.
    explain(&mut c, &a).await.unwrap(); // 1
    explain(&mut c, &b).await.unwrap(); // 2
    // Export is logged before it is answered, whatever its answer.
    let _ = c
        .export_records(pb::ExportRequest {
            national_id: a.clone(),
        })
        .await; // 3
    // An invalid ID number reads nobody's records: refused, no entry.
    let bad = explain(&mut c, "not-an-id-number").await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);

    let log = access_log(&mut c, &a).await; // 4, and its answer holds it
    let actions: Vec<(u64, &str)> = log
        .entries
        .iter()
        .map(|e| (e.sequence, e.action.as_str()))
        .collect();
    assert_eq!(actions, [(1, "explain"), (3, "export"), (4, "access_log")]);
    assert_eq!(log.length, 4);
    assert_eq!(log.subject.len(), 32);
    // The resident's app: each entry's hash from its fields and subject;
    // the last entry is the head.
    for e in &log.entries {
        assert_eq!(
            e.hash,
            documented_hash(e, &log.subject),
            "entry {}",
            e.sequence
        );
        assert_eq!(e.actor_serial, me.serial);
        assert_eq!(e.actor_city, 330_100);
        assert_eq!(e.hash.len(), 32);
    }
    assert_eq!(log.entries[0].previous_hash, vec![0; 32]);
    assert_eq!(log.head_hash, log.entries[2].hash);
    let at = log.entries[0].at;
    assert!(at > 0 && log.entries.iter().all(|e| e.at >= at));

    // B sees only B's entries, and not A's subject.
    let other = access_log(&mut c, &b).await; // 5
    let seqs: Vec<u64> = other.entries.iter().map(|e| e.sequence).collect();
    assert_eq!(seqs, [2, 5]);
    assert_ne!(other.subject, log.subject);
    // Entry 2 links to entry 1, which only the whole log shows.
    assert_eq!(other.entries[0].previous_hash, log.entries[0].hash);

    // A second look returns the entries seen before unchanged: the app
    // that kept them can tell a removal or an edit.
    let again = access_log(&mut c, &a).await; // 6
    assert_eq!(again.entries[..3], log.entries[..]);
    assert_eq!(again.length, 6);

    // The whole log on disk verifies, and its head is the one returned.
    let config = f.node.config.clone();
    f.node.stop().await.unwrap();
    let tree = when_unlocked(|| {
        tessera_node::store::SledStore::open_clear_tree(&store_dir(&config), access_log::TREE)
    });
    let report = access_log::verify(&tree, None).unwrap();
    assert_eq!(report.problem, None);
    assert_eq!(report.length, 6);
    assert_eq!(report.head_hash.to_vec(), again.head_hash);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reads_get_distinct_sequences_and_one_unbroken_chain() {
    let f = start().await;
    let op = f.pki.operator(f.hz).unwrap();
    let residents: Vec<String> = (0..5).map(|n| national_id(f.hz, n)).collect();
    // Six connections, each carrying ten calls at once.
    let clients: Vec<_> = (0..6)
        .map(|_| node_client(&f.pki, f.node.addr, &op).unwrap())
        .collect();
    let mut calls = vec![];
    for i in 0..60usize {
        let mut c = clients[i % clients.len()].clone();
        let id = residents[i % residents.len()].clone();
        calls.push(tokio::spawn(async move {
            explain(&mut c, &id).await.map(|_| ())
        }));
    }
    for call in futures::future::join_all(calls).await {
        call.unwrap().unwrap();
    }
    let mut c = node_client(&f.pki, f.node.addr, &op).unwrap();
    let mut seen = vec![];
    for id in &residents {
        let log = access_log(&mut c, id).await;
        assert_eq!(
            log.entries.iter().filter(|e| e.action == "explain").count(),
            12
        );
        seen.extend(
            log.entries
                .iter()
                .filter(|e| e.action == "explain")
                .map(|e| e.sequence),
        );
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=60).collect::<Vec<u64>>());

    let config = f.node.config.clone();
    f.node.stop().await.unwrap();
    let tree = when_unlocked(|| {
        tessera_node::store::SledStore::open_clear_tree(&store_dir(&config), access_log::TREE)
    });
    let report = access_log::verify(&tree, None).unwrap();
    assert_eq!(report.problem, None, "{:?}", report.problem);
    assert_eq!(report.length, 65);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_issuance_is_logged_in_decided_batches_and_a_refused_one_is_not() {
    let f = start().await;
    let op = f.pki.operator(f.hz).unwrap();
    let residents: Vec<String> = (0..5).map(|n| national_id(f.hz, n)).collect();
    let mut c = node_client(&f.pki, f.node.addr, &op).unwrap();
    let me = c.who_am_i(pb::WhoAmIRequest {}).await.unwrap().into_inner();
    // An ID number that fails its checksum: refused, no entry.
    let bad = c
        .issue_badge(pb::IssueBadgeRequest {
            national_id: "not-an-id-number".into(),
            name: "Li Lei".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    // Forty issuances at once over four connections: the node decides them
    // in batches, each batch's entries appended together.
    let clients: Vec<_> = (0..4)
        .map(|_| node_client(&f.pki, f.node.addr, &op).unwrap())
        .collect();
    let mut calls = vec![];
    for i in 0..40usize {
        let mut c = clients[i % clients.len()].clone();
        let id = residents[i % residents.len()].clone();
        calls.push(tokio::spawn(async move {
            c.issue_badge(pb::IssueBadgeRequest {
                national_id: id,
                name: "Li Lei".into(),
            })
            .await
            .map(|_| ())
        }));
    }
    for call in futures::future::join_all(calls).await {
        call.unwrap().unwrap();
    }
    let mut seen = vec![];
    for id in &residents {
        let log = access_log(&mut c, id).await;
        let issued: Vec<&pb::AccessEntry> =
            log.entries.iter().filter(|e| e.action == "issue").collect();
        assert_eq!(issued.len(), 8, "{id}");
        for e in &issued {
            assert_eq!(e.hash, documented_hash(e, &log.subject));
            assert_eq!(
                (e.actor_serial.as_str(), e.actor_city),
                (me.serial.as_str(), 330_100)
            );
        }
        seen.extend(issued.iter().map(|e| e.sequence));
        // What the resident's app checks passes with issuance entries in it.
        let actions = access_log::check_response(&log).unwrap();
        assert_eq!(actions.last(), Some(&access_log::Action::AccessLog));
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=40).collect::<Vec<u64>>());

    let config = f.node.config.clone();
    f.node.stop().await.unwrap();
    let tree = when_unlocked(|| {
        tessera_node::store::SledStore::open_clear_tree(&store_dir(&config), access_log::TREE)
    });
    let report = access_log::verify(&tree, None).unwrap();
    assert_eq!(report.problem, None, "{:?}", report.problem);
    assert_eq!(report.length, 45);
}

/// A node that served eight reads of three residents, stopped: the path of
/// its store.
async fn logged_store() -> (tempfile::TempDir, PathBuf) {
    let f = start().await;
    let op = f.pki.operator(f.hz).unwrap();
    let mut c = node_client(&f.pki, f.node.addr, &op).unwrap();
    for n in 0..8 {
        explain(&mut c, &national_id(f.hz, n % 3)).await.unwrap();
    }
    let config = f.node.config.clone();
    f.node.stop().await.unwrap();
    (f._dir, store_dir(&config))
}

/// Opens the node's sled files directly, changes the access-log tree with
/// `edit`, flushes and closes them; then verifies them as
/// `tessera node verify-access-log` does, from a fresh open.
fn tamper_then_verify(
    store: &Path,
    edit: impl FnOnce(&sled::Tree),
    expect: Option<Checkpoint>,
) -> access_log::Report {
    {
        let db = when_unlocked(|| sled::Config::new().path(store).open());
        let tree = db.open_tree(access_log::TREE).unwrap();
        edit(&tree);
        db.flush().unwrap();
    }
    let tree =
        when_unlocked(|| tessera_node::store::SledStore::open_clear_tree(store, access_log::TREE));
    access_log::verify(&tree, expect).unwrap()
}

/// Opens with `open`, trying again while the directory is still locked:
/// sled's flusher thread lets go of a database just closed a moment later.
fn when_unlocked<T, E: std::fmt::Display + std::fmt::Debug>(
    mut open: impl FnMut() -> Result<T, E>,
) -> T {
    let opened = wait(
        "the store to be unlocked after the node stopped",
        std::time::Duration::from_secs(10),
    )
    .every(std::time::Duration::from_millis(10))
    .until(|| match open() {
        // sled's "could not acquire lock", or the store's Locked ("in use
        // by another process").
        Err(e) if format!("{e} {e:?}").to_lowercase().contains("lock") => None,
        other => Some(other),
    });
    opened.unwrap()
}

/// The key entry `n` is stored under (the layout in access_log.rs).
fn key(n: u64) -> Vec<u8> {
    [&b"e"[..], &n.to_be_bytes()].concat()
}

fn entry(tree: &sled::Tree, n: u64) -> Entry {
    Entry::decode(&tree.get(key(n)).unwrap().unwrap()).unwrap()
}

#[tokio::test]
async fn an_untouched_log_verifies_and_matches_a_checkpoint_of_itself() {
    let (_dir, store) = logged_store().await;
    let report = tamper_then_verify(&store, |_| {}, None);
    assert_eq!(report.problem, None);
    assert_eq!(report.length, 8);
    let checkpoint = Checkpoint {
        sequence: 8,
        hash: report.head_hash,
    };
    let again = tamper_then_verify(&store, |_| {}, Some(checkpoint));
    assert_eq!(again, report);
}

#[tokio::test]
async fn an_edited_access_log_entry_is_detected_at_its_sequence() {
    let (_dir, store) = logged_store().await;
    // One byte of entry 5's stored time flipped: its hash no longer matches.
    let report = tamper_then_verify(
        &store,
        |t| {
            let mut bytes = t.get(key(5)).unwrap().unwrap().to_vec();
            bytes[1 + 8 + 7] ^= 1; // the last byte of `at`
            t.insert(key(5), bytes).unwrap();
        },
        None,
    );
    assert_eq!(report.problem, Some(Problem::HashMismatch { sequence: 5 }));
    assert_eq!(report.length, 8);

    // Edited again with its hash recomputed: entry 6 no longer links to it.
    let (_dir, store) = logged_store().await;
    let report = tamper_then_verify(
        &store,
        |t| {
            let mut e = entry(t, 5);
            e.actor.serial = "00".into();
            e.hash = e.compute_hash();
            t.insert(key(5), e.encode()).unwrap();
        },
        None,
    );
    assert_eq!(report.problem, Some(Problem::BrokenLink { sequence: 6 }));
}

#[tokio::test]
async fn a_removed_access_log_entry_is_detected_at_its_sequence() {
    let (_dir, store) = logged_store().await;
    let report = tamper_then_verify(
        &store,
        |t| {
            t.remove(key(4)).unwrap();
        },
        None,
    );
    assert_eq!(
        report.problem,
        Some(Problem::Missing {
            sequence: 4,
            next: 5
        })
    );
    assert_eq!(report.length, 7);
}

#[tokio::test]
async fn a_truncated_tail_is_detected_by_the_head_and_by_a_kept_checkpoint() {
    let (_dir, store) = logged_store().await;
    let full = tamper_then_verify(&store, |_| {}, None);
    let kept = Checkpoint {
        sequence: 8,
        hash: full.head_hash,
    };
    let report = tamper_then_verify(
        &store,
        |t| {
            t.remove(key(8)).unwrap();
        },
        None,
    );
    assert!(
        matches!(
            report.problem,
            Some(Problem::Head {
                head_length: 8,
                length: 7,
                ..
            })
        ),
        "{:?}",
        report.problem
    );
    // The head rewritten to match the shorter log: only the checkpoint kept
    // outside the node still tells.
    let report = tamper_then_verify(
        &store,
        |t| {
            let e = entry(t, 7);
            let head = [&7u64.to_be_bytes()[..], &e.hash].concat();
            t.insert(b"h", head).unwrap();
            // Entry 8's subject index key too, so nothing dangles.
            let gone: Vec<_> = t
                .scan_prefix(b"s")
                .keys()
                .map(Result::unwrap)
                .filter(|k| k.ends_with(&8u64.to_be_bytes()))
                .collect();
            assert_eq!(gone.len(), 1);
            t.remove(&gone[0]).unwrap();
        },
        None,
    );
    assert_eq!(report.problem, None);
    let report = tamper_then_verify(&store, |_| {}, Some(kept));
    assert_eq!(
        report.problem,
        Some(Problem::CheckpointMissing {
            sequence: 8,
            length: 7
        })
    );
}

#[tokio::test]
async fn swapped_access_log_entries_are_detected_at_the_first() {
    let (_dir, store) = logged_store().await;
    let report = tamper_then_verify(
        &store,
        |t| {
            let three = t.get(key(3)).unwrap().unwrap();
            let four = t.get(key(4)).unwrap().unwrap();
            t.insert(key(3), four).unwrap();
            t.insert(key(4), three).unwrap();
        },
        None,
    );
    assert_eq!(
        report.problem,
        Some(Problem::Misplaced {
            sequence: 3,
            found: 4
        })
    );
    // Renumbered and rehashed to hide the swap: the links break at 3.
    let (_dir, store) = logged_store().await;
    let report = tamper_then_verify(
        &store,
        |t| {
            let (mut three, mut four) = (entry(t, 4), entry(t, 3));
            three.sequence = 3;
            three.previous_hash = entry(t, 2).hash;
            three.hash = three.compute_hash();
            four.sequence = 4;
            four.previous_hash = three.hash;
            four.hash = four.compute_hash();
            t.insert(key(3), three.encode()).unwrap();
            t.insert(key(4), four.encode()).unwrap();
        },
        None,
    );
    // Entries 3 and 4 are of different residents (reads cycle over three):
    // the subject index does not name the new entry 3 for its resident.
    assert_eq!(report.problem, Some(Problem::NotIndexed { sequence: 3 }));
}

#[tokio::test]
async fn an_entry_hidden_from_its_resident_is_detected() {
    let (_dir, store) = logged_store().await;
    let report = tamper_then_verify(
        &store,
        |t| {
            let e = entry(t, 2);
            let index = [&b"s"[..], e.subject.as_bytes(), &2u64.to_be_bytes()].concat();
            assert!(t.remove(index).unwrap().is_some());
        },
        None,
    );
    assert_eq!(report.problem, Some(Problem::NotIndexed { sequence: 2 }));
}

#[tokio::test]
async fn a_node_with_a_damaged_log_refuses_reads_instead_of_answering_them_unlogged() {
    let f = start().await;
    let op = f.pki.operator(f.hz).unwrap();
    let mut c = node_client(&f.pki, f.node.addr, &op).unwrap();
    let id = national_id(f.hz, 1);
    explain(&mut c, &id).await.unwrap();
    explain(&mut c, &id).await.unwrap();
    let config = f.node.config.clone();
    f.node.stop().await.unwrap();
    let report = tamper_then_verify(
        &store_dir(&config),
        |t| {
            t.remove(key(2)).unwrap();
        },
        None,
    );
    assert!(report.problem.is_some());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node = RunningNode::start_with(config, listener).await.unwrap();
    let mut c = node_client(&f.pki, node.addr, &op).unwrap();
    let refused = explain(&mut c, &id).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("verify-access-log"),
        "{}",
        refused.message()
    );
    // Issuance is not logged, but it tells a resident's colour: while the
    // log is damaged it is refused too, so it cannot stand in for Explain.
    let refused = c
        .issue_badge(pb::IssueBadgeRequest {
            national_id: id,
            name: "Li Lei".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    node.stop().await.unwrap();
}
