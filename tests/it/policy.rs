//! Published scoring policies end to end: the gateway's checks on
//! PublishPolicy over mutual TLS (notice, city, version order, schema,
//! durability), and a node that scores only under the policy in force.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tessera_core::badge::BadgeSigner;
use tessera_core::policy::DEFAULT_POLICY;
use tessera_core::policy_doc::{self, POLICY_DOC_VERSION, VerifiedPolicy};
use tessera_core::signing::{self, POLICY_CONTEXT};
use tessera_core::{CertInfo, CityCode};
use tessera_gateway::config::RelaySettings;
use tessera_node::city::City;
use tessera_node::policy::PolicySet;
use tessera_node::pseudonym::PseudonymKey;
use tessera_node::store::SledStore;
use tessera_proto::v1 as pb;
use tessera_tests::harness::{RunningGateway, RunningNode, gateway_client, node_client};
use tessera_tests::wait::wait;
use tessera_tests::{Issued, TestPki, national_id, unix_now};
use tokio::net::TcpListener;
use tonic::Code;

const H: i64 = 3600;

fn relay() -> RelaySettings {
    RelaySettings {
        enabled: false,
        timeout: Duration::from_millis(800),
        concurrency_per_node: 4,
        cache_ttl: Duration::from_millis(300),
        breaker_failures: 3,
        breaker_open: Duration::from_millis(500),
    }
}

/// The built-in default policy's version: the one a node signs itself at
/// its first start.
const DEFAULT_VERSION: u32 = 2;

/// The default rules as version `version`, with a base score of `base`.
pub(crate) fn rules(version: u32, base: u32) -> String {
    let from = format!("\nversion = {DEFAULT_VERSION}\n");
    assert!(
        DEFAULT_POLICY.contains(&from),
        "the default policy is not version {DEFAULT_VERSION}"
    );
    DEFAULT_POLICY
        .replacen(&from, &format!("\nversion = {version}\n"), 1)
        .replace("base_score = 100", &format!("base_score = {base}"))
}

fn document(
    city: CityCode,
    rules: &str,
    signed_at: i64,
    effective_from: i64,
) -> pb::PolicyDocument {
    let version = tessera_core::policy::Policy::parse(rules)
        .map(|p| p.version())
        .unwrap_or(1);
    pb::PolicyDocument {
        version: POLICY_DOC_VERSION,
        city: city.get(),
        policy_version: version,
        signed_at,
        effective_from,
        rules: rules.to_owned(),
    }
}

pub(crate) fn sign(
    pki: &TestPki,
    city: CityCode,
    rules: &str,
    effective_from: i64,
) -> pb::SignedPolicy {
    let signed_at = unix_now().min(effective_from);
    pki.badge_signer(city)
        .unwrap()
        .sign_policy(&document(city, rules, signed_at, effective_from))
        .unwrap()
}

/// Signs without the signer's own checks: what a careless or hostile city
/// could send.
fn sign_raw(signer: &Issued, document: &pb::PolicyDocument) -> pb::SignedPolicy {
    let payload = document.encode_to_vec();
    pb::SignedPolicy {
        signature: signing::sign(POLICY_CONTEXT, &payload, &signer.key)
            .unwrap()
            .to_bytes()
            .to_vec(),
        key_id: tessera_core::KeyId::of_certificate(&signer.der)
            .as_bytes()
            .to_vec(),
        payload,
    }
}

async fn publish(
    pki: &TestPki,
    gw: &RunningGateway,
    who: &Issued,
    policy: pb::SignedPolicy,
) -> Result<pb::PublishPolicyResponse, tonic::Status> {
    gateway_client(pki, gw.addr, who)
        .unwrap()
        .publish_policy(pb::PublishPolicyRequest {
            policy: Some(policy),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn fetch(pki: &TestPki, gw: &RunningGateway, who: &Issued, city: CityCode) -> Vec<u32> {
    gateway_client(pki, gw.addr, who)
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

#[tokio::test]
async fn gateway_enforces_notice_city_version_order_and_schema_and_keeps_policies_across_a_restart()
{
    let mut pki = TestPki::new(unix_now()).unwrap();
    let hz = pki.add_city(330_100, "Hangzhou", "127.0.0.1:1").unwrap();
    let wh = pki.add_city(420_100, "Wuhan", "127.0.0.1:2").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let list = pki.trust_list(1).unwrap();
    let gw = RunningGateway::start(&pki, dir.path(), Some(&list), relay())
        .await
        .unwrap();
    let hz_node = pki.city(hz).unwrap().node.clone();
    let hz_operator = pki.operator(hz).unwrap();
    let wh_node = pki.city(wh).unwrap().node.clone();
    let checkpoint = pki.verifier(420_000).unwrap();
    let now = unix_now();
    assert!(fetch(&pki, &gw, &checkpoint, hz).await.is_empty());

    // The first policy of a city: no notice (the enrolment exception).
    let v1 = sign(&pki, hz, &rules(1, 100), now);
    let ack = publish(&pki, &gw, &hz_node, v1.clone()).await.unwrap();
    assert_eq!(ack.effective_from, now);
    // Publishing the very same document again is a harmless retry.
    publish(&pki, &gw, &hz_node, v1).await.unwrap();

    // Another city's node cannot publish Hangzhou's policy.
    let v2 = sign(&pki, hz, &rules(2, 90), unix_now() + 49 * H);
    let e = publish(&pki, &gw, &wh_node, v2.clone()).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("policy is for city 330100"), "{e:?}");

    // 47 hours' notice is refused, naming the notice period; 49 accepted.
    let early = sign(&pki, hz, &rules(2, 90), unix_now() + 47 * H);
    let e = publish(&pki, &gw, &hz_operator, early).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(
        e.message()
            .contains("less than the notice period of 48 hours after publication"),
        "{e:?}"
    );
    publish(&pki, &gw, &hz_operator, v2).await.unwrap();

    // A version not above the newest held, and a policy that would come
    // into force before one held, are refused.
    let again = sign(&pki, hz, &rules(2, 80), unix_now() + 72 * H);
    let e = publish(&pki, &gw, &hz_node, again).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(
        e.message()
            .contains("version 2 is not greater than version 2"),
        "{e:?}"
    );
    let before = sign(&pki, hz, &rules(3, 80), unix_now() + 48 * H + 1800);
    let e = publish(&pki, &gw, &hz_node, before).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("before version 2"), "{e:?}");

    // Rules naming anything outside the record schema are refused by the
    // gateway too, naming the offending key.
    let signer = &pki.city(hz).unwrap().signer;
    let extra = |body: &str| {
        format!(
            "{}\n[[rules]]\nid = \"extra\"\ndescription = \"extra\"\n{body}\nscore = -10\n",
            rules(3, 100)
        )
    };
    for (text, key) in [
        (extra("record = \"income\""), "income"),
        (extra("record = \"location\""), "location"),
        (extra("record = \"social_media\""), "social_media"),
        (
            extra("record = \"test\"\nwhen = { age_over = 60 }"),
            "age_over",
        ),
        (
            format!("lifestyle_weight = 2\n{}", rules(3, 100)),
            "lifestyle_weight",
        ),
        (
            extra("record = \"vaccination\"\nwhen = { contact = \"close\" }"),
            "condition contact does not apply to Vaccination records",
        ),
    ] {
        let mut doc = document(hz, &text, unix_now(), unix_now() + 72 * H);
        doc.policy_version = 3;
        let e = publish(&pki, &gw, &hz_node, sign_raw(signer, &doc))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{key}: {e:?}");
        assert!(e.message().contains(key), "{key}: {e:?}");
    }

    // A signer the trust list does not know is refused.
    let stranger = pki
        .issue(
            tessera_core::Identity::new(
                tessera_core::Role::BadgeSigner,
                tessera_core::Scope::City(hz),
            )
            .unwrap(),
            &[],
        )
        .unwrap();
    let doc = document(hz, &rules(3, 100), unix_now(), unix_now() + 72 * H);
    let e = publish(&pki, &gw, &hz_node, sign_raw(&stranger, &doc))
        .await
        .unwrap_err();
    // NOT_FOUND, the code a node retries on (PROTOCOL.md).
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(e.message().contains("unknown key"), "{e:?}");

    // Anyone enrolled reads the city's policies, oldest effective first,
    // and they survive a restart (stored durably before the answer).
    assert_eq!(fetch(&pki, &gw, &checkpoint, hz).await, [1, 2]);
    assert!(fetch(&pki, &gw, &checkpoint, wh).await.is_empty());
    let gw = gw.restart().await.unwrap();
    assert_eq!(fetch(&pki, &gw, &checkpoint, hz).await, [1, 2]);
    gw.stop().await.unwrap();
}

fn verified(pki: &TestPki, city: CityCode, signed: &pb::SignedPolicy) -> VerifiedPolicy {
    let cert = CertInfo::parse(&pki.city(city).unwrap().signer.der).unwrap();
    policy_doc::verify_with_certificate(signed, &cert).unwrap()
}

#[tokio::test]
async fn a_node_scores_under_the_policy_in_force_and_switches_at_effective_from() {
    let mut pki = TestPki::new(unix_now()).unwrap();
    let hz = pki.add_city(330_100, "Hangzhou", "127.0.0.1:1").unwrap();
    let t0 = unix_now();
    let switch = t0 + 72 * H;
    // Version 2 starts everyone at 60 points: yellow. Version 1 at 100: green.
    let v1 = verified(&pki, hz, &sign(&pki, hz, &rules(1, 100), t0));
    let v2 = verified(&pki, hz, &sign(&pki, hz, &rules(2, 60), switch));
    let dir = tempfile::tempdir().unwrap();
    let city = City::new(
        Arc::new(
            SledStore::open(&dir.path().join("store"), &dir.path().join("master.key")).unwrap(),
        ),
        PolicySet::new(vec![v2, v1]).unwrap(),
        BadgeSigner::new(
            pki.city(hz).unwrap().signer.key.clone(),
            &pki.city(hz).unwrap().signer.der,
        )
        .unwrap(),
        PseudonymKey::from_bytes([7; 32]),
        1000,
    );
    let resident = national_id(hz, 1);
    let at = |now: i64| {
        let city = &city;
        let resident = resident.clone();
        async move {
            let badge = city
                .issue(
                    &resident,
                    "Li Lei",
                    now,
                    &tessera_node::access_log::Actor {
                        serial: "01".into(),
                        city: 330100,
                    },
                )
                .await
                .unwrap();
            let explained = city.explain(&resident, now).unwrap();
            (
                badge.claims.policy_version,
                badge.claims.colour,
                explained.policy_version,
            )
        }
    };
    use tessera_core::Colour::{Green, Yellow};
    // Version 2 is held from the start but never used before its date.
    assert_eq!(at(t0).await, (1, Green, 1));
    assert_eq!(at(switch - 1).await, (1, Green, 1));
    assert_eq!(at(switch).await, (2, Yellow, 2));
    assert_eq!(at(switch + 24 * H).await, (2, Yellow, 2));
    // Before every policy held: nothing to score under.
    let e = city.explain(&resident, t0 - 1).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("no scoring policy in force: version 1 takes effect at"),
        "{e}"
    );
}

#[tokio::test]
async fn a_node_holding_only_a_future_policy_refuses_to_score_with_failed_precondition() {
    let mut pki = TestPki::new(unix_now()).unwrap();
    let hz = pki.add_city(330_100, "Hangzhou", "127.0.0.1:1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = tessera_tests::harness::write_city_bundle(
        &pki,
        hz,
        dir.path(),
        listener.local_addr().unwrap(),
    )
    .unwrap();
    let future = sign(&pki, hz, &rules(1, 100), unix_now() + 72 * H);
    std::fs::write(dir.path().join("v1.signed"), future.encode_to_vec()).unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("policies = [\"v1.signed\"]\n");
    std::fs::write(&config, text).unwrap();
    let node = RunningNode::start_with(config, listener).await.unwrap();
    // It holds a signed policy, so it signed none of its own.
    assert!(!dir.path().join("data/policies").exists());
    let op = pki.operator(hz).unwrap();
    let mut client = node_client(&pki, node.addr, &op).unwrap();
    let resident = national_id(hz, 1);
    let e = client
        .issue_badge(pb::IssueBadgeRequest {
            national_id: resident.clone(),
            name: "Li Lei".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(
        e.message()
            .starts_with("no scoring policy in force: version 1 takes effect at"),
        "{e:?}"
    );
    let e = client
        .explain(pb::ExplainRequest {
            national_id: resident,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_node_signs_its_first_policy_itself_and_refuses_a_changed_policy_file_without_notice() {
    let mut pki = TestPki::new(unix_now()).unwrap();
    let hz = pki.add_city(330_100, "Hangzhou", "127.0.0.1:1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = RunningNode::start(&pki, hz, dir.path()).await.unwrap();
    let config = node.config.clone();
    let own = dir
        .path()
        .join(format!("data/policies/policy-v{DEFAULT_VERSION}.signed"));
    let signed = policy_doc::decode_signed(&std::fs::read(&own).unwrap()).unwrap();
    let first = verified(&pki, hz, &signed);
    assert_eq!(first.policy_version(), DEFAULT_VERSION);
    assert!(first.effective_from() <= unix_now());
    assert_eq!(badge_policy(&pki, node.addr, hz).await, DEFAULT_VERSION);
    node.stop().await.unwrap();

    // The operator edits the policy file to the next version and restarts:
    // refused, a changed policy needs notice.
    let next = DEFAULT_VERSION + 1;
    std::fs::write(dir.path().join("policy.toml"), rules(next, 90)).unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("policy = \"policy.toml\"\n");
    std::fs::write(&config, &text).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let e = RunningNode::start_with(config.clone(), listener)
        .await
        .err()
        .unwrap();
    assert!(
        e.to_string().contains(&format!(
            "(policy version {next}) is not among the signed policies this node holds (version {DEFAULT_VERSION})"
        )),
        "{e}"
    );

    // Signed with notice and listed: the node starts, holds the next version
    // for later, and goes on scoring under the first.
    let v2 = sign(&pki, hz, &rules(next, 90), unix_now() + 72 * H);
    std::fs::write(dir.path().join("v2.signed"), v2.encode_to_vec()).unwrap();
    text.push_str("policies = [\"v2.signed\"]\n");
    std::fs::write(&config, &text).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node = RunningNode::start_with(config, listener).await.unwrap();
    assert_eq!(badge_policy(&pki, node.addr, hz).await, DEFAULT_VERSION);
    node.stop().await.unwrap();
}

#[tokio::test]
async fn a_node_following_a_gateway_publishes_its_first_policy_there() {
    let mut pki = TestPki::new(unix_now()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hz = pki
        .add_city(
            330_100,
            "Hangzhou",
            &listener.local_addr().unwrap().to_string(),
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let list = pki.trust_list(1).unwrap();
    let gw = RunningGateway::start(&pki, &dir.path().join("gw"), Some(&list), relay())
        .await
        .unwrap();
    let node_dir = dir.path().join("hz");
    let config = tessera_tests::harness::write_city_bundle(
        &pki,
        hz,
        &node_dir,
        listener.local_addr().unwrap(),
    )
    .unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "root = \"root.crt\"\n",
        &format!(
            "root = \"root.crt\"\ngateway = \"{}\"\nrefresh_secs = 1\n",
            gw.addr
        ),
    );
    std::fs::write(&config, text).unwrap();
    let node = RunningNode::start_with(config, listener).await.unwrap();
    let own = policy_doc::decode_signed(
        &std::fs::read(node_dir.join("data/policies/policy-v2.signed")).unwrap(),
    )
    .unwrap();
    let checkpoint = pki.verifier(420_000).unwrap();
    let mut client = gateway_client(&pki, gw.addr, &checkpoint).unwrap();
    let held = wait(
        "the node to publish its first policy",
        Duration::from_secs(30),
    )
    .every(Duration::from_millis(20))
    .until_async(async || {
        let held = client
            .fetch_policies(pb::FetchPoliciesRequest { city: hz.get() })
            .await
            .unwrap()
            .into_inner()
            .policies;
        (!held.is_empty()).then_some(held)
    })
    .await;
    assert_eq!(held, [own]);
    node.stop().await.unwrap();
    gw.stop().await.unwrap();
}

#[tokio::test]
async fn a_rotated_node_without_a_trust_list_still_verifies_the_policy_it_signed_itself() {
    let mut pki = TestPki::new(unix_now()).unwrap();
    let hz = pki.add_city(330_100, "Hangzhou", "127.0.0.1:1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = RunningNode::start(&pki, hz, dir.path()).await.unwrap();
    let config = node.config.clone();
    node.stop().await.unwrap();
    // A new badge signer for the city replaces the old pair; the node holds
    // no trust list, so only the certificate kept beside its policy can
    // vouch for the old signer.
    let rotated = pki
        .issue(
            tessera_core::Identity::new(
                tessera_core::Role::BadgeSigner,
                tessera_core::Scope::City(hz),
            )
            .unwrap(),
            &[],
        )
        .unwrap();
    std::fs::write(
        dir.path().join("badge-signer.crt"),
        tessera_certs::keys::cert_to_pem(&rotated.der),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("badge-signer.key"),
        tessera_certs::keys::key_to_pem(&rotated.key).unwrap(),
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node = RunningNode::start_with(config.clone(), listener)
        .await
        .unwrap();
    assert_eq!(badge_policy(&pki, node.addr, hz).await, DEFAULT_VERSION);
    node.stop().await.unwrap();
    // Without the kept certificate the old signer is unknown: refused.
    std::fs::remove_file(dir.path().join("data/policies/policy-v2.crt")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let e = RunningNode::start_with(config, listener)
        .await
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("policy signed by unknown key"),
        "{e}"
    );
}

/// The node enforces notice itself, whatever a city lists in its
/// configuration: a policy signed to take effect at once is refused at start
/// (and so never scores a badge), and a node that has served residents
/// cannot sign itself a new "first" policy by losing the ones it held.
#[tokio::test]
async fn a_node_refuses_a_policy_without_notice_and_a_second_first_policy() {
    let mut pki = TestPki::new(unix_now()).unwrap();
    let hz = pki.add_city(330_100, "Hangzhou", "127.0.0.1:1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = RunningNode::start(&pki, hz, dir.path()).await.unwrap();
    let config = node.config.clone();
    badge_policy(&pki, node.addr, hz).await;
    node.stop().await.unwrap();

    // The next version signed to take effect two seconds later: no notice.
    let next = DEFAULT_VERSION + 1;
    let v2 = sign(&pki, hz, &rules(next, 90), unix_now() + 2);
    std::fs::write(dir.path().join("v2.signed"), v2.encode_to_vec()).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let listed = text.replace("[badges]\n", "[badges]\npolicies = [\"v2.signed\"]\n");
    assert_ne!(listed, text, "the bundle has a [badges] section");
    std::fs::write(&config, &listed).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let Err(err) = RunningNode::start_with(config.clone(), listener).await else {
        panic!("a node started with a policy signed without notice");
    };
    let err = err.to_string();
    assert!(
        err.contains(&format!("policy version {next}")) && err.contains("48 hours of notice"),
        "{err}"
    );

    // The same with 49 hours of notice is held (and not yet in force).
    let v2 = sign(&pki, hz, &rules(next, 90), unix_now() + 49 * H);
    std::fs::write(dir.path().join("v2.signed"), v2.encode_to_vec()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node = RunningNode::start_with(config.clone(), listener)
        .await
        .unwrap();
    assert_eq!(badge_policy(&pki, node.addr, hz).await, DEFAULT_VERSION);
    node.stop().await.unwrap();

    // Losing every signed policy does not buy a new first one: the store
    // has served residents.
    std::fs::write(&config, &text).unwrap();
    let held = tessera_node::config::NodeSettings::load(&config)
        .unwrap()
        .data_dir
        .join(tessera_node::data_dir::POLICY_DIR);
    std::fs::remove_dir_all(&held).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let Err(err) = RunningNode::start_with(config, listener).await else {
        panic!("a node that served residents signed itself a new first policy");
    };
    let err = err.to_string();
    assert!(err.contains("already holds residents' data"), "{err}");
    assert!(!held.exists(), "no policy was signed");
}

/// Issues a badge to resident 1 of `city` through the node at `addr`, as the
/// city's operator, and returns the policy version the badge names.
async fn badge_policy(pki: &TestPki, addr: std::net::SocketAddr, city: CityCode) -> u32 {
    let op = pki.operator(city).unwrap();
    node_client(pki, addr, &op)
        .unwrap()
        .issue_badge(pb::IssueBadgeRequest {
            national_id: national_id(city, 1),
            name: "Li Lei".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .policy_version
}
