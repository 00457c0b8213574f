//! Issue 15, items 2 and 3: a node and a gateway on a full disk (each case
//! on a small tmpfs this test mounts; CI runs as root), and the modes of
//! what the servers write under umask 000.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{Authority, Running, id, spawn_listening, stop};
use tessera_core::{Role, TrustAnchor};
use tessera_proto::v1 as pb;
use tessera_runtime::tls::{self, TrustState};
use tessera_runtime::{TlsIdentity, grpc};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// A tmpfs of `size` mounted on `dir` for one test, unmounted when dropped
/// (also when the test fails).
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts it, or says why not and returns `None` (the test then skips,
    /// visibly): mounting needs root, which CI has.
    fn mount(dir: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Self {
                dir: dir.to_path_buf(),
            }),
            Ok(out) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs on {} (needs root): {}",
                    dir.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }

    /// Fills the file system with `filler` until it is full.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.dir.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0xA5u8; 64 * 1024];
        loop {
            if let Err(e) = file.write_all(&chunk) {
                assert!(tessera_certs::files::is_disk_full(&e), "{e}");
                break;
            }
        }
        // Byte by byte for what is left of the last page.
        while file.write_all(&[0]).is_ok() {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

/// Points the city's node at `data` (a directory on the tmpfs).
fn set_data_dir(a: &Authority, data: &Path) {
    let config = a.config();
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace(
        "data_dir = \"data\"",
        &format!("data_dir = \"{}\"", data.display()),
    );
    assert!(text.contains(&data.display().to_string()), "{text}");
    std::fs::write(&config, text).unwrap();
}

/// Starts the city's node, its log appended to `node.log` in the
/// authority's directory (printed by [`show_log`]).
fn start_node(a: &Authority) -> Child {
    let starts = show_log(a).matches("listening on").count();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(a.dir.join("node.log"))
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["node", "run", "--config", &a.config()])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    // The port is bound before the store is opened: wait for the line the
    // node prints once loaded (each start appends one).
    let started = common::wait("the node to start", Duration::from_secs(20))
        .poll(|| show_log(a).matches("listening on").count() != starts);
    if let Err(e) = started {
        panic!("{e}:\n{}", show_log(a));
    }
    wait_listening(a.port);
    child
}

/// The node's log so far, for a failing assertion's message.
fn show_log(a: &Authority) -> String {
    std::fs::read_to_string(a.dir.join("node.log")).unwrap_or_default()
}

/// The process a [`Running`] guards, to stop it cleanly.
fn take(mut running: Running) -> Child {
    running.0.take().unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn records(prefix: &str, n: u32) -> Vec<pb::Record> {
    (0..n)
        .map(|i| pb::Record {
            record_id: format!("{prefix}-{i}"),
            national_id: id(i % 20),
            kind: Some(pb::record::Kind::Test(pb::TestResult {
                kind: pb::TestKind::Pcr as i32,
                positive: false,
                sampled_at: now() - 3600 - i64::from(i),
                lab: "HZ-LAB-01".into(),
            })),
        })
        .collect()
}

/// Runs a server to its end (bounded); returns its exit status and stderr.
fn run_to_end(args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ended = common::wait(format!("tessera {args:?} to end"), Duration::from_secs(30))
        .poll(|| child.try_wait().unwrap());
    let Ok(status) = ended else {
        let _ = child.kill();
        panic!("tessera {args:?} was expected to refuse to start but still runs after 30 s");
    };
    let out = child.wait_with_output().unwrap();
    (status, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Sends `batch`; `Ok(stored + duplicates)` or the status.
async fn ingest(a: &Authority, batch: &[pb::Record]) -> Result<u32, tonic::Status> {
    let mut op = a.client("operators/330100-hangzhou-cdc/operator");
    op.ingest_records(pb::IngestRequest {
        records: batch.to_vec(),
    })
    .await
    .map(|r| {
        let r = r.into_inner();
        r.stored + r.duplicates
    })
}

/// Every record of every batch was kept: sending them again stores none.
async fn assert_all_kept(a: &Authority, acked: &[Vec<pb::Record>]) {
    let mut op = a.client("operators/330100-hangzhou-cdc/operator");
    for batch in acked {
        let again = op
            .ingest_records(pb::IngestRequest {
                records: batch.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (again.stored, again.duplicates),
            (0, batch.len() as u32),
            "acknowledged records were lost (batch starting {})",
            batch[0].record_id
        );
    }
}

/// The node's health-check answer for `service` (`""`: the node as a
/// whole).
async fn health_of(a: &Authority, service: &str) -> Option<ServingStatus> {
    tls::install_default_provider();
    let root = tessera_certs::keys::read_cert(&a.dir.join("root/root.crt")).unwrap();
    let trust = Arc::new(TrustState::new(TrustAnchor::from_der(&root).unwrap()).unwrap());
    let base = a.dir.join("operators/330100-hangzhou-cdc/operator");
    let identity =
        TlsIdentity::from_files(&base.with_extension("crt"), &base.with_extension("key")).unwrap();
    let config = tls::client_config(&identity, trust, Role::CityNode).unwrap();
    let channel = grpc::channel(&format!("127.0.0.1:{}", a.port), config).unwrap();
    let answer = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .ok()?;
    ServingStatus::try_from(answer.into_inner().status).ok()
}

/// The node's health for its writes, for itself as a whole and for its
/// reads (`tessera.v1.CityNode`).
async fn health(a: &Authority) -> [Option<ServingStatus>; 3] {
    [
        health_of(a, "tessera.v1.CityNode.Writes").await,
        health_of(a, "").await,
        health_of(a, "tessera.v1.CityNode").await,
    ]
}

const ALL_SERVING: [Option<ServingStatus>; 3] = [Some(ServingStatus::Serving); 3];

/// Polls `check` every 100 ms until it holds, for at most `secs`.
async fn eventually(secs: u64, what: &str, check: impl AsyncFnMut() -> bool) {
    common::wait(what, Duration::from_secs(secs))
        .every(Duration::from_millis(100))
        .until_async(check)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_started_on_a_full_disk_refuses_and_starts_with_every_record_once_there_is_room() {
    let a = Authority::new();
    let Some(disk) = Tmpfs::mount(&a.dir.join("disk"), "16m") else {
        return;
    };
    let data = disk.dir.join("data");
    set_data_dir(&a, &data);
    let node = Running(Some(start_node(&a)));
    let batch = records("before", 100);
    assert_eq!(ingest(&a, &batch).await.unwrap(), 100);
    stop(take(node));

    let filler = disk.fill();
    let (status, stderr) = run_to_end(&["node", "run", "--config", &a.config()]);
    assert!(!status.success());
    assert!(stderr.contains("is full"), "{stderr}");
    let store = data.join("store");
    let temps = |store: &Path| -> Vec<String> {
        std::fs::read_dir(store)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".generating"))
            .collect()
    };
    assert!(temps(&store).is_empty(), "{:?}", temps(&store));

    // What sled 0.34 left after such a start (upstream issue 1527): an
    // empty snapshot temp, newer than any snapshot. It is removed.
    std::fs::remove_file(&filler).unwrap();
    std::fs::write(store.join("snap.7FFFFFFFFFFFFFFF.generating"), b"").unwrap();
    let node = Running(Some(start_node(&a)));
    assert!(
        temps(&store).is_empty(),
        "{:?}\n{}",
        temps(&store),
        show_log(&a)
    );
    assert_all_kept(&a, &[batch]).await;
    stop(take(node));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_node_that_fills_its_disk_refuses_writes_reports_not_serving_and_recovers() {
    let a = Authority::new();
    let Some(disk) = Tmpfs::mount(&a.dir.join("disk"), "24m") else {
        return;
    };
    set_data_dir(&a, &disk.dir.join("data"));
    let node = Running(Some(start_node(&a)));
    let mut op = a.client("operators/330100-hangzhou-cdc/operator");
    let badge = op
        .issue_badge(pb::IssueBadgeRequest {
            national_id: id(3),
            name: "王芳".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut acked = vec![records("first", 50)];
    assert_eq!(ingest(&a, &acked[0]).await.unwrap(), 50);
    assert_eq!(health(&a).await, ALL_SERVING);

    let filler = disk.fill();
    let mut refused = None;
    for round in 0..200 {
        let batch = records(&format!("full-{round}"), 50);
        match ingest(&a, &batch).await {
            Ok(_) => acked.push(batch),
            Err(status) => {
                refused = Some(status);
                break;
            }
        }
    }
    let refused = refused.expect("200 batches were all stored on a full disk");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}\n{}",
        show_log(&a)
    );
    assert!(refused.message().contains("disk is full"), "{refused:?}");
    // Writes and the node as a whole read NOT_SERVING; its reads do not.
    eventually(
        20,
        "health NOT_SERVING for writes on a full disk",
        || async {
            health(&a).await
                == [
                    Some(ServingStatus::NotServing),
                    Some(ServingStatus::NotServing),
                    Some(ServingStatus::Serving),
                ]
        },
    )
    .await;
    // Status checks go on.
    let mut gw = a.client("gateways/gateway/gateway");
    let statuses = gw
        .check_status(pb::CheckStatusRequest {
            badge_ids: vec![badge.badge_id.clone()],
        })
        .await
        .unwrap()
        .into_inner()
        .statuses;
    assert_eq!(statuses, vec![pb::BadgeStatus::Active as i32]);

    // Room again: the node reopens its store by itself and takes writes.
    std::fs::remove_file(&filler).unwrap();
    let after = records("after", 50);
    eventually(60, "writes taken again once there is room", || async {
        ingest(&a, &after).await.is_ok()
    })
    .await;
    acked.push(after);
    eventually(20, "health SERVING again", || async {
        health(&a).await == ALL_SERVING
    })
    .await;
    assert_all_kept(&a, &acked).await;
    stop(take(node));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_stopped_while_its_disk_is_full_exits_cleanly_and_restarts_with_every_record() {
    let a = Authority::new();
    let Some(disk) = Tmpfs::mount(&a.dir.join("disk"), "24m") else {
        return;
    };
    set_data_dir(&a, &disk.dir.join("data"));
    let node = Running(Some(start_node(&a)));
    let mut acked = vec![records("first", 50)];
    assert_eq!(ingest(&a, &acked[0]).await.unwrap(), 50);
    let filler = disk.fill();
    let mut refused = false;
    for round in 0..200 {
        let batch = records(&format!("r{round}"), 50);
        match ingest(&a, &batch).await {
            Ok(_) => acked.push(batch),
            Err(status) => {
                assert_eq!(
                    status.code(),
                    tonic::Code::ResourceExhausted,
                    "{status:?}\n{}",
                    show_log(&a)
                );
                refused = true;
                break;
            }
        }
    }
    assert!(refused, "200 batches were all stored on a full disk");
    // SIGTERM on a full disk: exit 0 (no "final flush failed").
    stop(take(node));
    std::fs::remove_file(&filler).unwrap();
    let node = Running(Some(start_node(&a)));
    assert_all_kept(&a, &acked).await;
    stop(take(node));
}

/// Enrols the gateway "national" with its data directory on `disk`;
/// returns its port and its configuration file.
fn gateway_on(a: &Authority, disk: &Tmpfs) -> (u16, PathBuf) {
    let (port, _) = a.enrol_gateway();
    let config = a.dir.join("gateways/national/gateway.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let data = disk.dir.join("gw-data");
    let text = text.replace(
        "data_dir = \"data\"",
        &format!("data_dir = \"{}\"", data.display()),
    );
    assert!(text.contains(&data.display().to_string()), "{text}");
    std::fs::write(&config, text).unwrap();
    (port, config)
}

#[test]
fn a_gateway_started_on_a_full_disk_refuses_and_starts_once_there_is_room() {
    let a = Authority::new();
    let Some(disk) = Tmpfs::mount(&a.dir.join("disk"), "8m") else {
        return;
    };
    let (port, config) = gateway_on(&a, &disk);
    let filler = disk.fill();
    let (status, stderr) = run_to_end(&["gateway", "run", "--config", config.to_str().unwrap()]);
    assert!(!status.success());
    assert!(stderr.contains("is full"), "{stderr}");
    std::fs::remove_file(&filler).unwrap();
    let gateway = spawn_listening(
        &["gateway", "run", "--config", config.to_str().unwrap()],
        port,
    );
    stop(gateway);
}

/// A channel to the gateway on `port` as the authority's admin client
/// (which may upload trust lists and, like anyone enrolled, fetch them and
/// ask the health service).
fn gateway_channel(a: &Authority, port: u16) -> tonic::transport::Channel {
    tls::install_default_provider();
    let root = tessera_certs::keys::read_cert(&a.dir.join("root/root.crt")).unwrap();
    let trust = Arc::new(TrustState::new(TrustAnchor::from_der(&root).unwrap()).unwrap());
    let identity = TlsIdentity::from_files(
        &a.dir.join("authority/authority.crt"),
        &a.dir.join("authority/authority.key"),
    )
    .unwrap();
    let config = tls::client_config(&identity, trust, Role::Gateway).unwrap();
    grpc::channel(&format!("127.0.0.1:{port}"), config).unwrap()
}

/// Signs the authority's next trust list, not uploaded.
fn next_list(a: &Authority, n: u32) -> pb::SignedTrustList {
    use prost::Message;
    let out = a.dir.join(format!("next-{n}.tsl"));
    common::ok(&[
        "authority",
        "trust-list",
        "publish",
        "--dir",
        a.dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    pb::SignedTrustList::decode(std::fs::read(out).unwrap().as_slice()).unwrap()
}

/// Uploads `list`; the sequence in force or the status.
async fn upload(
    a: &Authority,
    port: u16,
    list: &pb::SignedTrustList,
) -> Result<u64, tonic::Status> {
    pb::gateway_client::GatewayClient::new(gateway_channel(a, port))
        .publish_trust_list(pb::PublishTrustListRequest {
            list: Some(list.clone()),
        })
        .await
        .map(|r| r.into_inner().sequence)
}

/// The sequence of the trust list the gateway serves.
async fn fetched(a: &Authority, port: u16) -> u64 {
    pb::gateway_client::GatewayClient::new(gateway_channel(a, port))
        .fetch_trust_list(pb::FetchTrustListRequest { known_sequence: 0 })
        .await
        .unwrap()
        .into_inner()
        .current_sequence
}

/// The gateway's health for its uploads, for itself as a whole and for
/// its reads (`tessera.v1.Gateway`).
async fn gateway_health(a: &Authority, port: u16) -> [Option<ServingStatus>; 3] {
    let mut out = [None; 3];
    for (i, service) in ["tessera.v1.Gateway.Writes", "", "tessera.v1.Gateway"]
        .into_iter()
        .enumerate()
    {
        out[i] = HealthClient::new(gateway_channel(a, port))
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .ok()
            .and_then(|r| ServingStatus::try_from(r.into_inner().status).ok());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_gateway_that_fills_its_disk_refuses_uploads_keeps_serving_reads_and_recovers() {
    let a = Authority::new();
    let Some(disk) = Tmpfs::mount(&a.dir.join("disk"), "16m") else {
        return;
    };
    let (port, config) = gateway_on(&a, &disk);
    let config = config.to_str().unwrap().to_owned();
    let gateway = Running(Some(spawn_listening(
        &["gateway", "run", "--config", &config],
        port,
    )));
    let mut acked = upload(&a, port, &next_list(&a, 0)).await.unwrap();
    assert_eq!(gateway_health(&a, port).await, ALL_SERVING);

    let filler = disk.fill();
    let mut refused = None;
    for n in 1..=60 {
        let list = next_list(&a, n);
        match upload(&a, port, &list).await {
            Ok(sequence) => acked = sequence,
            Err(status) => {
                refused = Some((status, list));
                break;
            }
        }
    }
    let (status, list) = refused.expect("60 trust lists were all stored on a full disk");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("disk is full"), "{status:?}");
    // Uploads and the gateway as a whole read NOT_SERVING; its reads do not.
    eventually(20, "gateway health NOT_SERVING for uploads", || async {
        gateway_health(&a, port).await
            == [
                Some(ServingStatus::NotServing),
                Some(ServingStatus::NotServing),
                Some(ServingStatus::Serving),
            ]
    })
    .await;
    // The list in force is still served: the last one acknowledged.
    assert_eq!(fetched(&a, port).await, acked);
    // A second upload is refused the same way (the failure was noted).
    let again = upload(&a, port, &list).await.unwrap_err();
    assert_eq!(again.code(), tonic::Code::ResourceExhausted, "{again:?}");

    // Room again: the gateway reopens its registry by itself.
    std::fs::remove_file(&filler).unwrap();
    let sequence = list.clone();
    let taken = std::cell::Cell::new(0);
    eventually(60, "uploads taken again once there is room", || async {
        match upload(&a, port, &sequence).await {
            Ok(s) => {
                taken.set(s);
                true
            }
            Err(_) => false,
        }
    })
    .await;
    let taken = taken.get();
    assert!(taken > acked, "{taken} after {acked}");
    eventually(20, "gateway health SERVING again", || async {
        gateway_health(&a, port).await == ALL_SERVING
    })
    .await;
    assert_eq!(fetched(&a, port).await, taken);
    // What was acknowledged is on disk: a restart serves it.
    stop(take(gateway));
    let gateway = Running(Some(spawn_listening(
        &["gateway", "run", "--config", &config],
        port,
    )));
    assert_eq!(fetched(&a, port).await, taken);
    stop(take(gateway));
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

/// Every directory under `dir` 0700 and every file 0600.
fn assert_private(dir: &Path) {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            assert_private(&path);
        } else if meta.is_file() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
}

/// `tessera args` under umask 000.
fn umask_000(args: &[&str]) -> Command {
    let mut line = String::from("umask 000; exec \"$0\"");
    for i in 1..=args.len() {
        line.push_str(&format!(" \"${{{i}}}\""));
    }
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(line)
        .arg(env!("CARGO_BIN_EXE_tessera"))
        .args(args);
    command
}

/// Runs `tessera args` under umask 000.
fn spawn_umask_000(args: &[&str]) -> Child {
    umask_000(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_listening(port: u16) {
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    common::wait_until(
        &format!("a listener on {addr}"),
        Duration::from_secs(20),
        || std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok(),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn under_umask_000_a_node_and_a_gateway_keep_their_data_private() {
    let a = Authority::new();
    // The data directory exists, wide open, from an earlier careless start.
    let data = a.dir.join("cities/330100/data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    let node = Running(Some(spawn_umask_000(&[
        "node",
        "run",
        "--config",
        &a.config(),
    ])));
    wait_listening(a.port);
    assert_eq!(ingest(&a, &records("m", 20)).await.unwrap(), 20);
    stop(take(node));
    assert_private(&data);

    let (port, gw) = a.enrol_gateway();
    let config = a.dir.join("gateways/national/gateway.toml");
    let gateway = Running(Some(spawn_umask_000(&[
        "gateway",
        "run",
        "--config",
        config.to_str().unwrap(),
    ])));
    wait_listening(port);
    a_publish(&a, &gw);
    stop(take(gateway));
    assert_private(&a.dir.join("gateways/national/data"));
    assert_eq!(mode(&a.dir.join("registry.json")), 0o600);
}

/// Runs `tessera args` under umask 000 to its end, asserting success.
fn ok_umask_000(args: &[&str]) {
    let out = umask_000(args).output().unwrap();
    assert!(
        out.status.success(),
        "tessera {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn under_umask_000_an_authority_directory_stays_private() {
    let tmp = tempfile::tempdir().unwrap();
    // Created by a careless hand before `init`: tightened.
    let dir = tmp.path().join("authority");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let d = dir.to_str().unwrap();
    let out = tmp.path().join("list.tsl");
    for args in [
        &["authority", "init", "--dir", d][..],
        &[
            "authority",
            "enrol-city",
            "--dir",
            d,
            "--code",
            "330100",
            "--name",
            "Hangzhou",
            "--endpoint",
            "127.0.0.1:7001",
        ],
        &[
            "authority",
            "enrol-operator",
            "--dir",
            d,
            "--city",
            "330100",
            "--name",
            "CDC",
        ],
        &[
            "authority",
            "enrol-gateway",
            "--dir",
            d,
            "--endpoint",
            "127.0.0.1:7000",
        ],
        &["authority", "renew", "--dir", d, "--city", "330100"],
        &["authority", "rotate-signer", "--dir", d, "--city", "330100"],
        &[
            "authority",
            "trust-list",
            "publish",
            "--dir",
            d,
            "--out",
            out.to_str().unwrap(),
        ],
    ] {
        ok_umask_000(args);
    }
    // Certificates, keys, bundles, published lists, registry and journal
    // leftovers alike.
    assert!(dir.join("cities/330100/node.toml").exists());
    assert_private(&dir);
}

fn a_publish(a: &Authority, gateway: &str) {
    a.publish_to(gateway);
}

#[test]
fn a_node_refuses_secret_keys_others_can_read_naming_the_chmod() {
    let a = Authority::new();
    let city = a.dir.join("cities/330100");
    for name in ["node.key", "badge-signer.key"] {
        let key = city.join(name);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (status, stderr) = run_to_end(&["node", "run", "--config", &a.config()]);
        assert!(!status.success());
        assert!(
            stderr.contains(&format!("chmod 600 {}", key.display())),
            "{name}: {stderr}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // The master key and the pseudonym key exist after a first start.
    let node = spawn_listening(&["node", "run", "--config", &a.config()], a.port);
    stop(node);
    for key in [city.join("master.key"), city.join("data/pseudonym.key")] {
        assert!(key.exists(), "{}", key.display());
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let (status, stderr) = run_to_end(&["node", "run", "--config", &a.config()]);
        assert!(!status.success());
        assert!(
            stderr.contains(&format!("chmod 600 {}", key.display())),
            "{}: {stderr}",
            key.display()
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // A key in a directory others can write.
    std::fs::set_permissions(&city, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (status, stderr) = run_to_end(&["node", "run", "--config", &a.config()]);
    assert!(!status.success());
    assert!(
        stderr.contains(&format!("chmod o-w {}", city.display())),
        "{stderr}"
    );
}
