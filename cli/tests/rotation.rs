//! Key rotation and certificate renewal end to end, with the real `tessera`
//! binary: `authority rotate-signer`, `renew` and `rotate-list-signer`
//! against a node and a gateway running as processes from the authority's
//! bundles, a checkpoint verifying through the gateway and offline.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Authority, free_port, id, ok, stop, tessera};
use prost::Message;
use tessera_certs::keys;
use tessera_core::trust::{CheckedTrustList, EntryStatus, sign_trust_list};
use tessera_core::{CertInfo, KeyId, Role, TrustAnchor};
use tessera_proto::v1 as pb;
use tessera_proto::v1::city_node_client::CityNodeClient;
use tessera_proto::v1::gateway_client::GatewayClient;
use tessera_runtime::tls::{self, TrustState};
use tessera_runtime::{TlsIdentity, grpc};
use tonic::transport::Channel;

const VERIFIER: &str = "verifiers/420000-wuhan-station/verifier";
const OPERATOR: &str = "operators/330100-hangzhou-cdc/operator";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn trust(dir: &Path) -> Arc<TrustState> {
    tls::install_default_provider();
    let root = keys::read_cert(&dir.join("root/root.crt")).unwrap();
    Arc::new(TrustState::new(TrustAnchor::from_der(&root).unwrap()).unwrap())
}

fn identity(dir: &Path, base: &str) -> TlsIdentity {
    let base = dir.join(base);
    TlsIdentity::from_files(&base.with_extension("crt"), &base.with_extension("key")).unwrap()
}

fn checkpoint(dir: &Path, gateway: &str) -> GatewayClient<Channel> {
    let config = tls::client_config(&identity(dir, VERIFIER), trust(dir), Role::Gateway).unwrap();
    GatewayClient::new(grpc::channel(gateway, config).unwrap())
}

fn key_id_of(path: &Path) -> KeyId {
    KeyId::of_certificate(&keys::read_cert(path).unwrap())
}

fn serial_of(der: &[u8]) -> String {
    tessera_core::cert::hex_string(CertInfo::parse(der).unwrap().serial())
}

/// The serial of the certificate a server at `addr` presents to a new
/// connection (a fresh configuration: no session is resumed).
async fn presented_serial(dir: &Path, addr: &str, client: &str, expected: Role) -> String {
    let config = tls::client_config(&identity(dir, client), trust(dir), expected).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(
            rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    serial_of(stream.get_ref().1.peer_certificates().unwrap()[0].as_ref())
}

/// Adds `reload_secs` to a configuration, and makes a node follow `gateway`.
fn configure(config: &Path, reload_secs: u64, gateway: Option<&str>) {
    let mut text = std::fs::read_to_string(config).unwrap();
    if let Some(gateway) = gateway {
        text = text.replace(
            "root = \"root.crt\"",
            &format!("root = \"root.crt\"\ngateway = \"{gateway}\"\nrefresh_secs = 1"),
        );
    }
    std::fs::write(config, format!("reload_secs = {reload_secs}\n{text}")).unwrap();
}

/// A federation of processes: the authority's directory, a gateway named
/// "national" and the node of 330100 following it, a checkpoint of 420000.
struct Federation {
    a: Authority,
    gateway: String,
    gateway_process: Option<std::process::Child>,
    node: Option<std::process::Child>,
}

impl Federation {
    fn start(node_reload_secs: u64) -> Self {
        let a = Authority::new();
        let d = a.dir.to_str().unwrap().to_owned();
        ok(&[
            "authority",
            "enrol-verifier",
            "--dir",
            &d,
            "--province",
            "420000",
            "--name",
            "Wuhan station",
        ]);
        let port = free_port();
        let gateway = format!("127.0.0.1:{port}");
        ok(&[
            "authority",
            "enrol-gateway",
            "--dir",
            &d,
            "--name",
            "national",
            "--endpoint",
            &gateway,
        ]);
        configure(&a.dir.join("gateways/national/gateway.toml"), 1, None);
        let gateway_process = a.start_gateway(port);
        a.publish_to(&gateway);
        configure(
            &a.dir.join("cities/330100/node.toml"),
            node_reload_secs,
            Some(&gateway),
        );
        let node = a.start_node();
        Self {
            a,
            gateway,
            gateway_process: Some(gateway_process),
            node: Some(node),
        }
    }

    fn dir(&self) -> &Path {
        &self.a.dir
    }

    fn d(&self) -> String {
        self.a.dir.display().to_string()
    }

    fn node_addr(&self) -> String {
        format!("127.0.0.1:{}", self.a.port)
    }

    fn operator(&self) -> CityNodeClient<Channel> {
        self.a.client(OPERATOR)
    }

    /// Publishes to the gateway and also writes the list to `out`.
    fn publish(&self, out: &Path) -> String {
        ok(&[
            "authority",
            "trust-list",
            "publish",
            "--dir",
            &self.d(),
            "--gateway",
            &self.gateway,
            "--out",
            out.to_str().unwrap(),
        ])
    }

    /// Waits until the node holds list `sequence` (it keeps the newest in
    /// its data directory).
    async fn node_holds(&self, sequence: u64) {
        let cache = self.dir().join("cities/330100/data/trust-list.tsl");
        common::wait(
            format!("the node to fetch list {sequence}"),
            Duration::from_secs(20),
        )
        .every(Duration::from_millis(100))
        .until_async(async || {
            let Ok(bytes) = std::fs::read(&cache) else {
                return false;
            };
            let signed = pb::SignedTrustList::decode(bytes.as_slice()).unwrap();
            let list = pb::TrustList::decode(signed.payload.as_slice()).unwrap();
            list.sequence >= sequence
        })
        .await;
    }
}

impl Drop for Federation {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            stop(node);
        }
        if let Some(gateway) = self.gateway_process.take() {
            stop(gateway);
        }
    }
}

/// Stores a negative test for each resident.
async fn ingest(op: &mut CityNodeClient<Channel>, residents: &[u32]) {
    let records = residents
        .iter()
        .map(|&n| pb::Record {
            record_id: format!("rot-{n}"),
            national_id: id(n),
            kind: Some(pb::record::Kind::Test(pb::TestResult {
                kind: pb::TestKind::Pcr as i32,
                positive: false,
                sampled_at: now() - 3600,
                lab: "HZ-LAB-01".into(),
            })),
        })
        .collect();
    op.ingest_records(pb::IngestRequest { records })
        .await
        .unwrap();
}

async fn issue(op: &mut CityNodeClient<Channel>, resident: u32) -> pb::IssueBadgeResponse {
    op.issue_badge(pb::IssueBadgeRequest {
        national_id: id(resident),
        name: "王芳".into(),
    })
    .await
    .unwrap()
    .into_inner()
}

fn badge_key_id(badge: &pb::IssueBadgeResponse) -> KeyId {
    let envelope = pb::SignedBadge::decode(badge.badge.as_slice()).unwrap();
    KeyId::from_slice(&envelope.key_id).unwrap()
}

async fn verdict(cp: &mut GatewayClient<Channel>, badge: &pb::IssueBadgeResponse) -> pb::Outcome {
    let v = cp
        .verify(pb::VerifyRequest {
            badge: Some(pb::verify_request::Badge::QrText(badge.qr_text.clone())),
        })
        .await
        .unwrap()
        .into_inner();
    pb::Outcome::try_from(v.outcome).unwrap()
}

fn verify_offline(
    list: &Path,
    root: &Path,
    badge: &pb::IssueBadgeResponse,
) -> std::process::Output {
    tessera(&[
        "verify",
        "--offline",
        "--trust-list",
        list.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
        &badge.qr_text,
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_badge_signer_keeps_old_badges_valid_and_signs_new_ones_once_published() {
    let f = Federation::start(1);
    let d = f.d();
    let bundle = f.dir().join("cities/330100");
    let root = f.dir().join("root/root.crt");
    let old_key = key_id_of(&bundle.join("badge-signer.crt"));
    let mut op = f.operator();
    let mut cp = checkpoint(f.dir(), &f.gateway);
    ingest(&mut op, &[1, 2, 3]).await;
    f.node_holds(1).await;

    let before = issue(&mut op, 1).await;
    assert_eq!(badge_key_id(&before), old_key);
    assert_eq!(verdict(&mut cp, &before).await, pb::Outcome::Valid);

    let out = ok(&[
        "authority",
        "rotate-signer",
        "--dir",
        &d,
        "--city",
        "330100",
    ]);
    assert!(out.contains("retired"), "{out}");
    let new_key = key_id_of(&bundle.join("badge-signer.2.crt"));
    assert_ne!(new_key, old_key);
    // No list carries the new key yet: the live files keep the old signer
    // (so a node restarted now still signs with a key verifiers know), and
    // its key is kept beside its certificate.
    assert_eq!(key_id_of(&bundle.join("badge-signer.crt")), old_key);
    assert_eq!(key_id_of(&bundle.join("badge-signer.1.crt")), old_key);
    assert!(bundle.join("badge-signer.1.key").exists());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let waiting = issue(&mut op, 2).await;
    assert_eq!(badge_key_id(&waiting), old_key);
    assert_eq!(verdict(&mut cp, &waiting).await, pb::Outcome::Valid);

    let list = f.dir().join("list-2.tsl");
    let out = f.publish(&list);
    assert!(out.contains("rotated badge signer"), "{out}");
    assert_eq!(key_id_of(&bundle.join("badge-signer.crt")), new_key);
    let checked = CheckedTrustList::verify(
        &std::fs::read(&list).unwrap(),
        &TrustAnchor::from_der(&keys::read_cert(&root).unwrap()).unwrap(),
        now(),
    )
    .unwrap();
    for key in [old_key, new_key] {
        assert_eq!(
            checked.by_key_id(&key).map(|e| e.status()),
            Some(EntryStatus::Active),
            "both signers are listed active"
        );
    }

    // Once the node holds that list it signs with the new key.
    f.node_holds(2).await;
    let after = common::wait("the node to sign with the new key", Duration::from_secs(15))
        .every(Duration::from_millis(200))
        .until_async(async || {
            let badge = issue(&mut op, 3).await;
            (badge_key_id(&badge) == new_key).then_some(badge)
        })
        .await;

    // Both verify, through the gateway and offline.
    for badge in [&before, &waiting, &after] {
        assert_eq!(verdict(&mut cp, badge).await, pb::Outcome::Valid);
        let offline = verify_offline(&list, &root, badge);
        assert!(
            offline.status.success(),
            "{}",
            String::from_utf8_lossy(&offline.stdout)
        );
    }

    // The old signer cannot be pruned while its badges may be valid.
    let out = ok(&["authority", "prune-signers", "--dir", &d]);
    assert!(
        out.contains("No retired badge signer can be pruned yet"),
        "{out}"
    );
    assert!(out.contains("refused"), "{out}");
    assert!(bundle.join("badge-signer.1.key").exists());
    assert!(
        out.contains("kept   tessera:city:330100:badge-signer"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn renewed_tls_certificates_reach_new_connections_while_calls_go_on() {
    // The node looks at its files only on SIGHUP here (reload_secs is an
    // hour); the gateway every second.
    let f = Federation::start(3600);
    let d = f.d();
    let node = f.node_addr();
    let old_node = presented_serial(f.dir(), &node, OPERATOR, Role::CityNode).await;
    let old_gateway = presented_serial(f.dir(), &f.gateway, VERIFIER, Role::Gateway).await;
    let mut op = f.operator();
    ingest(&mut op, &[1]).await;
    let badge = issue(&mut op, 1).await;

    // Callers on connections opened before the renewal, calling in a loop:
    // an operator to the node, a checkpoint verifying through the gateway
    // (which relays to the node).
    let running = Arc::new(AtomicBool::new(true));
    let (ok_calls, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut loops = vec![];
    {
        let (running, ok_calls, failed) = (running.clone(), ok_calls.clone(), failed.clone());
        let mut op = op.clone();
        loops.push(tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                match op.who_am_i(pb::WhoAmIRequest {}).await {
                    Ok(_) => ok_calls.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("node call failed: {e}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    {
        let (running, ok_calls, failed) = (running.clone(), ok_calls.clone(), failed.clone());
        let mut cp = checkpoint(f.dir(), &f.gateway);
        let badge = badge.clone();
        loops.push(tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                if verdict(&mut cp, &badge).await == pb::Outcome::Valid {
                    ok_calls.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let out = ok(&["authority", "renew", "--dir", &d, "--city", "330100"]);
    assert!(out.contains(&format!("old  serial {old_node}")), "{out}");
    let new_node = serial_of(&keys::read_cert(&f.dir().join("cities/330100/node.crt")).unwrap());
    assert_ne!(new_node, old_node);
    // Not before the node is told.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        presented_serial(f.dir(), &node, OPERATOR, Role::CityNode).await,
        old_node
    );
    let pid = f.node.as_ref().unwrap().id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let sent = Instant::now();
    common::wait_until_async(
        "the node to present its renewed certificate after SIGHUP",
        Duration::from_secs(10),
        async || presented_serial(f.dir(), &node, OPERATOR, Role::CityNode).await == new_node,
    )
    .await;
    eprintln!(
        "node: new certificate presented {:?} after SIGHUP",
        sent.elapsed()
    );

    let out = ok(&["authority", "renew", "--dir", &d, "--gateway", "national"]);
    assert!(out.contains(&format!("old  serial {old_gateway}")), "{out}");
    let new_gateway =
        serial_of(&keys::read_cert(&f.dir().join("gateways/national/gateway.crt")).unwrap());
    let renewed = Instant::now();
    common::wait_until_async(
        "the gateway to present its renewed certificate",
        Duration::from_secs(10),
        async || {
            presented_serial(f.dir(), &f.gateway, VERIFIER, Role::Gateway).await == new_gateway
        },
    )
    .await;
    eprintln!(
        "gateway: new certificate presented {:?} after renew",
        renewed.elapsed()
    );

    // A new checkpoint connection verifies through the renewed gateway to
    // the renewed node.
    let mut fresh = checkpoint(f.dir(), &f.gateway);
    assert_eq!(verdict(&mut fresh, &badge).await, pb::Outcome::Valid);
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.store(false, Ordering::Relaxed);
    for l in loops {
        l.await.unwrap();
    }
    let (ok_calls, failed) = (
        ok_calls.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    eprintln!("{ok_calls} calls answered, {failed} failed");
    assert_eq!(failed, 0, "calls failed across the renewals");
    assert!(ok_calls > 50, "too few calls were made: {ok_calls}");

    // Renewed certificates are still accepted once the list names them.
    f.publish(&f.dir().join("after-renewal.tsl"));
    assert_eq!(verdict(&mut fresh, &badge).await, pb::Outcome::Valid);

    // A checkpoint's certificate is renewed by serial; its bundle, now with
    // numbered copies beside the live files, still works as one.
    let cp = f.dir().join(VERIFIER).with_extension("crt");
    let old_cp = serial_of(&keys::read_cert(&cp).unwrap());
    let out = ok(&["authority", "renew", "--dir", &d, "--serial", &old_cp]);
    assert!(out.contains("verifier"), "{out}");
    assert_ne!(serial_of(&keys::read_cert(&cp).unwrap()), old_cp);
    let bundle = cp.parent().unwrap().to_str().unwrap().to_owned();
    let out = tessera(&[
        "verify",
        "--gateway",
        &f.gateway,
        "--bundle",
        &bundle,
        &badge.qr_text,
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Signs `list` with the trust-list signer whose files are at `base`.
fn sign_with(list: &pb::TrustList, base: &Path) -> Vec<u8> {
    let key = keys::read_signer_key(&base.with_extension("key")).unwrap();
    let der = keys::read_cert(&base.with_extension("crt")).unwrap();
    sign_trust_list(list, &key, &der).unwrap()
}

/// Uploads a list to the gateway as the authority.
async fn upload(dir: &Path, gateway: &str, bytes: &[u8]) -> Result<u64, tonic::Status> {
    let config = tls::client_config(
        &identity(dir, "authority/authority"),
        trust(dir),
        Role::Gateway,
    )
    .unwrap();
    let mut client = GatewayClient::new(grpc::channel(gateway, config).unwrap());
    client
        .publish_trust_list(pb::PublishTrustListRequest {
            list: Some(pb::SignedTrustList::decode(bytes).unwrap()),
        })
        .await
        .map(|r| r.into_inner().sequence)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_trust_list_signer_is_accepted_everywhere_and_the_old_one_refused() {
    let f = Federation::start(1);
    let d = f.d();
    let root_path = f.dir().join("root/root.crt");
    let root = TrustAnchor::from_der(&keys::read_cert(&root_path).unwrap()).unwrap();
    let cp_bundle = f.dir().join("verifiers/420000-wuhan-station");
    let cp_list = f.dir().join("checkpoint.tsl");
    let fetch = || {
        ok(&[
            "trust-list",
            "fetch",
            "--gateway",
            &f.gateway,
            "--bundle",
            cp_bundle.to_str().unwrap(),
            "--out",
            cp_list.to_str().unwrap(),
        ])
    };
    fetch();
    // The old signer's key, as someone who stole it would have it.
    let stolen = tempfile::tempdir().unwrap();
    for ext in ["crt", "key"] {
        std::fs::copy(
            f.dir().join(format!("trust-list-signer/signer.{ext}")),
            stolen.path().join(format!("signer.{ext}")),
        )
        .unwrap();
    }
    let old_id = key_id_of(&stolen.path().join("signer.crt"));
    let first = std::fs::read(f.dir().join("trust-lists/000001.tsl")).unwrap();

    let out = ok(&["authority", "rotate-list-signer", "--dir", &d]);
    assert!(out.contains("revoked"), "{out}");
    let new_id = key_id_of(&f.dir().join("trust-list-signer/signer.crt"));
    assert_ne!(new_id, old_id);

    // The gateway takes the new signer's list, the node follows it, the
    // checkpoint fetches it.
    let second = f.dir().join("list-2.tsl");
    let out = f.publish(&second);
    assert!(out.contains("sequence 2 in force"), "{out}");
    let list = CheckedTrustList::verify(&std::fs::read(&second).unwrap(), &root, now()).unwrap();
    assert_eq!(list.signer_certificate().key_id(), new_id);
    assert!(list.by_key_id(&old_id).unwrap().is_revoked());
    assert_eq!(
        list.by_key_id(&new_id).map(|e| e.status()),
        Some(EntryStatus::Active)
    );
    f.node_holds(2).await;
    assert!(fetch().contains("trust list 2 saved"));

    // Badges still verify, online and offline with the checkpoint's copy.
    let mut op = f.operator();
    ingest(&mut op, &[1]).await;
    let badge = issue(&mut op, 1).await;
    let mut cp = checkpoint(f.dir(), &f.gateway);
    assert_eq!(verdict(&mut cp, &badge).await, pb::Outcome::Valid);
    assert!(
        verify_offline(&cp_list, &root_path, &badge)
            .status
            .success()
    );

    // The old key signs a later sequence listing itself active again: the
    // gateway, holding a list that revokes it, refuses it.
    let mut forged = pb::TrustList::decode(
        pb::SignedTrustList::decode(std::fs::read(&second).unwrap().as_slice())
            .unwrap()
            .payload
            .as_slice(),
    )
    .unwrap();
    forged.sequence = 50;
    forged.issued_at = now();
    for e in &mut forged.entries {
        if KeyId::of_certificate(&e.certificate_der) == old_id {
            e.status = pb::EntryStatus::Active as i32;
            e.revoked_at = 0;
        }
    }
    let forged_bytes = sign_with(&forged, &stolen.path().join("signer"));
    let refused = upload(f.dir(), &f.gateway, &forged_bytes)
        .await
        .unwrap_err();
    assert!(
        refused.message().contains("revoked trust-list signer"),
        "{refused:?}"
    );
    // So is the old signer's own first list (rollback).
    let refused = upload(f.dir(), &f.gateway, &first).await.unwrap_err();
    assert!(refused.message().contains("not newer"), "{refused:?}");
    // A list from the old key that carries the revocation is refused even
    // by a verifier without history: offline and by `trust-list show`.
    forged.entries.iter_mut().for_each(|e| {
        if KeyId::of_certificate(&e.certificate_der) == old_id {
            e.status = pb::EntryStatus::Revoked as i32;
            e.revoked_at = now();
        }
    });
    let self_revoking = f.dir().join("self-revoking.tsl");
    std::fs::write(
        &self_revoking,
        sign_with(&forged, &stolen.path().join("signer")),
    )
    .unwrap();
    let out = verify_offline(&self_revoking, &root_path, &badge);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("revoked trust-list signer"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tessera(&[
        "authority",
        "trust-list",
        "show",
        self_revoking.to_str().unwrap(),
        "--dir",
        &d,
    ]);
    assert!(!out.status.success());

    // The gateway still serves the new signer's list; the next one too.
    assert_eq!(verdict(&mut cp, &badge).await, pb::Outcome::Valid);
    let out = f.publish(&f.dir().join("list-3.tsl"));
    assert!(out.contains("sequence 3 in force"), "{out}");
    f.node_holds(3).await;
    assert!(fetch().contains("trust list 3 saved"));
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_compromised_issuing_ca_is_rotated_old_certificates_are_refused_and_new_ones_work()
{
    // Node and gateway look at their files every second.
    let f = Federation::start(1);
    let d = f.d();
    let mut op = f.operator();
    ingest(&mut op, &[1, 2]).await;
    let before = issue(&mut op, 1).await;
    // A checkpoint still on its old files, connected before the rotation.
    let mut old_cp = checkpoint(f.dir(), &f.gateway);
    assert_eq!(verdict(&mut old_cp, &before).await, pb::Outcome::Valid);

    let out = ok(&[
        "authority",
        "rotate-issuing-ca",
        "--dir",
        &d,
        "--compromised",
    ]);
    assert!(out.contains("revoked"), "{out}");
    let published = f.publish(&f.dir().join("after.tsl"));
    let sequence: u64 = published
        .split_whitespace()
        .find_map(|w| w.trim_matches(|c: char| !c.is_ascii_digit()).parse().ok())
        .unwrap_or(2);
    f.node_holds(sequence.max(2)).await;

    // The party on its old certificate is refused on its next call.
    let status = old_cp
        .verify(pb::VerifyRequest {
            badge: Some(pb::verify_request::Badge::QrText(before.qr_text.clone())),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("issued by revoked issuing CA"),
        "{status:?}"
    );
    // The checkpoint with its new file (same key) gets through; the badge
    // signed before by the signer the old issuing CA issued is refused for
    // its issuer, and a badge of the re-certified signer verifies.
    let mut new_cp = checkpoint(f.dir(), &f.gateway);
    common::wait(
        "the node and gateway to present their new certificates".to_owned(),
        Duration::from_secs(30),
    )
    .every(Duration::from_millis(200))
    .until_async(async || {
        let mut op = f.operator();
        let Ok(badge) = op
            .issue_badge(pb::IssueBadgeRequest {
                national_id: id(2),
                name: "王芳".into(),
            })
            .await
        else {
            return false;
        };
        let badge = badge.into_inner();
        match new_cp
            .verify(pb::VerifyRequest {
                badge: Some(pb::verify_request::Badge::QrText(badge.qr_text.clone())),
            })
            .await
        {
            Ok(v) => v.into_inner().outcome == pb::Outcome::Valid as i32,
            Err(_) => false,
        }
    })
    .await;
    let v = new_cp
        .verify(pb::VerifyRequest {
            badge: Some(pb::verify_request::Badge::QrText(before.qr_text.clone())),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.outcome, pb::Outcome::SignerRevoked as i32, "{v:?}");
    assert_eq!(v.reason, "issuer_revoked", "{v:?}");
}
