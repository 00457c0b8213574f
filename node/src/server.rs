//! Serving a loaded node: the gRPC server over mutual TLS with its layers
//! (limits, metrics, status codes, authorization), the standard health and
//! reflection services, and the tasks that run beside it ([`crate::tasks`]),
//! until asked to stop; then the final flush. Wiring only: what to serve is
//! decided in [`crate::load`], how each task behaves in [`crate::tasks`].

use std::future::Future;
use std::sync::Arc;

use tessera_proto::v1::city_node_server::CityNodeServer;
use tessera_runtime::authz::AuthzLayer;
use tessera_runtime::follow::Follower;
use tessera_runtime::metrics::Metrics;
use tessera_runtime::reload::{self, Watched};
use tessera_runtime::{grpc, tls};
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
    let config = tls::server_config(&loaded.identity, Arc::clone(&loaded.trust))?;
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
    let limits = loaded.settings.connections;
    let mut metrics = Metrics::new();
    let refusals = tessera_runtime::limits::Refusals::register(metrics.registry());
    let incoming = grpc::incoming_counted(listener, config, limits, refusals);
    let node_metrics = crate::metrics::NodeMetrics::register(&mut metrics);
    metrics.watch_trust_list(Arc::clone(&loaded.trust));
    metrics.watch_expiry(loaded.expiries.clone());
    let metrics = Arc::new(metrics);
    let metrics_listener = match loaded.settings.metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(io(format!("listening for metrics on {addr}")))?,
        ),
        None => None,
    };
    let sweeping = tasks::sweep_retention(loaded, node_metrics.clone());
    let service = CityNodeServer::new(NodeService::new(
        Arc::clone(&loaded.city),
        Arc::clone(&loaded.access_log),
        node_metrics,
    ))
    .max_decoding_message_size(loaded.settings.max_message_bytes);
    let table = crate::authz::table(loaded.city.city());
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let (health, routes) = tessera_runtime::standard::routes_with_writes(SERVICE, WRITES).await?;
    health.serving(true).await;
    let health = Arc::new(health);
    let disk_freed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let room = {
        let (health, freed) = (Arc::clone(&health), Arc::clone(&disk_freed));
        async move {
            tessera_runtime::disk::room_after_full_disk(
                || loaded.city.disk_full(),
                &loaded.settings.data_dir,
                &health,
                "node",
            )
            .await;
            freed.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    };
    let sunset_due = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sunset = {
        let (due, trust) = (Arc::clone(&sunset_due), Arc::clone(&loaded.trust));
        let automatic = loaded.settings.sunset_automatic;
        async move {
            if !automatic {
                return std::future::pending().await;
            }
            tasks::wait_until_due(trust).await;
            tracing::warn!("the trust list reached its sunset date: switching this node off");
            due.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    };
    let signal = async move {
        tokio::select! {
            () = shutdown => {}
            () = sunset => {}
            () = room => {}
        }
        health.serving(false).await;
        let _ = stopping_tx.send(true);
    };
    // A node serves no watch stream: the layer only tracks open calls, for
    // the idle timeout.
    let server = grpc::server_builder(&limits)
        .layer(tessera_runtime::limits::CallLimitsLayer::new(
            &[],
            limits.max_watches_per_caller,
        ))
        .layer(metrics.layer(table))
        .layer(tessera_runtime::status::DecodeStatusLayer)
        .layer(AuthzLayer::new(Arc::clone(&loaded.trust), table))
        .add_routes(routes.add_service(service))
        .serve_with_incoming_shutdown(incoming, signal);
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
    let endpoint = tessera_runtime::metrics::serve_while_running(metrics_listener, metrics);
    let watched = vec![
        Watched::tls(
            loaded.identity.clone(),
            Arc::clone(&loaded.trust),
            loaded.settings.tls_certificate.clone(),
            loaded.settings.tls_key.clone(),
        ),
        tasks::watch_badge_signer(loaded),
    ];
    // None of these ends while the server runs.
    let beside = async {
        tokio::join!(
            follow,
            endpoint,
            sweeping,
            tessera_runtime::metrics::warn_before_expiry(loaded.expiries.clone()),
            reload::run(watched, loaded.settings.reload)
        )
    };
    tokio::select! {
        result = grpc::with_grace(server, stopping, std::time::Duration::from_secs(10)) => result?,
        _ = beside => {}
    }
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
    Ok(if disk_freed.load(std::sync::atomic::Ordering::SeqCst) {
        Served::DiskFreed
    } else if sunset_due.load(std::sync::atomic::Ordering::SeqCst) {
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
