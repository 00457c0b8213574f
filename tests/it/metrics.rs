//! Prometheus metrics of a running node and gateway, scraped over HTTP as
//! Prometheus would: the named metrics are there with the counts the calls
//! made imply, and no label carries a badge id, an ID number or a name.

use std::net::SocketAddr;

use tessera_core::CityCode;
use tessera_gateway::config::RelaySettings;
use tessera_proto::v1 as pb;
use tessera_tests::harness::{
    RunningGateway, RunningNode, gateway_client, node_client, write_city_bundle,
    write_gateway_bundle,
};
use tessera_tests::{TestPki, national_id, test_record, unix_now};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A free loopback port for a metrics endpoint.
pub(crate) fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

pub(crate) fn with_metrics(config: &std::path::Path, addr: SocketAddr) {
    let mut text = std::fs::read_to_string(config).unwrap();
    text.push_str(&format!("\n[metrics]\nlisten = \"{addr}\"\n"));
    std::fs::write(config, text).unwrap();
}

/// GET `path` from `addr`: status line and body.
pub(crate) async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// The value of the sample `name{labels}` (exactly as exposed).
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn node_and_gateway_expose_the_named_metrics_without_personal_labels() {
    let mut pki = TestPki::new(unix_now()).unwrap();
    let node_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hz: CityCode = pki
        .add_city(
            330_100,
            "Hangzhou",
            &node_listener.local_addr().unwrap().to_string(),
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let list = pki.trust_list(1).unwrap();

    let node_metrics = free_addr();
    let config = write_city_bundle(
        &pki,
        hz,
        &dir.path().join("hz"),
        node_listener.local_addr().unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("hz/trust-list.tsl"), &list).unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "root = \"root.crt\"",
        "root = \"root.crt\"\ntrust_list = \"trust-list.tsl\"",
    );
    std::fs::write(&config, text).unwrap();
    with_metrics(&config, node_metrics);
    let node = RunningNode::start_with(config, node_listener)
        .await
        .unwrap();

    let gw_metrics = free_addr();
    let gw_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay = RelaySettings {
        cache_ttl: std::time::Duration::ZERO,
        ..RelaySettings::default()
    };
    let config = write_gateway_bundle(
        &pki,
        &dir.path().join("gw"),
        Some(&list),
        relay,
        gw_listener.local_addr().unwrap(),
    )
    .unwrap();
    with_metrics(&config, gw_metrics);
    let gw = RunningGateway::start_with(config, gw_listener)
        .await
        .unwrap();

    // Some traffic: ingest, issue, check through the gateway, a refusal.
    let resident = national_id(hz, 1);
    let operator = pki.operator(hz).unwrap();
    let mut op = node_client(&pki, node.addr, &operator).unwrap();
    op.ingest_records(pb::IngestRequest {
        records: vec![test_record("m-1", &resident, false, unix_now() - 60)],
    })
    .await
    .unwrap();
    let badge = op
        .issue_badge(pb::IssueBadgeRequest {
            national_id: resident.clone(),
            name: "Metrics Resident".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let checkpoint = pki.verifier(330_000).unwrap();
    let mut g = gateway_client(&pki, gw.addr, &checkpoint).unwrap();
    for _ in 0..3 {
        let v = g
            .verify(pb::VerifyRequest {
                badge: Some(pb::verify_request::Badge::QrText(badge.qr_text.clone())),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(v.outcome, pb::Outcome::Valid as i32, "{v:?}");
    }
    let mut as_checkpoint = node_client(&pki, node.addr, &checkpoint).unwrap();
    assert!(
        as_checkpoint
            .ingest_records(pb::IngestRequest { records: vec![] })
            .await
            .is_err()
    );

    let (status, node_text) = get(node_metrics, "/metrics").await;
    assert!(status.contains("200"), "{status}");
    for (series, want) in [
        (
            r#"tessera_rpc_calls_total{method="/tessera.v1.CityNode/IngestRecords",code="OK"}"#,
            1.0,
        ),
        (
            r#"tessera_rpc_calls_total{method="/tessera.v1.CityNode/IngestRecords",code="PERMISSION_DENIED"}"#,
            1.0,
        ),
        (
            r#"tessera_rpc_calls_total{method="/tessera.v1.CityNode/IssueBadge",code="OK"}"#,
            1.0,
        ),
        (
            r#"tessera_rpc_calls_total{method="/tessera.v1.CityNode/CheckStatus",code="OK"}"#,
            3.0,
        ),
        ("tessera_node_records_stored_total", 1.0),
        (r#"tessera_node_badges_issued_total{colour="green"}"#, 1.0),
        (r#"tessera_node_status_answers_total{status="active"}"#, 3.0),
        ("tessera_trust_list_sequence", 1.0),
    ] {
        assert_eq!(
            sample(&node_text, series),
            Some(want),
            "{series} in\n{node_text}"
        );
    }
    let expiry = sample(
        &node_text,
        r#"tessera_certificate_expiry_seconds{certificate="tls"}"#,
    )
    .unwrap();
    assert!(expiry > 300.0 * 86_400.0, "{expiry}");
    assert!(
        sample(
            &node_text,
            r#"tessera_certificate_expiry_seconds{certificate="badge_signer"}"#
        )
        .is_some()
    );
    assert!(node_text.contains("tessera_rpc_duration_seconds_bucket"));

    let (status, gw_text) = get(gw_metrics, "/metrics").await;
    assert!(status.contains("200"), "{status}");
    let city = hz.to_string();
    for (series, want) in [
        (
            r#"tessera_rpc_calls_total{method="/tessera.v1.Gateway/Verify",code="OK"}"#.to_owned(),
            3.0,
        ),
        (
            r#"tessera_gateway_verdicts_total{outcome="valid"}"#.to_owned(),
            3.0,
        ),
        (
            format!(r#"tessera_relay_calls_answered_total{{city="{city}"}}"#),
            3.0,
        ),
        (
            format!(r#"tessera_relay_calls_failed_total{{city="{city}"}}"#),
            0.0,
        ),
        (
            format!(r#"tessera_relay_breaker_open{{city="{city}"}}"#),
            0.0,
        ),
        ("tessera_trust_list_sequence".to_owned(), 1.0),
        // A gateway that follows nobody copies and refuses nothing.
        (
            r#"tessera_pool_copied_total{kind="policy"}"#.to_owned(),
            0.0,
        ),
        (
            r#"tessera_pool_refused_total{kind="attestation"}"#.to_owned(),
            0.0,
        ),
    ] {
        assert_eq!(
            sample(&gw_text, &series),
            Some(want),
            "{series} in\n{gw_text}"
        );
    }
    assert!(sample(&gw_text, "tessera_trust_list_age_seconds").is_some());

    // Nothing personal or per badge, in either.
    let badge_hex: String = badge.badge_id.iter().map(|b| format!("{b:02x}")).collect();
    for text in [&node_text, &gw_text] {
        for secret in [
            resident.as_str(),
            "Metrics Resident",
            &badge_hex,
            &badge.qr_text,
        ] {
            assert!(!text.contains(secret), "{secret:?} in metrics");
        }
    }
    // Build information and the standard process families, in both.
    for text in [&node_text, &gw_text] {
        assert!(
            text.lines().any(|l| l.starts_with("tessera_build_info{")
                && l.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION")))
                && l.ends_with(" 1")),
            "{text}"
        );
        assert!(sample(text, "process_resident_memory_bytes").is_some_and(|v| v > 0.0));
        assert!(sample(text, "process_open_fds").is_some_and(|v| v > 0.0));
        assert!(sample(text, "process_cpu_seconds_total").is_some());
        assert!(sample(text, "process_start_time_seconds").is_some_and(|v| v > 1.0e9));
    }

    // Every series the shipped dashboard and alert rules name is one these
    // servers export (a family without samples yet counts: it is declared).
    let exported: std::collections::BTreeSet<String> = [&node_text, &gw_text]
        .into_iter()
        .flat_map(|t| exported_series(t))
        .collect();
    let packaging = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging");
    for file in ["grafana/tessera.json", "prometheus/alerts.yml"] {
        let text = std::fs::read_to_string(packaging.join(file)).unwrap();
        let named = series_named(&text);
        assert!(named.len() > 5, "{file} names only {named:?}");
        for name in named {
            assert!(
                exported.contains(&name),
                "{file} names {name}, which no server exports; exported: {exported:?}"
            );
        }
    }

    // Only /metrics is served.
    let (status, _) = get(gw_metrics, "/other").await;
    assert!(status.contains("404"), "{status}");

    node.stop().await.unwrap();
    gw.stop().await.unwrap();
}

/// The sample names a scrape holds or declares: each sample's name, and for
/// each `# TYPE` line the names its samples take (`_total` for a counter,
/// `_bucket`, `_sum` and `_count` for a histogram, `_info` for an info).
fn exported_series(text: &str) -> Vec<String> {
    let mut names = vec![];
    for line in text.lines() {
        if let Some(decl) = line.strip_prefix("# TYPE ") {
            let mut parts = decl.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            match kind {
                "counter" => names.push(format!("{name}_total")),
                "histogram" => {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        names.push(format!("{name}{suffix}"));
                    }
                }
                "info" => names.push(format!("{name}_info")),
                _ => names.push(name.to_owned()),
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.push(line[..end].to_owned());
        }
    }
    names
}

/// The tessera and process series a dashboard or rule file names (`up`, which
/// Prometheus records itself, is not one).
fn series_named(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        let at_start = i == 0 || !word(bytes[i - 1]);
        let rest = &text[i..];
        if at_start && (rest.starts_with("tessera_") || rest.starts_with("process_")) {
            let len = rest.bytes().take_while(|&b| word(b)).count();
            names.insert(rest[..len].to_owned());
            i += len;
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn the_name_reader_finds_series_and_their_declared_forms() {
    let named = series_named(
        r#"rate(tessera_rpc_calls_total{code="OK"}[5m]) / x_tessera_no + process_open_fds"#,
    );
    assert_eq!(
        named.into_iter().collect::<Vec<_>>(),
        ["process_open_fds", "tessera_rpc_calls_total"]
    );
    let exported = exported_series(
        "# TYPE tessera_x counter\n# TYPE tessera_h histogram\n# TYPE tessera_build info\ntessera_g{a=\"b\"} 1\n",
    );
    for name in [
        "tessera_x_total",
        "tessera_h_bucket",
        "tessera_h_count",
        "tessera_build_info",
        "tessera_g",
    ] {
        assert!(exported.iter().any(|n| n == name), "{name} in {exported:?}");
    }
}
