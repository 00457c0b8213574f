//! `checkpoint serve`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tessera_checkpoint::{Settings, Station, server};

use super::ServeArgs;
use crate::creds;
use crate::node::shutdown_signal;

/// Connections a station serves at once.
const MAX_CONNECTIONS: usize = 256;

/// `tessera checkpoint serve`.
pub fn serve(args: ServeArgs) -> anyhow::Result<()> {
    tessera_certs::files::restrict_umask();
    let (identity, trust) = creds::bundle(&args.bundle)?;
    let settings = Settings {
        gateway: args.gateway.clone(),
        data: args.data.clone(),
        tls: args.tls_cert.clone().zip(args.tls_key.clone()),
        host: args
            .host
            .clone()
            .unwrap_or_else(|| server::default_host(args.listen)),
        refresh: Duration::from_secs(args.refresh_secs.max(1)),
        max_connections: MAX_CONNECTIONS,
    };
    crate::block_on(async {
        let stop = shutdown_signal();
        let station = Station::load(identity, trust, settings)?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let port = listener
            .local_addr()
            .context("reading the bound address")?
            .port();
        let (url, pairing) = station.announce(port)?;
        outln!(
            "checkpoint station listening on {url} (gateway {})",
            args.gateway
        );
        let kind = if station.self_signed() {
            "self-signed, accept it on each device or install it"
        } else {
            "from --tls-cert"
        };
        outln!("  certificate SHA-256 {} ({kind})", station.fingerprint());
        if tessera_checkpoint::assets::count() == 0 {
            eprintln!(
                "warning: this build embeds no scanner app (web/dist was absent when it was built): only the API is served"
            );
        }
        outln!("  pair a device: {pairing}");
        outln!(
            "  (one device, once, within 10 minutes; `tessera checkpoint pair --data {}` makes another)",
            args.data.display()
        );
        let metrics = match args.metrics_listen {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listening for metrics on {addr}"))?,
            ),
            None => None,
        };
        let metrics = tessera_runtime::metrics::serve_while_running(metrics, station.metrics());
        tokio::select! {
            served = station.serve(listener, stop) => served?,
            () = metrics => {}
        }
        outln!("checkpoint station stopped");
        Ok(())
    })
}

/// Starts a station for `federation up` in this process; returns its
/// address, pairing URL and the task serving it.
pub async fn start_for_federation(
    bundle: &std::path::Path,
    gateway: &str,
    listener: tokio::net::TcpListener,
    data: &std::path::Path,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(String, String, String)> {
    let (identity, trust) = creds::bundle(bundle)?;
    let addr = listener.local_addr()?;
    let station = Station::load(
        identity,
        Arc::clone(&trust),
        Settings {
            gateway: gateway.to_owned(),
            data: data.to_path_buf(),
            tls: None,
            host: server::default_host(addr),
            refresh: Duration::from_secs(2),
            max_connections: MAX_CONNECTIONS,
        },
    )?;
    let (url, pairing) = station.announce(addr.port())?;
    let fingerprint = station.fingerprint().to_owned();
    tokio::spawn(async move {
        if let Err(e) = station.serve(listener, stop).await {
            tracing::error!(error = %e, "the checkpoint station stopped");
        }
    });
    Ok((url, pairing, fingerprint))
}
