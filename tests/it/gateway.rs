//! The national gateway end to end on 127.0.0.1: two city nodes, a
//! checkpoint of another province, the relay and its failures, trust-list
//! publishing, and what the gateway keeps on disk.

use std::time::{Duration, Instant};

use prost::Message;
use tessera_core::{Identity, Role, Scope};
use tessera_gateway::config::RelaySettings;
use tessera_proto::v1 as pb;
use tessera_tests::harness::{RunningGateway, RunningNode, gateway_client, node_client};
use tessera_tests::scan::{self, Needle};
use tessera_tests::wait::wait;
use tessera_tests::{DAY, TestPki, national_id, test_record, unix_now};
use tokio::net::TcpListener;
use tonic::Code;

fn relay() -> RelaySettings {
    RelaySettings {
        enabled: true,
        timeout: Duration::from_millis(800),
        concurrency_per_node: 4,
        cache_ttl: Duration::from_millis(300),
        breaker_failures: 3,
        breaker_open: Duration::from_millis(500),
    }
}

struct Fed {
    pki: TestPki,
    dir: tempfile::TempDir,
    hz: RunningNode,
    wuhan: RunningNode,
    gw: RunningGateway,
}

async fn federation() -> Fed {
    federation_with(relay()).await
}

async fn federation_with(relay: RelaySettings) -> Fed {
    let mut pki = TestPki::new(unix_now()).unwrap();
    let hz_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let wh_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hz = pki
        .add_city(
            330_100,
            "Hangzhou",
            &hz_listener.local_addr().unwrap().to_string(),
        )
        .unwrap();
    let wh = pki
        .add_city(
            420_100,
            "Wuhan",
            &wh_listener.local_addr().unwrap().to_string(),
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hz = RunningNode::start_on(&pki, hz, &dir.path().join("hz"), hz_listener)
        .await
        .unwrap();
    let wuhan = RunningNode::start_on(&pki, wh, &dir.path().join("wh"), wh_listener)
        .await
        .unwrap();
    let list = pki.trust_list(1).unwrap();
    let gw = RunningGateway::start(&pki, &dir.path().join("gw"), Some(&list), relay)
        .await
        .unwrap();
    Fed {
        pki,
        dir,
        hz,
        wuhan,
        gw,
    }
}

impl Fed {
    async fn badge(&self, city: u32, resident: u32, positive: bool) -> pb::IssueBadgeResponse {
        let code = city.to_string().parse().unwrap();
        let node = if city == 330_100 {
            &self.hz
        } else {
            &self.wuhan
        };
        let mut op = node_client(&self.pki, node.addr, &self.pki.operator(code).unwrap()).unwrap();
        let id = national_id(code, resident);
        op.ingest_records(pb::IngestRequest {
            records: vec![test_record(
                &format!("r-{city}-{resident}-{positive}"),
                &id,
                positive,
                unix_now() - 600,
            )],
        })
        .await
        .unwrap();
        op.issue_badge(pb::IssueBadgeRequest {
            national_id: id,
            name: "王芳".into(),
        })
        .await
        .unwrap()
        .into_inner()
    }

    async fn check(&self, envelope: &[u8]) -> pb::Verdict {
        let mut cp = gateway_client(
            &self.pki,
            self.gw.addr,
            &self.pki.verifier(420_000).unwrap(),
        )
        .unwrap();
        cp.verify(pb::VerifyRequest {
            badge: Some(pb::verify_request::Badge::Envelope(envelope.to_vec())),
        })
        .await
        .unwrap()
        .into_inner()
    }

    /// Polls until the verdict has `outcome`, for at most `within`; the
    /// last verdict either way (the caller asserts on it).
    async fn until(&self, envelope: &[u8], outcome: pb::Outcome, within: Duration) -> pb::Verdict {
        let mut last = None;
        // A timeout is the caller's to judge, from the last verdict.
        let _ = wait(format!("a verdict of {outcome:?}"), within)
            .poll_async(async || {
                let v = self.check(envelope).await;
                let hit = v.outcome == outcome as i32;
                last = Some(v);
                hit
            })
            .await;
        last.expect("checked at least once")
    }
}

fn outcome(v: &pb::Verdict) -> pb::Outcome {
    pb::Outcome::try_from(v.outcome).unwrap()
}

#[tokio::test]
async fn a_checkpoint_in_wuhan_checks_a_hangzhou_badge_through_the_gateway() {
    let f = federation().await;
    let badge = f.badge(330_100, 1, false).await;

    let v = f.check(&badge.badge).await;
    assert_eq!(outcome(&v), pb::Outcome::Valid, "{v:?}");
    assert_eq!(
        (v.issuer_city, v.issuer_name.as_str(), v.colour),
        (330_100, "Hangzhou", pb::Colour::Green as i32)
    );
    assert!(v.signature_valid);
    let mut cp = gateway_client(&f.pki, f.gw.addr, &f.pki.verifier(420_000).unwrap()).unwrap();
    let by_text = cp
        .verify(pb::VerifyRequest {
            badge: Some(pb::verify_request::Badge::QrText(badge.qr_text.clone())),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(outcome(&by_text), pb::Outcome::Valid);

    // A positive test in Hangzhou revokes it, visible within the cache lifetime.
    f.badge(330_100, 1, true).await;
    let v = f
        .until(&badge.badge, pb::Outcome::Revoked, Duration::from_secs(3))
        .await;
    assert_eq!(outcome(&v), pb::Outcome::Revoked, "{v:?}");

    // Forged and unknown-signer badges.
    let fresh = f.badge(330_100, 2, false).await;
    let mut forged = pb::SignedBadge::decode(fresh.badge.as_slice()).unwrap();
    forged.signature[3] ^= 0x20;
    assert_eq!(
        outcome(&f.check(&forged.encode_to_vec()).await),
        pb::Outcome::BadSignature
    );
    let stranger = TestPki::new(unix_now()).unwrap();
    let hz_code = "330100".parse().unwrap();
    let key = stranger
        .issue(
            Identity::new(Role::BadgeSigner, Scope::City(hz_code)).unwrap(),
            &[],
        )
        .unwrap();
    let foreign = tessera_core::BadgeSigner::new(key.key, &key.der)
        .unwrap()
        .sign(&tessera_tests::claims(hz_code, unix_now()))
        .unwrap();
    assert_eq!(
        outcome(&f.check(&foreign).await),
        pb::Outcome::UnknownSigner
    );
    let garbage = f.check(b"not a badge").await;
    assert_eq!(outcome(&garbage), pb::Outcome::Malformed);

    // A Wuhan badge, and a batch in order.
    let wuhan = f.badge(420_100, 1, false).await;
    assert_eq!(outcome(&f.check(&wuhan.badge).await), pb::Outcome::Valid);
    let requests: Vec<pb::VerifyRequest> = [
        &fresh.badge,
        &forged.encode_to_vec(),
        &wuhan.badge,
        &badge.badge,
    ]
    .iter()
    .map(|b| pb::VerifyRequest {
        badge: Some(pb::verify_request::Badge::Envelope(b.to_vec())),
    })
    .collect();
    let verdicts: Vec<pb::Outcome> = cp
        .verify_batch(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner()
        .map(|v| outcome(&v.unwrap()))
        .collect()
        .await;
    assert_eq!(
        verdicts,
        vec![
            pb::Outcome::Valid,
            pb::Outcome::BadSignature,
            pb::Outcome::Valid,
            pb::Outcome::Revoked
        ]
    );

    // The authority revokes Hangzhou's signer and publishes: SIGNER_REVOKED.
    let mut msg = f.pki.trust_list_message(2).unwrap();
    for e in &mut msg.entries {
        if e.code == 330_100 && e.role == pb::Role::BadgeSigner as i32 {
            e.status = pb::EntryStatus::Revoked as i32;
            e.revoked_at = unix_now();
        }
    }
    let authority = f
        .pki
        .issue(Identity::new(Role::Authority, Scope::Nation).unwrap(), &[])
        .unwrap();
    let mut admin = gateway_client(&f.pki, f.gw.addr, &authority).unwrap();
    let signed = pb::SignedTrustList::decode(f.pki.sign(&msg).unwrap().as_slice()).unwrap();
    let seq = admin
        .publish_trust_list(pb::PublishTrustListRequest { list: Some(signed) })
        .await
        .unwrap();
    assert_eq!(seq.into_inner().sequence, 2);
    assert_eq!(
        outcome(&f.check(&fresh.badge).await),
        pb::Outcome::SignerRevoked
    );
    assert_eq!(outcome(&f.check(&wuhan.badge).await), pb::Outcome::Valid);
}

use futures::StreamExt;

#[tokio::test]
async fn a_node_that_is_down_gives_status_unavailable_in_time_and_valid_after_restart() {
    let f = federation().await;
    let badge = f.badge(330_100, 3, false).await;
    let wuhan = f.badge(420_100, 3, false).await;
    assert_eq!(outcome(&f.check(&badge.badge).await), pb::Outcome::Valid);
    let Fed {
        pki,
        dir,
        hz,
        wuhan: wuhan_node,
        gw,
    } = f;
    let (hz_config, hz_addr) = (hz.config.clone(), hz.addr);
    hz.stop().await.unwrap();
    let f = Fed {
        pki,
        dir,
        hz: wuhan_node,
        wuhan: RunningNode::placeholder(),
        gw,
    };

    tokio::time::sleep(Duration::from_millis(400)).await; // past the cache lifetime
    for _ in 0..5 {
        let started = Instant::now();
        let v = f.check(&badge.badge).await;
        let took = started.elapsed();
        assert_eq!(outcome(&v), pb::Outcome::StatusUnavailable, "{v:?}");
        assert!(
            v.signature_valid,
            "the signature result must still be reported"
        );
        assert_eq!(v.colour, pb::Colour::Green as i32);
        assert!(
            took < Duration::from_secs(5),
            "a verdict took {took:?}: the deadline is not enforced"
        );
    }
    let breaker =
        f.gw.verifier
            .relay()
            .breaker("330100".parse().unwrap())
            .unwrap();
    assert!(
        breaker.is_open(),
        "the breaker did not open after repeated failures"
    );
    // Other cities are unaffected.
    assert_eq!(outcome(&f.check(&wuhan.badge).await), pb::Outcome::Valid);

    let listener = TcpListener::bind(hz_addr).await.unwrap();
    let hz = RunningNode::start_with(hz_config, listener).await.unwrap();
    let v = f
        .until(&badge.badge, pb::Outcome::Valid, Duration::from_secs(10))
        .await;
    assert_eq!(outcome(&v), pb::Outcome::Valid, "{v:?}");
    assert!(!breaker.is_open());
    hz.stop().await.unwrap();
}

#[tokio::test]
async fn replayed_or_forged_trust_lists_are_refused_and_the_list_in_force_survives_a_restart() {
    let f = federation().await;
    let authority = f
        .pki
        .issue(Identity::new(Role::Authority, Scope::Nation).unwrap(), &[])
        .unwrap();
    let mut admin = gateway_client(&f.pki, f.gw.addr, &authority).unwrap();
    let list =
        |seq: u64| pb::SignedTrustList::decode(f.pki.trust_list(seq).unwrap().as_slice()).unwrap();
    admin
        .publish_trust_list(pb::PublishTrustListRequest {
            list: Some(list(5)),
        })
        .await
        .unwrap();

    for (seq, why) in [(5, "equal"), (4, "lower")] {
        let e = admin
            .publish_trust_list(pb::PublishTrustListRequest {
                list: Some(list(seq)),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition, "{why}: {e:?}");
        assert!(
            e.message().contains("not newer than the sequence 5"),
            "{}",
            e.message()
        );
    }
    let mut bad = list(6);
    bad.signature[0] ^= 1;
    let e = admin
        .publish_trust_list(pb::PublishTrustListRequest { list: Some(bad) })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("signature"), "{}", e.message());
    let checkpoint = f.pki.verifier(420_000).unwrap();
    let mut cp = gateway_client(&f.pki, f.gw.addr, &checkpoint).unwrap();
    let e = cp
        .publish_trust_list(pb::PublishTrustListRequest {
            list: Some(list(7)),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);

    let fetched = cp
        .fetch_trust_list(pb::FetchTrustListRequest { known_sequence: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.current_sequence, 5);
    assert_eq!(
        fetched.list.unwrap().encode_to_vec(),
        f.pki.trust_list(5).unwrap()
    );
    let same = cp
        .fetch_trust_list(pb::FetchTrustListRequest { known_sequence: 5 })
        .await
        .unwrap()
        .into_inner();
    assert!(same.not_modified && same.list.is_none());

    // A watcher sees the next list as soon as it is in force.
    let mut watch = cp
        .watch_trust_list(pb::WatchTrustListRequest { known_sequence: 5 })
        .await
        .unwrap()
        .into_inner();
    admin
        .publish_trust_list(pb::PublishTrustListRequest {
            list: Some(list(6)),
        })
        .await
        .unwrap();
    let pushed = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(pushed.encode_to_vec(), f.pki.trust_list(6).unwrap());

    let Fed { gw, .. } = f;
    let gw = gw.restart().await.unwrap();
    assert_eq!(gw.registry.trust().current().unwrap().sequence(), 6);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn the_gateway_keeps_no_badge_id_on_disk() {
    let f = federation().await;
    let mut ids = vec![];
    for resident in 0..30 {
        let badge = f.badge(330_100, 100 + resident, false).await;
        for _ in 0..3 {
            assert_eq!(outcome(&f.check(&badge.badge).await), pb::Outcome::Valid);
        }
        ids.push(badge.badge_id);
    }
    let Fed { gw, dir, .. } = f;
    gw.stop().await.unwrap();
    let needles: Vec<Needle> = ids
        .iter()
        .flat_map(|id| Needle::id("badge id", id))
        .collect();
    let (files, hits) = scan::find(&dir.path().join("gw"), &needles).unwrap();
    assert!(files > 0);
    assert!(hits.is_empty(), "{hits:#?}");
    let _ = DAY;
}

#[tokio::test]
async fn a_publish_that_changes_nothing_writes_and_flushes_nothing() {
    let f = federation().await;
    let registry = &f.gw.registry;
    let tree = registry.db().open_tree("trust").unwrap();
    let mut writes = tree.watch_prefix(b"current");

    // List 1 is in force: offering it again, or an older one, changes
    // nothing and is refused before the store is touched.
    let same = f.pki.trust_list(1).unwrap();
    let e = registry.publish(&same, unix_now()).await.unwrap_err();
    assert!(
        matches!(
            e,
            tessera_gateway::registry::PublishError::NotNewer {
                held: 1,
                offered: 1
            }
        ),
        "{e}"
    );

    // The next write the store sees is list 2's, stored (and flushed)
    // before it is in force, as every publish is.
    let next = f.pki.trust_list(2).unwrap();
    registry.publish(&next, unix_now()).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), &mut writes)
        .await
        .expect("no write seen")
        .expect("subscriber closed");
    match first {
        sled::Event::Insert { value, .. } => assert_eq!(
            value.as_ref(),
            next.as_slice(),
            "the unchanged publish wrote to the store"
        ),
        sled::Event::Remove { .. } => panic!("the unchanged publish removed the list"),
    }
    assert_eq!(registry.trust().current().map(|l| l.sequence()), Some(2));
}

#[tokio::test]
async fn a_checkpoint_revoked_mid_batch_gets_no_more_verdicts() {
    let f = federation().await;
    let badge = f.badge(330_100, 7, false).await;
    let checkpoint = f.pki.verifier(420_000).unwrap();
    let mut cp = gateway_client(&f.pki, f.gw.addr, &checkpoint).unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut verdicts = cp
        .verify_batch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let request = pb::VerifyRequest {
        badge: Some(pb::verify_request::Badge::Envelope(badge.badge.clone())),
    };
    tx.send(request.clone()).await.unwrap();
    assert_eq!(
        outcome(&verdicts.next().await.unwrap().unwrap()),
        pb::Outcome::Valid
    );

    let mut msg = f.pki.trust_list_message(2).unwrap();
    msg.revoked_serials.push(
        tessera_core::CertInfo::parse(&checkpoint.der)
            .unwrap()
            .serial()
            .to_vec(),
    );
    f.gw.registry
        .publish(&f.pki.sign(&msg).unwrap(), unix_now())
        .await
        .unwrap();
    tx.send(request).await.unwrap();
    let refused = verdicts.next().await.unwrap().unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn the_relay_refuses_a_node_of_another_city_at_a_listed_endpoint() {
    let f = federation().await;
    let badge = f.badge(330_100, 8, false).await;
    // A list that sends Hangzhou's status checks to Wuhan's node.
    let mut msg = f.pki.trust_list_message(2).unwrap();
    for e in &mut msg.entries {
        if e.code == 330_100 && e.role == pb::Role::CityNode as i32 {
            e.endpoint = f.wuhan.addr.to_string();
        }
    }
    f.gw.registry
        .publish(&f.pki.sign(&msg).unwrap(), unix_now())
        .await
        .unwrap();
    let v = f.check(&badge.badge).await;
    assert_eq!(outcome(&v), pb::Outcome::StatusUnavailable, "{v:?}");
    assert!(v.signature_valid);
}

#[tokio::test]
async fn a_node_follows_the_gateways_trust_list_and_refuses_a_revoked_operator() {
    let mut pki = TestPki::new(unix_now()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hz = pki
        .add_city(330_100, "Hangzhou", &addr.to_string())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let list = pki.trust_list(1).unwrap();
    let gw = RunningGateway::start(&pki, &dir.path().join("gw"), Some(&list), relay())
        .await
        .unwrap();
    let config =
        tessera_tests::harness::write_city_bundle(&pki, hz, &dir.path().join("hz"), addr).unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "root = \"root.crt\"",
        &format!(
            "root = \"root.crt\"\ngateway = \"{}\"\nrefresh_secs = 1",
            gw.addr
        ),
    );
    std::fs::write(&config, text).unwrap();
    let node = RunningNode::start_with(config, listener).await.unwrap();

    let operator = pki.operator(hz).unwrap();
    let resident = national_id(hz, 1);
    let ingest = |n: u32| pb::IngestRequest {
        records: vec![test_record(
            &format!("follow-{n}"),
            &resident,
            false,
            unix_now() - 60,
        )],
    };
    let mut op = node_client(&pki, node.addr, &operator).unwrap();
    op.ingest_records(ingest(0)).await.unwrap();

    let mut msg = pki.trust_list_message(2).unwrap();
    msg.revoked_serials.push(
        tessera_core::CertInfo::parse(&operator.der)
            .unwrap()
            .serial()
            .to_vec(),
    );
    gw.registry
        .publish(&pki.sign(&msg).unwrap(), unix_now())
        .await
        .unwrap();
    let mut n = 0;
    let refused = wait(
        "the node to refuse the revoked operator after the gateway's new list",
        Duration::from_secs(15),
    )
    .every(Duration::from_millis(200))
    .until_async(async || {
        n += 1;
        op.ingest_records(ingest(n)).await.err()
    })
    .await;
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    node.stop().await.unwrap();
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn with_the_relay_off_verdicts_rest_on_the_signature_and_say_so() {
    let f = federation_with(RelaySettings {
        enabled: false,
        ..relay()
    })
    .await;
    let badge = f.badge(330_100, 7, false).await;
    // Revoked at the city: a gateway that does not ask cannot know, and says so.
    f.badge(330_100, 7, true).await;
    let v = f.check(&badge.badge).await;
    assert_eq!(outcome(&v), pb::Outcome::Valid, "{v:?}");
    assert!(v.signature_valid);
    assert_eq!(v.detail, tessera_gateway::verdict::SIGNATURE_ONLY);
    let mut forged = badge.badge.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(outcome(&f.check(&forged).await), pb::Outcome::BadSignature);
    assert_eq!(f.gw.verifier.relay().stats().calls, 0, "the relay was used");
}

#[tokio::test]
async fn a_batch_gives_each_badge_the_verdict_verify_gives_in_order() {
    let f = federation().await;
    let good = f.badge(330_100, 11, false).await;
    let other_city = f.badge(420_100, 12, false).await;
    let revoked = f.badge(330_100, 13, false).await;
    f.badge(330_100, 13, true).await;
    let mut forged = good.badge.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let requests: Vec<pb::VerifyRequest> = [
        pb::verify_request::Badge::Envelope(good.badge.clone()),
        pb::verify_request::Badge::Envelope(forged),
        pb::verify_request::Badge::QrText("TB1:not base45 ~".into()),
        pb::verify_request::Badge::QrText(other_city.qr_text.clone()),
        pb::verify_request::Badge::Envelope(revoked.badge.clone()),
        pb::verify_request::Badge::Envelope(vec![1, 2, 3]),
    ]
    .into_iter()
    .map(|b| pb::VerifyRequest { badge: Some(b) })
    .collect();
    let mut cp = gateway_client(&f.pki, f.gw.addr, &f.pki.verifier(420_000).unwrap()).unwrap();
    let mut one_by_one = vec![];
    for r in &requests {
        one_by_one.push(cp.verify(r.clone()).await.unwrap().into_inner());
    }
    // Sent at once, so the gateway verifies them as one chunk.
    let mut stream = cp
        .verify_batch(futures::stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let mut batched = vec![];
    while let Some(v) = stream.message().await.unwrap() {
        batched.push(v);
    }
    let summary = |v: &[pb::Verdict]| -> Vec<(i32, String, u32)> {
        v.iter()
            .map(|v| (v.outcome, v.detail.clone(), v.issuer_city))
            .collect()
    };
    assert_eq!(summary(&batched), summary(&one_by_one));
    let outcomes: Vec<pb::Outcome> = batched.iter().map(outcome).collect();
    assert_eq!(
        outcomes,
        [
            pb::Outcome::Valid,
            pb::Outcome::BadSignature,
            pb::Outcome::Malformed,
            pb::Outcome::Valid,
            pb::Outcome::Revoked,
            pb::Outcome::Malformed,
        ]
    );
}
