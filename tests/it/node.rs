//! A city node over mutual TLS on 127.0.0.1: ingest, issue, verify, revoke,
//! restart, and refusal of bad batches (who may call what: authz_matrix.rs).

use tessera_core::trust::CheckedTrustList;
use tessera_core::{CityCode, Colour, verify};
use tessera_proto::v1 as pb;
use tessera_tests::harness::{RunningNode, node_client};
use tessera_tests::{TestPki, exposure_record, national_id, test_record, unix_now};
use tonic::Code;

struct Fed {
    pki: TestPki,
    hz: CityCode,
    wuhan: CityCode,
    _dir: tempfile::TempDir,
    node: RunningNode,
}

async fn federation() -> Fed {
    let mut pki = TestPki::new(unix_now()).unwrap();
    let hz = pki.add_city(330_100, "Hangzhou", "127.0.0.1:1").unwrap();
    let wuhan = pki.add_city(420_100, "Wuhan", "127.0.0.1:2").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = RunningNode::start(&pki, hz, &dir.path().join("hz"))
        .await
        .unwrap();
    Fed {
        pki,
        hz,
        wuhan,
        _dir: dir,
        node,
    }
}

async fn status(f: &Fed, badge_id: &[u8]) -> pb::BadgeStatus {
    let mut gw = node_client(&f.pki, f.node.addr, &f.pki.gateway).unwrap();
    let resp = gw
        .check_status(pb::CheckStatusRequest {
            badge_ids: vec![badge_id.to_vec()],
        })
        .await
        .unwrap()
        .into_inner();
    pb::BadgeStatus::try_from(resp.statuses[0]).unwrap()
}

/// Explain names the rule a negative test lifts and until when, and the
/// green badge ends when that lift does (issue 21).
#[tokio::test]
async fn explain_says_which_rule_a_negative_test_lifts_and_until_when() {
    let f = federation().await;
    let now = unix_now();
    let op = f.pki.operator(f.hz).unwrap();
    let mut client = node_client(&f.pki, f.node.addr, &op).unwrap();
    let resident = national_id(f.hz, 7);
    let sampled = now - 50 * 3600;
    client
        .ingest_records(pb::IngestRequest {
            records: vec![
                exposure_record("contact-1", &resident, true, now - 100 * 3600),
                test_record("neg-1", &resident, false, sampled),
            ],
        })
        .await
        .unwrap();
    let explained = client
        .explain(pb::ExplainRequest {
            national_id: resident.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(explained.colour, pb::Colour::Green as i32);
    assert!(explained.effects.is_empty(), "{:?}", explained.effects);
    let until = sampled + 72 * 3600;
    assert_eq!(explained.valid_until, until);
    let lifted: Vec<_> = explained
        .lifted
        .iter()
        .map(|l| {
            (
                l.rule_id.as_str(),
                l.record_ids.clone(),
                l.lifted_by.clone(),
                l.lifted_until,
            )
        })
        .collect();
    assert_eq!(
        lifted,
        [(
            "close-contact-14d",
            vec!["contact-1".to_owned()],
            vec!["neg-1".to_owned()],
            until
        )]
    );
    let sentence = &explained.lifted[0].sentence;
    assert!(
        sentence.starts_with("Rule close-contact-14d (")
            && sentence.ends_with(&format!(
                "does not apply: the negative test neg-1, taken after contact-1, lifts it until {}.",
                tessera_node::policy::rfc3339(until)
            )),
        "{sentence}"
    );
}

#[tokio::test]
async fn ingest_issue_verify_revoke_and_survive_a_restart() {
    let f = federation().await;
    let now = unix_now();
    let op = f.pki.operator(f.hz).unwrap();
    let mut client = node_client(&f.pki, f.node.addr, &op).unwrap();
    let resident = national_id(f.hz, 1);

    let ack = client
        .ingest_records(pb::IngestRequest {
            records: vec![test_record("lab-1", &resident, false, now - 3600)],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((ack.stored, ack.duplicates), (1, 0));

    let badge = client
        .issue_badge(pb::IssueBadgeRequest {
            national_id: resident.clone(),
            name: "张三丰".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(badge.colour, pb::Colour::Green as i32);
    // A negative test alone changes nothing (issue 21): the full 72 h of a
    // green badge, brought forward by at most an hour at random (unlinkable
    // ends, node/src/city.rs).
    let full = now + 72 * 3600;
    assert!(
        (full - tessera_node::city::VALIDITY_JITTER_SECS..=unix_now() + 72 * 3600)
            .contains(&badge.valid_until),
        "{} not within the hour before {full}",
        badge.valid_until
    );

    let list =
        CheckedTrustList::verify(&f.pki.trust_list(1).unwrap(), &f.pki.anchor().unwrap(), now)
            .unwrap();
    let verified = verify(&badge.badge, &list, now).unwrap();
    assert_eq!(verified.claims().colour, Colour::Green);
    assert_eq!(verified.claims().holder_hint.masked_name(), "张**");
    assert_eq!(verified.claims().holder_hint.id_tail(), &resident[14..]);
    assert!(
        !badge
            .badge
            .windows(6)
            .any(|w| w == &resident.as_bytes()[..6]),
        "ID number in clear"
    );
    assert_eq!(
        tessera_core::verify_text(&badge.qr_text, &list, now).unwrap(),
        verified
    );
    assert_eq!(status(&f, &badge.badge_id).await, pb::BadgeStatus::Active);

    // A positive test revokes the green badge at once.
    client
        .ingest_records(pb::IngestRequest {
            records: vec![test_record("lab-2", &resident, true, now - 60)],
        })
        .await
        .unwrap();
    assert_eq!(status(&f, &badge.badge_id).await, pb::BadgeStatus::Revoked);
    let explained = client
        .explain(pb::ExplainRequest {
            national_id: resident.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(explained.colour, pb::Colour::Red as i32);
    let positive = explained
        .effects
        .iter()
        .find(|e| e.rule_id == "positive-test-14d")
        .unwrap();
    assert_eq!(positive.record_ids, vec!["lab-2".to_string()]);

    // A red badge, which supersedes nothing still active.
    let red = client
        .issue_badge(pb::IssueBadgeRequest {
            national_id: resident.clone(),
            name: "张三丰".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(red.colour, pb::Colour::Red as i32);

    // Restart on the same data directory: every record and badge state is there.
    let Fed {
        pki,
        hz,
        wuhan,
        _dir,
        node,
    } = f;
    let node = node.restart().await.unwrap();
    let f = Fed {
        pki,
        hz,
        wuhan,
        _dir,
        node,
    };
    assert_eq!(status(&f, &badge.badge_id).await, pb::BadgeStatus::Revoked);
    assert_eq!(status(&f, &red.badge_id).await, pb::BadgeStatus::Active);
    let mut client = node_client(&f.pki, f.node.addr, &op).unwrap();
    let again = client
        .ingest_records(pb::IngestRequest {
            records: vec![
                test_record("lab-1", &resident, false, now - 3600),
                test_record("lab-2", &resident, true, now - 60),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (again.stored, again.duplicates),
        (0, 2),
        "records lost over the restart"
    );
    let explained = client
        .explain(pb::ExplainRequest {
            national_id: resident,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(explained.colour, pb::Colour::Red as i32);
    f.node.stop().await.unwrap();
}

#[tokio::test]
async fn a_newer_badge_supersedes_the_older_and_unknown_ids_are_unknown() {
    let f = federation().await;
    let op = f.pki.operator(f.hz).unwrap();
    let mut client = node_client(&f.pki, f.node.addr, &op).unwrap();
    let resident = national_id(f.hz, 2);
    let issue = pb::IssueBadgeRequest {
        national_id: resident,
        name: "Li Lei".into(),
    };
    let first = client
        .issue_badge(issue.clone())
        .await
        .unwrap()
        .into_inner();
    let second = client.issue_badge(issue).await.unwrap().into_inner();
    assert_eq!(
        status(&f, &first.badge_id).await,
        pb::BadgeStatus::Superseded
    );
    assert_eq!(status(&f, &second.badge_id).await, pb::BadgeStatus::Active);
    assert_eq!(status(&f, &[7u8; 16]).await, pb::BadgeStatus::Unknown);
    let mut gw = node_client(&f.pki, f.node.addr, &f.pki.gateway).unwrap();
    let err = gw
        .check_status(pb::CheckStatusRequest {
            badge_ids: vec![vec![1; 15]],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_issuances_leave_one_active_badge_per_resident_and_survive_a_restart() {
    let mut f = federation().await;
    let op = f.pki.operator(f.hz).unwrap();
    let clients: Vec<_> = (0..4)
        .map(|_| node_client(&f.pki, f.node.addr, &op).unwrap())
        .collect();
    // 60 calls at once: 30 for one resident, 30 for 30 others, interleaved,
    // so that queued issuances are decided together.
    let calls = (0..60u32).map(|i| {
        let mut client = clients[i as usize % clients.len()].clone();
        let resident = if i % 2 == 0 { 100 } else { 200 + i };
        let national_id = national_id(f.hz, resident);
        tokio::spawn(async move {
            let badge = client
                .issue_badge(pb::IssueBadgeRequest {
                    national_id,
                    name: "Zhang Wei".into(),
                })
                .await
                .unwrap()
                .into_inner();
            (resident, badge.badge_id)
        })
    });
    let issued: Vec<(u32, Vec<u8>)> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let check = |f: &Fed| {
        let ids: Vec<Vec<u8>> = issued.iter().map(|(_, id)| id.clone()).collect();
        let mut gw = node_client(&f.pki, f.node.addr, &f.pki.gateway).unwrap();
        async move {
            gw.check_status(pb::CheckStatusRequest { badge_ids: ids })
                .await
                .unwrap()
                .into_inner()
                .statuses
        }
    };
    let before = check(&f).await;
    let active = |statuses: &[i32], shared: bool| {
        issued
            .iter()
            .zip(statuses)
            .filter(|((r, _), s)| (*r == 100) == shared && **s == pb::BadgeStatus::Active as i32)
            .count()
    };
    assert_eq!(active(&before, true), 1, "{before:?}");
    assert_eq!(active(&before, false), 30, "{before:?}");
    let superseded = before
        .iter()
        .filter(|s| **s == pb::BadgeStatus::Superseded as i32)
        .count();
    assert_eq!(superseded, 29, "{before:?}");
    // Every answer was durable before it was sent.
    let node = std::mem::replace(&mut f.node, RunningNode::placeholder());
    f.node = node.restart().await.unwrap();
    assert_eq!(check(&f).await, before);
}

#[tokio::test]
async fn bad_batches_are_refused_with_index_and_reason_and_store_nothing() {
    let f = federation().await;
    let now = unix_now();
    let op = f.pki.operator(f.hz).unwrap();
    let mut client = node_client(&f.pki, f.node.addr, &op).unwrap();
    let resident = national_id(f.hz, 4);
    let good = test_record("good-1", &resident, false, now - 60);
    client
        .ingest_records(pb::IngestRequest {
            records: vec![test_record("stored-1", &resident, false, now - 7200)],
        })
        .await
        .unwrap();

    let no_type = pb::Record {
        record_id: "b-1".into(),
        national_id: resident.clone(),
        kind: None,
    };
    let future = test_record("b-2", &resident, false, now + 86_400);
    let mut no_lab = test_record("b-3", &resident, false, now - 60);
    if let Some(pb::record::Kind::Test(t)) = &mut no_lab.kind {
        t.lab.clear();
    }
    let bad_id_number = test_record("b-4", "330106199001011230", false, now - 60);
    let reused_in_batch = test_record("good-1", &resident, true, now - 60);
    let reused_stored = exposure_record("stored-1", &resident, true, now - 60);

    let cases: Vec<(Vec<pb::Record>, &str)> = vec![
        (
            vec![good.clone(), no_type],
            "record 1: record has no known type",
        ),
        (
            vec![good.clone(), future],
            "record 1: sampled_at is in the future",
        ),
        (vec![good.clone(), no_lab], "record 1: lab is missing"),
        (vec![good.clone(), bad_id_number], "record 1: national_id"),
        (
            vec![good.clone(), reused_in_batch],
            "record 1: id \"good-1\" is already used for different content",
        ),
        (
            vec![good.clone(), good.clone(), reused_stored.clone()],
            "record 2: id \"stored-1\" is already used for different content",
        ),
        (
            vec![good.clone(), reused_stored],
            "record 1: id \"stored-1\" is already used for different content",
        ),
        (
            vec![good.clone(); 10_001],
            "batch of 10001 records exceeds the limit of 10000",
        ),
        (vec![], "the batch holds no records"),
    ];
    for (records, expected) in cases {
        let err = client
            .ingest_records(pb::IngestRequest { records })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{expected}: {err:?}");
        assert!(
            err.message().contains(expected),
            "expected {expected:?} in {:?}",
            err.message()
        );
    }
    // Nothing of the refused batches was stored: the good record is new.
    let ack = client
        .ingest_records(pb::IngestRequest {
            records: vec![good],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((ack.stored, ack.duplicates), (1, 0));
    // A message over the configured size limit is refused by the transport.
    let huge = test_record("huge", &resident, false, now - 60);
    let err = client
        .ingest_records(pb::IngestRequest {
            records: vec![huge; 100_000],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
}

#[tokio::test]
async fn a_node_whose_pseudonym_key_is_lost_refuses_to_start() {
    let f = federation().await;
    let op = f.pki.operator(f.hz).unwrap();
    let mut client = node_client(&f.pki, f.node.addr, &op).unwrap();
    let resident = national_id(f.hz, 5);
    client
        .ingest_records(pb::IngestRequest {
            records: vec![test_record("k-1", &resident, false, unix_now() - 60)],
        })
        .await
        .unwrap();
    let config = f.node.config.clone();
    f.node.stop().await.unwrap();
    let key = config.parent().unwrap().join("data/pseudonym.key");
    std::fs::remove_file(&key).unwrap();
    let settings = tessera_node::config::NodeSettings::load(&config).unwrap();
    let err = tessera_node::load::load(settings).expect_err("started without its key");
    assert!(
        err.to_string().contains("restore the key from backup"),
        "{err}"
    );
    assert!(!key.exists(), "a new key was written over the lost one");
}
