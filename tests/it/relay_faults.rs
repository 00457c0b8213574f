//! Relay faults end to end: Hangzhou's node is down, slow, failing, drops
//! connections mid-call or has its TLS certificate revoked, while a
//! checkpoint in Wuhan keeps checking badges of both cities through a real
//! gateway over real mutual TLS.
//!
//! Faults are made on the node's side of the wire, never in the gateway:
//! Hangzhou's enrolled endpoint is a TCP proxy on 127.0.0.1 that forwards to
//! the real node and can refuse, accept-then-close, cut or delay. For errors
//! and mid-call drops, the proxy forwards to a stand-in `CityNode` server
//! holding the real node certificate behind the real mTLS server set-up,
//! which passes status checks on to the real node until told to fail.
//!
//! For each fault: the verdict is STATUS_UNAVAILABLE within the deadline,
//! the breaker opens (checks then fail without a call), Wuhan's checks keep
//! passing, and once Hangzhou is healthy again the breaker's probe closes
//! it. Wuhan's latency with all nodes healthy and with Hangzhou down or slow
//! is printed by `cargo nextest run -p tessera-tests relay_faults::wuhan
//! --no-capture`.

use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tessera_core::{CertInfo, CityCode, Identity, Role, Scope};
use tessera_gateway::config::RelaySettings;
use tessera_proto::v1 as pb;
use tessera_proto::v1::city_node_client::CityNodeClient;
use tessera_proto::v1::city_node_server::{CityNode, CityNodeServer};
use tessera_proto::v1::gateway_client::GatewayClient;
use tessera_runtime::tls::{self, TrustState};
use tessera_runtime::{TlsIdentity, grpc};
use tessera_tests::harness::{RunningGateway, RunningNode, gateway_client, node_client};
use tessera_tests::wait::wait;
use tessera_tests::{TestPki, national_id, test_record, unix_now};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

const HANGZHOU: u32 = 330_100;
const WUHAN: u32 = 420_100;
/// The relay's deadline for one status check.
const TIMEOUT: Duration = Duration::from_millis(400);
/// How long an open breaker refuses calls before a probe.
const BREAKER_OPEN: Duration = Duration::from_secs(1);
/// A verdict must come within the deadline plus this much slack (a noisy
/// machine, debug build): generous on purpose, it only catches hangs.
const SLACK: Duration = Duration::from_secs(3);
/// Wuhan checks timed per phase.
const TIMED_CHECKS: usize = 200;

/// No cache, so that every check of a badge is a relayed check.
fn settings() -> RelaySettings {
    RelaySettings {
        enabled: true,
        timeout: TIMEOUT,
        concurrency_per_node: 4,
        cache_ttl: Duration::ZERO,
        breaker_failures: 3,
        breaker_open: BREAKER_OPEN,
    }
}

// ---------------------------------------------------------------- the proxy

/// What the proxy does with Hangzhou's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// Forwards both ways at once.
    Pass,
    /// Holds each chunk from the node for this long before passing it on.
    Delay(Duration),
    /// Accepts a connection and closes it at once.
    AcceptThenClose,
}

/// The proxy's open connections (both legs), so they can be cut.
#[derive(Default)]
struct Conns(Mutex<Vec<std::net::TcpStream>>);

impl Conns {
    fn track(&self, stream: &TcpStream) {
        if let Ok(fd) = stream.as_fd().try_clone_to_owned() {
            self.0.lock().unwrap().push(std::net::TcpStream::from(fd));
        }
    }

    /// Shuts every tracked connection down both ways: both peers see the
    /// connection end, whatever was in flight.
    fn cut(&self) {
        for s in self.0.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

struct ProxyShared {
    upstream: Mutex<SocketAddr>,
    wire: Mutex<Wire>,
    conns: Conns,
}

/// A TCP proxy on 127.0.0.1: Hangzhou's endpoint in the trust list.
struct Proxy {
    addr: SocketAddr,
    shared: Arc<ProxyShared>,
    accepting: Option<JoinHandle<()>>,
}

impl Proxy {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shared = Arc::new(ProxyShared {
            upstream: Mutex::new(SocketAddr::from(([127, 0, 0, 1], 1))),
            wire: Mutex::new(Wire::Pass),
            conns: Conns::default(),
        });
        Self {
            addr: listener.local_addr().unwrap(),
            accepting: Some(tokio::spawn(accept(listener, Arc::clone(&shared)))),
            shared,
        }
    }

    fn point_to(&self, upstream: SocketAddr) {
        *self.shared.upstream.lock().unwrap() = upstream;
    }

    fn set(&self, wire: Wire) {
        *self.shared.wire.lock().unwrap() = wire;
    }

    /// The node's host is gone: the port refuses connections and open ones
    /// end.
    async fn down(&mut self) {
        if let Some(task) = self.accepting.take() {
            task.abort();
            let _ = task.await; // the listener is closed once it returns
        }
        self.shared.conns.cut();
    }

    /// Listening again on the same address.
    async fn up(&mut self) {
        let addr = self.addr;
        let listener = wait(
            format!("to listen on {addr} again"),
            Duration::from_secs(10),
        )
        .every(Duration::from_millis(100))
        .until_async(async || {
            let bound = TcpListener::bind(addr).await;
            if let Err(e) = &bound {
                eprintln!("rebinding {addr}: {e}");
            }
            bound
        })
        .await;
        self.accepting = Some(tokio::spawn(accept(listener, Arc::clone(&self.shared))));
    }
}

async fn accept(listener: TcpListener, shared: Arc<ProxyShared>) {
    loop {
        match listener.accept().await {
            Ok((client, _)) => {
                tokio::spawn(forward(client, Arc::clone(&shared)));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn forward(client: TcpStream, shared: Arc<ProxyShared>) {
    if *shared.wire.lock().unwrap() == Wire::AcceptThenClose {
        return; // dropping `client` closes it
    }
    let upstream = *shared.upstream.lock().unwrap();
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    shared.conns.track(&client);
    shared.conns.track(&server);
    let (from_gateway, to_gateway) = client.into_split();
    let (from_node, to_node) = server.into_split();
    tokio::join!(
        pump(from_gateway, to_node, None),
        pump(from_node, to_gateway, Some(shared)),
    );
}

/// Copies one direction in order; chunks are held for the proxy's delay at
/// the time they were read when `delayed` is given.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delayed: Option<Arc<ProxyShared>>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let delay = match delayed.as_ref().map(|s| *s.wire.lock().unwrap()) {
                Some(Wire::Delay(d)) => d,
                _ => Duration::ZERO,
            };
            let due = tokio::time::Instant::now() + delay;
            if tx.send((due, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

// -------------------------------------------------- the stand-in city node

/// What the stand-in node does with a status check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Asks the real node.
    Pass,
    /// Answers this gRPC error.
    Fail(Code),
    /// Drops the connection the call came on, with the call in progress.
    DropConnection,
}

/// A `CityNode` server with Hangzhou's real node certificate and key, behind
/// the real mTLS server set-up, in front of the real node.
struct StandIn {
    answer: Mutex<Answer>,
    calls: AtomicU64,
    /// The real node, asked as the gateway.
    node: Mutex<CityNodeClient<Channel>>,
    /// The proxy's connections, one of which carries the call.
    proxy: Arc<ProxyShared>,
}

const FAILING: &str = "the status store is failing";

impl StandIn {
    async fn start(
        pki: &TestPki,
        city: CityCode,
        node: SocketAddr,
        proxy: Arc<ProxyShared>,
    ) -> (Arc<Self>, SocketAddr) {
        tls::install_default_provider();
        let c = pki.city(city).unwrap();
        let identity = TlsIdentity::new(c.node.der.clone(), &c.node.tls_key).unwrap();
        let trust = Arc::new(TrustState::new(pki.anchor().unwrap()).unwrap());
        let config = tls::server_config(&identity, trust).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stand_in = Arc::new(Self {
            answer: Mutex::new(Answer::Pass),
            calls: AtomicU64::new(0),
            // The gateway's certificate: the role the node lets check status.
            node: Mutex::new(node_client(pki, node, &pki.gateway).unwrap()),
            proxy,
        });
        let server = tonic::transport::Server::builder()
            .add_service(CityNodeServer::from_arc(Arc::clone(&stand_in)))
            .serve_with_incoming(grpc::incoming(
                listener,
                config,
                grpc::ConnectionLimits::default(),
            ));
        tokio::spawn(async move {
            let _ = server.await;
        });
        (stand_in, addr)
    }

    fn set(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

#[tonic::async_trait]
impl CityNode for StandIn {
    async fn ingest_records(
        &self,
        _: Request<pb::IngestRequest>,
    ) -> Result<Response<pb::IngestResponse>, Status> {
        Err(Status::unimplemented("stand-in"))
    }

    async fn issue_badge(
        &self,
        _: Request<pb::IssueBadgeRequest>,
    ) -> Result<Response<pb::IssueBadgeResponse>, Status> {
        Err(Status::unimplemented("stand-in"))
    }

    async fn explain(
        &self,
        _: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        Err(Status::unimplemented("stand-in"))
    }

    async fn correct_record(
        &self,
        _: Request<pb::CorrectRecordRequest>,
    ) -> Result<Response<pb::CorrectRecordResponse>, Status> {
        Err(Status::unimplemented("stand-in"))
    }

    async fn check_status(
        &self,
        request: Request<pb::CheckStatusRequest>,
    ) -> Result<Response<pb::CheckStatusResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let answer = *self.answer.lock().unwrap();
        match answer {
            Answer::Pass => {
                let mut node = self.node.lock().unwrap().clone();
                node.check_status(request.into_inner()).await
            }
            Answer::Fail(code) => Err(Status::new(code, FAILING)),
            Answer::DropConnection => {
                // The request has arrived; no answer will leave.
                self.proxy.conns.cut();
                Err(Status::unavailable("dropped"))
            }
        }
    }

    async fn who_am_i(
        &self,
        _: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::PeerIdentity>, Status> {
        Err(Status::unimplemented("stand-in"))
    }

    async fn export_records(
        &self,
        _: Request<pb::ExportRequest>,
    ) -> Result<Response<pb::ExportResponse>, Status> {
        Err(Status::unimplemented("stand-in"))
    }

    async fn erase_resident(
        &self,
        _: Request<pb::EraseRequest>,
    ) -> Result<Response<pb::EraseResponse>, Status> {
        Err(Status::unimplemented("stand-in"))
    }

    async fn access_log(
        &self,
        _: Request<pb::AccessLogRequest>,
    ) -> Result<Response<pb::AccessLogResponse>, Status> {
        Err(Status::unimplemented("stand-in"))
    }

    async fn backup_store(
        &self,
        _: Request<pb::BackupStoreRequest>,
    ) -> Result<Response<pb::BackupStoreResponse>, Status> {
        Err(Status::unimplemented("stand-in"))
    }
}

// ---------------------------------------------------------- the federation

/// The faults, one test each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Nothing listens at the endpoint; open connections end.
    Down,
    /// Something accepts connections and closes them at once.
    AcceptThenClose,
    /// Answers arrive after the relay's deadline.
    Slow,
    /// Status checks get a gRPC error.
    Errors,
    /// The connection ends while a status check is in progress.
    DropsMidCall,
    /// A new trust list revokes the node's TLS certificate.
    Revoked,
}

impl Fault {
    fn needs_stand_in(self) -> bool {
        matches!(self, Self::Errors | Self::DropsMidCall)
    }

    /// What the first failing verdict's detail says.
    fn detail(self) -> &'static str {
        match self {
            Self::Slow => "did not answer in time",
            Self::Errors => FAILING,
            _ => "the node of 330100 failed",
        }
    }
}

struct Fed {
    pki: TestPki,
    dir: tempfile::TempDir,
    /// Hangzhou's real node, behind the proxy.
    hz: Option<RunningNode>,
    wuhan: RunningNode,
    proxy: Proxy,
    stand_in: Option<(Arc<StandIn>, SocketAddr)>,
    gw: RunningGateway,
    checkpoint: GatewayClient<Channel>,
}

impl Fed {
    async fn new(stand_in: bool, relay: RelaySettings) -> Self {
        let mut pki = TestPki::new(unix_now()).unwrap();
        let proxy = Proxy::start().await;
        let wh_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hz = pki
            .add_city(HANGZHOU, "Hangzhou", &proxy.addr.to_string())
            .unwrap();
        let wh = pki
            .add_city(
                WUHAN,
                "Wuhan",
                &wh_listener.local_addr().unwrap().to_string(),
            )
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let hz_node = RunningNode::start(&pki, hz, &dir.path().join("hz"))
            .await
            .unwrap();
        let wuhan = RunningNode::start_on(&pki, wh, &dir.path().join("wh"), wh_listener)
            .await
            .unwrap();
        let stand_in = if stand_in {
            Some(StandIn::start(&pki, hz, hz_node.addr, Arc::clone(&proxy.shared)).await)
        } else {
            None
        };
        proxy.point_to(hz_node.addr);
        let list = pki.trust_list(1).unwrap();
        let gw = RunningGateway::start(&pki, &dir.path().join("gw"), Some(&list), relay)
            .await
            .unwrap();
        let checkpoint = gateway_client(&pki, gw.addr, &pki.verifier(420_000).unwrap()).unwrap();
        Self {
            pki,
            dir,
            hz: Some(hz_node),
            wuhan,
            proxy,
            stand_in,
            gw,
            checkpoint,
        }
    }

    fn hangzhou(&self) -> CityCode {
        HANGZHOU.to_string().parse().unwrap()
    }

    /// A green badge issued by the real node of `city` (at `addr`).
    async fn badge(&self, city: u32, addr: SocketAddr) -> Vec<u8> {
        let code: CityCode = city.to_string().parse().unwrap();
        let mut op = node_client(&self.pki, addr, &self.pki.operator(code).unwrap()).unwrap();
        let id = national_id(code, 1);
        op.ingest_records(pb::IngestRequest {
            records: vec![test_record("r-1", &id, false, unix_now() - 600)],
        })
        .await
        .unwrap();
        op.issue_badge(pb::IssueBadgeRequest {
            national_id: id,
            name: "王芳".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .badge
    }

    async fn check(&self, badge: &[u8]) -> (pb::Verdict, Duration) {
        check(&mut self.checkpoint.clone(), badge).await
    }

    fn calls(&self) -> u64 {
        self.gw.verifier.relay().stats().calls
    }

    fn breaker_open(&self) -> bool {
        self.gw
            .verifier
            .relay()
            .breaker(self.hangzhou())
            .is_some_and(|b| b.is_open())
    }

    /// A new trust list in force, with Hangzhou's current enrolment and
    /// `revoked` node certificates.
    async fn publish(&self, sequence: u64, revoked: &[Vec<u8>]) {
        let mut msg = self.pki.trust_list_message(sequence).unwrap();
        msg.revoked_serials = revoked.to_vec();
        self.gw
            .registry
            .publish(&self.pki.sign(&msg).unwrap(), unix_now())
            .await
            .unwrap();
    }

    fn hz_node_serial(&self) -> Vec<u8> {
        let c = self.pki.city(self.hangzhou()).unwrap();
        CertInfo::parse(&c.node.der).unwrap().serial().to_vec()
    }

    async fn inject(&mut self, fault: Fault) {
        match fault {
            Fault::Down => self.proxy.down().await,
            Fault::AcceptThenClose => {
                self.proxy.set(Wire::AcceptThenClose);
                self.proxy.shared.conns.cut();
            }
            Fault::Slow => self.proxy.set(Wire::Delay(TIMEOUT * 3)),
            Fault::Errors => self.stand_in().set(Answer::Fail(Code::Internal)),
            Fault::DropsMidCall => self.stand_in().set(Answer::DropConnection),
            Fault::Revoked => {
                let serial = self.hz_node_serial();
                self.publish(2, &[serial]).await;
            }
        }
    }

    async fn heal(&mut self, fault: Fault) {
        match fault {
            Fault::Down => self.proxy.up().await,
            Fault::AcceptThenClose | Fault::Slow => self.proxy.set(Wire::Pass),
            Fault::Errors | Fault::DropsMidCall => self.stand_in().set(Answer::Pass),
            Fault::Revoked => {
                // The city gets a new node certificate and the authority
                // publishes it; the old one stays revoked.
                let old = self.hz_node_serial();
                let hz = self.hangzhou();
                let fresh = self
                    .pki
                    .issue(
                        Identity::new(Role::CityNode, Scope::City(hz)).unwrap(),
                        &["127.0.0.1"],
                    )
                    .unwrap();
                self.pki
                    .cities
                    .iter_mut()
                    .find(|c| c.code == hz)
                    .unwrap()
                    .node = fresh;
                self.hz.take().unwrap().stop().await.unwrap();
                let node = RunningNode::start(&self.pki, hz, &self.dir.path().join("hz"))
                    .await
                    .unwrap();
                self.proxy.point_to(node.addr);
                if let Some((s, _)) = &self.stand_in {
                    *s.node.lock().unwrap() =
                        node_client(&self.pki, node.addr, &self.pki.gateway).unwrap();
                }
                self.hz = Some(node);
                self.publish(3, &[old]).await;
            }
        }
    }

    fn stand_in(&self) -> &StandIn {
        &self
            .stand_in
            .as_ref()
            .expect("a federation with a stand-in")
            .0
    }

    fn stand_in_calls(&self) -> Option<u64> {
        self.stand_in.as_ref().map(|(s, _)| s.calls())
    }

    /// Sends Hangzhou's traffic where `fault` is made: through the stand-in
    /// for errors and drops, straight to the real node otherwise. Open
    /// connections are cut, so the next check takes the new route.
    fn route(&self, fault: Fault) {
        let to = if fault.needs_stand_in() {
            self.stand_in
                .as_ref()
                .expect("a federation with a stand-in")
                .1
        } else {
            self.hz.as_ref().unwrap().addr
        };
        self.proxy.point_to(to);
        self.proxy.shared.conns.cut();
    }

    /// Checks the Hangzhou badge until VALID; panics after `within`.
    async fn until_valid(&self, badge: &[u8], within: Duration, why: &str) -> Duration {
        let started = Instant::now();
        wait(format!("VALID once {why}"), within)
            .until_async(async || {
                let (v, _) = self.check(badge).await;
                if outcome(&v) == pb::Outcome::Valid {
                    return Ok(());
                }
                assert_eq!(outcome(&v), pb::Outcome::StatusUnavailable, "{why}: {v:?}");
                Err(v.detail)
            })
            .await;
        started.elapsed()
    }

    /// Checks the Hangzhou badge until the breaker is open: every verdict on
    /// the way is STATUS_UNAVAILABLE within the deadline, never VALID. The
    /// first verdict is returned.
    async fn until_open(&self, badge: &[u8], fault: Fault) -> (pb::Verdict, Duration, u32) {
        let mut first = None;
        let mut failed = 0;
        while !self.breaker_open() {
            let (v, took) = self.check(badge).await;
            assert_eq!(
                outcome(&v),
                pb::Outcome::StatusUnavailable,
                "{fault:?}: {v:?}"
            );
            assert!(v.signature_valid, "{fault:?}: the signature result is lost");
            assert_eq!(v.colour, pb::Colour::Green as i32);
            assert!(took < TIMEOUT + SLACK, "{fault:?}: a verdict took {took:?}");
            first.get_or_insert((v, took));
            failed += 1;
            // The breaker opens after `breaker_failures` failed calls; a
            // verdict can come back a moment before its call is counted.
            assert!(failed <= 6, "{fault:?}: the breaker did not open");
        }
        let (v, took) = first.expect("at least one failing check");
        (v, took, failed)
    }
}

async fn check(client: &mut GatewayClient<Channel>, badge: &[u8]) -> (pb::Verdict, Duration) {
    let started = Instant::now();
    let v = client
        .verify(pb::VerifyRequest {
            badge: Some(pb::verify_request::Badge::Envelope(badge.to_vec())),
        })
        .await
        .unwrap()
        .into_inner();
    (v, started.elapsed())
}

fn outcome(v: &pb::Verdict) -> pb::Outcome {
    pb::Outcome::try_from(v.outcome).unwrap()
}

/// Percentiles of a set of latencies.
struct Latency {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Latency {
    fn of(mut took: Vec<Duration>) -> Self {
        took.sort();
        let at = |q: f64| took[((took.len() - 1) as f64 * q).round() as usize];
        Self {
            p50: at(0.50),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        write!(
            f,
            "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ms(self.p50),
            ms(self.p99),
            ms(self.max)
        )
    }
}

/// Times `n` Wuhan checks, one after another, while another caller keeps
/// checking a Hangzhou badge (pausing 25 ms between checks) on the same
/// checkpoint connection. Every Wuhan check must be VALID.
async fn time_wuhan(f: &Fed, n: usize, wuhan: &[u8], hangzhou: &[u8]) -> Latency {
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..1)
        .map(|_| {
            let (stop, mut client, badge) =
                (Arc::clone(&stop), f.checkpoint.clone(), hangzhou.to_vec());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let _ = check(&mut client, &badge).await;
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            })
        })
        .collect();
    let mut client = f.checkpoint.clone();
    let mut took = Vec::with_capacity(n);
    for _ in 0..n {
        let (v, t) = check(&mut client, wuhan).await;
        assert_eq!(outcome(&v), pb::Outcome::Valid, "a Wuhan check: {v:?}");
        took.push(t);
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    Latency::of(took)
}

/// Time for a healed node to be VALID again: the rest of the breaker's open
/// period, a probe, and slack (a slow node's late bytes drain first).
const RECOVERY: Duration = Duration::from_secs(8);

/// One fault, start to end.
async fn fault_case(fault: Fault) {
    let mut f = Fed::new(fault.needs_stand_in(), settings()).await;
    f.route(fault);
    let hz_badge = f.badge(HANGZHOU, f.hz.as_ref().unwrap().addr).await;
    let wh_badge = f.badge(WUHAN, f.wuhan.addr).await;
    assert_eq!(outcome(&f.check(&hz_badge).await.0), pb::Outcome::Valid);

    f.inject(fault).await;
    let stand_in_calls = f.stand_in_calls();
    let (first, took, failed) = f.until_open(&hz_badge, fault).await;
    assert!(
        first.detail.contains(fault.detail()),
        "{fault:?}: detail {:?}",
        first.detail
    );
    println!("{fault:?}: first verdict in {took:?}: {}", first.detail);
    if let (Some(before), Some(after)) = (stand_in_calls, f.stand_in_calls()) {
        assert!(after > before, "{fault:?}: no call reached the node");
    }

    // Open: a check fails at once, without a call to the node. (On a
    // stalled machine a check may land on the probe `breaker_open` later:
    // that one is not counted, the next is.)
    let mut probes = 0;
    loop {
        let (calls, stand_in_calls) = (f.calls(), f.stand_in_calls());
        let (v, took) = f.check(&hz_badge).await;
        assert_eq!(outcome(&v), pb::Outcome::StatusUnavailable, "{v:?}");
        if v.detail.contains("circuit breaker is open") {
            assert_eq!(
                f.calls(),
                calls,
                "{fault:?}: the open breaker let a call out"
            );
            assert_eq!(f.stand_in_calls(), stand_in_calls);
            println!(
                "{fault:?}: breaker open after {failed} failed checks; then a check took {took:?}"
            );
            break;
        }
        probes += 1;
        assert!(
            probes < 3,
            "{fault:?}: the breaker is not open: {}",
            v.detail
        );
    }

    // Wuhan keeps passing meanwhile (timed properly in
    // `wuhan_is_not_slowed_while_hangzhou_fails`).
    let during = time_wuhan(&f, 30, &wh_badge, &hz_badge).await;
    println!("{fault:?}: 30 Wuhan checks meanwhile: {during}");

    // Healthy again: the next probe closes the breaker.
    f.heal(fault).await;
    let after = f
        .until_valid(&hz_badge, RECOVERY, &format!("{fault:?} healed"))
        .await;
    assert!(!f.breaker_open(), "{fault:?}: VALID with the breaker open");
    println!("{fault:?}: VALID again {after:?} after the node was healthy");
    assert_eq!(outcome(&f.check(&hz_badge).await.0), pb::Outcome::Valid);
    if let Some(node) = f.hz.take() {
        node.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_is_down() {
    fault_case(Fault::Down).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_accepts_and_closes_connections() {
    fault_case(Fault::AcceptThenClose).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_answers_after_the_deadline() {
    fault_case(Fault::Slow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_answers_errors() {
    fault_case(Fault::Errors).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_drops_the_connection_mid_call() {
    fault_case(Fault::DropsMidCall).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_certificate_is_revoked() {
    fault_case(Fault::Revoked).await;
}

/// Wuhan's latency with every node healthy, then while Hangzhou is down and
/// while it is slow (its breaker open, a probe hanging until the deadline
/// every `breaker_open`), in one federation. Printed, not compared beyond a
/// loose bound: the machine is shared and noisy. The other faults are timed
/// briefly in their own tests (debug builds make each check costly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wuhan_is_not_slowed_while_hangzhou_fails() {
    let mut f = Fed::new(false, settings()).await;
    let hz_badge = f.badge(HANGZHOU, f.hz.as_ref().unwrap().addr).await;
    let wh_badge = f.badge(WUHAN, f.wuhan.addr).await;
    let healthy = time_wuhan(&f, TIMED_CHECKS, &wh_badge, &hz_badge).await;
    let mut table = vec![("all nodes healthy".to_owned(), healthy)];
    for fault in [Fault::Down, Fault::Slow] {
        f.route(fault);
        f.until_valid(&hz_badge, RECOVERY, &format!("{fault:?} routed"))
            .await;
        f.inject(fault).await;
        f.until_open(&hz_badge, fault).await;
        let failing = time_wuhan(&f, TIMED_CHECKS, &wh_badge, &hz_badge).await;
        assert!(
            failing.p50 < TIMEOUT,
            "{fault:?}: Wuhan's median check took {:?}, as if waiting on Hangzhou",
            failing.p50
        );
        table.push((format!("Hangzhou {fault:?}"), failing));
        f.heal(fault).await;
    }
    println!("Wuhan verifications, {TIMED_CHECKS} sequential checks per row:");
    for (row, latency) in &table {
        println!("  {row:<28} {latency}");
    }
    if let Some(node) = f.hz.take() {
        node.stop().await.unwrap();
    }
}

/// An answer the relay cached from a node is not used once a new trust list
/// revokes that node's certificate: the verdict waits for a node the gateway
/// still trusts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_answer_is_not_used_once_the_nodes_certificate_is_revoked() {
    let mut f = Fed::new(
        false,
        RelaySettings {
            cache_ttl: Duration::from_secs(60),
            ..settings()
        },
    )
    .await;
    let hz_badge = f.badge(HANGZHOU, f.hz.as_ref().unwrap().addr).await;
    let wh_badge = f.badge(WUHAN, f.wuhan.addr).await;
    for _ in 0..2 {
        assert_eq!(outcome(&f.check(&hz_badge).await.0), pb::Outcome::Valid);
        assert_eq!(outcome(&f.check(&wh_badge).await.0), pb::Outcome::Valid);
    }
    assert!(f.gw.verifier.relay().stats().cache_hits >= 2);
    f.inject(Fault::Revoked).await;
    let (v, _) = f.check(&hz_badge).await;
    assert_eq!(outcome(&v), pb::Outcome::StatusUnavailable, "{v:?}");
    assert_eq!(outcome(&f.check(&wh_badge).await.0), pb::Outcome::Valid);
    f.heal(Fault::Revoked).await;
    let (v, _) = f.check(&hz_badge).await;
    assert_eq!(outcome(&v), pb::Outcome::Valid, "{v:?}");
    if let Some(node) = f.hz.take() {
        node.stop().await.unwrap();
    }
}
