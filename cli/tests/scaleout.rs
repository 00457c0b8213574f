//! Gateways scale out: two gateway processes behind HAProxy (TCP mode, so
//! mutual TLS ends at the gateways), the second following the first's trust
//! list. The authority publishes to one and the other follows within a
//! bound; checkpoints through HAProxy get the same verdicts whichever
//! gateway answers; and a gateway killed with SIGKILL under load loses no
//! verification beyond the calls in flight, each retried on a new
//! connection (a few times, a health-check interval apart).
//!
//! Needs `haproxy` (Debian package `haproxy`). Without it the test says it
//! is skipped and passes, unless `TESSERA_REQUIRE_HAPROXY=1` (as in CI).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, id, ok};
use tessera_core::{Role, TrustAnchor};
use tessera_proto::v1 as pb;
use tessera_proto::v1::city_node_client::CityNodeClient;
use tessera_proto::v1::gateway_client::GatewayClient;
use tessera_runtime::tls::{self, TrustState};
use tessera_runtime::{TlsIdentity, grpc};
use tonic::transport::Channel;

/// Checkpoint connections through HAProxy, each a TCP connection of its own
/// that round-robin places on one gateway.
const CLIENTS: usize = 8;
/// Badges issued by each of the two cities.
const BADGES_PER_CITY: u32 = 20;
/// How long the follower may take to put a list published to its peer in force.
const FOLLOW_BOUND: Duration = Duration::from_secs(5);
/// Verifications under load before the kill, and again after it.
const LOAD_EACH_SIDE: u64 = 600;
/// Deadline of one verification attempt.
const CALL_DEADLINE: Duration = Duration::from_secs(5);

/// `haproxy` on PATH, or where Debian installs it (`/usr/sbin`, off a
/// normal user's PATH).
fn haproxy() -> Option<PathBuf> {
    let runs = |p: &Path| {
        Command::new(p)
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    [PathBuf::from("haproxy"), PathBuf::from("/usr/sbin/haproxy")]
        .into_iter()
        .find(|p| runs(p))
}

/// A process killed (SIGKILL) when dropped, so a failing test leaves none
/// behind.
struct Proc {
    child: Child,
    name: &'static str,
}

impl Proc {
    fn kill9(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// Stops with SIGTERM and asserts a clean exit.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let status = common::wait_until(
            &format!("{} to stop after SIGTERM", self.name),
            Duration::from_secs(20),
            || self.child.try_wait().unwrap(),
        );
        assert!(status.success(), "{} exited with {status}", self.name);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill9();
        }
    }
}

/// Starts `program args` with its output in `log`, and waits (bounded)
/// until it listens on `port`.
fn spawn(name: &'static str, program: &Path, args: &[&str], port: u16, log: &Path) -> Proc {
    let out = std::fs::File::create(log).unwrap();
    let child = Command::new(program)
        .args(args)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut proc = Proc { child, name };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    common::wait_until(
        &format!("{name} to listen on {port}"),
        Duration::from_secs(20),
        || {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return true;
            }
            if let Some(status) = proc.child.try_wait().unwrap() {
                panic!(
                    "{name} exited with {status}:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            false
        },
    );
    proc
}

fn tessera_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tessera"))
}

fn trust(dir: &Path) -> Arc<TrustState> {
    let root = tessera_certs::keys::read_cert(&dir.join("root/root.crt")).unwrap();
    Arc::new(TrustState::new(TrustAnchor::from_der(&root).unwrap()).unwrap())
}

fn identity(dir: &Path, base: &str) -> TlsIdentity {
    let base = dir.join(base);
    TlsIdentity::from_files(&base.with_extension("crt"), &base.with_extension("key")).unwrap()
}

/// A checkpoint's client of the gateway at `endpoint`, on a connection of
/// its own.
fn checkpoint(dir: &Path, endpoint: &str) -> GatewayClient<Channel> {
    let config = tls::client_config(
        &identity(dir, "verifiers/420000-checkpoint/verifier"),
        trust(dir),
        Role::Gateway,
    )
    .unwrap();
    GatewayClient::new(grpc::channel(endpoint, config).unwrap())
}

fn operator(dir: &Path, base: &str, port: u16) -> CityNodeClient<Channel> {
    let config = tls::client_config(&identity(dir, base), trust(dir), Role::CityNode).unwrap();
    CityNodeClient::new(grpc::channel(&format!("127.0.0.1:{port}"), config).unwrap())
}

/// The sequence a gateway has in force (0 for none).
async fn sequence(client: &mut GatewayClient<Channel>) -> u64 {
    client
        .fetch_trust_list(pb::FetchTrustListRequest {
            known_sequence: u64::MAX,
        })
        .await
        .map_or(0, |r| r.into_inner().current_sequence)
}

/// Waits until the gateway behind `client` holds `seq`; returns how long
/// that took.
async fn until_sequence(
    client: &mut GatewayClient<Channel>,
    seq: u64,
    bound: Duration,
) -> Duration {
    let start = Instant::now();
    common::wait(format!("the follower to hold list {seq}"), bound)
        .every(Duration::from_millis(5))
        .until_async(async || {
            let held = sequence(client).await;
            if held >= seq {
                Ok(())
            } else {
                Err(format!("holds list {held}"))
            }
        })
        .await;
    start.elapsed()
}

/// What must be the same whichever gateway answers.
type Gist = (i32, i32, i64, u32, bool);

fn gist(v: &pb::Verdict) -> Gist {
    (
        v.outcome,
        v.colour,
        v.valid_until,
        v.issuer_city,
        v.signature_valid,
    )
}

/// HAProxy's statistics for the gateways' backend: server name to
/// (status, sessions so far).
fn haproxy_stats(port: u16) -> HashMap<String, (String, u64)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /stats;csv HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, mut rest) = text.split_once("\r\n\r\n").unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut body = String::new();
        while let Some((size, after)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            if size == 0 {
                break;
            }
            body.push_str(&after[..size]);
            rest = after[size..].trim_start_matches("\r\n");
        }
        body
    } else {
        rest.to_owned()
    };
    let mut lines = body.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (px, sv, status, stot) = (col("pxname"), col("svname"), col("status"), col("stot"));
    lines
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f.len() > stot && f[px] == "gateways" && f[sv].starts_with("gw-"))
        .map(|f| {
            (
                f[sv].to_owned(),
                (f[status].to_owned(), f[stot].parse().unwrap_or(0)),
            )
        })
        .collect()
}

fn haproxy_config(front: u16, stats: u16, a: u16, b: u16) -> String {
    format!(
        r"global
    maxconn 4096

defaults
    mode tcp
    timeout connect 500ms
    timeout client 60s
    timeout server 60s
    # A connection refused by a dead gateway is tried again on the other.
    retries 3
    option redispatch 1

frontend checkpoints
    bind 127.0.0.1:{front}
    default_backend gateways

backend gateways
    balance roundrobin
    default-server check inter 200ms fall 1 rise 2 on-marked-down shutdown-sessions
    server gw-a 127.0.0.1:{a}
    server gw-b 127.0.0.1:{b}

listen stats
    bind 127.0.0.1:{stats}
    mode http
    stats enable
    stats uri /stats
"
    )
}

/// Fresh connections a checkpoint dials after a failed call before it gives
/// up, with [`REDIAL_PAUSE`] between them.
const REDIALS: usize = 3;
/// The pause before each redial: about HAProxy's health-check interval, so
/// a second redial goes out after HAProxy can have marked a dead gateway
/// down.
const REDIAL_PAUSE: Duration = Duration::from_millis(200);

/// What a checkpoint does: verify on its connection; if the call fails
/// (its gateway died under it), dial again and retry on the new connection,
/// which it keeps; up to [`REDIALS`] times, [`REDIAL_PAUSE`] apart. A redial
/// straight after a SIGKILL can itself reach the dying gateway through
/// HAProxy before its health check marks it down (the connection is taken
/// and then dropped: "tls handshake eof"), so one retry is not always
/// enough. `Err` only when every retry fails.
async fn verify_retrying(
    client: &mut GatewayClient<Channel>,
    redial: impl Fn() -> GatewayClient<Channel>,
    request: &pb::VerifyRequest,
    retried: &AtomicU64,
) -> Result<pb::Verdict, String> {
    async fn attempt(
        client: &mut GatewayClient<Channel>,
        request: &pb::VerifyRequest,
    ) -> Result<pb::Verdict, String> {
        match tokio::time::timeout(CALL_DEADLINE, client.verify(request.clone())).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(status)) => Err(status.to_string()),
            Err(_) => Err("deadline".to_owned()),
        }
    }
    let mut last = match attempt(client, request).await {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    retried.fetch_add(1, Ordering::Relaxed);
    for redial_no in 0..REDIALS {
        if redial_no > 0 {
            tokio::time::sleep(REDIAL_PAUSE).await;
        }
        *client = redial();
        match attempt(client, request).await {
            Ok(v) => return Ok(v),
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_behind_haproxy_follow_one_list_agree_and_survive_kill_9() {
    let Some(haproxy) = haproxy() else {
        if std::env::var("TESSERA_REQUIRE_HAPROXY").as_deref() == Ok("1") {
            panic!(
                "haproxy not installed (apt-get install haproxy), and TESSERA_REQUIRE_HAPROXY=1 \
                 requires this test to run"
            );
        }
        println!("skipped: haproxy not installed (apt-get install haproxy)");
        eprintln!("skipped: haproxy not installed (apt-get install haproxy)");
        return;
    };
    let started = Instant::now();
    tls::install_default_provider();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("authority");
    let d = dir.to_str().unwrap();
    let logs = tmp.path();

    // The authority: two cities, a checkpoint, and two gateways. Each
    // gateway's certificate names 127.0.0.1, the address checkpoints dial
    // (HAProxy's), so a checkpoint accepts whichever gateway answers.
    let (hz, wh, pa, pb_, front, stats) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    ok(&["authority", "init", "--dir", d]);
    for (code, name, port) in [("330100", "Hangzhou", hz), ("420100", "Wuhan", wh)] {
        let ep = format!("127.0.0.1:{port}");
        ok(&[
            "authority",
            "enrol-city",
            "--dir",
            d,
            "--code",
            code,
            "--name",
            name,
            "--endpoint",
            &ep,
        ]);
        ok(&[
            "authority",
            "enrol-operator",
            "--dir",
            d,
            "--city",
            code,
            "--name",
            &format!("{name} CDC"),
        ]);
    }
    ok(&[
        "authority",
        "enrol-verifier",
        "--dir",
        d,
        "--province",
        "420000",
        "--name",
        "checkpoint",
    ]);
    let gw_a = format!("127.0.0.1:{pa}");
    let gw_b = format!("127.0.0.1:{pb_}");
    for (name, ep) in [("gw-a", &gw_a), ("gw-b", &gw_b)] {
        ok(&[
            "authority",
            "enrol-gateway",
            "--dir",
            d,
            "--name",
            name,
            "--endpoint",
            ep,
        ]);
    }
    // B follows A.
    let b_config = dir.join("gateways/gw-b/gateway.toml");
    let mut text = std::fs::read_to_string(&b_config).unwrap();
    text.push_str(&format!("\n[follow]\npeer = \"{gw_a}\"\nretry_ms = 200\n"));
    std::fs::write(&b_config, text).unwrap();

    let bin = tessera_bin();
    let config = |p: &str| dir.join(p).display().to_string();
    let node_hz = spawn(
        "Hangzhou node",
        &bin,
        &[
            "node",
            "run",
            "--config",
            &config("cities/330100/node.toml"),
        ],
        hz,
        &logs.join("node-hz.log"),
    );
    let node_wh = spawn(
        "Wuhan node",
        &bin,
        &[
            "node",
            "run",
            "--config",
            &config("cities/420100/node.toml"),
        ],
        wh,
        &logs.join("node-wh.log"),
    );
    let mut gateway_a = spawn(
        "gateway A",
        &bin,
        &[
            "gateway",
            "run",
            "--config",
            &config("gateways/gw-a/gateway.toml"),
        ],
        pa,
        &logs.join("gw-a.log"),
    );
    let gateway_b = spawn(
        "gateway B",
        &bin,
        &[
            "gateway",
            "run",
            "--config",
            &config("gateways/gw-b/gateway.toml"),
        ],
        pb_,
        &logs.join("gw-b.log"),
    );
    let cfg = tmp.path().join("haproxy.cfg");
    std::fs::write(&cfg, haproxy_config(front, stats, pa, pb_)).unwrap();
    let lb = spawn(
        "haproxy",
        &haproxy,
        &["-f", cfg.to_str().unwrap(), "-db"],
        front,
        &logs.join("haproxy.log"),
    );

    // The first list goes to A only; B, which started with none, follows.
    let mut direct_a = checkpoint(&dir, &gw_a);
    let mut direct_b = checkpoint(&dir, &gw_b);
    assert_eq!(sequence(&mut direct_b).await, 0);
    assert!(
        ok(&[
            "authority",
            "trust-list",
            "publish",
            "--dir",
            d,
            "--gateway",
            &gw_a
        ])
        .contains("sequence 1 in force")
    );
    let first_follow = until_sequence(&mut direct_b, 1, FOLLOW_BOUND).await;
    eprintln!("[{:?}] running, list 1 followed", started.elapsed());

    // Badges from both cities.
    let mut badges = vec![]; // (request, city)
    for (code, port, base) in [
        (330_100, hz, "operators/330100-hangzhou-cdc/operator"),
        (420_100, wh, "operators/420100-wuhan-cdc/operator"),
    ] {
        let mut op = operator(&dir, base, port);
        for n in 0..BADGES_PER_CITY {
            let issued = op
                .issue_badge(pb::IssueBadgeRequest {
                    national_id: id(n + code / 1000),
                    name: "王芳".into(),
                })
                .await
                .unwrap()
                .into_inner();
            badges.push((
                pb::VerifyRequest {
                    badge: Some(pb::verify_request::Badge::Envelope(issued.badge)),
                },
                code,
            ));
        }
    }

    eprintln!("[{:?}] badges issued", started.elapsed());
    // Wait until HAProxy sees both gateways up.
    common::wait_until_async(
        "HAProxy to see both gateways up",
        Duration::from_secs(10),
        async || {
            let seen = haproxy_stats(stats);
            if seen.values().filter(|(s, _)| s == "UP").count() < 2 {
                Err(seen)
            } else {
                Ok(())
            }
        },
    )
    .await;

    // Before any revocation, badges of both cities are VALID through HAProxy.
    let front_ep = format!("127.0.0.1:{front}");
    let mut through: Vec<_> = (0..CLIENTS).map(|_| checkpoint(&dir, &front_ep)).collect();
    for (n, c) in through.iter_mut().enumerate() {
        for (request, _) in [&badges[n], &badges[badges.len() - 1 - n]] {
            let v = c.verify(request.clone()).await.unwrap().into_inner();
            assert_eq!(v.outcome(), pb::Outcome::Valid, "{v:?}");
        }
    }

    // The authority revokes Wuhan and publishes to A alone; B follows.
    ok(&["authority", "revoke", "--dir", d, "--city", "420100"]);
    assert!(
        ok(&[
            "authority",
            "trust-list",
            "publish",
            "--dir",
            d,
            "--gateway",
            &gw_a
        ])
        .contains("sequence 2 in force")
    );
    let follow = until_sequence(&mut direct_b, 2, FOLLOW_BOUND).await;
    assert_eq!(sequence(&mut direct_a).await, 2);

    // Every checkpoint connection, on either gateway, gets the same verdict
    // for each badge, and the one the new list calls for; both gateways
    // answered (HAProxy's session counts) and, asked directly, agree.
    let expected = |city: u32| {
        if city == 420_100 {
            pb::Outcome::SignerRevoked
        } else {
            pb::Outcome::Valid
        }
    };
    let before = haproxy_stats(stats);
    let mut seen: Vec<Option<Gist>> = vec![None; badges.len()];
    let mut consistent_checks = 0u64;
    let fresh: Vec<_> = (0..CLIENTS).map(|_| checkpoint(&dir, &front_ep)).collect();
    for mut c in fresh
        .into_iter()
        .chain([direct_a.clone(), direct_b.clone()])
    {
        for (i, (request, city)) in badges.iter().enumerate() {
            let v = c.verify(request.clone()).await.unwrap().into_inner();
            assert_eq!(v.outcome(), expected(*city), "{v:?}");
            match &seen[i] {
                None => seen[i] = Some(gist(&v)),
                Some(g) => assert_eq!(*g, gist(&v), "gateways disagree on badge {i}"),
            }
            consistent_checks += 1;
        }
    }
    let after = haproxy_stats(stats);
    let spread: Vec<(String, u64)> = ["gw-a", "gw-b"]
        .iter()
        .map(|s| (s.to_string(), after[*s].1 - before[*s].1))
        .collect();
    assert!(
        spread.iter().all(|(_, n)| *n >= 2),
        "round-robin did not spread the checkpoint connections: {spread:?}"
    );

    eprintln!("[{:?}] verdicts consistent", started.elapsed());
    // Load through HAProxy, then SIGKILL gateway A in the middle of it.
    let done = Arc::new(AtomicU64::new(0));
    let retried = Arc::new(AtomicU64::new(0));
    let lost = Arc::new(AtomicU64::new(0));
    let wrong = Arc::new(Mutex::new(Vec::<String>::new()));
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    let halt = Arc::new(AtomicBool::new(false));
    let badges = Arc::new(badges);
    let mut workers = vec![];
    for (w, client) in through.into_iter().enumerate() {
        let (done, retried, lost, wrong, slowest, halt, badges) = (
            Arc::clone(&done),
            Arc::clone(&retried),
            Arc::clone(&lost),
            Arc::clone(&wrong),
            Arc::clone(&slowest),
            Arc::clone(&halt),
            Arc::clone(&badges),
        );
        let (dir, front_ep) = (dir.clone(), front_ep.clone());
        workers.push(tokio::spawn(async move {
            let mut client = client;
            let mut i = w * 7;
            while !halt.load(Ordering::Relaxed) {
                let (request, city) = &badges[i % badges.len()];
                let t = Instant::now();
                let redial = || checkpoint(&dir, &front_ep);
                match verify_retrying(&mut client, redial, request, &retried).await {
                    Ok(v) if v.outcome() == expected(*city) => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(v) => wrong.lock().unwrap().push(format!("{v:?}")),
                    Err(e) => {
                        lost.fetch_add(1, Ordering::Relaxed);
                        wrong.lock().unwrap().push(e);
                    }
                }
                let took = t.elapsed();
                let mut s = slowest.lock().unwrap();
                *s = (*s).max(took);
                i += 1;
            }
        }));
    }
    let wait_for = |n: u64| {
        let done = Arc::clone(&done);
        async move {
            common::wait(format!("the load to reach {n}"), Duration::from_secs(120))
                .every(Duration::from_millis(5))
                .until_async(async || done.load(Ordering::Relaxed) >= n)
                .await;
        }
    };
    wait_for(LOAD_EACH_SIDE).await;
    let at_kill = done.load(Ordering::Relaxed);
    eprintln!("[{:?}] killing gateway A", started.elapsed());
    gateway_a.kill9();
    let killed = Instant::now();
    let marked_down = common::wait("HAProxy to mark A down", Duration::from_secs(10))
        .every(Duration::from_millis(10))
        .until_async(async || {
            haproxy_stats(stats)["gw-a"]
                .0
                .starts_with("DOWN")
                .then(|| killed.elapsed())
        })
        .await;
    wait_for(at_kill + LOAD_EACH_SIDE).await;
    let after_kill = killed.elapsed();
    halt.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let (done, retried, lost) = (
        done.load(Ordering::Relaxed),
        retried.load(Ordering::Relaxed),
        lost.load(Ordering::Relaxed),
    );
    let wrong = wrong.lock().unwrap().clone();
    let slowest = *slowest.lock().unwrap();
    assert!(wrong.is_empty(), "wrong or lost verdicts: {wrong:?}");
    assert_eq!(lost, 0, "verifications lost after {REDIALS} redials");
    assert!(
        retried >= 1,
        "no call was in flight on gateway A when it was killed: the kill tested nothing"
    );
    assert!(
        retried <= CLIENTS as u64,
        "{retried} calls failed on the first try, more than the {CLIENTS} that can be in flight"
    );
    // B goes on serving the list it followed, alone.
    assert_eq!(sequence(&mut direct_b).await, 2);

    println!(
        "scale-out: follower took {first_follow:?} (first list) and {follow:?} (revocation) to put A's list in force"
    );
    println!(
        "scale-out: {consistent_checks} verdicts on {} badges agreed across {CLIENTS} HAProxy connections \
         and both gateways directly; round-robin sessions {spread:?}",
        badges.len()
    );
    println!(
        "scale-out: {done} verifications under load over {CLIENTS} connections; gateway A killed \
         after {at_kill}; HAProxy marked it down in {marked_down:?}; {retried} calls failed and \
         were retried on a new connection, {lost} lost; slowest verification (retries included) {slowest:?}; \
         {LOAD_EACH_SIDE} more verified {after_kill:?} after the kill"
    );
    println!("scale-out: test ran {:?}", started.elapsed());

    let mut lb = lb;
    lb.kill9();
    gateway_b.stop();
    node_hz.stop();
    node_wh.stop();
}
