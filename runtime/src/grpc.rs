//! Mutual TLS under tonic: the server's accept loop, the client's connector,
//! and the caller's identity handed to request handlers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

use crate::connection::PeerStream;
use crate::limits::Refusals;
pub use crate::limits::{ConnectionLimits, DEFAULT_CONNECTIONS_PER_PEER, HANDSHAKE_TIMEOUT};
pub use crate::peer::PeerIdentity;
use crate::peer::PeerSlots;

/// Accepted, handshaken TLS connections with their peers read, ready for
/// `tonic::transport::Server::serve_with_incoming`.
pub type Incoming = ReceiverStream<Result<PeerStream, std::io::Error>>;

/// Accepts TCP connections on `listener` and completes each TLS handshake in
/// its own task, so a slow or hostile client never holds up the others, and
/// reads the verified client certificate there, once per connection
/// ([`PeerStream`]). A remote address already holding `limits.per_peer`
/// connections has its next one closed at once; a handshake not done within
/// `limits.handshake_timeout` is dropped. Failed handshakes are logged and
/// dropped. The loop ends when the returned stream is dropped.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    limits: ConnectionLimits,
) -> Incoming {
    incoming_counted(listener, config, limits, Refusals::default())
}

/// [`incoming`], counting refused connections in `refusals` (and logging
/// them at most [`limits::LOG_BURST`] lines a minute). Each connection is
/// closed once it has had no call open for `limits.idle_timeout`.
pub fn incoming_counted(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    limits: ConnectionLimits,
    refusals: Refusals,
) -> Incoming {
    let (tx, rx) = mpsc::channel(256);
    let acceptor = TlsAcceptor::from(config);
    let slots = Arc::new(PeerSlots::default());
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = tx.closed() => return,
            };
            let Some(slot) = slots.take(peer.ip(), limits.per_peer) else {
                refusals.refused(
                    "per_peer",
                    peer,
                    &format_args!(
                        "this address holds {} connections, as many as it may",
                        limits.per_peer
                    ),
                );
                drop(tcp);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            if let Err(e) = keep_alive(&tcp, limits.tcp_keepalive) {
                tracing::debug!(error = %e, "setting TCP keep-alive failed");
            }
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            let refusals = refusals.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let stream = PeerStream::new(stream, slot, limits.idle_timeout);
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => refusals.refused("tls", peer, &e),
                    Err(_) => refusals.refused("timeout", peer, &"TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Unanswered TCP keep-alive probes after which the kernel drops an
/// accepted connection.
pub const TCP_KEEPALIVE_PROBES: u32 = 3;

/// Turns on TCP keep-alive on an accepted socket: a peer that vanished
/// (powered off, a dropped route, a NAT that forgot the flow) is found by
/// the kernel even while the connection is still in its TLS handshake or
/// has no HTTP/2 ping due, after at most `idle` × (1 +
/// [`TCP_KEEPALIVE_PROBES`]) of silence.
pub fn keep_alive(tcp: &TcpStream, idle: Duration) -> std::io::Result<()> {
    let params = socket2::TcpKeepalive::new()
        .with_time(idle)
        .with_interval(idle)
        .with_retries(TCP_KEEPALIVE_PROBES);
    socket2::SockRef::from(tcp).set_tcp_keepalive(&params)
}

/// Streams the server may reset on one connection (refusals past
/// `max_concurrent_streams` included) before it closes the connection with
/// `GOAWAY ENHANCE_YOUR_CALM`: hyper's own default, which tonic leaves
/// unset. A client that respects the announced limit is never refused.
pub const MAX_RESETS_PER_CONNECTION: usize = 1024;

/// A tonic server that announces and enforces `limits`' streams per
/// connection (closing a connection that keeps opening streams past it) and
/// pings every connection, closing one whose peer stops answering.
pub fn server_builder(limits: &ConnectionLimits) -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .http2_max_local_error_reset_streams(Some(MAX_RESETS_PER_CONNECTION))
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout))
}

/// Listens on `addr` with a queue of `backlog` connections not yet accepted.
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Runs a server future that shuts down gracefully once `stopping` turns
/// true, but gives in-flight calls at most `grace` after that: a client that
/// holds a call open cannot keep the process from stopping.
pub async fn with_grace<E>(
    server: impl std::future::Future<Output = Result<(), E>>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    grace: Duration,
) -> Result<(), E> {
    tokio::pin!(server);
    let deadline = async move {
        if stopping.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = &mut server => result,
        () = deadline => {
            tracing::warn!(?grace, "calls still open after the shutdown grace period: closing them");
            Ok(())
        }
    }
}

/// The address a server enrolled at `endpoint` listens on: the endpoint
/// itself when it is an IP address and port, else all interfaces on its port.
pub fn listen_address(endpoint: &str, default_port: u16) -> String {
    match endpoint.parse::<SocketAddr>() {
        Ok(addr) => addr.to_string(),
        Err(_) => {
            let port = endpoint
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .unwrap_or(default_port);
            format!("0.0.0.0:{port}")
        }
    }
}

/// Why a client channel could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The endpoint is not `host:port`.
    #[error("{0:?} is not a host:port endpoint")]
    BadEndpoint(String),
    /// The connection or handshake failed.
    #[error("connecting to {endpoint}: {source}")]
    Transport {
        /// The endpoint.
        endpoint: String,
        /// The cause.
        source: tonic::transport::Error,
    },
}

fn split_endpoint(endpoint: &str) -> Result<(String, ServerName<'static>), ConnectError> {
    let bad = || ConnectError::BadEndpoint(endpoint.to_owned());
    let (host, port) = endpoint.rsplit_once(':').ok_or_else(bad)?;
    port.parse::<u16>().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host.to_owned()).map_err(|_| bad())?;
    Ok((endpoint.to_owned(), name))
}

/// A lazily connecting gRPC channel to `endpoint` (`host:port`) over mutual
/// TLS with `config`. The server's certificate must name the host.
pub fn channel(endpoint: &str, config: Arc<ClientConfig>) -> Result<Channel, ConnectError> {
    build_channel(endpoint, config, None)
}

/// A [`channel`] for long-lived streams: it pings the server every
/// `keepalive` (also while no call is open) and drops the connection when a
/// ping goes unanswered for as long, so a stream over a connection that died
/// silently (a peer powered off, a dropped route) ends with an error instead
/// of waiting for ever.
pub fn keepalive_channel(
    endpoint: &str,
    config: Arc<ClientConfig>,
    keepalive: Duration,
) -> Result<Channel, ConnectError> {
    build_channel(endpoint, config, Some(keepalive))
}

fn build_channel(
    endpoint: &str,
    config: Arc<ClientConfig>,
    keepalive: Option<Duration>,
) -> Result<Channel, ConnectError> {
    let (addr, name) = split_endpoint(endpoint)?;
    let uri = format!("http://{addr}");
    let connector = TlsConnector::from(config);
    let mut ep = Endpoint::from_shared(uri)
        .map_err(|_| ConnectError::BadEndpoint(endpoint.to_owned()))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true);
    if let Some(every) = keepalive {
        ep = ep
            .http2_keep_alive_interval(every)
            .keep_alive_timeout(every)
            .keep_alive_while_idle(true);
    }
    let target = addr.clone();
    Ok(
        ep.connect_with_connector_lazy(tower::service_fn(move |_: http::Uri| {
            let connector = connector.clone();
            let name = name.clone();
            let target = target.clone();
            async move {
                let tcp = TcpStream::connect(&target).await?;
                tcp.set_nodelay(true)?;
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        })),
    )
}
