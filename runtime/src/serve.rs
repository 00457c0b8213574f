//! The one serve skeleton of the city node and the gateway: mutual TLS on
//! the listener, the layers every call goes through (call limits, metrics,
//! decode status, authorization), the standard health and reflection
//! services beside the server's own, the metrics endpoint, certificate
//! expiry warnings, reloading renewed files, waiting for room after a full
//! disk, and a graceful stop. Each server brings its routes, its
//! authorization table and the tasks that run beside it.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::service::Routes;

use crate::authz::{AuthzLayer, Table};
use crate::grpc::{self, ConnectionLimits};
use crate::limits::{CallLimitsLayer, Refusals};
use crate::metrics::{self, Expiry, Metrics};
use crate::reload::{self, Watched};
use crate::standard::{self, StandardError};
use crate::tls::{self, TlsError, TlsIdentity, TrustState};
use crate::{disk, status};

/// How long in-flight calls may run on after a shutdown is asked for.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why [`serve`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// `shutdown` resolved (or a task beside the server ended).
    Stopped,
    /// A write failed on a full disk and the disk has room again: the server
    /// stopped cleanly so that its caller opens its store afresh (sled keeps
    /// its first I/O error in an open database) and serves again.
    DiskFreed,
}

/// Why [`serve`] could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The TLS configuration.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Sockets.
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
    Standard(#[from] StandardError),
}

/// What one server is: everything [`serve`] needs beside the listener, the
/// server's own services and the tasks that run beside it.
pub struct Server<'a> {
    /// What the server is called in log lines (`node`, `gateway`).
    pub name: &'static str,
    /// Its own service, as health checking and reflection name it.
    pub service: &'static str,
    /// The health-check name of its writes: NOT_SERVING while its disk is
    /// full, as is the server as a whole (`""`), while `service` stays
    /// SERVING.
    pub writes: &'static str,
    /// Its TLS identity.
    pub identity: &'a TlsIdentity,
    /// The trust list in force.
    pub trust: Arc<TrustState>,
    /// Connections, streams and timeouts.
    pub limits: ConnectionLimits,
    /// Which peers may call which method.
    pub table: Table,
    /// The streams whose number per caller is bounded
    /// (`connections.max_watches_per_caller`).
    pub watches: &'static [&'static str],
    /// Its metrics, with the server's own already registered.
    pub metrics: Metrics,
    /// Where the metrics endpoint listens, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// The certificates to watch for expiry.
    pub expiries: Vec<Expiry>,
    /// The files to reload when they change.
    pub watched: Vec<Watched>,
    /// How often `watched` is looked at.
    pub reload_every: Duration,
    /// The data directory whose disk [`disk::room_after_full_disk`] watches.
    pub data_dir: &'a Path,
    /// Whether the store has found its disk full.
    pub disk_full: &'a (dyn Fn() -> bool + Send + Sync),
}

/// Serves on `listener` until `shutdown` resolves, a task `beside` ends, or
/// the disk, once full, has room again. `services` adds the server's own
/// services to the standard ones; the receiver it gets turns true once the
/// server stops accepting calls, so that streams which would hold the
/// graceful shutdown open end. In-flight calls get [`SHUTDOWN_GRACE`].
pub async fn serve(
    server: Server<'_>,
    listener: TcpListener,
    services: impl FnOnce(Routes, watch::Receiver<bool>) -> Routes,
    beside: impl Future + Send,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<Served, ServeError> {
    let Server {
        name,
        service,
        writes,
        identity,
        trust,
        limits,
        table,
        watches,
        mut metrics,
        metrics_listen,
        expiries,
        watched,
        reload_every,
        data_dir,
        disk_full,
    } = server;
    let config = tls::server_config(identity, Arc::clone(&trust))?;
    let refusals = Refusals::register(metrics.registry());
    let incoming = grpc::incoming_counted(listener, config, limits, refusals);
    metrics.watch_trust_list(Arc::clone(&trust));
    metrics.watch_expiry(expiries.clone());
    let metrics = Arc::new(metrics);
    let metrics_listener = match metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Io {
                    what: format!("listening for metrics on {addr}"),
                    source,
                })?,
        ),
        None => None,
    };
    let (stopping_tx, stopping) = watch::channel(false);
    let (health, routes) = standard::routes_with_writes(service, writes).await?;
    let routes = services(routes, stopping.clone());
    health.serving(true).await;
    let disk_freed = AtomicBool::new(false);
    let room = async {
        disk::room_after_full_disk(disk_full, data_dir, &health, name).await;
        disk_freed.store(true, Ordering::SeqCst);
    };
    let signal = async {
        tokio::select! {
            () = shutdown => {}
            () = room => {}
        }
        health.serving(false).await;
        let _ = stopping_tx.send(true);
    };
    let grpc_server = grpc::server_builder(&limits)
        .layer(CallLimitsLayer::new(watches, limits.max_watches_per_caller))
        .layer(metrics.layer(table))
        .layer(status::DecodeStatusLayer)
        .layer(AuthzLayer::new(trust, table))
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, signal);
    let endpoint = metrics::serve_while_running(metrics_listener, metrics);
    // None of these ends while the server runs.
    let beside = async {
        tokio::join!(
            beside,
            endpoint,
            metrics::warn_before_expiry(expiries),
            reload::run(watched, reload_every)
        )
    };
    tokio::select! {
        result = grpc::with_grace(grpc_server, stopping, SHUTDOWN_GRACE) => result?,
        _ = beside => {}
    }
    Ok(if disk_freed.load(Ordering::SeqCst) {
        Served::DiskFreed
    } else {
        Served::Stopped
    })
}

/// The stop asked of a server's whole life, for each of its serves: a
/// server that reopens its store after a full disk serves more than once.
#[derive(Debug, Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// Whether the stop was asked for.
    pub fn requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the stop is asked for: the `shutdown` of one serve.
    pub fn signal(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|stopped| *stopped).await;
        }
    }
}

/// Runs `serving` (which may serve any number of times, each ended by
/// [`Stop::signal`]) to its end; once `shutdown` resolves, the stop is asked
/// of whichever serve runs, and of any it would start after.
pub async fn until_stopped<F: Future>(
    shutdown: impl Future<Output = ()>,
    serving: impl FnOnce(Stop) -> F,
) -> F::Output {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopper = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
        std::future::pending::<std::convert::Infallible>().await
    };
    tokio::select! {
        served = serving(Stop(stop_rx)) => served,
        never = stopper => match never {},
    }
}
