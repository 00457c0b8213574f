//! A gateway that follows another: lists put in force at the peer reach it
//! at once, go through the same checks as a publish (no rollback), and it
//! passes them on to its own followers; the peer's scoring policies and
//! deletion attestations reach it too, each checked as an upload is, so a
//! forged one is refused.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use prost::Message;
use tessera_certs::keys;
use tessera_gateway::config::RelaySettings;
use tessera_proto::v1 as pb;
use tessera_tests::harness::{RunningGateway, gateway_client};
use tessera_tests::wait::wait;
use tessera_tests::{TestPki, unix_now};
use tokio::net::TcpListener;

/// How long a follower may take to put its peer's new list in force.
const BOUND: Duration = Duration::from_secs(5);

/// Starts the PKI's gateway under `dir`, following the gateway at `peer`.
async fn follower(pki: &TestPki, dir: &Path, peer: SocketAddr) -> RunningGateway {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("gateway.crt"), keys::cert_to_pem(&pki.gateway.der)).unwrap();
    tessera_tests::harness::write_bundle_file(
        &dir.join("gateway.key"),
        pki.gateway.key_pem().unwrap().as_bytes(),
    )
    .unwrap();
    std::fs::write(dir.join("root.crt"), keys::cert_to_pem(pki.root.der())).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[follow]\npeer = \"{peer}\"\nrefresh_secs = 1\nretry_ms = 100\n",
            tessera_gateway::config::bundle_config(&listener.local_addr().unwrap().to_string())
        ),
    )
    .unwrap();
    RunningGateway::start_with(config, listener).await.unwrap()
}

fn held(gw: &RunningGateway) -> u64 {
    gw.registry.trust().current().map_or(0, |l| l.sequence())
}

/// Waits until `gw` holds list `sequence`; returns how long that took.
async fn until(gw: &RunningGateway, sequence: u64) -> Duration {
    let start = Instant::now();
    wait(format!("the follower to hold list {sequence}"), BOUND)
        .every(Duration::from_millis(5))
        .until_async(async || {
            let held = held(gw);
            if held < sequence {
                Err(format!("holds list {held}"))
            } else {
                Ok(())
            }
        })
        .await;
    start.elapsed()
}

#[tokio::test]
async fn a_gateway_follows_its_peer_never_rolls_back_and_can_be_followed_in_turn() {
    let pki = TestPki::new(unix_now()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The peer starts with no list: the follower connects and waits.
    let a = RunningGateway::start(&pki, &dir.path().join("a"), None, RelaySettings::default())
        .await
        .unwrap();
    let b = follower(&pki, &dir.path().join("b"), a.addr).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(held(&b), 0);

    // Each list published to the peer is pushed to the follower.
    a.registry
        .publish(&pki.trust_list(1).unwrap(), unix_now())
        .await
        .unwrap();
    until(&b, 1).await;
    a.registry
        .publish(&pki.trust_list(2).unwrap(), unix_now())
        .await
        .unwrap();
    until(&b, 2).await;

    // The follower is a registry like any other: a newer list published to
    // it directly goes in force, and the peer's older list is not
    // installed over it, however often the follower asks again.
    b.registry
        .publish(&pki.trust_list(4).unwrap(), unix_now())
        .await
        .unwrap();
    a.registry
        .publish(&pki.trust_list(3).unwrap(), unix_now())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(held(&b), 4, "the follower rolled back to its peer's list");

    // A gateway can follow a follower; what it installed is what B holds.
    let c = follower(&pki, &dir.path().join("c"), b.addr).await;
    until(&c, 4).await;
    assert_eq!(
        c.registry.trust().current().unwrap().signed_bytes(),
        b.registry.trust().current().unwrap().signed_bytes()
    );

    // B kept what it followed: restarted with its peer gone, it serves list 4.
    c.stop().await.unwrap();
    a.stop().await.unwrap();
    let config = b.config.clone();
    b.stop().await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b = RunningGateway::start_with(config, listener).await.unwrap();
    assert_eq!(held(&b), 4);
    b.stop().await.unwrap();
}

/// The policy versions `gw` serves for `city`, oldest effective first.
async fn versions(pki: &TestPki, gw: &RunningGateway, city: tessera_core::CityCode) -> Vec<u32> {
    gateway_client(pki, gw.addr, &pki.gateway)
        .unwrap()
        .fetch_policies(pb::FetchPoliciesRequest { city: city.get() })
        .await
        .unwrap()
        .into_inner()
        .policies
        .iter()
        .map(|p| {
            pb::PolicyDocument::decode(p.payload.as_slice())
                .unwrap()
                .policy_version
        })
        .collect()
}

async fn attested(pki: &TestPki, gw: &RunningGateway) -> Vec<pb::SignedAttestation> {
    gateway_client(pki, gw.addr, &crate::sunset::authority(pki))
        .unwrap()
        .list_attestations(pb::ListAttestationsRequest {})
        .await
        .unwrap()
        .into_inner()
        .attestations
}

#[tokio::test]
async fn a_follower_serves_the_policies_and_attestations_published_to_its_peer_in_order() {
    let mut pki = TestPki::new(unix_now()).unwrap();
    let hz = pki.add_city(330_100, "Hangzhou", "127.0.0.1:1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let list = pki.trust_list(1).unwrap();
    let a = RunningGateway::start(
        &pki,
        &dir.path().join("a"),
        Some(&list),
        RelaySettings::default(),
    )
    .await
    .unwrap();
    let b = follower(&pki, &dir.path().join("b"), a.addr).await;
    until(&b, 1).await;

    // Published to the peer: a first policy, then the next with notice.
    let node = pki.city(hz).unwrap().node.clone();
    let mut to_a = gateway_client(&pki, a.addr, &node).unwrap();
    let now = unix_now();
    for (version, from) in [(2, now), (3, now + 49 * 3600)] {
        let signed = crate::policy::sign(&pki, hz, &crate::policy::rules(version, 100), from);
        to_a.publish_policy(pb::PublishPolicyRequest {
            policy: Some(signed),
        })
        .await
        .unwrap();
    }
    let attestation = crate::sunset::signed_by(&pki, hz, now - 60);
    to_a.submit_attestation(pb::SubmitAttestationRequest {
        attestation: Some(pb::SignedAttestation::decode(attestation.as_slice()).unwrap()),
    })
    .await
    .unwrap();

    // The follower serves both, byte for byte and in the same order, and
    // lists the attestation to the authority.
    wait(
        "the follower to serve the peer's policies and attestation",
        BOUND,
    )
    .every(Duration::from_millis(20))
    .until_async(async || {
        let held = (versions(&pki, &b, hz).await, attested(&pki, &b).await.len());
        if held == (vec![2, 3], 1) {
            Ok(())
        } else {
            Err(format!("holds {held:?}"))
        }
    })
    .await;
    assert_eq!(attested(&pki, &b).await, attested(&pki, &a).await);
    let fetch = |gw: SocketAddr| {
        let pki = &pki;
        async move {
            gateway_client(pki, gw, &pki.gateway)
                .unwrap()
                .fetch_policies(pb::FetchPoliciesRequest { city: hz.get() })
                .await
                .unwrap()
                .into_inner()
        }
    };
    assert_eq!(fetch(b.addr).await, fetch(a.addr).await);

    // Durable on the follower: restarted with its peer gone, it still
    // serves them.
    a.stop().await.unwrap();
    let b = b.restart().await.unwrap();
    assert_eq!(versions(&pki, &b, hz).await, vec![2, 3]);
    assert_eq!(attested(&pki, &b).await.len(), 1);
    b.stop().await.unwrap();
}

#[tokio::test]
async fn a_forged_policy_or_attestation_from_the_peer_is_refused_and_the_rest_copied() {
    let mut pki = TestPki::new(unix_now()).unwrap();
    let hz = pki.add_city(330_100, "Hangzhou", "127.0.0.1:1").unwrap();
    let wuhan = pki.add_city(420_100, "Wuhan", "127.0.0.1:1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let list = pki.trust_list(1).unwrap();
    let a = RunningGateway::start(
        &pki,
        &dir.path().join("a"),
        Some(&list),
        RelaySettings::default(),
    )
    .await
    .unwrap();
    let now = unix_now();
    let good = crate::policy::sign(&pki, hz, &crate::policy::rules(2, 100), now);
    let node = pki.city(hz).unwrap().node.clone();
    let mut to_a = gateway_client(&pki, a.addr, &node).unwrap();
    to_a.publish_policy(pb::PublishPolicyRequest {
        policy: Some(good.clone()),
    })
    .await
    .unwrap();
    let attestation = crate::sunset::signed_by(&pki, hz, now - 60);
    to_a.submit_attestation(pb::SubmitAttestationRequest {
        attestation: Some(pb::SignedAttestation::decode(attestation.as_slice()).unwrap()),
    })
    .await
    .unwrap();
    drop(to_a);

    // The peer's store is tampered with while it is stopped: a Hangzhou
    // policy version 9 under version 2's signature, and a Wuhan
    // attestation whose counts were edited after signing.
    let config = a.config.clone();
    a.stop().await.unwrap();
    let data_dir = tessera_gateway::config::GatewaySettings::load(&config)
        .unwrap()
        .data_dir;
    {
        let db = sled::open(data_dir.join("registry")).unwrap();
        let mut document = pb::PolicyDocument::decode(good.payload.as_slice()).unwrap();
        document.policy_version = 9;
        document.rules = crate::policy::rules(9, 100);
        let forged = pb::SignedPolicy {
            payload: document.encode_to_vec(),
            ..good.clone()
        };
        let mut key = hz.get().to_be_bytes().to_vec();
        key.extend_from_slice(&9u32.to_be_bytes());
        db.open_tree("policies")
            .unwrap()
            .insert(key, forged.encode_to_vec())
            .unwrap();
        let edited = crate::sunset::edit_counts(&crate::sunset::signed_by(&pki, wuhan, now - 60));
        db.open_tree("attestations")
            .unwrap()
            .insert(wuhan.get().to_be_bytes(), edited)
            .unwrap();
        db.flush().unwrap();
    }
    tessera_tests::harness::wait_until_unlocked(&data_dir.join("registry"))
        .await
        .unwrap();
    let a = RunningGateway::start_with(config, TcpListener::bind("127.0.0.1:0").await.unwrap())
        .await
        .unwrap();
    // The peer serves the forgeries as they are stored.
    assert_eq!(versions(&pki, &a, hz).await, vec![2, 9]);
    assert_eq!(attested(&pki, &a).await.len(), 2);

    // One round of the follower's copy, into a follower's own stores: the
    // two forgeries are refused, the genuine policy and attestation kept.
    let trust = tessera_runtime::TrustState::new(pki.anchor().unwrap()).unwrap();
    trust.update(&list, now).unwrap();
    let db = sled::Config::new().temporary(true).open().unwrap();
    let disk = tessera_gateway::registry::DiskFull::default();
    let policies = tessera_gateway::policies::Policies::open(db.clone(), disk.clone(), 48).unwrap();
    let attestations = tessera_gateway::attestations::Attestations::open(&db, disk).unwrap();
    let mut client = gateway_client(&pki, a.addr, &pki.gateway).unwrap();
    let copied =
        tessera_gateway::pool::copy_once(&mut client, &trust, &policies, &attestations, "the peer")
            .await
            .unwrap();
    assert_eq!(
        copied,
        tessera_gateway::pool::Copied {
            policies: 1,
            attestations: 1,
            refused_policies: 1,
            refused_attestations: 1,
        }
    );
    assert_eq!(policies.fetch(hz.get()).unwrap(), vec![good]);
    let kept = attestations.list().unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].encode_to_vec(), attestation);
    // A second round copies nothing more and refuses the same two.
    let again =
        tessera_gateway::pool::copy_once(&mut client, &trust, &policies, &attestations, "the peer")
            .await
            .unwrap();
    assert_eq!(
        again,
        tessera_gateway::pool::Copied {
            refused_policies: 1,
            refused_attestations: 1,
            ..Default::default()
        }
    );
    a.stop().await.unwrap();
}
