//! A whole local federation on loopback: a national authority, a gateway,
//! three city nodes, a checkpoint and operators, with real certificates, real
//! mutual TLS and real sled files. Used by `tessera demo` (in a temporary
//! directory) and `tessera federation up` (in a directory that persists).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use serde::{Deserialize, Serialize};
use tessera_certs::authority::{AuthorityDir, InitOptions};
use tessera_certs::keys;
use tessera_core::{CityCode, ProvinceCode};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::fmt;

/// The three cities of the federation: code and name.
pub const CITIES: [(u32, &str); 3] = [
    (330_100, "Hangzhou"),
    (420_100, "Wuhan"),
    (440_100, "Guangzhou"),
];
/// The highest `--base-port`: the last city's node listens on it + 103
/// (OPERATIONS.md, section 8, says 65432).
pub const MAX_BASE_PORT: u16 = u16::MAX - 101 - (CITIES.len() as u16 - 1);
/// The checkpoint: province and name.
pub const CHECKPOINT: (u32, &str) = (420_000, "Wuhan railway station");
const STATE: &str = "federation.json";

/// Where everything of a federation is; saved as `federation.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Layout {
    /// The authority directory.
    pub authority: PathBuf,
    /// The gateway's address.
    pub gateway: SocketAddr,
    /// The gateway's bundle (gateway.toml inside).
    pub gateway_bundle: PathBuf,
    /// Each city: code, name, node address, node bundle, operator bundle.
    pub cities: Vec<CityLayout>,
    /// The checkpoint's bundle.
    pub checkpoint: PathBuf,
    /// The first trust list, as distributed to checkpoints.
    pub trust_list: PathBuf,
    /// The gateway's public copy (HTTPS, no client certificate); absent in
    /// federations created before it existed.
    #[serde(default)]
    pub public: Option<SocketAddr>,
    /// The checkpoint station's scanner (HTTPS) that `federation up` runs;
    /// absent in federations created before it existed.
    #[serde(default)]
    pub scanner: Option<SocketAddr>,
}

/// One city of a federation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CityLayout {
    /// The code.
    pub code: u32,
    /// The name.
    pub name: String,
    /// The node's address.
    pub node: SocketAddr,
    /// The node's bundle (node.toml inside).
    pub bundle: PathBuf,
    /// The city operator's bundle.
    pub operator: PathBuf,
}

struct Server {
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

/// A running federation.
pub struct Federation {
    /// Its layout.
    pub layout: Layout,
    servers: Vec<Server>,
    gateway: Option<Server>,
    /// The scanner's listener, for `federation up` to serve a checkpoint
    /// station on (the demo leaves it unused).
    pub scanner: Option<TcpListener>,
    /// The gateway's verifier, replaced when the gateway is loaded afresh
    /// after a full disk.
    verifier: std::sync::Arc<
        std::sync::Mutex<Option<std::sync::Arc<tessera_gateway::verdict::Verifier>>>,
    >,
}

async fn bind(port: u16) -> anyhow::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| {
            format!("127.0.0.1:{port} is in use: stop what holds it, or choose another --base-port")
        })
}

impl Layout {
    /// Creates a new federation in `dir` with ports from `base` (0: any free
    /// ports) and `relay`, lines for the `[relay]` section of the gateway's
    /// configuration.
    pub async fn create(
        dir: &Path,
        base: u16,
        relay: &str,
    ) -> anyhow::Result<(Self, Vec<TcpListener>)> {
        anyhow::ensure!(
            !dir.join(STATE).exists(),
            "{} already holds a federation",
            dir.display()
        );
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        anyhow::ensure!(
            base == 0 || base <= MAX_BASE_PORT,
            "--base-port must be at most {MAX_BASE_PORT}, so that every node's port is a port"
        );
        let port = |offset: u16| if base == 0 { 0 } else { base + offset };
        let mut listeners = vec![bind(port(0)).await?];
        for i in 0..CITIES.len() {
            listeners.push(bind(port(101 + i as u16)).await?);
        }
        let addr = |l: &TcpListener| l.local_addr().context("reading a bound address");
        let now = fmt::now();
        let authority_dir = dir.join("authority");
        let mut authority = AuthorityDir::init(
            &authority_dir,
            &InitOptions {
                name: "National Health Authority (local)".into(),
                sunset_at: now + 730 * 86_400,
            },
            now,
        )?;
        let gateway = addr(&listeners[0])?;
        let g = authority.enrol_gateway("gateway", &gateway.to_string(), now)?;
        let mut cities = vec![];
        for (i, (code, name)) in CITIES.iter().enumerate() {
            let code = CityCode::new(*code)?;
            let node = addr(&listeners[1 + i])?;
            let issued = authority.enrol_city(code, name, &node.to_string(), now)?;
            // Nodes follow the gateway's trust list, so revocations reach them.
            let node_toml = tessera_node::config::bundle_config(code, &node.to_string()).replace(
                "root = \"root.crt\"",
                &format!("root = \"root.crt\"\ngateway = \"{gateway}\"\nrefresh_secs = 2"),
            );
            keys::write_new_file(&issued.dir.join("node.toml"), node_toml.as_bytes(), false)?;
            let op = authority.enrol_operator(code, &format!("{name} CDC"), now)?;
            cities.push(CityLayout {
                code: code.get(),
                name: (*name).into(),
                node,
                bundle: issued.dir,
                operator: op.dir,
            });
        }
        // The gateway's public copy, after the nodes' ports.
        listeners.push(bind(port(1)).await?);
        let public = listeners.last().map(addr).transpose()?;
        // The checkpoint station's scanner, after the public copy.
        listeners.push(bind(port(2)).await?);
        let scanner = listeners.last().map(addr).transpose()?;
        let checkpoint =
            authority.enrol_verifier(ProvinceCode::new(CHECKPOINT.0)?, CHECKPOINT.1, now)?;
        let (_, list) = authority.publish(now, 24 * 3600)?;
        let trust_list = dir.join("trust-list.tsl");
        keys::write_new_file(&trust_list, &list, false)?;
        let gateway_toml = tessera_gateway::config::bundle_config(&gateway.to_string()).replace(
            "root = \"root.crt\"",
            &format!(
                "root = \"root.crt\"\ntrust_list = {:?}",
                trust_list.canonicalize()?.display().to_string()
            ),
        ) + &format!("\n[relay]\n{relay}\n")
            + &public.map_or(String::new(), |p| format!("\n[public]\nlisten = \"{p}\"\n"));
        keys::write_new_file(&g.dir.join("gateway.toml"), gateway_toml.as_bytes(), false)?;
        let layout = Layout {
            authority: authority_dir,
            gateway,
            gateway_bundle: g.dir,
            cities,
            checkpoint: checkpoint.dir,
            trust_list,
            public,
            scanner,
        };
        std::fs::write(dir.join(STATE), serde_json::to_string_pretty(&layout)?)?;
        Ok((layout, listeners))
    }

    /// Opens the federation saved in `dir`, binding its ports again.
    pub async fn open(dir: &Path) -> anyhow::Result<(Self, Vec<TcpListener>)> {
        let text = std::fs::read_to_string(dir.join(STATE))
            .with_context(|| format!("{} holds no federation", dir.display()))?;
        let layout: Layout = serde_json::from_str(&text).context("federation.json is damaged")?;
        let mut listeners = vec![bind(layout.gateway.port()).await?];
        for c in &layout.cities {
            listeners.push(bind(c.node.port()).await?);
        }
        if let Some(p) = layout.public {
            listeners.push(bind(p.port()).await?);
        }
        if let Some(p) = layout.scanner {
            listeners.push(bind(p.port()).await?);
        }
        Ok((layout, listeners))
    }

    /// The city with `code`.
    pub fn city(&self, code: u32) -> anyhow::Result<&CityLayout> {
        self.cities
            .iter()
            .find(|c| c.code == code)
            .with_context(|| format!("no city {code}"))
    }
}

impl Federation {
    /// Starts the gateway and every node on their listeners, in this process.
    pub async fn start(layout: Layout, mut listeners: Vec<TcpListener>) -> anyhow::Result<Self> {
        tessera_runtime::tls::install_default_provider();
        let mut fed = Self {
            layout,
            servers: vec![],
            gateway: None,
            scanner: None,
            verifier: Default::default(),
        };
        fed.scanner = match fed.layout.scanner {
            Some(_) => listeners.pop(),
            None => None,
        };
        let public = match fed.layout.public {
            Some(_) => listeners.pop(),
            None => None,
        };
        let node_listeners = listeners.split_off(1);
        for (city, listener) in fed.layout.cities.clone().iter().zip(node_listeners) {
            let settings =
                tessera_node::config::NodeSettings::load(&city.bundle.join("node.toml"))?;
            let loaded = tessera_node::load::load(settings)?;
            fed.spawn(move |stop| async move {
                // As `tessera node run`: served again, reloaded, after a
                // full disk has room again.
                tessera_node::lifecycle::run_loaded(loaded, listener, stop).await?;
                Ok(())
            });
        }
        let gateway_listener = listeners.pop().context("no gateway listener")?;
        let settings = tessera_gateway::config::GatewaySettings::load(
            &fed.layout.gateway_bundle.join("gateway.toml"),
        )?;
        let loaded = tessera_gateway::server::load(settings).await?;
        let verifier = std::sync::Arc::clone(&fed.verifier);
        let keep = move |loaded: &tessera_gateway::server::Loaded| {
            *verifier
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(std::sync::Arc::clone(&loaded.verifier));
        };
        keep(&loaded);
        fed.spawn(move |stop| async move {
            tessera_gateway::lifecycle::run(loaded, gateway_listener, public, stop, keep).await?;
            Ok(())
        });
        fed.gateway = fed.servers.pop();
        Ok(fed)
    }

    fn spawn<F, Fut>(&mut self, run: F)
    where
        F: FnOnce(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let signal = Box::pin(async move {
            let _ = stopped.await;
        });
        let task = tokio::spawn(run(signal));
        self.servers.push(Server { stop, task });
    }

    /// The gateway relay's aggregate counters so far.
    pub fn relay_stats(&self) -> tessera_gateway::relay::RelayStats {
        self.verifier
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|v| v.relay().stats())
            .unwrap_or_default()
    }

    /// Stops every server of the federation (nodes flush their stores).
    pub async fn stop_all(mut self) -> anyhow::Result<()> {
        self.stop_nodes().await?;
        if let Some(s) = self.gateway.take() {
            let _ = s.stop.send(());
            s.task.await.context("the gateway's task failed")??;
        }
        Ok(())
    }

    /// Stops every city node (they flush their stores) and leaves the
    /// gateway running; a no-op once done.
    pub async fn stop_nodes(&mut self) -> anyhow::Result<()> {
        for s in self.servers.drain(..) {
            let _ = s.stop.send(());
            s.task.await.context("a node's task failed")??;
        }
        Ok(())
    }

    /// Signs the next trust list and uploads it to the gateway as the
    /// authority.
    pub async fn publish(&self) -> anyhow::Result<u64> {
        let mut authority = AuthorityDir::open(&self.layout.authority)?;
        let (_, bytes) = authority.publish(fmt::now(), 24 * 3600)?;
        crate::authority::upload_async(
            &self.layout.authority,
            &self.layout.gateway.to_string(),
            &bytes,
        )
        .await
    }
}

/// `tessera federation up`.
#[derive(Debug, Args)]
#[command(
    after_help = "For local use only: the authority in --dir makes every party's keys and
keeps a copy (a real party makes its own with `tessera keygen` and is enrolled
with `tessera authority enrol-… --csr`).

Example:
  tessera federation up --dir ./federation

Then, in another terminal, point any command at its files, e.g.
  tessera verify --gateway 127.0.0.1:7000 --bundle ./federation/authority/verifiers/420000-wuhan-railway-station 'TB1:…'"
)]
pub struct UpArgs {
    /// The federation's directory: created on first use, reused after.
    #[arg(long)]
    dir: PathBuf,
    /// Gateway port; nodes listen on base+101, base+102, base+103.
    #[arg(long, default_value_t = 7000)]
    base_port: u16,
}

/// Runs `tessera federation up` until Ctrl-C.
pub fn up(args: UpArgs) -> anyhow::Result<()> {
    crate::block_on(async {
        let (layout, listeners) = if args.dir.join(STATE).exists() {
            outln!(
                "Reusing the federation in {} with the ports it was created with",
                args.dir.display()
            );
            Layout::open(&args.dir).await?
        } else {
            Layout::create(&args.dir, args.base_port, "cache_ttl_ms = 5000").await?
        };
        let mut fed = Federation::start(layout, listeners).await?;
        let (stop_scanner, scanner_stopped) = oneshot::channel::<()>();
        let scanner = match fed.scanner.take() {
            Some(listener) => Some(
                crate::checkpoint::start_for_federation(
                    &fed.layout.checkpoint,
                    &fed.layout.gateway.to_string(),
                    listener,
                    &args.dir.join("checkpoint-data"),
                    async move {
                        let _ = scanner_stopped.await;
                    },
                )
                .await?,
            ),
            None => None,
        };
        let l = &fed.layout;
        outln!(
            "Local federation running in {} (Ctrl-C stops it)",
            args.dir.display()
        );
        outln!(
            "  gateway     {}   bundle {}",
            l.gateway,
            l.gateway_bundle.display()
        );
        for c in &l.cities {
            outln!(
                "  {:<10}  {}   node bundle {}   operator bundle {}",
                c.name,
                c.node,
                c.bundle.display(),
                c.operator.display()
            );
        }
        outln!("  checkpoint  bundle {}", l.checkpoint.display());
        outln!("  trust list  {}", l.trust_list.display());
        if let Some(p) = l.public {
            outln!("  public copy https://{p}/ (no certificate; policies and trust list)");
        }
        if let Some((url, pairing, fingerprint)) = &scanner {
            outln!("  scanner     {url} (checkpoint station; certificate SHA-256 {fingerprint})");
            outln!("  pair        {pairing}");
        }
        outln!("  authority   {}", l.authority.display());
        crate::node::shutdown_signal().await;
        let _ = stop_scanner.send(());
        fed.stop_all().await?;
        outln!("federation stopped; stores flushed");
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_highest_base_port_leaves_room_for_every_node_and_no_more() {
        assert_eq!(MAX_BASE_PORT, 65_432);
        let last = 101 + u16::try_from(CITIES.len() - 1).unwrap();
        assert_eq!(MAX_BASE_PORT.checked_add(last), Some(u16::MAX));
    }

    #[tokio::test]
    async fn a_base_port_past_the_highest_is_refused_with_the_figure() {
        let dir = tempfile::tempdir().unwrap();
        let err = Layout::create(dir.path(), MAX_BASE_PORT + 1, "")
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("65432"), "{err:#}");
    }
}
