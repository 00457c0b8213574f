//! Crash safety: a process killed with SIGKILL at several random points, then
//! restarted on the same directory, keeps everything it acknowledged and
//! never shows a half-applied change. Three writes are covered: a node's
//! record ingest (no batch half applied), a node's badge issuance (no
//! issuance half applied: the new badge, the holder's index entry and the
//! supersession of the earlier badge come back together or not at all), and
//! the gateway's trust-list publish (the list in force never goes back behind
//! an acknowledged publish and is never torn).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Authority, id};
use prost::Message;
use rand::Rng;
use tessera_certs::authority::AuthorityDir;
use tessera_certs::keys;
use tessera_core::{CheckedTrustList, CityCode, Role, TrustAnchor};
use tessera_proto::v1 as pb;
use tessera_proto::v1::gateway_client::GatewayClient;
use tessera_runtime::tls::{self, TrustState};
use tessera_runtime::{TlsIdentity, grpc};

const BATCH: u32 = 1000;
const BATCHES_PER_RUN: u32 = 40;
const RUNS: u32 = 3;

fn batch(run: u32, b: u32, now: i64) -> pb::IngestRequest {
    pb::IngestRequest {
        records: (0..BATCH)
            .map(|i| pb::Record {
                record_id: format!("crash-{run}-{b}-{i}"),
                national_id: id(i % 500),
                kind: Some(pb::record::Kind::Test(pb::TestResult {
                    kind: pb::TestKind::Pcr as i32,
                    positive: false,
                    sampled_at: now - 3600,
                    lab: "LAB".into(),
                })),
            })
            .collect(),
    }
}

fn kill9(child: &mut std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_kill_9_and_batches_are_never_half_applied() {
    let a = Authority::new();
    let now = unix_now();
    let mut total_acked = 0u32;
    for run in 0..RUNS {
        let mut node = a.start_node();
        let kill_after = rand::thread_rng().gen_range(5..BATCHES_PER_RUN - 5);
        let acked: Arc<Mutex<Vec<u32>>> = Arc::default();
        // Two writers, so a batch is in flight at the moment of the kill.
        let mut writers = vec![];
        for w in 0..2 {
            let mut op = a.client("operators/330100-hangzhou-cdc/operator");
            let acked = Arc::clone(&acked);
            writers.push(tokio::spawn(async move {
                let mut b = w;
                while b < BATCHES_PER_RUN {
                    match op.ingest_records(batch(run, b, now)).await {
                        Ok(r) => {
                            assert_eq!(r.into_inner().stored, BATCH);
                            acked.lock().unwrap().push(b);
                        }
                        Err(_) => return,
                    }
                    b += 2;
                }
            }));
        }
        common::wait(
            format!("{kill_after} batches acknowledged"),
            Duration::from_secs(30),
        )
        .every(Duration::from_millis(2))
        .until_async(async || acked.lock().unwrap().len() as u32 >= kill_after)
        .await;
        kill9(&mut node);
        for w in writers {
            w.await.unwrap();
        }
        let acked = acked.lock().unwrap().clone();
        total_acked += acked.len() as u32 * BATCH;

        let node = a.start_node();
        let mut op = a.client("operators/330100-hangzhou-cdc/operator");
        for b in 0..BATCHES_PER_RUN {
            let r = op
                .ingest_records(batch(run, b, now))
                .await
                .unwrap()
                .into_inner();
            if acked.contains(&b) {
                assert_eq!(
                    (r.stored, r.duplicates),
                    (0, BATCH),
                    "run {run}: acknowledged batch {b} lost records over kill -9 after {kill_after} batches"
                );
            } else {
                assert!(
                    r.stored == BATCH || r.duplicates == BATCH,
                    "run {run}: batch {b} was half applied: {} stored, {} already there",
                    r.stored,
                    r.duplicates
                );
            }
        }
        common::stop(node);
    }
    assert!(
        total_acked >= 5 * BATCH * RUNS,
        "too few records were acknowledged to test anything"
    );
    println!("{total_acked} acknowledged records survived {RUNS} kill -9s");
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Waits until `reached` holds, trying every millisecond (the kill should
/// land close to the moment), failing the test after `limit`.
async fn wait_until(what: &str, limit: Duration, mut reached: impl FnMut() -> bool) {
    common::wait(what, limit)
        .every(Duration::from_millis(1))
        .until_async(async || reached())
        .await;
}

const BADGE_RUNS: u32 = 5;
/// (resident, badge id) in the order acknowledged.
type AckedBadges = Arc<Mutex<Vec<(u32, Vec<u8>)>>>;
/// Residents per run, each with one worker issuing their badges one after
/// the other, so the order of their acknowledged badges is the order of
/// issuance.
const RESIDENTS: u32 = 12;
/// Residents 0..SHARED get a second worker, so two issuances for one
/// resident are in flight at once (often decided in one batch).
const SHARED: u32 = 4;

/// Every acknowledged badge is known after kill -9, each resident keeps
/// exactly one active badge, and an issuance is never half applied.
///
/// One issuance writes the new badge, the holder's index entry (which the
/// node uses to find a resident's badges) and the supersession of the
/// earlier badge. What a half-applied issuance would look like through the
/// public RPCs: an acknowledged badge UNKNOWN; the last acknowledged badge
/// SUPERSEDED with no active successor; two badges ACTIVE for one resident;
/// or a badge ACTIVE but missing from the holder's index. The last two are
/// found by ingesting a positive test for each resident after the restart:
/// the node must revoke exactly one badge (the one active badge, found
/// through the index), and afterwards no acknowledged badge may still be
/// active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_badges_survive_kill_9_and_issuances_are_never_half_applied() {
    let a = Authority::new();
    let now = unix_now();
    let operator = "operators/330100-hangzhou-cdc/operator";
    let (mut total_acked, mut unacked_stored) = (0usize, 0u32);
    for run in 0..BADGE_RUNS {
        let resident = move |r: u32| id(100 + run * RESIDENTS + r);
        let mut node = a.start_node();
        let kill_after = rand::thread_rng().gen_range(30..300);
        let acked: AckedBadges = Arc::default();
        let killed = Arc::new(AtomicBool::new(false));
        let op = a.client(operator);
        let mut workers = vec![];
        for w in 0..RESIDENTS + SHARED {
            let r = w % RESIDENTS;
            let national_id = resident(r);
            let mut op = op.clone();
            let acked = Arc::clone(&acked);
            let killed = Arc::clone(&killed);
            workers.push(tokio::spawn(async move {
                loop {
                    let request = pb::IssueBadgeRequest {
                        national_id: national_id.clone(),
                        name: "王芳".into(),
                    };
                    match op.issue_badge(request).await {
                        Ok(b) => {
                            let b = b.into_inner();
                            assert_eq!(b.colour, pb::Colour::Green as i32);
                            acked.lock().unwrap().push((r, b.badge_id));
                        }
                        Err(e) => {
                            assert!(
                                killed.load(Ordering::SeqCst),
                                "run {run}: an issuance failed before the kill: {e}"
                            );
                            return;
                        }
                    }
                }
            }));
        }
        wait_until(
            &format!("{kill_after} badges acknowledged"),
            Duration::from_secs(30),
            || acked.lock().unwrap().len() >= kill_after || workers.iter().any(|w| w.is_finished()),
        )
        .await;
        // A random instant, not always just after an acknowledgement.
        let pause = rand::thread_rng().gen_range(0..10);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        killed.store(true, Ordering::SeqCst);
        kill9(&mut node);
        for w in workers {
            w.await.unwrap();
        }
        let acked = acked.lock().unwrap().clone();
        total_acked += acked.len();

        let node = a.start_node();
        let mut op = a.client(operator);
        let mut gw = a.client("gateways/gateway/gateway");
        let ids: Vec<Vec<u8>> = acked.iter().map(|(_, b)| b.clone()).collect();
        let statuses = |gw: &mut tessera_proto::v1::city_node_client::CityNodeClient<_>| {
            let mut gw = gw.clone();
            let ids = ids.clone();
            async move {
                let mut out = vec![];
                for chunk in ids.chunks(1000) {
                    let req = pb::CheckStatusRequest {
                        badge_ids: chunk.to_vec(),
                    };
                    out.extend(gw.check_status(req).await.unwrap().into_inner().statuses);
                }
                out
            }
        };
        use pb::BadgeStatus::{Active, Revoked, Superseded, Unknown};
        let before = statuses(&mut gw).await;
        assert_eq!(before.len(), acked.len());
        let mut of: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, (r, _)) in acked.iter().enumerate() {
            of.entry(*r).or_default().push(i);
        }
        for (i, s) in before.iter().enumerate() {
            assert_ne!(
                *s, Unknown as i32,
                "run {run}: acknowledged badge {i} of resident {} was lost over kill -9",
                acked[i].0
            );
        }
        for (r, mine) in &of {
            let st: Vec<i32> = mine.iter().map(|&i| before[i]).collect();
            let active = st.iter().filter(|&&s| s == Active as i32).count();
            assert!(
                active <= 1,
                "run {run}: resident {r} has {active} active badges: {st:?}"
            );
            let (last, earlier) = st.split_last().unwrap();
            if *r >= SHARED {
                assert!(
                    earlier.iter().all(|&s| s == Superseded as i32),
                    "run {run}: resident {r}: a badge followed by an acknowledged one is not superseded: {st:?}"
                );
                if *last == Superseded as i32 {
                    // Only a later issuance, unacknowledged but stored, can
                    // have superseded it; the revocation below shows it is
                    // there and active.
                    unacked_stored += 1;
                }
            }
            assert!(
                *last == Active as i32 || *last == Superseded as i32,
                "run {run}: resident {r}'s last acknowledged badge is {last}: {st:?}"
            );
        }

        // A positive test revokes every active badge of its holder, found
        // through the holder's index: exactly one each.
        for r in 0..RESIDENTS {
            let positive = pb::IngestRequest {
                records: vec![pb::Record {
                    record_id: format!("positive-{run}-{r}"),
                    national_id: resident(r),
                    kind: Some(pb::record::Kind::Test(pb::TestResult {
                        kind: pb::TestKind::Antigen as i32,
                        positive: true,
                        sampled_at: now - 60,
                        lab: "LAB".into(),
                    })),
                }],
            };
            let revoked = op
                .ingest_records(positive)
                .await
                .unwrap()
                .into_inner()
                .revoked;
            if of.contains_key(&r) {
                assert_eq!(
                    revoked, 1,
                    "run {run}: resident {r} had {revoked} active badges after kill -9, not one"
                );
            } else {
                assert!(
                    revoked <= 1,
                    "run {run}: resident {r} had {revoked} active badges"
                );
                unacked_stored += revoked;
            }
        }
        let after = statuses(&mut gw).await;
        for (i, (s, was)) in after.iter().zip(&before).enumerate() {
            let expected = if *was == Active as i32 {
                Revoked
            } else {
                Superseded
            };
            assert_eq!(
                *s, expected as i32,
                "run {run}: resident {}'s badge {i} was {was} before the positive test: \
                 still active means it was missing from the holder's index",
                acked[i].0
            );
        }
        common::stop(node);
    }
    assert!(
        total_acked >= 30 * BADGE_RUNS as usize,
        "too few badges were acknowledged to test anything"
    );
    println!(
        "{total_acked} acknowledged badges survived {BADGE_RUNS} kill -9s \
         ({unacked_stored} unacknowledged issuances were found whole, none half applied)"
    );
}

const TRUST_RUNS: u32 = 6;
const LISTS_PER_RUN: usize = 10;
/// Cities enrolled besides Hangzhou, each adding a node and a badge-signer
/// entry to the list (few: a debug gateway verifies every entry of every
/// list it is sent).
const EXTRA_CITIES: u32 = 2;

/// The authority's client of the gateway at `addr`.
fn gateway_client(a: &Authority, addr: &str) -> GatewayClient<tonic::transport::Channel> {
    tls::install_default_provider();
    let root = keys::read_cert(&a.dir.join("root/root.crt")).unwrap();
    let trust = Arc::new(TrustState::new(TrustAnchor::from_der(&root).unwrap()).unwrap());
    let identity = TlsIdentity::from_files(
        &a.dir.join("authority/authority.crt"),
        &a.dir.join("authority/authority.key"),
    )
    .unwrap();
    let config = tls::client_config(&identity, trust, Role::Gateway).unwrap();
    GatewayClient::new(grpc::channel(addr, config).unwrap())
}

/// After kill -9 the gateway's list in force is the last acknowledged one
/// or the one whose upload was in flight, never an older one, and it comes
/// back whole: byte for byte the list the authority signed, verifying to the
/// root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_trust_list_survives_kill_9_whole_and_never_goes_back() {
    let a = Authority::new();
    let now = unix_now();
    let mut authority = AuthorityDir::open(&a.dir).unwrap();
    for k in 0..EXTRA_CITIES {
        let code = CityCode::new((11 + k / 99) * 10_000 + (k % 99 + 1) * 100).unwrap();
        authority
            .enrol_city(code, &format!("City {k}"), "127.0.0.1:1", now)
            .unwrap();
    }
    let (mut gateway, addr) = a.run_gateway();
    let port: u16 = addr.rsplit_once(':').unwrap().1.parse().unwrap();
    let root =
        TrustAnchor::from_der(&keys::read_cert(&a.dir.join("root/root.crt")).unwrap()).unwrap();
    let mut signed: HashMap<u64, pb::SignedTrustList> = HashMap::new();
    let mut in_flight_kept = 0u32;
    let mut entries = 0usize;
    for run in 0..TRUST_RUNS {
        let lists: Vec<(u64, pb::SignedTrustList)> = (0..LISTS_PER_RUN)
            .map(|_| {
                let (sequence, bytes) = authority.publish(now, 3600).unwrap();
                (
                    sequence,
                    pb::SignedTrustList::decode(bytes.as_slice()).unwrap(),
                )
            })
            .collect();
        signed.extend(lists.iter().cloned());
        let kill_after = rand::thread_rng().gen_range(1..LISTS_PER_RUN - 2);
        let acked: Arc<Mutex<Vec<u64>>> = Arc::default();
        let killed = Arc::new(AtomicBool::new(false));
        let publisher = {
            let mut client = gateway_client(&a, &addr);
            let acked = Arc::clone(&acked);
            let killed = Arc::clone(&killed);
            let lists = lists.clone();
            tokio::spawn(async move {
                for (sequence, list) in lists {
                    let request = pb::PublishTrustListRequest { list: Some(list) };
                    match client.publish_trust_list(request).await {
                        Ok(r) => {
                            assert_eq!(r.into_inner().sequence, sequence);
                            acked.lock().unwrap().push(sequence);
                        }
                        Err(e) => {
                            assert!(
                                killed.load(Ordering::SeqCst),
                                "run {run}: the gateway refused list {sequence} before the kill: {e}"
                            );
                            return;
                        }
                    }
                }
            })
        };
        let started = Instant::now();
        wait_until(
            &format!("{kill_after} lists acknowledged"),
            Duration::from_secs(30),
            || acked.lock().unwrap().len() >= kill_after || publisher.is_finished(),
        )
        .await;
        // Somewhere in the next upload: verifying, storing or answering.
        let per_list = started.elapsed() / kill_after as u32;
        tokio::time::sleep(per_list.mul_f64(rand::thread_rng().gen_range(0.0..1.0))).await;
        killed.store(true, Ordering::SeqCst);
        kill9(&mut gateway);
        publisher.await.unwrap();
        let acked = acked.lock().unwrap().clone();
        let last_acked = *acked.last().unwrap();
        // Uploads are one after the other: only the next list can have been
        // stored without an acknowledgement.
        let in_flight = lists.get(acked.len()).map(|(s, _)| *s);

        gateway = a.start_gateway(port);
        let mut client = gateway_client(&a, &addr);
        let fetched = client
            .fetch_trust_list(pb::FetchTrustListRequest { known_sequence: 0 })
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "run {run}: after kill -9 the gateway serves no trust list ({}); \
                     {last_acked} was acknowledged",
                    e.message()
                )
            })
            .into_inner();
        let current = fetched.current_sequence;
        assert!(
            current == last_acked || Some(current) == in_flight,
            "run {run}: after kill -9 the gateway holds list {current}; \
             {last_acked} was acknowledged and {in_flight:?} was in flight"
        );
        in_flight_kept += u32::from(current != last_acked);
        let list = fetched.list.expect("a list with its sequence");
        assert_eq!(
            list, signed[&current],
            "run {run}: list {current} came back different from the list signed"
        );
        let checked = CheckedTrustList::verify(&list.encode_to_vec(), &root, unix_now())
            .unwrap_or_else(|e| panic!("run {run}: list {current} does not verify: {e}"));
        assert_eq!(checked.sequence(), current);
        entries = checked.entries().len();
    }
    // The gateway takes the next list after the last crash too.
    let (sequence, bytes) = authority.publish(now, 3600).unwrap();
    let next = gateway_client(&a, &addr)
        .publish_trust_list(pb::PublishTrustListRequest {
            list: Some(pb::SignedTrustList::decode(bytes.as_slice()).unwrap()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.sequence, sequence);
    common::stop(gateway);
    println!(
        "the trust list in force ({entries} entries) came back whole and signed after each of \
         {TRUST_RUNS} kill -9s, never behind the last acknowledged publish ({in_flight_kept} \
         times the list in flight was kept; list {sequence} in force at the end)"
    );
}
