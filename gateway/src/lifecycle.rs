//! A gateway's life: serve a loaded gateway and, once a disk that filled
//! has room again, load it afresh (sled keeps its first I/O error in an
//! open database) and serve again on the same address. `tessera gateway
//! run` and an in-process federation both run it.

use tessera_runtime::serve::Stop;
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
    let serving = |stop: Stop| async move {
        let mut served = serve(&loaded, listener, public, stop.signal()).await?;
        drop(loaded);
        while served == Served::DiskFreed && !stop.requested() {
            let loaded = load_after_full_disk(&settings).await?;
            reloaded(&loaded);
            let listener = grpc_bind(addr, settings.connections.listen_backlog)?;
            let public = match public_addr {
                Some(at) => Some(grpc_bind(at, settings.connections.listen_backlog)?),
                None => None,
            };
            tracing::info!("trust registry reopened after a full disk: serving again");
            served = serve(&loaded, listener, public, stop.signal()).await?;
        }
        Ok::<(), StartError>(())
    };
    tessera_runtime::serve::until_stopped(shutdown, serving).await
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
/// waiting while the database closed before still holds its lock
/// (connections still draining) or while the room is taken again
/// ([`tessera_runtime::disk::reopen`]).
async fn load_after_full_disk(
    settings: &crate::config::GatewaySettings,
) -> Result<Loaded, StartError> {
    tessera_runtime::disk::reopen(
        || server::load(settings.clone()),
        |e| matches!(e, StartError::Registry(e) if e.is_disk_full() || locked(e)),
    )
    .await
}

/// Whether sled refused to open the registry because another handle still
/// holds its lock.
fn locked(e: &PublishError) -> bool {
    matches!(e, PublishError::Storage(sled::Error::Io(io))
        if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock"))
}
