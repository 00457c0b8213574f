//! One verdict per badge on every path: badges signed with Hangzhou's real
//! badge-signer key but crafted (torsion in R, small-order or non-canonical
//! R, S ≥ L) get the same signature verdict from the gateway's `Verify`,
//! from `VerifyBatch` streams of 61 badges at random positions (each stream
//! sent three times), and from the offline check `tessera verify --offline`
//! makes. A crafted badge's id was never issued, so online a good signature
//! reads REVOKED ("the issuing city does not know this badge"), never
//! BAD_SIGNATURE.

use std::time::Duration;

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tessera_core::badge::Envelope;
use tessera_core::signing::crafted::{self, Kind};
use tessera_core::signing::{BADGE_CONTEXT, signing_input};
use tessera_core::{CheckedTrustList, KeyId, VerifyError, text, verify_text};
use tessera_gateway::config::RelaySettings;
use tessera_proto::v1 as pb;
use tessera_tests::harness::{RunningGateway, RunningNode, gateway_client, node_client};
use tessera_tests::{TestPki, claims, national_id, test_record, unix_now};
use tokio::net::TcpListener;

/// Badges per stream, as in the issue's report.
const STREAM_LEN: usize = 61;
/// Random arrangements of the crafted badges among genuine ones.
const ARRANGEMENTS: usize = 24;
/// Each stream is sent this many times.
const REPEATS: usize = 3;
/// Genuine badges issued by the node, the filler of every stream.
const GENUINE: u32 = 6;

/// A badge and the verdict the signature rule gives its signature.
struct Badge {
    envelope: Vec<u8>,
    signature_holds: bool,
    what: String,
}

/// What a verdict says of a badge, for comparing paths.
type Seen = (pb::Outcome, bool);

fn seen(v: &pb::Verdict) -> Seen {
    (
        pb::Outcome::try_from(v.outcome).unwrap_or(pb::Outcome::Unspecified),
        v.signature_valid,
    )
}

fn request(envelope: &[u8]) -> pb::VerifyRequest {
    pb::VerifyRequest {
        badge: Some(pb::verify_request::Badge::Envelope(envelope.to_vec())),
    }
}

/// Every crafted kind the rule speaks of, signed with the city's real key
/// over fresh claims.
fn crafted_badges(pki: &TestPki, city: tessera_core::CityCode) -> Vec<Badge> {
    let signer = &pki.city(city).unwrap().signer;
    let key_id = KeyId::of_certificate(&signer.der);
    Kind::with_real_key()
        .into_iter()
        .map(|kind| {
            let payload = claims(city, unix_now()).encode().unwrap();
            let input = signing_input(BADGE_CONTEXT, &payload).unwrap();
            let c = crafted::craft(&signer.key, &input, kind).unwrap();
            let envelope = Envelope {
                payload,
                key_id,
                signature: c.signature,
            };
            Badge {
                envelope: envelope.encode(),
                signature_holds: kind.holds(),
                what: format!("{kind:?}"),
            }
        })
        .collect()
}

#[tokio::test]
async fn a_crafted_badge_gets_one_verdict_from_verify_every_batch_position_and_offline() {
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
    let node = RunningNode::start_on(&pki, hz, &dir.path().join("hz"), listener)
        .await
        .unwrap();
    let list_bytes = pki.trust_list(1).unwrap();
    // Generous limits: the status answer must not depend on load.
    let relay = RelaySettings {
        timeout: Duration::from_secs(10),
        concurrency_per_node: 16,
        cache_ttl: Duration::from_secs(60),
        breaker_failures: 1_000,
        ..RelaySettings::default()
    };
    let gw = RunningGateway::start(&pki, &dir.path().join("gw"), Some(&list_bytes), relay)
        .await
        .unwrap();

    // Genuine badges, issued by the node.
    let mut op = node_client(&pki, node.addr, &pki.operator(hz).unwrap()).unwrap();
    let mut badges = vec![];
    for resident in 0..GENUINE {
        let id = national_id(hz, resident);
        op.ingest_records(pb::IngestRequest {
            records: vec![test_record(
                &format!("r-{resident}"),
                &id,
                false,
                unix_now() - 600,
            )],
        })
        .await
        .unwrap();
        let issued = op
            .issue_badge(pb::IssueBadgeRequest {
                national_id: id,
                name: "王芳".into(),
            })
            .await
            .unwrap()
            .into_inner();
        badges.push(Badge {
            envelope: issued.badge,
            signature_holds: true,
            what: format!("genuine badge of resident {resident}"),
        });
    }
    let genuine = badges.len();
    badges.extend(crafted_badges(&pki, hz));
    let torsion = badges
        .iter()
        .filter(|b| b.what.starts_with("TorsionInR"))
        .count();
    assert_eq!(torsion, 7);

    // Offline, as `tessera verify --offline` checks a badge's text.
    let now = unix_now();
    let list = CheckedTrustList::verify(&list_bytes, &pki.anchor().unwrap(), now).unwrap();
    for b in &badges {
        match verify_text(&text::to_text(&b.envelope), &list, now) {
            Ok(_) => assert!(b.signature_holds, "{} verified offline", b.what),
            Err(e) => {
                assert!(!b.signature_holds, "{} refused offline: {e}", b.what);
                assert_eq!(e, VerifyError::BadSignature, "{}", b.what);
            }
        }
    }

    // Unary Verify: the reference verdict of each badge online.
    let mut cp = gateway_client(&pki, gw.addr, &pki.verifier(330_000).unwrap()).unwrap();
    let mut unary: Vec<Seen> = vec![];
    for (i, b) in badges.iter().enumerate() {
        let v = seen(&cp.verify(request(&b.envelope)).await.unwrap().into_inner());
        let want = match (b.signature_holds, i < genuine) {
            (true, true) => (pb::Outcome::Valid, true),
            // Never issued: the city does not know the badge id.
            (true, false) => (pb::Outcome::Revoked, true),
            (false, _) => (pb::Outcome::BadSignature, false),
        };
        assert_eq!(v, want, "Verify of {}", b.what);
        unary.push(v);
    }

    // VerifyBatch: streams of 61, crafted badges at random positions among
    // genuine ones, each stream sent three times.
    let crafted: Vec<usize> = (genuine..badges.len()).collect();
    let mut rng = StdRng::seed_from_u64(0x610e_7e2d);
    let mut sent = vec![0usize; badges.len()];
    for arrangement in 0..ARRANGEMENTS {
        let hostile = rng.gen_range(1..=crafted.len().min(STREAM_LEN));
        let mut stream: Vec<usize> = (0..STREAM_LEN).map(|_| rng.gen_range(0..genuine)).collect();
        for _ in 0..hostile {
            let at = rng.gen_range(0..STREAM_LEN);
            stream[at] = crafted[rng.gen_range(0..crafted.len())];
        }
        for i in &stream {
            sent[*i] += 1;
        }
        for repeat in 0..REPEATS {
            let requests: Vec<pb::VerifyRequest> = stream
                .iter()
                .map(|i| request(&badges[*i].envelope))
                .collect();
            let verdicts: Vec<Seen> = cp
                .verify_batch(tokio_stream::iter(requests))
                .await
                .unwrap()
                .into_inner()
                .map(|v| seen(&v.unwrap()))
                .collect()
                .await;
            assert_eq!(verdicts.len(), STREAM_LEN);
            for (at, (i, v)) in stream.iter().zip(&verdicts).enumerate() {
                assert_eq!(
                    v, &unary[*i],
                    "arrangement {arrangement}, repeat {repeat}, position {at}: {}",
                    badges[*i].what
                );
            }
        }
    }
    for (b, times) in badges.iter().zip(&sent) {
        assert!(*times > 0, "{} was never sent in a stream", b.what);
    }
    gw.stop().await.unwrap();
    node.stop().await.unwrap();
}
