//! Memory of the gateway holding many idle mutual-TLS connections: the
//! gateway runs as its own process (`tessera gateway run`) so that its
//! resident memory is not mixed with the load generator's; each connection
//! completes a handshake and one call, then stays open.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use tessera_proto::v1 as pb;

use super::report::{Report, num};
use crate::creds;
use crate::federation::Layout;

/// A gateway process, killed when dropped.
pub(super) struct GatewayProcess(pub(super) Child);

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Resident memory of process `pid` in bytes (Linux).
pub(super) fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("reading /proc (resident memory is measured on Linux only)")?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc/<pid>/status")?;
    Ok(kb * 1024)
}

pub(super) async fn wait_listening(addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the gateway did not start listening in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Opens `count` idle connections to a gateway process and reports its
/// resident memory before and after.
pub async fn idle_connections(count: usize, report: &mut Report) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let (layout, listeners) = Layout::create(dir.path(), 0, "").await?;
    // The ports are free again for the gateway process.
    drop(listeners);
    // All the connections come from 127.0.0.1: let that one address hold them.
    let config = layout.gateway_bundle.join("gateway.toml");
    let text = std::fs::read_to_string(&config).context("reading gateway.toml")?;
    std::fs::write(
        &config,
        format!("max_connections_per_peer = {}\n{text}", count + 16),
    )
    .context("writing gateway.toml")?;
    let gateway = spawn_gateway(&layout.gateway_bundle)?;
    let pid = gateway.0.id();
    wait_listening(layout.gateway).await?;
    // One call first, so the figure is for connections, not start-up.
    connect(&layout, 1).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss(pid)?;
    let started = Instant::now();
    let open = connect(&layout, count).await?;
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss(pid)?;
    report.rate(
        format!(
            "idle mTLS connections opened ({} in {:.1} s)",
            num(count as f64),
            took.as_secs_f64()
        ),
        count as f64 / took.as_secs_f64().max(1e-9),
    );
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    report.note(format!(
        "idle-connections: gateway RSS {:.1} MiB before, {:.1} MiB with {} idle connections ({:.1} KiB each)",
        mib(before),
        mib(after),
        num(count as f64),
        after.saturating_sub(before) as f64 / 1024.0 / count.max(1) as f64
    ));
    report.target(
        &format!("gateway RSS with {} idle connections", num(count as f64)),
        mib(after),
        200.0,
        true,
        " MiB",
    );
    drop(open);
    drop(gateway);
    dir.close().context("removing the benchmark's directory")?;
    Ok(())
}

pub(super) fn spawn_gateway(bundle: &Path) -> anyhow::Result<GatewayProcess> {
    let exe = std::env::current_exe().context("finding the tessera binary")?;
    let child = Command::new(exe)
        .args(["gateway", "run", "--config"])
        .arg(bundle.join("gateway.toml"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the gateway process")?;
    Ok(GatewayProcess(child))
}

/// Opens `count` connections, each with one WhoAmI call; returns the clients
/// (dropping them closes the connections).
pub(super) async fn connect(
    layout: &Layout,
    count: usize,
) -> anyhow::Result<Vec<pb::gateway_client::GatewayClient<tonic::transport::Channel>>> {
    let addr = layout.gateway.to_string();
    futures::stream::iter(0..count)
        .map(|i| {
            let client = creds::gateway(&layout.checkpoint, &addr);
            async move {
                let mut client = client?;
                client
                    .who_am_i(pb::WhoAmIRequest {})
                    .await
                    .with_context(|| format!("connection {i}"))?;
                anyhow::Ok(client)
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}
