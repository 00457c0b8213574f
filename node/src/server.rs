//! Serving a loaded node through the runtime's one serve skeleton
//! ([`tessera_runtime::serve`]): the node's service, its authorization
//! table, the files it reloads and the tasks that run beside it
//! ([`crate::tasks`]), until asked to stop or the sunset date comes; then
//! the final flush. Wiring only: what to serve is decided in
//! [`crate::load`], how each task behaves in [`crate::tasks`].

use std::future::Future;
use std::sync::Arc;

use std::sync::atomic::{AtomicBool, Ordering};

use tessera_proto::v1::city_node_server::CityNodeServer;
use tessera_runtime::follow::Follower;
use tessera_runtime::grpc;
use tessera_runtime::metrics::Metrics;
use tessera_runtime::reload::Watched;
use tessera_runtime::serve::{self, Server};
use tokio::net::TcpListener;

use crate::config::NodeSettings;
use crate::error::{StartError, io};
use crate::load::Loaded;
use crate::service::NodeService;
use crate::tasks;

/// The node's service, as health checking and reflection name it.
pub const SERVICE: &str = "tessera.v1.CityNode";

/// Why [`serve`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// `shutdown` resolved.
    Stopped,
    /// `[sunset] automatic` and the trust list in force reached its sunset
    /// date: the node stopped accepting calls; the caller destroys
    /// everything ([`crate::sunset`]).
    SunsetDue,
    /// The store's disk was full and has room again: the node stopped
    /// cleanly so that the caller opens the store afresh (sled keeps its
    /// first I/O error in an open database) and serves again.
    DiskFreed,
}

/// The health-check name of the node's writes (ingest, issuance, erasure):
/// NOT_SERVING while its disk is full, as is the node as a whole (`""`),
/// while `tessera.v1.CityNode` (status checks and other reads) stays
/// SERVING.
pub const WRITES: &str = "tessera.v1.CityNode.Writes";

/// Serves a loaded node on `listener` until `shutdown` resolves (or, with
/// `[sunset] automatic`, the trust list's sunset date comes), then flushes
/// the store.
pub async fn serve(
    loaded: &Loaded,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<Served, StartError> {
    let follower = match &loaded.settings.gateway {
        Some(gateway) => Some(Follower::new(
            &loaded.identity,
            Arc::clone(&loaded.trust),
            gateway,
            loaded.settings.refresh,
            loaded.settings.refresh,
        )?),
        None => None,
    };
    let mut metrics = Metrics::new();
    let node_metrics = crate::metrics::NodeMetrics::register(&mut metrics);
    let sweeping = tasks::sweep_retention(loaded, node_metrics.clone());
    let service = CityNodeServer::new(
        NodeService::new(
            Arc::clone(&loaded.city),
            Arc::clone(&loaded.access_log),
            node_metrics,
        )
        .with_backups(crate::service::Backups {
            backup_dir: loaded.settings.backup_dir.clone(),
            data_dir: loaded.settings.data_dir.clone(),
        }),
    )
    .max_decoding_message_size(loaded.settings.max_message_bytes);
    let sunset_due = AtomicBool::new(false);
    let sunset = async {
        if !loaded.settings.sunset_automatic {
            return std::future::pending().await;
        }
        tasks::wait_until_due(Arc::clone(&loaded.trust)).await;
        tracing::warn!("the trust list reached its sunset date: switching this node off");
        sunset_due.store(true, Ordering::SeqCst);
    };
    let shutdown = async {
        tokio::select! {
            () = shutdown => {}
            () = sunset => {}
        }
    };
    let follow = async {
        match (follower, &loaded.settings.gateway) {
            (Some(follower), Some(gateway)) => {
                let publish = async {
                    tasks::publish_policies(loaded, gateway).await;
                    std::future::pending::<()>().await;
                };
                tokio::join!(tasks::follow_trust_lists(loaded, follower), publish).0
            }
            _ => std::future::pending().await,
        }
    };
    let disk_full = || loaded.city.disk_full();
    let server = Server {
        name: "node",
        service: SERVICE,
        writes: WRITES,
        identity: &loaded.identity,
        trust: Arc::clone(&loaded.trust),
        limits: loaded.settings.connections,
        table: crate::authz::table(loaded.city.city()),
        // A node serves no watch stream: the layer only tracks open calls,
        // for the idle timeout.
        watches: &[],
        metrics,
        metrics_listen: loaded.settings.metrics_listen,
        expiries: loaded.expiries.clone(),
        watched: vec![Watched::tls(
            loaded.identity.clone(),
            Arc::clone(&loaded.trust),
            loaded.settings.tls_certificate.clone(),
            loaded.settings.tls_key.clone(),
        )]
        .into_iter()
        // A key in a token is not a file to watch: a new badge-signer key
        // in a token is taken up at a restart (docs/OPERATIONS.md).
        .chain(
            loaded
                .settings
                .signer_token
                .is_none()
                .then(|| tasks::watch_badge_signer(loaded)),
        )
        .collect(),
        reload_every: loaded.settings.reload,
        data_dir: &loaded.settings.data_dir,
        disk_full: &disk_full,
    };
    let beside = async { tokio::join!(follow, sweeping) };
    let served = serve::serve(
        server,
        listener,
        |routes, _| routes.add_service(service),
        beside,
        shutdown,
    )
    .await?;
    if loaded.city.disk_full() {
        // Every acknowledged change was flushed before its answer; the
        // store refuses any flush since its disk filled, and what it holds
        // unflushed was never acknowledged.
        tracing::warn!(
            "the store's disk filled while serving: stopped without a final flush \
             (every acknowledged change is durable)"
        );
    } else {
        loaded.city.flush().await.map_err(|e| StartError::Io {
            what: format!("final flush: {e}"),
            source: std::io::Error::other("flush failed"),
        })?;
    }
    Ok(if served == serve::Served::DiskFreed {
        Served::DiskFreed
    } else if sunset_due.load(Ordering::SeqCst) {
        Served::SunsetDue
    } else {
        Served::Stopped
    })
}

/// Binds the configured address, with the configured listen backlog.
pub async fn bind(settings: &NodeSettings) -> Result<TcpListener, StartError> {
    grpc::bind(settings.listen, settings.connections.listen_backlog)
        .map_err(io(format!("listening on {}", settings.listen)))
}
