//! Unlinkable checks (issue 8, item 6): two badges of one resident share no
//! field that could link them, and what the relay carries to a city node is
//! a badge id and nothing else — each read from the protobuf descriptors, so
//! a field added later fails these tests until someone decides about it.

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, Value};
use tessera_proto::v1 as pb;
use tessera_tests::harness::{RunningNode, node_client};
use tessera_tests::wait::wait_until_async;
use tessera_tests::{TestPki, exposure_record, national_id, test_record, unix_now};

fn message(name: &str) -> MessageDescriptor {
    DescriptorPool::decode(tessera_proto::FILE_DESCRIPTOR_SET)
        .unwrap()
        .get_message_by_name(name)
        .unwrap_or_else(|| panic!("{name} is not in the descriptor set"))
}

fn field(m: &DynamicMessage, name: &str) -> Value {
    m.get_field_by_name(name).unwrap().into_owned()
}

/// Two badges issued to one resident (holding `records`) at two different
/// seconds, through a real node over mutual TLS: their envelopes.
async fn two_badges(
    n: u32,
    records: impl Fn(&str) -> Vec<pb::Record>,
) -> [pb::IssueBadgeResponse; 2] {
    let mut pki = TestPki::new(unix_now()).unwrap();
    let hz = pki.add_city(330_100, "Hangzhou", "127.0.0.1:1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = RunningNode::start(&pki, hz, &dir.path().join("hz"))
        .await
        .unwrap();
    let op = pki.operator(hz).unwrap();
    let mut c = node_client(&pki, node.addr, &op).unwrap();
    let resident = national_id(hz, n);
    let records = records(&resident);
    if !records.is_empty() {
        c.ingest_records(pb::IngestRequest { records })
            .await
            .unwrap();
    }
    let request = pb::IssueBadgeRequest {
        national_id: resident,
        name: "王小明".into(),
    };
    let first = c.issue_badge(request.clone()).await.unwrap().into_inner();
    // Issued at a later second (badge times are whole seconds): wait for
    // the clock, bounded so a stuck clock fails instead of hanging.
    let issued_at = claims_of(&first).issued_at;
    wait_until_async(
        "the clock to pass the first badge's second",
        std::time::Duration::from_secs(10),
        async || unix_now() > issued_at,
    )
    .await;
    let second = c.issue_badge(request).await.unwrap().into_inner();
    node.stop().await.unwrap();
    [first, second]
}

/// Walks every field of both envelopes and both claims, via the
/// descriptors, and asserts which may be shared.
fn share_nothing_but_issuer_policy_and_hint(badges: &[pb::IssueBadgeResponse; 2], resident: &str) {
    let envelope = message("tessera.v1.SignedBadge");
    let claims = message("tessera.v1.BadgeClaims");
    // Every field the standard defines, so a new one breaks this test until
    // it is classified below.
    assert_eq!(
        claims.fields().len(),
        8,
        "BadgeClaims gained or lost a field"
    );
    assert_eq!(
        envelope.fields().len(),
        3,
        "SignedBadge gained or lost a field"
    );

    let env = |b: &pb::IssueBadgeResponse| {
        DynamicMessage::decode(envelope.clone(), b.badge.as_slice()).unwrap()
    };
    let (env_a, env_b) = (env(&badges[0]), env(&badges[1]));
    assert_ne!(badges[0].badge, badges[1].badge);
    for f in envelope.fields() {
        let (a, b) = (field(&env_a, f.name()), field(&env_b, f.name()));
        match f.name() {
            // Different claims, different signatures over them.
            "payload" | "signature" => assert_ne!(a, b, "SignedBadge.{}", f.name()),
            // The city's signing key: the same for every badge of the city,
            // so it names the issuer, not the resident.
            "key_id" => assert_eq!(a, b),
            other => panic!("SignedBadge.{other}: decide whether it may link two badges"),
        }
    }

    let decode = |e: &DynamicMessage| {
        let Value::Bytes(payload) = field(e, "payload") else {
            panic!("payload is not bytes")
        };
        (
            DynamicMessage::decode(claims.clone(), payload.clone()).unwrap(),
            payload,
        )
    };
    let ((a, payload_a), (b, payload_b)) = (decode(&env_a), decode(&env_b));
    for f in claims.fields() {
        let (va, vb) = (field(&a, f.name()), field(&b, f.name()));
        match f.name() {
            // The same for every badge of the city under this policy.
            "version" | "issuer_city" | "policy_version" => assert_eq!(va, vb, "{}", f.name()),
            // The masked name and last four ID characters, for the officer
            // to compare with the ID card: the one shared trait by design.
            "holder_hint" => assert_eq!(va, vb),
            // Fresh random per issuance.
            "badge_id" => {
                assert_ne!(va, vb, "badge ids repeat");
                let Value::Bytes(id) = va else { panic!() };
                assert_eq!(id.len(), 16);
            }
            "issued_at" => assert_ne!(va, vb),
            "valid_until" => assert_ne!(va, vb),
            // A band of three values that thousands of residents share at
            // any time: equal or not, it does not single anyone out. Both
            // are green here.
            "colour" => {
                assert_eq!(va, Value::EnumNumber(pb::Colour::Green as i32));
                assert_eq!(va, vb);
            }
            other => panic!("BadgeClaims.{other}: decide whether it may link two badges"),
        }
    }
    // No stable identifier in the bytes either: neither the ID number
    // beyond its last four characters nor the name beyond its first.
    for payload in [&payload_a, &payload_b] {
        assert!(!contains(payload, &resident.as_bytes()[..14]));
        assert!(!contains(payload, "小明".as_bytes()));
    }
}

#[tokio::test]
async fn two_badges_of_one_resident_share_no_field_but_issuer_policy_and_holder_hint() {
    let badges = two_badges(42, |_| vec![]).await;
    let resident = national_id(tessera_core::CityCode::new(330_100).unwrap(), 42);
    share_nothing_but_issuer_policy_and_hint(&badges, &resident);
}

/// Two badges capped by the same record (a negative test lifting a close
/// contact: "valid until the lift ends, 72 h after sampling") would end at
/// the same second, which links them and tells when the sample was taken.
/// The node brings each end forward by a random amount of at most an hour
/// and never repeats one of the resident's ends, so they share nothing
/// either.
#[tokio::test]
async fn badges_capped_by_the_same_negative_test_share_no_field_but_issuer_policy_and_hint() {
    let sampled = unix_now() - 7200;
    let badges = two_badges(43, |id| {
        vec![
            exposure_record("contact-1", id, true, sampled - 3600),
            test_record("neg-1", id, false, sampled),
        ]
    })
    .await;
    let resident = national_id(tessera_core::CityCode::new(330_100).unwrap(), 43);
    share_nothing_but_issuer_policy_and_hint(&badges, &resident);
    let cap = sampled + 72 * 3600;
    for badge in &badges {
        let end = claims_of(badge).valid_until;
        assert!(
            (cap - tessera_node::city::VALIDITY_JITTER_SECS..=cap).contains(&end),
            "{end} is not within the hour before the cap {cap}"
        );
    }
}

fn claims_of(b: &pb::IssueBadgeResponse) -> pb::BadgeClaims {
    use prost::Message;
    let env = pb::SignedBadge::decode(b.badge.as_slice()).unwrap();
    pb::BadgeClaims::decode(env.payload.as_slice()).unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_status_check_the_relay_sends_carries_badge_ids_and_nothing_else() {
    let request = message("tessera.v1.CheckStatusRequest");
    let fields: Vec<_> = request.fields().collect();
    assert_eq!(fields.len(), 1, "CheckStatusRequest gained a field");
    let ids = &fields[0];
    assert_eq!(ids.name(), "badge_ids");
    assert!(ids.is_list());
    assert_eq!(ids.kind(), prost_reflect::Kind::Bytes);
    // The generated type the gateway's relay client sends is that message.
    let sent = pb::CheckStatusRequest {
        badge_ids: vec![vec![7; 16]],
    };
    let decoded =
        DynamicMessage::decode(request, prost::Message::encode_to_vec(&sent).as_slice()).unwrap();
    assert_eq!(decoded.fields().count(), 1);
    // And the node's answer names statuses only, in request order.
    let response = message("tessera.v1.CheckStatusResponse");
    let names: Vec<_> = response.fields().map(|f| f.name().to_owned()).collect();
    assert_eq!(names, ["statuses"]);
}
