//! Starting and running a station: the data directory, the trust list
//! followed from the gateway, the station certificate, and the bounded
//! HTTPS listener (the same shape as the gateway's public copy,
//! gateway/src/public.rs: hyper HTTP/1.1 over rustls, no client
//! certificate, a connection cap, deadlines on every stage).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tessera_core::Role;
use tessera_runtime::follow::{FollowError, Follower};
use tessera_runtime::metrics::Metrics;
use tessera_runtime::{TlsIdentity, TrustState};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::api::Api;
use crate::counters::Counters;
use crate::devices::Devices;
use crate::files::{self, DataError};
use crate::relay::Gateway;
use crate::station_tls::{StationCert, StationTlsError};
use crate::trust::TrustCache;

/// Longest request head (request line and headers) read.
pub const MAX_HEAD_BYTES: usize = 8192;
/// Deadline of a TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// Deadline of a request head.
const HEAD: Duration = Duration::from_secs(10);
/// Longest a connection is kept, keep-alive included.
const CONNECTION: Duration = Duration::from_secs(300);

/// What a station is started with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The gateway, `host:port` as its certificate names it.
    pub gateway: String,
    /// The data directory.
    pub data: PathBuf,
    /// The station certificate and key (PEM), or `None` for a self-signed
    /// one kept in the data directory.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The host name or address devices dial (in the printed URLs and the
    /// self-signed certificate).
    pub host: String,
    /// How often the trust list is asked for.
    pub refresh: Duration,
    /// Connections served at once (more wait in the backlog).
    pub max_connections: usize,
}

/// Why a station could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The bundle's certificate is not a checkpoint's.
    #[error(
        "the bundle's certificate is a {0}'s: `checkpoint serve` needs a checkpoint (verifier) bundle"
    )]
    NotAVerifier(Role),
    /// The data directory.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The station certificate.
    #[error(transparent)]
    Tls(#[from] StationTlsError),
    /// The gateway's address or the client TLS configuration.
    #[error(transparent)]
    Gateway(#[from] FollowError),
}

/// A station ready to serve.
pub struct Station {
    api: Api,
    settings: Settings,
    config: Arc<rustls::ServerConfig>,
    fingerprint: String,
    self_signed: bool,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Station {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Station")
            .field("station", &self.api.station)
            .finish_non_exhaustive()
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Station {
    /// Prepares a station presenting `identity` (a checkpoint's) to the
    /// gateway, rooted at `trust`'s root: the data directory, the kept
    /// trust list, the station certificate. Nothing listens yet.
    pub fn load(
        identity: TlsIdentity,
        trust: Arc<TrustState>,
        settings: Settings,
    ) -> Result<Self, StartError> {
        let role = identity.identity().role();
        if role != Role::Verifier {
            return Err(StartError::NotAVerifier(role));
        }
        files::prepare(&settings.data)?;
        let cache = TrustCache::open(Arc::clone(&trust), &settings.data);
        let gateway = Gateway::new(&identity, trust, &settings.gateway)?;
        let cert = match &settings.tls {
            Some((cert, key)) => StationCert::from_files(cert, key)?,
            None => {
                let mut names = vec![
                    "localhost".to_owned(),
                    "127.0.0.1".to_owned(),
                    "::1".to_owned(),
                ];
                if !names.contains(&settings.host) {
                    names.push(settings.host.clone());
                }
                StationCert::self_signed(&settings.data, &names)?
            }
        };
        let (fingerprint, self_signed) = (cert.fingerprint(), cert.self_signed);
        let config = cert.server_config()?;
        let mut metrics = Metrics::new();
        let counters = Counters::register(&mut metrics);
        metrics.watch_trust_list(Arc::clone(cache.trust()));
        let api = Api {
            devices: Devices::new(&settings.data),
            cache,
            gateway,
            counters,
            station: station_name(&identity),
            now: Arc::new(unix_now),
        };
        Ok(Self {
            api,
            settings,
            config,
            fingerprint,
            self_signed,
            metrics: Arc::new(metrics),
        })
    }

    /// The SHA-256 fingerprint of the station certificate.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether the station certificate is the self-signed one.
    pub fn self_signed(&self) -> bool {
        self.self_signed
    }

    /// The station's counters.
    pub fn counters(&self) -> Counters {
        self.api.counters.clone()
    }

    /// The metrics (counters and the trust list's sequence and age), for
    /// the runtime's metrics endpoint.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// The station's URL for `port`, written to the data directory for
    /// `checkpoint pair`, and a first pairing code's URL.
    pub fn announce(&self, port: u16) -> Result<(String, String), DataError> {
        let host = if self.settings.host.contains(':') {
            format!("[{}]", self.settings.host)
        } else {
            self.settings.host.clone()
        };
        let url = format!("https://{host}:{port}/");
        files::write_durable(&self.settings.data.join(files::STATION_URL), url.as_bytes())?;
        let code = self.api.devices.new_code(unix_now())?;
        Ok((url.clone(), format!("{url}#pair={code}")))
    }

    /// Serves on `listener` until `shutdown` resolves, following the
    /// gateway's trust list meanwhile.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), StartError> {
        // The watch shares the checks' one connection to the gateway.
        let follower = Follower::sharing(
            self.api.gateway.channel(),
            Arc::clone(self.api.cache.trust()),
            &self.settings.gateway,
            self.settings.refresh,
            self.settings.refresh,
        );
        let cache = self.api.cache.clone();
        let following = async move {
            let never = follower
                .run(|bytes| std::future::ready(cache.install(&bytes, unix_now())))
                .await;
            match never {}
        };
        let fetching = fetch_every(
            self.api.gateway.clone(),
            self.api.cache.clone(),
            self.settings.refresh,
        );
        let serving = accept_loop(
            listener,
            self.config,
            self.api,
            self.settings.max_connections,
        );
        tokio::select! {
            () = shutdown => {}
            () = following => {}
            () = fetching => {}
            () = serving => {}
        }
        Ok(())
    }
}

/// Asks the gateway for its list every `every` over the check channel: a
/// list the watch missed is installed, and the station knows whether the
/// gateway answers even while no device checks.
async fn fetch_every(gateway: Gateway, cache: TrustCache, every: Duration) {
    loop {
        let known = cache.current().map_or(0, |l| l.sequence());
        match gateway.fetch_trust_list(known).await {
            Ok(Some(bytes)) => match cache.install(&bytes, unix_now()) {
                Ok(sequence) => tracing::info!(sequence, "fetched trust list in force"),
                Err(e) => tracing::warn!(error = %e, "fetched trust list refused"),
            },
            Ok(None) => {}
            Err(status) => {
                tracing::debug!(error = %status.message(), "cannot fetch the trust list");
            }
        }
        tokio::time::sleep(every).await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    api: Api,
    max_connections: usize,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let api = Arc::new(api);
    loop {
        // Waiting for a slot before accepting leaves the rest in the backlog.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                tracing::warn!(error = %e, "station: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let api = Arc::clone(&api);
        tokio::spawn(async move {
            let _slot = slot;
            let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await else {
                return;
            };
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let api = Arc::clone(&api);
                    async move { Ok::<_, Infallible>(api.answer(request).await) }
                });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD)
                .max_buf_size(MAX_HEAD_BYTES)
                .serve_connection(TokioIo::new(tls), service);
            let _ = tokio::time::timeout(CONNECTION, conn).await;
        });
    }
}

/// The station's name for its devices: the checkpoint certificate's
/// display name, or its identity when it has none.
fn station_name(identity: &TlsIdentity) -> String {
    tessera_core::CertInfo::parse(&identity.certificate_der())
        .ok()
        .map(|c| c.common_name().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| identity.identity().to_string())
}

/// The address devices dial when the station listens on `listen`: its IP,
/// or for an unspecified address (0.0.0.0, ::) `localhost` (pass `--host`
/// with the station's LAN name or address instead).
pub fn default_host(listen: SocketAddr) -> String {
    if listen.ip().is_unspecified() {
        "localhost".to_owned()
    } else {
        listen.ip().to_string()
    }
}
