//! Running the real `tessera` binary from the CLI's tests.

#![allow(dead_code, clippy::expect_used, clippy::panic)] // test code, not every file uses every helper

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_core::{Role, TrustAnchor};
use tessera_proto::v1::city_node_client::CityNodeClient;
use tessera_runtime::tls::{self, TrustState};
use tessera_runtime::{TlsIdentity, grpc};

/// The tests' one way to wait for a condition: the same file as
/// `tessera_tests::wait` (the CLI does not depend on tessera-tests).
#[path = "../../../tests/src/wait.rs"]
pub mod wait;

#[allow(unused_imports)] // not every test file uses every form
pub use wait::{wait, wait_until, wait_until_async};

/// Runs `tessera args`.
pub fn tessera(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .output()
        .expect("run tessera")
}

/// Runs `tessera args`, asserting success; returns standard output.
pub fn ok(args: &[&str]) -> String {
    let out = tessera(args);
    assert!(
        out.status.success(),
        "tessera {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A valid ID number for resident `n` (17 digits and the GB 11643 check).
pub fn id(n: u32) -> String {
    let first17 = format!("33010619900101{n:03}");
    format!(
        "{first17}{}",
        tessera_node::pseudonym::check_character(first17.as_bytes()).unwrap()
    )
}

pub struct Authority {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub port: u16,
}

impl Authority {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("authority");
        let d = dir.to_str().unwrap();
        let port = free_port();
        let endpoint = format!("127.0.0.1:{port}");
        ok(&["authority", "init", "--dir", d]);
        ok(&[
            "authority",
            "enrol-city",
            "--dir",
            d,
            "--code",
            "330100",
            "--name",
            "Hangzhou",
            "--endpoint",
            &endpoint,
        ]);
        ok(&[
            "authority",
            "enrol-operator",
            "--dir",
            d,
            "--city",
            "330100",
            "--name",
            "Hangzhou CDC",
        ]);
        ok(&[
            "authority",
            "enrol-gateway",
            "--dir",
            d,
            "--endpoint",
            "127.0.0.1:7000",
        ]);
        Self {
            _tmp: tmp,
            dir,
            port,
        }
    }

    pub fn config(&self) -> String {
        self.dir
            .join("cities/330100/node.toml")
            .display()
            .to_string()
    }

    pub fn client(&self, cert: &str) -> CityNodeClient<tonic::transport::Channel> {
        tls::install_default_provider();
        let root = tessera_certs::keys::read_cert(&self.dir.join("root/root.crt")).unwrap();
        let trust = Arc::new(TrustState::new(TrustAnchor::from_der(&root).unwrap()).unwrap());
        let base = self.dir.join(cert);
        let identity =
            TlsIdentity::from_files(&base.with_extension("crt"), &base.with_extension("key"))
                .unwrap();
        let config = tls::client_config(&identity, trust, Role::CityNode).unwrap();
        CityNodeClient::new(grpc::channel(&format!("127.0.0.1:{}", self.port), config).unwrap())
    }

    pub fn start_node(&self) -> Child {
        spawn_listening(&["node", "run", "--config", &self.config()], self.port)
    }

    /// Enrols a gateway named "national" on a free port; returns the port
    /// and the address. Its bundle is `gateways/national`.
    pub fn enrol_gateway(&self) -> (u16, String) {
        let port = free_port();
        let gw = format!("127.0.0.1:{port}");
        let d = self.dir.to_str().unwrap();
        ok(&[
            "authority",
            "enrol-gateway",
            "--dir",
            d,
            "--name",
            "national",
            "--endpoint",
            &gw,
        ]);
        (port, gw)
    }

    /// Enrols a gateway named "national" on a free port and runs it;
    /// returns the process and its address.
    pub fn run_gateway(&self) -> (Child, String) {
        let (port, gw) = self.enrol_gateway();
        (self.start_gateway(port), gw)
    }

    /// Signs the next trust list and uploads it to `gateway`.
    pub fn publish_to(&self, gateway: &str) -> String {
        let d = self.dir.to_str().unwrap();
        ok(&[
            "authority",
            "trust-list",
            "publish",
            "--dir",
            d,
            "--gateway",
            gateway,
        ])
    }

    pub fn start_gateway(&self, port: u16) -> Child {
        let config = self.dir.join("gateways/national/gateway.toml");
        spawn_listening(
            &["gateway", "run", "--config", config.to_str().unwrap()],
            port,
        )
    }
}

/// Starts `tessera args` and waits (bounded) until it listens on `port`.
pub fn spawn_listening(args: &[&str], port: u16) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_until(
        &format!("tessera {args:?} to listen on {addr}"),
        Duration::from_secs(20),
        || TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok(),
    );
    child
}

pub fn stop(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = wait_until(
        "the node to stop after SIGTERM",
        Duration::from_secs(20),
        || child.try_wait().unwrap(),
    );
    assert!(status.success(), "node exited with {status}");
}

/// A running `tessera federation up`, killed if the test fails.
pub struct Running(pub Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts a federation in `dir` on free ports and waits until it serves.
pub fn federation_up(dir: &std::path::Path, log: &std::path::Path) -> (Running, serde_json::Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["federation", "up", "--dir", dir.to_str().unwrap()])
        .args(["--base-port", "0"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(Some(child));
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads every line, so that the pipe never fills.
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with("Local federation running") => break,
            Ok(_) => {}
            Err(e) => panic!(
                "federation up did not start within 60 s ({e}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ),
        }
    }
    let layout = std::fs::read_to_string(dir.join("federation.json")).unwrap();
    (running, serde_json::from_str(&layout).unwrap())
}

/// Has Hangzhou's app backend (its operator bundle) ask its node, in a
/// federation started by [`federation_up`], for a badge for resident 7, and
/// returns the badge's QR text.
pub fn issue_hangzhou_badge(layout: &serde_json::Value) -> String {
    issue_hangzhou_badge_for(layout, 7)
}

/// [`issue_hangzhou_badge`] for resident `n`.
pub fn issue_hangzhou_badge_for(layout: &serde_json::Value, n: u32) -> String {
    let hangzhou = &layout["cities"][0];
    assert_eq!(hangzhou["code"], 330_100);
    let issued = ok(&[
        "badge",
        "issue",
        "--node",
        hangzhou["node"].as_str().unwrap(),
        "--bundle",
        hangzhou["operator"].as_str().unwrap(),
        "--id",
        &id(n),
        "--name",
        "李华",
    ]);
    issued
        .lines()
        .find(|l| l.starts_with("TB1:"))
        .unwrap_or_else(|| panic!("no TB1: line in\n{issued}"))
        .to_owned()
}

/// Hangzhou's operator stores a positive test for resident `n` in a
/// federation started by [`federation_up`]; the node revokes the resident's
/// badge at once.
pub fn positive_test(layout: &serde_json::Value, n: u32) {
    let hangzhou = &layout["cities"][0];
    let bundle = std::path::Path::new(hangzhou["operator"].as_str().unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ack = rt.block_on(ingest_pcr(
        hangzhou["node"].as_str().unwrap(),
        bundle,
        &format!("positive-{n}"),
        n,
        true,
    ));
    assert_eq!(ack.revoked, 1, "{ack:?}");
}

/// The operator of `operator` (a bundle directory) stores at the node at
/// `node` one PCR result for resident `n` ([`id`]), positive or negative,
/// sampled an hour ago, under `record_id`; the node's acknowledgement.
pub async fn ingest_pcr(
    node: &str,
    operator: &std::path::Path,
    record_id: &str,
    n: u32,
    positive: bool,
) -> tessera_proto::v1::IngestResponse {
    use tessera_proto::v1 as pb;
    tls::install_default_provider();
    let root = tessera_certs::keys::read_cert(&operator.join("root.crt")).unwrap();
    let trust = Arc::new(TrustState::new(TrustAnchor::from_der(&root).unwrap()).unwrap());
    let identity = TlsIdentity::from_files(
        &operator.join("operator.crt"),
        &operator.join("operator.key"),
    )
    .unwrap();
    let config = tls::client_config(&identity, trust, Role::CityNode).unwrap();
    let mut client = CityNodeClient::new(grpc::channel(node, config).unwrap());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    client
        .ingest_records(pb::IngestRequest {
            records: vec![pb::Record {
                record_id: record_id.to_owned(),
                national_id: id(n),
                kind: Some(pb::record::Kind::Test(pb::TestResult {
                    kind: pb::TestKind::Pcr as i32,
                    positive,
                    sampled_at: now - 3600,
                    lab: "HZ-LAB-01".into(),
                })),
            }],
        })
        .await
        .unwrap()
        .into_inner()
}

/// Runs `tessera checkpoint serve` against the gateway of a federation
/// started by [`federation_up`], with its data in `data`, on a free port;
/// waits until it listens. Returns the process (killed on drop) and port.
pub fn checkpoint_serve(
    layout: &serde_json::Value,
    data: &std::path::Path,
    log: &std::path::Path,
) -> (Running, u16) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["checkpoint", "serve", "--bundle"])
        .arg(layout["checkpoint"].as_str().unwrap())
        .args(["--gateway", layout["gateway"].as_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(data)
        .args(["--refresh-secs", "1"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let running = Running(Some(child));
    wait_until("the station to listen", Duration::from_secs(30), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok() && data.join("station-url").exists()
    });
    (running, port)
}

/// A new pairing code from `tessera checkpoint pair` for the station on
/// `data`, listening on `port`.
pub fn pairing_code(data: &std::path::Path, port: u16) -> String {
    let out = ok(&["checkpoint", "pair", "--data", data.to_str().unwrap()]);
    let url = out.lines().next().unwrap();
    assert!(
        url.starts_with(&format!("https://127.0.0.1:{port}/#pair=")),
        "{out}"
    );
    url.rsplit('=').next().unwrap().to_owned()
}

/// A command's exit status, standard output and standard error, for a
/// failure message.
pub fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// How many vectors `conformance/vectors.json` holds: badge vectors and
/// trust-list vectors.
pub fn conformance_vector_count() -> usize {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../conformance/vectors.json");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read vectors.json"))
            .expect("vectors.json is JSON");
    ["badge_vectors", "trust_list_vectors"]
        .iter()
        .map(|k| json[k].as_array().map_or(0, Vec::len))
        .sum()
}

/// Another implementation's conformance run (`out`) exited 0, wrote nothing
/// on standard error, and ended with `N passed, 0 failed` where N is every
/// vector of the suite: none skipped, none forgotten.
pub fn assert_every_vector_passed(out: &Output) {
    assert_eq!(out.status.code(), Some(0), "{}", describe(out));
    assert!(out.stderr.is_empty(), "wrote on stderr: {}", describe(out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let total = conformance_vector_count();
    assert!(total > 0, "vectors.json holds no vector");
    assert_eq!(
        last,
        format!("{total} passed, 0 failed"),
        "{}",
        describe(out)
    );
}
