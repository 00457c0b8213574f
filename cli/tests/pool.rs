//! A pool that agrees, with the real `tessera` binary: a second gateway
//! process follows the first, and what a city publishes to the first (its
//! scoring policy, its deletion attestation) is read through the follower
//! with `tessera policy show` and `tessera authority attestations`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::time::Duration;

use common::{Authority, free_port, ok, spawn_listening, stop, tessera, wait_until};

const DEFAULT: &str = include_str!("../../core/policy/default.toml");

/// How long the follower may take to copy what its peer holds.
const BOUND: Duration = Duration::from_secs(20);

#[test]
fn policy_show_and_authority_attestations_through_a_follower_see_what_the_peer_holds() {
    let a = Authority::new();
    let d = a.dir.to_str().unwrap().to_owned();
    let (peer_port, peer) = a.enrol_gateway();
    let follower_port = free_port();
    let follower = format!("127.0.0.1:{follower_port}");
    ok(&[
        "authority",
        "enrol-gateway",
        "--dir",
        &d,
        "--name",
        "east-1",
        "--endpoint",
        &follower,
    ]);
    let peer_process = a.start_gateway(peer_port);
    a.publish_to(&peer);
    let follower_config = a.dir.join("gateways/east-1/gateway.toml");
    let text = std::fs::read_to_string(&follower_config).unwrap();
    std::fs::write(
        &follower_config,
        format!("{text}\n[follow]\npeer = \"{peer}\"\nrefresh_secs = 1\nretry_ms = 200\n"),
    )
    .unwrap();
    let follower_process = spawn_listening(
        &[
            "gateway",
            "run",
            "--config",
            follower_config.to_str().unwrap(),
        ],
        follower_port,
    );

    // The city publishes its first policy to the peer only.
    let city = a.dir.join("cities/330100");
    let work = tempfile::tempdir().unwrap();
    let rules = work.path().join("rules.toml");
    std::fs::write(&rules, DEFAULT).unwrap();
    let signed = work.path().join("v2.signed");
    ok(&[
        "policy",
        "sign",
        "--key",
        city.join("badge-signer.key").to_str().unwrap(),
        "--certificate",
        city.join("badge-signer.crt").to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
        "--effective-from",
        "+0h",
        "--out",
        signed.to_str().unwrap(),
    ]);
    let config = a.config();
    ok(&[
        "policy",
        "publish",
        "--config",
        &config,
        "--gateway",
        &peer,
        signed.to_str().unwrap(),
    ]);

    // Shown through the follower, verified against the trust list.
    let bundle = a.dir.join("operators/330100-hangzhou-cdc");
    let shown = wait_until("the follower to serve the policy", BOUND, || {
        let out = tessera(&[
            "policy",
            "show",
            "330100",
            "--gateway",
            &follower,
            "--bundle",
            bundle.to_str().unwrap(),
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && text.contains("city 330100: 1 published scoring policy"))
            .then_some(text)
    });
    assert!(shown.contains("policy version 2 "), "{shown}");
    assert!(shown.contains(": IN FORCE"), "{shown}");

    // The city is switched off; its node hands its attestation to the
    // peer. Until then the follower reports it MISSING, after it ATTESTED.
    let out = tessera(&[
        "authority",
        "attestations",
        "--dir",
        &d,
        "--gateway",
        &follower,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("MISSING"));
    let node_config = std::fs::read_to_string(&config).unwrap().replace(
        "root = \"root.crt\"",
        &format!("root = \"root.crt\"\ngateway = \"{peer}\""),
    );
    std::fs::write(&config, node_config).unwrap();
    let csv = city.join("lab.csv");
    std::fs::write(
        &csv,
        format!(
            "record_id,national_id,type,time,test_kind,positive,lab\n\
             r1,{},test,2026-11-27T08:00:00+08:00,pcr,false,HZ-LAB-01\n",
            common::id(1)
        ),
    )
    .unwrap();
    ok(&["node", "import", "--config", &config, csv.to_str().unwrap()]);
    let report = ok(&["node", "sunset", "--config", &config, "--yes"]);
    assert!(report.contains("submitted to the gateway"), "{report}");
    let all = wait_until("the follower to list the attestation", BOUND, || {
        let out = tessera(&[
            "authority",
            "attestations",
            "--dir",
            &d,
            "--gateway",
            &follower,
        ]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert!(all.contains("330100 Hangzhou"), "{all}");
    assert!(all.contains("ATTESTED"), "{all}");
    assert!(all.contains("Every city has switched off"), "{all}");

    stop(follower_process);
    stop(peer_process);
}
