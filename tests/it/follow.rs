//! A gateway that follows another: lists put in force at the peer reach it
//! at once, go through the same checks as a publish (no rollback), and it
//! passes them on to its own followers.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use tessera_certs::keys;
use tessera_gateway::config::RelaySettings;
use tessera_tests::harness::RunningGateway;
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
