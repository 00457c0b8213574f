//! What the gateway answers to requests at the edges of PROTOCOL.md's
//! request rules: no badge, a text over 772 characters, a message over the
//! server's limit; and that every verdict carries its reason code.

use std::time::Duration;

use tessera_gateway::config::RelaySettings;
use tessera_proto::v1 as pb;
use tessera_tests::harness::{RunningGateway, gateway_client};
use tessera_tests::{TestPki, claims, unix_now};
use tonic::Code;

fn relay() -> RelaySettings {
    RelaySettings {
        enabled: true,
        timeout: Duration::from_millis(300),
        concurrency_per_node: 1,
        cache_ttl: Duration::ZERO,
        breaker_failures: 3,
        breaker_open: Duration::from_millis(500),
    }
}

fn text(t: String) -> pb::VerifyRequest {
    pb::VerifyRequest {
        badge: Some(pb::verify_request::Badge::QrText(t)),
    }
}

#[tokio::test]
async fn every_verdict_names_its_rule_and_an_oversized_text_is_malformed_not_out_of_range() {
    let mut pki = TestPki::new(unix_now()).unwrap();
    // No node listens at port 1: a good badge reads STATUS_UNAVAILABLE.
    let hz = pki.add_city(330_100, "Hangzhou", "127.0.0.1:1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let list = pki.trust_list(1).unwrap();
    let gw = RunningGateway::start_configured(
        &pki,
        dir.path(),
        Some(&list),
        relay(),
        "max_message_bytes = 65536",
    )
    .await
    .unwrap();
    let mut cp = gateway_client(&pki, gw.addr, &pki.verifier(420_000).unwrap()).unwrap();
    let verdict = |r: Result<tonic::Response<pb::Verdict>, tonic::Status>| {
        let v = r.unwrap().into_inner();
        (pb::Outcome::try_from(v.outcome).unwrap(), v.reason)
    };

    let none = cp.verify(pb::VerifyRequest { badge: None }).await;
    assert_eq!(verdict(none), (pb::Outcome::Malformed, "no_badge".into()));

    let badge = pki
        .badge_signer(hz)
        .unwrap()
        .sign_text(&claims(hz, unix_now()))
        .unwrap();
    let good = cp.verify(text(format!("{badge}\r\n"))).await;
    assert_eq!(
        verdict(good),
        (pb::Outcome::StatusUnavailable, "status_unreachable".into())
    );

    let long = format!("TB1:{}", "0".repeat(769));
    assert_eq!(long.chars().count(), 773);
    assert_eq!(
        verdict(cp.verify(text(long)).await),
        (pb::Outcome::Malformed, "text_too_long".into())
    );
    // Far over 772 characters but within the message limit: still a verdict.
    let huge = format!("TB1:{}", "0".repeat(60_000));
    assert_eq!(
        verdict(cp.verify(text(huge)).await),
        (pb::Outcome::Malformed, "text_too_long".into())
    );
    // Over the server's message limit: refused by gRPC before any verdict.
    let over = format!("TB1:{}", "0".repeat(70_000));
    let status = cp.verify(text(over)).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
}
