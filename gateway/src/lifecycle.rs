//! A gateway's life: serve a loaded gateway and, once a disk that filled
//! has room again, load it afresh (sled keeps its first I/O error in an
//! open database) and serve again on the same address. `tessera gateway
//! run` and an in-process federation both run it.

use std::time::Duration;

use tokio::net::TcpListener;

use crate::registry::PublishError;
use crate::server::{self, Loaded, Served, StartError};

/// Serves `loaded` on `listener` until `shutdown` resolves; each time its
/// disk filled and has room again, loads the gateway again from its
/// settings and serves on the same address. The public copy is served on
/// `public` when given (bound already, and bound again at the same address
/// after a reload), else where `[public] listen` says. `reloaded` is called
/// with each gateway loaded afresh, before it serves.
pub async fn run(
    loaded: Loaded,
    listener: TcpListener,
    public: Option<TcpListener>,
    shutdown: impl std::future::Future<Output = ()> + Send,
    mut reloaded: impl FnMut(&Loaded) + Send,
) -> Result<(), StartError> {
    let addr = listener.local_addr().map_err(|source| StartError::Io {
        what: "reading the bound address".into(),
        source,
    })?;
    let public_addr = match &public {
        Some(l) => Some(l.local_addr().map_err(|source| StartError::Io {
            what: "reading the public copy's bound address".into(),
            source,
        })?),
        None => None,
    };
    let settings = loaded.settings.clone();
    // `shutdown` may end any of the serves below.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopper = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
        std::future::pending::<()>().await;
    };
    let stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stopped| *stopped).await;
    };
    let serving = async {
        let mut served = serve(&loaded, listener, public, stop(stop_rx.clone())).await?;
        drop(loaded);
        while served == Served::DiskFreed && !*stop_rx.borrow() {
            let loaded = load_after_full_disk(&settings).await?;
            reloaded(&loaded);
            let listener = grpc_bind(addr, settings.connections.listen_backlog)?;
            let public = match public_addr {
                Some(at) => Some(grpc_bind(at, settings.connections.listen_backlog)?),
                None => None,
            };
            tracing::info!("trust registry reopened after a full disk: serving again");
            served = serve(&loaded, listener, public, stop(stop_rx.clone())).await?;
        }
        Ok::<(), StartError>(())
    };
    tokio::select! {
        served = serving => served,
        () = stopper => Ok(()),
    }
}

/// [`server::serve`], or with the public copy on `public` when given.
async fn serve(
    loaded: &Loaded,
    listener: TcpListener,
    public: Option<TcpListener>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<Served, StartError> {
    match public {
        Some(public) => server::serve_with_public(loaded, listener, Some(public), shutdown).await,
        None => server::serve(loaded, listener, shutdown).await,
    }
}

fn grpc_bind(addr: std::net::SocketAddr, backlog: u32) -> Result<TcpListener, StartError> {
    tessera_runtime::grpc::bind(addr, backlog).map_err(|source| StartError::Io {
        what: format!("listening on {addr}"),
        source,
    })
}

/// Loads the gateway again after its disk filled and has room again,
/// waiting (bounded, 15 s) while the database closed before still holds
/// its lock (connections still draining) or while the room is taken again.
async fn load_after_full_disk(
    settings: &crate::config::GatewaySettings,
) -> Result<Loaded, StartError> {
    let mut tries = 0;
    loop {
        match server::load(settings.clone()).await {
            Err(StartError::Registry(e)) if tries < 150 && (e.is_disk_full() || locked(&e)) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            loaded => return loaded,
        }
    }
}

/// Whether sled refused to open the registry because another handle still
/// holds its lock.
fn locked(e: &PublishError) -> bool {
    matches!(e, PublishError::Storage(sled::Error::Io(io))
        if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock"))
}
