//! Renewal in a node running in this process: its TLS certificate and badge
//! signer are about to expire (the expiry gauge under 30 days); new files
//! replace them the way `tessera authority renew` and `rotate-signer`
//! install them (key first, each by an atomic rename). Within `reload_secs`
//! new connections get the new certificate, calls on an open connection go
//! on without a failure, badges carry the new key id, and the expiry gauges
//! follow the new certificates.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prost::Message;
use tessera_certs::keys;
use tessera_core::{CertInfo, CityCode, Identity, KeyId, Role, Scope};
use tessera_proto::v1 as pb;
use tessera_runtime::TlsIdentity;
use tessera_runtime::tls::{self, TrustState};
use tessera_tests::harness::{RunningNode, add_top_level, node_client, write_city_bundle};
use tessera_tests::wait::{wait, wait_until_async};
use tessera_tests::{DAY, Issued, TestPki, national_id, test_record, unix_now};
use tokio::net::TcpListener;

use crate::metrics::{free_addr, get, sample, with_metrics};

/// Replaces `dir/stem.crt` and `.key` as the authority does.
fn install(dir: &Path, stem: &str, issued: &Issued) {
    let swap = |name: String, text: String| {
        let tmp = dir.join(format!("{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        // Keys 0600, as the authority writes them and the node requires.
        std::fs::set_permissions(
            &tmp,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
        )
        .unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    };
    swap(format!("{stem}.key"), issued.key_pem().unwrap());
    swap(format!("{stem}.crt"), keys::cert_to_pem(&issued.der));
}

fn serial(der: &[u8]) -> Vec<u8> {
    CertInfo::parse(der).unwrap().serial().to_vec()
}

/// The serial the node presents to a new connection.
async fn presented(pki: &TestPki, addr: std::net::SocketAddr, operator: &Issued) -> Vec<u8> {
    let trust = Arc::new(TrustState::new(pki.anchor().unwrap()).unwrap());
    let identity = TlsIdentity::new(operator.der.clone(), &operator.tls_key).unwrap();
    let config = tls::client_config(&identity, trust, Role::CityNode).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(
            rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    serial(stream.get_ref().1.peer_certificates().unwrap()[0].as_ref())
}

/// The node's metrics, once its endpoint is up (it is bound by the node's
/// task, which may not have run yet).
async fn scrape(metrics: std::net::SocketAddr) -> String {
    wait(
        format!("the metrics endpoint on {metrics}"),
        Duration::from_secs(10),
    )
    .every(Duration::from_millis(20))
    .until_async(async || tokio::net::TcpStream::connect(metrics).await.is_ok())
    .await;
    get(metrics, "/metrics").await.1
}

/// A test PKI with Hangzhou enrolled at a bound loopback listener, and a
/// temporary directory for its files.
struct Setup {
    now: i64,
    pki: TestPki,
    listener: TcpListener,
    addr: std::net::SocketAddr,
    hz: CityCode,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    tls::install_default_provider();
    let now = unix_now();
    let mut pki = TestPki::new(now).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hz = pki
        .add_city(330_100, "Hangzhou", &addr.to_string())
        .unwrap();
    Setup {
        now,
        pki,
        listener,
        addr,
        hz,
        dir: tempfile::tempdir().unwrap(),
    }
}

async fn expiry(metrics: std::net::SocketAddr, certificate: &str) -> f64 {
    sample(
        &scrape(metrics).await,
        &format!("tessera_certificate_expiry_seconds{{certificate=\"{certificate}\"}}"),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_takes_up_renewed_files_without_a_restart_and_its_expiry_gauges_follow() {
    let Setup {
        now,
        pki,
        listener,
        addr,
        hz,
        dir,
    } = setup().await;
    let bundle = dir.path().join("hz");
    let config = write_city_bundle(&pki, hz, &bundle, addr).unwrap();
    // Both of the node's certificates expire in 20 days.
    let node_id = Identity::new(Role::CityNode, Scope::City(hz)).unwrap();
    let signer_id = Identity::new(Role::BadgeSigner, Scope::City(hz)).unwrap();
    let short_tls = pki
        .issue_window(node_id, &["127.0.0.1"], now - DAY, now + 20 * DAY)
        .unwrap();
    let short_signer = pki
        .issue_window(signer_id, &[], now - DAY, now + 20 * DAY)
        .unwrap();
    install(&bundle, "node", &short_tls);
    install(&bundle, "badge-signer", &short_signer);
    add_top_level(&config, "reload_secs = 1").unwrap();
    let metrics = free_addr();
    with_metrics(&config, metrics);
    let node = RunningNode::start_with(config, listener).await.unwrap();

    let warn = (30 * DAY) as f64;
    assert!(expiry(metrics, "tls").await < warn);
    assert!(expiry(metrics, "badge_signer").await < warn);
    let operator = pki.operator(hz).unwrap();
    assert_eq!(
        presented(&pki, addr, &operator).await,
        serial(&short_tls.der)
    );
    let mut op = node_client(&pki, addr, &operator).unwrap();
    let resident = national_id(hz, 1);
    op.ingest_records(pb::IngestRequest {
        records: vec![test_record("r-1", &resident, false, now - 60)],
    })
    .await
    .unwrap();

    // An operator issuing badges in a loop on one connection.
    let running = Arc::new(AtomicBool::new(true));
    let (answered, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let caller = {
        let (running, answered, failed) = (running.clone(), answered.clone(), failed.clone());
        let mut op = op.clone();
        let resident = resident.clone();
        tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                let call = op.issue_badge(pb::IssueBadgeRequest {
                    national_id: resident.clone(),
                    name: "Renewal Resident".into(),
                });
                match call.await {
                    Ok(_) => answered.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("call failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        })
    };

    let renewed_tls = pki.issue(node_id, &["127.0.0.1"]).unwrap();
    let renewed_signer = pki.issue(signer_id, &[]).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    install(&bundle, "node", &renewed_tls);
    install(&bundle, "badge-signer", &renewed_signer);
    let swapped = Instant::now();
    wait_until_async(
        "the node to present its renewed certificate",
        Duration::from_secs(10),
        async || presented(&pki, addr, &operator).await == serial(&renewed_tls.der),
    )
    .await;
    eprintln!(
        "new certificate presented {:?} after the swap",
        swapped.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.store(false, Ordering::Relaxed);
    caller.await.unwrap();
    let (answered, failed) = (
        answered.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    eprintln!("{answered} badges issued across the renewal, {failed} calls failed");
    assert_eq!(failed, 0);
    assert!(answered > 10, "{answered}");

    let badge = op
        .issue_badge(pb::IssueBadgeRequest {
            national_id: resident,
            name: "Renewal Resident".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let envelope = pb::SignedBadge::decode(badge.badge.as_slice()).unwrap();
    assert_eq!(
        KeyId::from_slice(&envelope.key_id).unwrap(),
        KeyId::of_certificate(&renewed_signer.der)
    );
    // The gauges read the certificates in use: no warning any more.
    assert!(expiry(metrics, "tls").await > (300 * DAY) as f64);
    assert!(expiry(metrics, "badge_signer").await > (300 * DAY) as f64);
    node.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_keeps_following_its_gateway_after_its_renewed_certificate_replaces_a_revoked_one() {
    let Setup {
        mut pki,
        listener,
        addr,
        hz,
        dir,
        ..
    } = setup().await;
    let gw = tessera_tests::harness::RunningGateway::start(
        &pki,
        &dir.path().join("gw"),
        Some(&pki.trust_list(1).unwrap()),
        tessera_gateway::config::RelaySettings::default(),
    )
    .await
    .unwrap();
    let bundle = dir.path().join("hz");
    let config = write_city_bundle(&pki, hz, &bundle, addr).unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "root = \"root.crt\"",
        &format!(
            "root = \"root.crt\"\ngateway = \"{}\"\nrefresh_secs = 1",
            gw.addr
        ),
    );
    std::fs::write(&config, text).unwrap();
    add_top_level(&config, "reload_secs = 1").unwrap();
    let metrics = free_addr();
    with_metrics(&config, metrics);
    let node = RunningNode::start_with(config, listener).await.unwrap();
    let held = |want: f64| async move {
        wait(
            format!("the node to hold list {want} after it was published"),
            Duration::from_secs(20),
        )
        .every(Duration::from_millis(100))
        .until_async(async || {
            sample(&scrape(metrics).await, "tessera_trust_list_sequence") == Some(want)
        })
        .await;
    };
    held(1.0).await;

    // The node's certificate is renewed (new key), and once the node uses
    // the new one the old one is revoked, as `tessera authority renew` and
    // then `revoke --serial` do.
    let old = pki.city(hz).unwrap().node.clone();
    let node_id = Identity::new(Role::CityNode, Scope::City(hz)).unwrap();
    let renewed = pki.issue(node_id, &["127.0.0.1"]).unwrap();
    install(&bundle, "node", &renewed);
    let operator = pki.operator(hz).unwrap();
    wait(
        "the node to take up its renewed certificate",
        Duration::from_secs(20),
    )
    .every(Duration::from_millis(100))
    .until_async(async || presented(&pki, addr, &operator).await == serial(&renewed.der))
    .await;
    pki.cities[0].node = renewed;
    let publish = |sequence: u64, revoked: Vec<Vec<u8>>| {
        let mut msg = pki.trust_list_message(sequence).unwrap();
        msg.revoked_serials = revoked;
        pki.sign(&msg).unwrap()
    };
    gw.registry
        .publish(&publish(2, vec![]), unix_now())
        .await
        .unwrap();
    held(2.0).await;
    // The connection the node followed on carried the old certificate, so
    // the gateway now refuses every call on it; a later list must still
    // arrive, over a new connection with the renewed certificate.
    gw.registry
        .publish(&publish(3, vec![serial(&old.der)]), unix_now())
        .await
        .unwrap();
    held(3.0).await;
    node.stop().await.unwrap();
    gw.stop().await.unwrap();
}
