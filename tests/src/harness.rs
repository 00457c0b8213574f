//! Running parts of a federation in-process on 127.0.0.1, with real mutual
//! TLS, real sled files and real sockets.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tessera_certs::keys;
use tessera_core::{CityCode, Role};
use tessera_node::config::{NodeSettings, bundle_config};
use tessera_node::server;
use tessera_proto::v1::city_node_client::CityNodeClient;
use tessera_runtime::tls::{self, TrustState};
use tessera_runtime::{TlsIdentity, grpc};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::wait::wait;
use crate::{Issued, TestPki};

/// Writes a bundle file; a key file (`*.key`) is made 0600, as the
/// authority writes it and as the servers require.
pub fn write_bundle_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes)?;
    if path.extension().is_some_and(|e| e == "key") {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Writes a city's bundle (certificates, keys, root, node.toml) into `dir`
/// and returns the configuration path. The node listens on `listen`.
pub fn write_city_bundle(
    pki: &TestPki,
    city: CityCode,
    dir: &Path,
    listen: SocketAddr,
) -> anyhow::Result<PathBuf> {
    let c = pki.city(city)?;
    std::fs::create_dir_all(dir)?;
    let write = |name: &str, text: String| write_bundle_file(&dir.join(name), text.as_bytes());
    write("node.crt", keys::cert_to_pem(&c.node.der))?;
    write("node.key", c.node.key_pem()?)?;
    write("badge-signer.crt", keys::cert_to_pem(&c.signer.der))?;
    write("badge-signer.key", c.signer.key_pem()?)?;
    write("root.crt", keys::cert_to_pem(pki.root.der()))?;
    let config = dir.join("node.toml");
    write("node.toml", bundle_config(city, &listen.to_string()))?;
    Ok(config)
}

/// Adds `top_level`, lines of top-level keys, to the TOML file at `config`
/// (before any table, where top-level keys must be).
pub fn add_top_level(config: &Path, top_level: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(config)?;
    std::fs::write(config, format!("{top_level}\n{text}"))?;
    Ok(())
}

/// Writes the gateway's bundle (certificate, key, root, the trust list to
/// start from if any, gateway.toml with `relay`) into `dir` and returns the
/// configuration path. The gateway listens on `listen`.
pub fn write_gateway_bundle(
    pki: &TestPki,
    dir: &Path,
    list: Option<&[u8]>,
    relay: tessera_gateway::config::RelaySettings,
    listen: SocketAddr,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("gateway.crt"), keys::cert_to_pem(&pki.gateway.der))?;
    write_bundle_file(&dir.join("gateway.key"), pki.gateway.key_pem()?.as_bytes())?;
    std::fs::write(dir.join("root.crt"), keys::cert_to_pem(pki.root.der()))?;
    let mut text = tessera_gateway::config::bundle_config(&listen.to_string());
    if let Some(list) = list {
        std::fs::write(dir.join("trust-list.tsl"), list)?;
        text = text.replace(
            "root = \"root.crt\"",
            "root = \"root.crt\"\ntrust_list = \"trust-list.tsl\"",
        );
    }
    text.push_str(&relay_toml(&relay));
    let config = dir.join("gateway.toml");
    std::fs::write(&config, text)?;
    Ok(config)
}

/// A node running in this process.
pub struct RunningNode {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its configuration file.
    pub config: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl RunningNode {
    /// Starts the node of `city` with its data under `dir`, on a free port.
    pub async fn start(pki: &TestPki, city: CityCode, dir: &Path) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::start_on(pki, city, dir, listener).await
    }

    /// Starts the node of `city` on an already bound `listener` (whose
    /// address the trust list names).
    pub async fn start_on(
        pki: &TestPki,
        city: CityCode,
        dir: &Path,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let config = write_city_bundle(pki, city, dir, addr)?;
        Self::start_with(config, listener).await
    }

    /// Starts a node from an existing configuration on `listener`.
    pub async fn start_with(config: PathBuf, listener: TcpListener) -> anyhow::Result<Self> {
        tls::install_default_provider();
        let addr = listener.local_addr()?;
        let loaded = tessera_node::load::load(NodeSettings::load(&config)?)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server::serve(&loaded, listener, async {
                let _ = stopped.await;
            })
            .await?;
            Ok(())
        });
        Ok(Self {
            addr,
            config,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// A stand-in for a node that is not running (stopping it does nothing).
    pub fn placeholder() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            config: PathBuf::new(),
            stop: None,
            task: None,
        }
    }

    /// Stops the node gracefully (its store is flushed and closed).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await??;
            wait_until_unlocked(&NodeSettings::load(&self.config)?.data_dir.join("store")).await?;
        }
        Ok(())
    }

    /// Restarts the node on the same data and address.
    pub async fn restart(self) -> anyhow::Result<Self> {
        let (config, addr) = (self.config.clone(), self.addr);
        self.stop().await?;
        let listener = TcpListener::bind(addr).await?;
        Self::start_with(config, listener).await
    }
}

/// A client of a node at `addr`, presenting `as_who`.
pub fn node_client(
    pki: &TestPki,
    addr: SocketAddr,
    as_who: &Issued,
) -> anyhow::Result<CityNodeClient<Channel>> {
    tls::install_default_provider();
    let trust = Arc::new(TrustState::new(pki.anchor()?)?);
    let identity = TlsIdentity::new(as_who.der.clone(), &as_who.tls_key)?;
    let config = tls::client_config(&identity, trust, Role::CityNode)?;
    Ok(CityNodeClient::new(grpc::channel(
        &addr.to_string(),
        config,
    )?))
}

/// A gateway running in this process.
pub struct RunningGateway {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its configuration file.
    pub config: PathBuf,
    /// Its trust registry.
    pub registry: Arc<tessera_gateway::registry::Registry>,
    /// Its verifier (relay and counters).
    pub verifier: Arc<tessera_gateway::verdict::Verifier>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

fn relay_toml(r: &tessera_gateway::config::RelaySettings) -> String {
    format!(
        "\n[relay]\nenabled = {}\ntimeout_ms = {}\nconcurrency_per_node = {}\ncache_ttl_ms = {}\nbreaker_failures = {}\nbreaker_open_ms = {}\n",
        r.enabled,
        r.timeout.as_millis(),
        r.concurrency_per_node,
        r.cache_ttl.as_millis(),
        r.breaker_failures,
        r.breaker_open.as_millis()
    )
}

impl RunningGateway {
    /// Starts the PKI's gateway with its data under `dir`, on a free port,
    /// starting from `list` (a signed trust list) if given.
    pub async fn start(
        pki: &TestPki,
        dir: &Path,
        list: Option<&[u8]>,
        relay: tessera_gateway::config::RelaySettings,
    ) -> anyhow::Result<Self> {
        Self::start_configured(pki, dir, list, relay, "").await
    }

    /// [`RunningGateway::start`] with `top_level`, lines of top-level keys
    /// (such as `max_message_bytes = 8192`), added to its configuration.
    pub async fn start_configured(
        pki: &TestPki,
        dir: &Path,
        list: Option<&[u8]>,
        relay: tessera_gateway::config::RelaySettings,
        top_level: &str,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let config = write_gateway_bundle(pki, dir, list, relay, listener.local_addr()?)?;
        add_top_level(&config, top_level)?;
        Self::start_with(config, listener).await
    }

    /// Starts a gateway from an existing configuration on `listener`.
    pub async fn start_with(config: PathBuf, listener: TcpListener) -> anyhow::Result<Self> {
        tls::install_default_provider();
        let addr = listener.local_addr()?;
        let settings = tessera_gateway::config::GatewaySettings::load(&config)?;
        let loaded = tessera_gateway::server::load(settings).await?;
        let registry = Arc::clone(&loaded.registry);
        let verifier = Arc::clone(&loaded.verifier);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tessera_gateway::server::serve(&loaded, listener, async {
                let _ = stopped.await;
            })
            .await?;
            Ok(())
        });
        Ok(Self {
            addr,
            config,
            registry,
            verifier,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// Stops the gateway and waits until its registry is closed.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await??;
        }
        // The registry's sled files close when the last handle drops.
        let RunningGateway {
            registry,
            verifier,
            config,
            ..
        } = self;
        drop(verifier);
        wait(
            "the gateway registry to be out of use",
            std::time::Duration::from_secs(10),
        )
        .every(std::time::Duration::from_millis(20))
        .poll_async(async || Arc::strong_count(&registry) == 1)
        .await?;
        // The only handle left: nothing can clone it any more.
        drop(
            Arc::try_unwrap(registry)
                .map_err(|_| anyhow::anyhow!("gateway registry still in use"))?,
        );
        let settings = tessera_gateway::config::GatewaySettings::load(&config)?;
        wait_until_unlocked(&settings.data_dir.join("registry")).await
    }

    /// Restarts the gateway on the same data and address.
    pub async fn restart(self) -> anyhow::Result<Self> {
        let (config, addr) = (self.config.clone(), self.addr);
        self.stop().await?;
        let listener = TcpListener::bind(addr).await?;
        Self::start_with(config, listener).await
    }
}

/// A client of the gateway at `addr`, presenting `as_who`.
pub fn gateway_client(
    pki: &TestPki,
    addr: SocketAddr,
    as_who: &Issued,
) -> anyhow::Result<tessera_proto::v1::gateway_client::GatewayClient<Channel>> {
    tls::install_default_provider();
    let trust = Arc::new(TrustState::new(pki.anchor()?)?);
    let identity = TlsIdentity::new(as_who.der.clone(), &as_who.tls_key)?;
    let config = tls::client_config(&identity, trust, Role::Gateway)?;
    Ok(tessera_proto::v1::gateway_client::GatewayClient::new(
        grpc::channel(&addr.to_string(), config)?,
    ))
}

/// Presents one certificate whatever it is: rustls's own set-up refuses to
/// send some of the certificates tests must send.
#[derive(Debug)]
struct Present(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for Present {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A rustls client trusting `pki`'s root and presenting `cert` (or
/// nothing), with none of tessera's own client-side checks (of its own
/// certificate or of the server's role): what any client, hostile or not,
/// can do.
pub fn raw_client_config(pki: &TestPki, cert: Option<&Issued>) -> Arc<rustls::ClientConfig> {
    tls::install_default_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from(
            pki.root.der().to_vec(),
        ))
        .expect("the test root is a valid certificate");
    let builder = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3 is supported")
        .with_root_certificates(roots);
    let mut config = match cert {
        None => builder.with_no_client_auth(),
        Some(c) => {
            let key = c.tls_key.to_pkcs8_der().expect("a P-256 key encodes");
            let key = tls::provider()
                .key_provider
                .load_private_key(rustls_pki_types::PrivateKeyDer::Pkcs8(key.into()))
                .expect("a P-256 key loads");
            let certified = rustls::sign::CertifiedKey::new(
                vec![rustls_pki_types::CertificateDer::from(c.der.clone())],
                key,
            );
            builder.with_client_cert_resolver(Arc::new(Present(Arc::new(certified))))
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// A channel to `addr` through [`raw_client_config`].
pub fn raw_channel(pki: &TestPki, addr: SocketAddr, cert: Option<&Issued>) -> Channel {
    grpc::channel(&addr.to_string(), raw_client_config(pki, cert))
        .expect("a loopback address is a valid endpoint")
}

/// Waits until the sled store in `dir` is no longer locked: sled's flusher
/// thread lets go of a database a moment after its last handle is dropped,
/// and a restart or a test opening the files before then would find them
/// locked. Tried with a lock of our own, released at once.
pub async fn wait_until_unlocked(dir: &Path) -> anyhow::Result<()> {
    let lock_file = dir.join("db");
    if !lock_file.exists() {
        return Ok(());
    }
    // Ready with the outcome once the lock is taken or an error is found;
    // not ready while another holds it.
    let unlocked = wait(
        format!("{} to be unlocked after the node stopped", dir.display()),
        std::time::Duration::from_secs(10),
    )
    .every(std::time::Duration::from_millis(10))
    .poll_async(async || -> Option<std::io::Result<()>> {
        let file = match std::fs::File::open(&lock_file) {
            Ok(file) => file,
            Err(e) => return Some(Err(e)),
        };
        match file.try_lock() {
            Ok(()) => Some(file.unlock()),
            Err(std::fs::TryLockError::WouldBlock) => None,
            Err(std::fs::TryLockError::Error(e)) => Some(Err(e)),
        }
    })
    .await?;
    Ok(unlocked?)
}
