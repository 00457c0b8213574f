//! Starting the gateway: load every file the configuration names, open the
//! trust registry, and serve over mutual TLS until asked to stop.

use std::future::Future;
use std::sync::Arc;

use tessera_certs::keys::{self, KeyError};
use tessera_core::Role;
use tessera_proto::v1::gateway_server::GatewayServer;
use tessera_runtime::follow::{FollowError, Follower};
use tessera_runtime::metrics::Metrics;
use tessera_runtime::serve::{ServeError, Server};
use tessera_runtime::tls::TlsError;
use tessera_runtime::{TlsIdentity, TrustState, grpc};
use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::config::GatewaySettings;
use crate::registry::{PublishError, Registry};
use crate::relay::Relay;
use crate::service::GatewayService;
use crate::verdict::Verifier;
use tessera_runtime::clock::unix_now;

/// Why the gateway could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A key or certificate file.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The TLS identity or configuration.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The certificate is not a gateway's.
    #[error("the TLS certificate is a {0} certificate, not a gateway's")]
    NotGateway(String),
    /// The trust registry or the bootstrap list.
    #[error(transparent)]
    Registry(#[from] PublishError),
    /// Files or sockets.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The server failed.
    #[error("server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The health or reflection service.
    #[error(transparent)]
    Standard(#[from] tessera_runtime::standard::StandardError),
    /// Following the peer gateway's trust list.
    #[error(transparent)]
    Follow(#[from] FollowError),
}

impl From<ServeError> for StartError {
    fn from(e: ServeError) -> Self {
        match e {
            ServeError::Tls(e) => Self::Tls(e),
            ServeError::Io { what, source } => Self::Io { what, source },
            ServeError::Transport(e) => Self::Transport(e),
            ServeError::Standard(e) => Self::Standard(e),
        }
    }
}

/// Everything a gateway needs, loaded and checked.
pub struct Loaded {
    /// The trust registry.
    pub registry: Arc<Registry>,
    /// Badge verification and the relay.
    pub verifier: Arc<Verifier>,
    /// The published scoring policies.
    pub policies: Arc<crate::policies::Policies>,
    /// The gateway's TLS identity.
    pub identity: TlsIdentity,
    /// The peer gateway this one follows, if configured.
    pub follower: Option<Follower>,
    /// Settings.
    pub settings: GatewaySettings,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("listen", &self.settings.listen)
            .finish_non_exhaustive()
    }
}

/// Loads keys, certificates and the trust registry named by `settings`.
pub async fn load(settings: GatewaySettings) -> Result<Loaded, StartError> {
    // A private key readable by others, or in a directory others may
    // write, is refused before it is read.
    tessera_certs::files::check_secret(&settings.tls_key).map_err(PublishError::Files)?;
    let root = keys::read_root(&settings.root)?;
    let trust = Arc::new(TrustState::new(root)?);
    let identity = TlsIdentity::from_files(&settings.tls_certificate, &settings.tls_key)?;
    if identity.identity().role() != Role::Gateway {
        return Err(StartError::NotGateway(
            identity.identity().role().to_string(),
        ));
    }
    // 0700 whatever the umask; what was left wider is tightened.
    tessera_certs::files::private_dir(&settings.data_dir).map_err(PublishError::Files)?;
    tessera_certs::files::tighten_tree(&settings.data_dir).map_err(PublishError::Files)?;
    if !tessera_certs::files::has_room(&settings.data_dir, tessera_certs::files::ROOM_BYTES) {
        return Err(PublishError::DiskFull(settings.data_dir.display().to_string()).into());
    }
    let registry = Arc::new(Registry::open(
        &settings.data_dir.join("registry"),
        Arc::clone(&trust),
        unix_now(),
    )?);
    let policies = Arc::new(
        crate::policies::Policies::open(
            registry.db(),
            registry.disk().clone(),
            settings.notice_hours,
        )
        .map_err(|e| StartError::Registry(PublishError::Storage(e)))?,
    );
    if let Some(path) = &settings.trust_list
        && trust.current().is_none()
    {
        let bytes = std::fs::read(path).map_err(|source| StartError::Io {
            what: format!("reading {}", path.display()),
            source,
        })?;
        registry.publish(&bytes, unix_now()).await?;
    }
    let follower = match &settings.follow {
        Some(f) => Some(Follower::new(
            &identity,
            Arc::clone(&trust),
            &f.peer,
            f.refresh,
            f.retry,
        )?),
        None => None,
    };
    let relay = Relay::new(settings.relay, identity.clone(), Arc::clone(&trust));
    Ok(Loaded {
        registry,
        policies,
        verifier: Arc::new(Verifier::new(trust, relay)),
        identity,
        follower,
        settings,
    })
}

/// Why [`serve`] returned: `DiskFreed` when a write failed on a full disk
/// and the disk has room again, so that the caller loads the gateway afresh
/// (sled keeps its first I/O error in an open database) and serves again
/// ([`crate::lifecycle::run`]).
pub use tessera_runtime::serve::Served;

/// Serves a loaded gateway on `listener`, and its public copy on the
/// configured `[public] listen` address, if any, until `shutdown` resolves,
/// or until its disk, once full, has room again.
pub async fn serve(
    loaded: &Loaded,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<Served, StartError> {
    let public = match loaded.settings.public {
        Some(p) => Some(
            TcpListener::bind(p.listen)
                .await
                .map_err(|source| StartError::Io {
                    what: format!("listening for the public copy on {}", p.listen),
                    source,
                })?,
        ),
        None => None,
    };
    serve_with_public(loaded, listener, public, shutdown).await
}

/// [`serve`], with the public copy on `public` (bound already) instead of
/// the configured address.
pub async fn serve_with_public(
    loaded: &Loaded,
    listener: TcpListener,
    public: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<Served, StartError> {
    let trust = Arc::clone(loaded.registry.trust());
    let mut metrics = Metrics::new();
    metrics
        .registry()
        .register_collector(Box::new(crate::metrics::GatewayCollector::new(Arc::clone(
            &loaded.verifier,
        ))));
    let pool = crate::pool::PoolMetrics::register(&mut metrics);
    let tls = loaded.identity.clone();
    let expiries: Vec<tessera_runtime::metrics::Expiry> =
        vec![("tls", Arc::new(move || tls.not_after()))];
    let public_listener = match public {
        Some(l) => {
            let listen = l.local_addr().map_err(|source| StartError::Io {
                what: "reading the public copy's address".into(),
                source,
            })?;
            let max_connections = loaded.settings.public.map_or(
                crate::config::PublicSettings::DEFAULT_MAX_CONNECTIONS,
                |p| p.max_connections,
            );
            Some((
                l,
                crate::config::PublicSettings {
                    listen,
                    max_connections,
                },
            ))
        }
        None => None,
    };
    let public = async {
        match public_listener {
            Some((listener, settings)) => {
                let copy = crate::public::PublicCopy::new(
                    Arc::clone(&trust),
                    Arc::clone(&loaded.policies),
                    Arc::new(unix_now),
                );
                crate::public::serve(listener, &loaded.identity, copy, settings).await;
            }
            None => std::future::pending().await,
        }
    };
    let follow = async {
        match &loaded.follower {
            Some(follower) => {
                let never = tokio::join!(
                    follow_peer(&loaded.registry, follower),
                    crate::pool::follow_publications(
                        &loaded.registry,
                        &loaded.policies,
                        follower,
                        pool
                    )
                );
                match never.1 {}
            }
            None => std::future::pending().await,
        }
    };
    let disk_full = || loaded.registry.disk().is_full();
    let server = Server {
        name: "gateway",
        service: SERVICE,
        writes: WRITES,
        identity: &loaded.identity,
        trust: Arc::clone(&trust),
        limits: loaded.settings.connections,
        table: crate::authz::table(),
        watches: WATCHES,
        metrics,
        metrics_listen: loaded.settings.metrics_listen,
        expiries,
        // A renewed certificate is presented at the next handshake, by the
        // server and by the relay's and the follower's clients alike: they
        // all share the one identity.
        watched: vec![tessera_runtime::reload::Watched::tls(
            loaded.identity.clone(),
            Arc::clone(&trust),
            loaded.settings.tls_certificate.clone(),
            loaded.settings.tls_key.clone(),
        )],
        reload_every: loaded.settings.reload,
        data_dir: &loaded.settings.data_dir,
        disk_full: &disk_full,
    };
    // Once the gateway stops accepting calls, `stopping` ends
    // WatchTrustList streams, which would otherwise hold the graceful
    // shutdown open for ever.
    let services = |routes: Routes, stopping| {
        routes.add_service(
            GatewayServer::new(
                GatewayService::new(
                    Arc::clone(&loaded.registry),
                    Arc::clone(&loaded.verifier),
                    stopping,
                )
                .with_policies(Arc::clone(&loaded.policies)),
            )
            .max_decoding_message_size(loaded.settings.max_message_bytes),
        )
    };
    let beside = async { tokio::join!(public, follow) };
    Ok(tessera_runtime::serve::serve(server, listener, services, beside, shutdown).await?)
}

/// Installs every newer list of the peer gateway in the registry, through
/// the same path as a publish: verified up to the root, no rollback, durable
/// before it is in force, then announced to this gateway's own watchers (so
/// followers can be chained).
async fn follow_peer(registry: &Arc<Registry>, follower: &Follower) {
    tracing::info!(
        peer = follower.peer(),
        "following the peer gateway's trust list"
    );
    let never = follower
        .run(|bytes| {
            let registry = Arc::clone(registry);
            async move {
                registry
                    .publish(&bytes, unix_now())
                    .await
                    .map(|list| list.sequence())
            }
        })
        .await;
    match never {}
}

/// The gateway's service, as health checking and reflection name it.
pub const SERVICE: &str = "tessera.v1.Gateway";

/// The health-check name of the gateway's uploads (trust lists, policies,
/// attestations): NOT_SERVING while its disk is full, as is the gateway as
/// a whole (`""`), while `tessera.v1.Gateway` (verification, fetches,
/// watches) stays SERVING.
pub const WRITES: &str = "tessera.v1.Gateway.Writes";

/// How long in-flight calls may run on after a shutdown is asked for.
pub const SHUTDOWN_GRACE: std::time::Duration = tessera_runtime::serve::SHUTDOWN_GRACE;

/// The streams whose number per caller is bounded
/// (`connections.max_watches_per_caller`): they stay open for as long as
/// the caller likes.
const WATCHES: &[&str] = &["/tessera.v1.Gateway/WatchTrustList"];

/// Binds the configured address, with the configured listen backlog.
pub async fn bind(settings: &GatewaySettings) -> Result<TcpListener, StartError> {
    grpc::bind(settings.listen, settings.connections.listen_backlog).map_err(|source| {
        StartError::Io {
            what: format!("listening on {}", settings.listen),
            source,
        }
    })
}
