//! Sunset: a real node with records and badges destroys everything, signs a
//! deletion attestation that verifies (and a tampered one does not), a
//! re-run after an interrupted sunset finishes the job, a node switches
//! itself off at the trust list's sunset date, and the gateway collects the
//! attestations for the authority.

use std::path::{Path, PathBuf};

use prost::Message;
use tessera_core::attestation::{
    AttestationError, REASON_OPERATOR, REASON_SUNSET, verify_attestation,
};
use tessera_core::trust::{CheckedTrustList, TrustListError};
use tessera_core::{CityCode, Identity, Role, Scope};
use tessera_gateway::config::RelaySettings;
use tessera_node::config::NodeSettings;
use tessera_node::data_dir::{DONE, PENDING};
use tessera_node::error::StartError;
use tessera_node::lifecycle::{self, Ended};
use tessera_node::load;
use tessera_node::policy::Policy;
use tessera_node::sunset::{self, Halt, Reason, SunsetError};
use tessera_proto::v1 as pb;
use tessera_tests::harness::{
    RunningGateway, RunningNode, gateway_client, node_client, write_city_bundle,
};
use tessera_tests::{DAY, TestPki, national_id, test_record, unix_now};
use tokio::net::TcpListener;
use tonic::Code;

const HZ: u32 = 330_100;
const WUHAN: u32 = 420_100;

/// What a test node was given: 3 residents, 5 records, 2 badges.
const RESIDENTS: u64 = 3;
const RECORDS: u64 = 5;
const BADGES: u64 = 2;

fn pki() -> (TestPki, CityCode, CityCode) {
    let mut pki = TestPki::new(unix_now()).unwrap();
    let hz = pki.add_city(HZ, "Hangzhou", "127.0.0.1:1").unwrap();
    let wuhan = pki.add_city(WUHAN, "Wuhan", "127.0.0.1:2").unwrap();
    (pki, hz, wuhan)
}

/// Writes the city's bundle under `dir` with `list` as its trust list, the
/// gateway if given, and `[sunset] automatic` if asked.
fn bundle(
    pki: &TestPki,
    city: CityCode,
    dir: &Path,
    listener: &TcpListener,
    list: &[u8],
    gateway: Option<std::net::SocketAddr>,
    automatic: bool,
) -> PathBuf {
    let config = write_city_bundle(pki, city, dir, listener.local_addr().unwrap()).unwrap();
    std::fs::write(dir.join("trust-list.tsl"), list).unwrap();
    let mut tls = "root = \"root.crt\"\ntrust_list = \"trust-list.tsl\"".to_owned();
    if let Some(gateway) = gateway {
        tls.push_str(&format!("\ngateway = \"{gateway}\""));
    }
    let mut text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("root = \"root.crt\"", &tls);
    if automatic {
        text.push_str("\n[sunset]\nautomatic = true\n");
    }
    std::fs::write(&config, text).unwrap();
    config
}

/// Ingests 5 records of 3 residents and issues 2 badges through the
/// operator API of the node at `addr`.
async fn feed(pki: &TestPki, city: CityCode, addr: std::net::SocketAddr) {
    let op = pki.operator(city).unwrap();
    let mut client = node_client(pki, addr, &op).unwrap();
    let now = unix_now();
    let (a, b, c) = (
        national_id(city, 1),
        national_id(city, 2),
        national_id(city, 3),
    );
    let records = vec![
        test_record("lab-1", &a, false, now - 7200),
        test_record("lab-2", &a, false, now - 3600),
        test_record("lab-3", &b, false, now - 3600),
        test_record("lab-4", &c, true, now - 7200),
        test_record("lab-5", &c, false, now - 600),
    ];
    let ack = client
        .ingest_records(pb::IngestRequest { records })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(u64::from(ack.stored), RECORDS);
    for id in [&a, &b] {
        client
            .issue_badge(pb::IssueBadgeRequest {
                national_id: id.clone(),
                name: "张三丰".into(),
            })
            .await
            .unwrap();
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Flips one byte of the payload, keeping the envelope well-formed.
fn flip_payload_byte(signed: &[u8]) -> Vec<u8> {
    let mut envelope = pb::SignedAttestation::decode(signed).unwrap();
    let middle = envelope.payload.len() / 2;
    envelope.payload[middle] ^= 0x20;
    envelope.encode_to_vec()
}

/// Sets the counts to zero and re-encodes the payload, keeping the
/// signature.
pub(crate) fn edit_counts(signed: &[u8]) -> Vec<u8> {
    let mut envelope = pb::SignedAttestation::decode(signed).unwrap();
    let mut claims = pb::DeletionAttestation::decode(envelope.payload.as_slice()).unwrap();
    claims.records = 0;
    claims.residents = 0;
    envelope.payload = claims.encode_to_vec();
    envelope.encode_to_vec()
}

pub(crate) fn authority(pki: &TestPki) -> tessera_tests::Issued {
    pki.issue(Identity::new(Role::Authority, Scope::Nation).unwrap(), &[])
        .unwrap()
}

async fn listed(pki: &TestPki, gw: &RunningGateway) -> Vec<pb::SignedAttestation> {
    gateway_client(pki, gw.addr, &authority(pki))
        .unwrap()
        .list_attestations(pb::ListAttestationsRequest {})
        .await
        .unwrap()
        .into_inner()
        .attestations
}

#[tokio::test]
async fn sunset_destroys_everything_and_its_attestation_verifies_while_a_tampered_one_does_not() {
    let (pki, hz, wuhan) = pki();
    let root = pki.anchor().unwrap();
    let list = pki.trust_list(1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = RunningGateway::start(
        &pki,
        &dir.path().join("gw"),
        Some(&list),
        RelaySettings::default(),
    )
    .await
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let city_dir = dir.path().join("hz");
    let config = bundle(&pki, hz, &city_dir, &listener, &list, Some(gw.addr), false);
    let node = RunningNode::start_with(config.clone(), listener)
        .await
        .unwrap();
    feed(&pki, hz, node.addr).await;
    let settings = NodeSettings::load(&config).unwrap();

    // Running: refused, nothing destroyed.
    let running = sunset::destroy(&settings, Reason::Operator).unwrap_err();
    assert!(matches!(running, SunsetError::Running(_)), "{running}");
    assert!(settings.signer_key.exists());
    assert!(settings.data_dir.join("store").exists());
    assert!(!settings.data_dir.join(PENDING).exists());
    node.stop().await.unwrap();

    let done = sunset::destroy(&settings, Reason::Operator).unwrap();
    assert!(!done.earlier && !done.resumed);

    // Nothing is left but the attestation's copy: no store, no pseudonym
    // key, no trust-list cache, no key file; the badge-signer key is gone.
    assert_eq!(names_in(&settings.data_dir), vec![DONE.to_owned()]);
    assert!(!settings.signer_key.exists());
    assert!(settings.tls_key.exists(), "the TLS key stays to submit");
    assert!(done.file.starts_with(&city_dir) && done.file.exists());
    assert_eq!(std::fs::read(&done.file).unwrap(), done.signed);

    // The counts are what was ingested and issued.
    let verified = verify_attestation(&done.signed, &root, unix_now()).unwrap();
    let claims = verified.claims();
    assert_eq!(claims, &done.claims);
    assert_eq!(
        (claims.residents, claims.records, claims.badges),
        (RESIDENTS, RECORDS, BADGES)
    );
    assert_eq!(claims.city, HZ);
    assert!(claims.signer_key_destroyed);
    assert_eq!(claims.reason, REASON_OPERATOR);
    assert_eq!(claims.trust_list_sequence, 1);
    assert_eq!(
        claims.sunset_at,
        pki.trust_list_message(1).unwrap().sunset_at
    );
    assert_eq!(
        claims.policy_version,
        Policy::default_policy().unwrap().version()
    );

    // A tampered copy is refused.
    let flipped = flip_payload_byte(&done.signed);
    assert_eq!(
        verify_attestation(&flipped, &root, unix_now()).unwrap_err(),
        AttestationError::BadSignature
    );
    let edited = edit_counts(&done.signed);
    assert_eq!(
        verify_attestation(&edited, &root, unix_now()).unwrap_err(),
        AttestationError::BadSignature
    );

    // The node never starts again.
    let err = load::load(settings.clone()).unwrap_err();
    assert!(matches!(err, StartError::SwitchedOff(_)), "{err}");

    // The gateway takes it from the node (twice: idempotent), refuses the
    // tampered copies and another city's node, and lists it, durably.
    assert!(sunset::submit(&settings, &done.signed).await.unwrap());
    assert!(sunset::submit(&settings, &done.signed).await.unwrap());
    let as_hz = |signed: &[u8]| pb::SubmitAttestationRequest {
        attestation: Some(pb::SignedAttestation::decode(signed).unwrap()),
    };
    let hz_node = pki.city(hz).unwrap().node.clone();
    let mut client = gateway_client(&pki, gw.addr, &hz_node).unwrap();
    for tampered in [&flipped, &edited] {
        let status = client
            .submit_attestation(as_hz(tampered))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains("signature"), "{status:?}");
    }
    let wuhan_node = pki.city(wuhan).unwrap().node.clone();
    let status = gateway_client(&pki, gw.addr, &wuhan_node)
        .unwrap()
        .submit_attestation(as_hz(&done.signed))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let status = gateway_client(&pki, gw.addr, &authority(&pki))
        .unwrap()
        .submit_attestation(as_hz(&done.signed))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    let gw = gw.restart().await.unwrap();
    let held = listed(&pki, &gw).await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].encode_to_vec(), done.signed);

    // A second run destroys nothing and hands back the same attestation.
    let again = sunset::destroy(&settings, Reason::Operator).unwrap();
    assert!(again.earlier);
    assert_eq!(again.signed, done.signed);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn a_sunset_interrupted_anywhere_is_finished_by_a_rerun_with_the_counts_taken_before() {
    let (pki, hz, _) = pki();
    let root = pki.anchor().unwrap();
    let list = pki.trust_list(1).unwrap();
    for halt in [
        Halt::AfterMarker,
        Halt::AfterKeys,
        Halt::AfterAttestationFile,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = bundle(&pki, hz, dir.path(), &listener, &list, None, false);
        let node = RunningNode::start_with(config.clone(), listener)
            .await
            .unwrap();
        feed(&pki, hz, node.addr).await;
        node.stop().await.unwrap();
        let settings = NodeSettings::load(&config).unwrap();

        assert!(
            sunset::destroy_until(&settings, Reason::Operator, Some(halt))
                .unwrap()
                .is_none()
        );
        assert!(settings.data_dir.join(PENDING).exists(), "{halt:?}");
        if halt == Halt::AfterMarker {
            assert!(settings.signer_key.exists());
        } else {
            assert!(!settings.signer_key.exists(), "{halt:?}");
        }
        // A half-destroyed node does not start.
        assert!(matches!(
            load::load(settings.clone()),
            Err(StartError::SwitchedOff(_))
        ));

        let done = sunset::destroy(&settings, Reason::Operator).unwrap();
        assert!(done.resumed, "{halt:?}");
        assert_eq!(names_in(&settings.data_dir), vec![DONE.to_owned()]);
        assert!(!settings.signer_key.exists());
        let claims = verify_attestation(&done.signed, &root, unix_now())
            .unwrap()
            .claims()
            .clone();
        assert_eq!(
            (claims.residents, claims.records, claims.badges),
            (RESIDENTS, RECORDS, BADGES),
            "{halt:?}"
        );
        assert!(claims.signer_key_destroyed);
    }
}

#[tokio::test]
async fn a_node_switches_itself_off_at_sunset_and_its_attestation_reaches_the_gateway_after_it() {
    let (pki, hz, _) = pki();
    let root = pki.anchor().unwrap();
    // A list whose sunset comes in a few seconds (the authority refuses a
    // sunset closer than a day; the test PKI signs lists directly).
    let now = unix_now();
    let mut message = pki.trust_list_message(1).unwrap();
    message.issued_at = now - 60;
    message.next_update = now + 1;
    message.sunset_at = now + 10;
    let list = pki.sign(&message).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gw = RunningGateway::start(
        &pki,
        &dir.path().join("gw"),
        Some(&list),
        RelaySettings::default(),
    )
    .await
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = bundle(
        &pki,
        hz,
        &dir.path().join("hz"),
        &listener,
        &list,
        Some(gw.addr),
        true,
    );
    let settings = NodeSettings::load(&config).unwrap();
    assert!(settings.sunset_automatic);
    tessera_runtime::tls::install_default_provider();
    let node = tokio::spawn(lifecycle::run_node(
        settings.clone(),
        listener,
        std::future::pending(),
        |_| {},
    ));
    feed(&pki, hz, addr).await;

    // The node ends by itself (the bound only keeps a broken build from
    // hanging the suite).
    let ended = tokio::time::timeout(std::time::Duration::from_secs(120), node)
        .await
        .expect("the node switched itself off")
        .unwrap()
        .unwrap();
    let Ended::SwitchedOff { sunset, submitted } = ended else {
        panic!("the node stopped without switching off");
    };
    // The attestation went through although the list is past its sunset
    // (nothing is trusted for badges any more; mTLS still chains to the
    // root).
    assert_eq!(submitted, Ok(true));
    assert!(sunset.claims.destroyed_at > message.sunset_at);
    assert_eq!(
        CheckedTrustList::verify(&list, &root, sunset.claims.destroyed_at).err(),
        Some(TrustListError::Sunset(message.sunset_at))
    );
    let claims = verify_attestation(&sunset.signed, &root, unix_now())
        .unwrap()
        .claims()
        .clone();
    assert_eq!(claims.reason, REASON_SUNSET);
    assert_eq!(claims.sunset_at, message.sunset_at);
    assert_eq!(
        (claims.residents, claims.records, claims.badges),
        (RESIDENTS, RECORDS, BADGES)
    );
    assert_eq!(names_in(&settings.data_dir), vec![DONE.to_owned()]);
    assert!(!settings.signer_key.exists());
    // The node no longer answers.
    let op = pki.operator(hz).unwrap();
    let mut client = node_client(&pki, addr, &op).unwrap();
    assert!(
        client
            .explain(pb::ExplainRequest {
                national_id: national_id(hz, 1),
            })
            .await
            .is_err()
    );
    let held = listed(&pki, &gw).await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].encode_to_vec(), sunset.signed);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn a_node_started_past_its_sunset_switches_off_at_once_and_one_without_opt_in_refuses_to_start()
 {
    let (pki, hz, _) = pki();
    let root = pki.anchor().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = bundle(
        &pki,
        hz,
        dir.path(),
        &listener,
        &pki.trust_list(1).unwrap(),
        None,
        true,
    );
    let node = RunningNode::start_with(config.clone(), listener)
        .await
        .unwrap();
    feed(&pki, hz, node.addr).await;
    node.stop().await.unwrap();

    // While it was stopped, the federation reached its sunset.
    let now = unix_now();
    let mut message = pki.trust_list_message(2).unwrap();
    message.issued_at = now - 2 * DAY;
    message.next_update = now - DAY;
    message.sunset_at = now - 60;
    std::fs::write(
        dir.path().join("trust-list.tsl"),
        pki.sign(&message).unwrap(),
    )
    .unwrap();

    // Without opting in, the node does not start (the list is past its
    // sunset) and destroys nothing.
    let mut manual = NodeSettings::load(&config).unwrap();
    manual.sunset_automatic = false;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = lifecycle::run_node(manual.clone(), listener, std::future::pending(), |_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("sunset"), "{err}");
    assert!(manual.signer_key.exists());

    let settings = NodeSettings::load(&config).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ended = lifecycle::run_node(settings.clone(), listener, std::future::pending(), |_| {
        panic!("a node past its sunset must not serve")
    })
    .await
    .unwrap();
    let Ended::SwitchedOff { sunset, submitted } = ended else {
        panic!("the node did not switch off");
    };
    assert_eq!(submitted, Ok(false), "no gateway configured");
    let claims = verify_attestation(&sunset.signed, &root, unix_now())
        .unwrap()
        .claims()
        .clone();
    assert_eq!(
        (claims.trust_list_sequence, claims.sunset_at),
        (2, message.sunset_at)
    );
    assert_eq!(
        (claims.residents, claims.records, claims.badges),
        (RESIDENTS, RECORDS, BADGES)
    );
    assert_eq!(names_in(&settings.data_dir), vec![DONE.to_owned()]);
}

pub(crate) fn signed_by(pki: &TestPki, city: CityCode, destroyed_at: i64) -> Vec<u8> {
    let node = &pki.city(city).unwrap().node;
    let claims = pb::DeletionAttestation {
        version: 1,
        city: city.get(),
        destroyed_at,
        residents: 1,
        records: 2,
        badges: 3,
        policy_version: 1,
        signer_key_destroyed: true,
        sunset_at: 0,
        trust_list_sequence: 1,
        reason: REASON_OPERATOR.into(),
    };
    tessera_core::attestation::sign_attestation(&claims, node.tls_key.ecdsa(), &node.der).unwrap()
}

#[tokio::test]
async fn the_gateway_keeps_the_latest_attestation_per_city_and_refuses_an_older_one() {
    let (pki, hz, wuhan) = pki();
    let dir = tempfile::tempdir().unwrap();
    let list = pki.trust_list(1).unwrap();
    let gw = RunningGateway::start(&pki, dir.path(), Some(&list), RelaySettings::default())
        .await
        .unwrap();
    let now = unix_now();
    let (older, newer) = (
        signed_by(&pki, hz, now - 100),
        signed_by(&pki, hz, now - 50),
    );
    let wuhan_one = signed_by(&pki, wuhan, now - 10);
    let request = |signed: &[u8]| pb::SubmitAttestationRequest {
        attestation: Some(pb::SignedAttestation::decode(signed).unwrap()),
    };
    let mut as_hz = gateway_client(&pki, gw.addr, &pki.city(hz).unwrap().node).unwrap();
    as_hz.submit_attestation(request(&newer)).await.unwrap();
    let status = as_hz.submit_attestation(request(&older)).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("already held"), "{status:?}");
    as_hz.submit_attestation(request(&newer)).await.unwrap();
    let status = as_hz
        .submit_attestation(pb::SubmitAttestationRequest { attestation: None })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    gateway_client(&pki, gw.addr, &pki.city(wuhan).unwrap().node)
        .unwrap()
        .submit_attestation(request(&wuhan_one))
        .await
        .unwrap();

    let held: Vec<Vec<u8>> = listed(&pki, &gw)
        .await
        .iter()
        .map(Message::encode_to_vec)
        .collect();
    assert_eq!(held, vec![newer, wuhan_one]);
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn a_tls_key_kept_in_the_data_directory_is_spared_so_a_rerun_can_still_sign_and_submit() {
    let (pki, hz, _) = pki();
    let root = pki.anchor().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = bundle(
        &pki,
        hz,
        dir.path(),
        &listener,
        &pki.trust_list(1).unwrap(),
        None,
        false,
    );
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("keys")).unwrap();
    std::fs::rename(dir.path().join("node.key"), data.join("keys/node.key")).unwrap();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("key = \"node.key\"", "key = \"data/keys/node.key\"");
    std::fs::write(&config, text).unwrap();
    let node = RunningNode::start_with(config.clone(), listener)
        .await
        .unwrap();
    feed(&pki, hz, node.addr).await;
    node.stop().await.unwrap();
    let settings = NodeSettings::load(&config).unwrap();

    let done = sunset::destroy(&settings, Reason::Operator).unwrap();
    assert_eq!(names_in(&data), vec!["keys".to_owned(), DONE.to_owned()]);
    assert_eq!(names_in(&data.join("keys")), vec!["node.key".to_owned()]);
    assert!(!settings.signer_key.exists());
    let claims = verify_attestation(&done.signed, &root, unix_now())
        .unwrap()
        .claims()
        .clone();
    assert_eq!(
        (claims.residents, claims.records, claims.badges),
        (RESIDENTS, RECORDS, BADGES)
    );
    let again = sunset::destroy(&settings, Reason::Operator).unwrap();
    assert!(again.earlier);
    assert_eq!(again.signed, done.signed);
}
