//! What one client may hold of a server beyond its connections (those are
//! bounded per address in [`crate::grpc`]): HTTP/2 streams per connection,
//! open watch streams per caller, connections left idle, peers that stopped
//! answering; and how refused connections are counted and logged without
//! letting a flood of them flood the log.
//!
//! The `[connections]` section of a node's or gateway's configuration is
//! read here ([`ConnectionsFile`]) and validated once into
//! [`ConnectionLimits`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::time::Instant;
use tower::{Layer, Service};

use crate::calls::CallGuard;
pub use crate::calls::Calls;
use crate::connection::PeerConnectInfo;
use crate::ready::take_ready;

/// HTTP/2 streams one connection may have open at once unless configured,
/// announced as `SETTINGS_MAX_CONCURRENT_STREAMS`: RFC 9113 asks for no
/// fewer than 100.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 100;
/// Open `WatchTrustList` streams one caller (one certificate) may hold at
/// once unless configured.
pub const DEFAULT_MAX_WATCHES_PER_CALLER: usize = 4;
/// How long a connection with no call open is kept unless configured.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How often the server pings each connection unless configured.
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
/// How long a ping may go unanswered before the connection is closed,
/// unless configured.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Connections the kernel queues before the accept loop takes them, unless
/// configured (Linux caps it at `net.core.somaxconn`).
pub const DEFAULT_LISTEN_BACKLOG: u32 = 1024;
/// How long an accepted socket may be silent before the kernel sends its
/// first TCP keep-alive probe, and the gap between probes, by default.
pub const DEFAULT_TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// The `[connections]` section of a node's or gateway's configuration.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsFile {
    max_concurrent_streams: Option<u32>,
    max_watches_per_caller: Option<usize>,
    idle_timeout_secs: Option<u64>,
    keepalive_secs: Option<u64>,
    keepalive_timeout_secs: Option<u64>,
    listen_backlog: Option<u32>,
    tcp_keepalive_secs: Option<u64>,
}

impl ConnectionsFile {
    /// Whether `max_watches_per_caller` is set (a node, which serves no
    /// watch stream, refuses it).
    pub fn bounds_watches(&self) -> bool {
        self.max_watches_per_caller.is_some()
    }

    /// The validated limits, with `per_peer` connections per address.
    pub fn limits(&self, per_peer: usize) -> Result<ConnectionLimits, String> {
        let streams = self
            .max_concurrent_streams
            .unwrap_or(DEFAULT_MAX_CONCURRENT_STREAMS);
        if !(1..=10_000).contains(&streams) {
            return Err("connections.max_concurrent_streams must be 1 to 10000".into());
        }
        let watches = self
            .max_watches_per_caller
            .unwrap_or(DEFAULT_MAX_WATCHES_PER_CALLER);
        if !(1..=10_000).contains(&watches) {
            return Err("connections.max_watches_per_caller must be 1 to 10000".into());
        }
        let secs = |name: &str, value: Option<u64>, default: Duration, max: u64| match value {
            None => Ok(default),
            Some(s) if (1..=max).contains(&s) => Ok(Duration::from_secs(s)),
            Some(_) => Err(format!("connections.{name} must be 1 to {max}")),
        };
        let idle_timeout = secs(
            "idle_timeout_secs",
            self.idle_timeout_secs,
            DEFAULT_IDLE_TIMEOUT,
            86_400,
        )?;
        let keepalive_interval = secs(
            "keepalive_secs",
            self.keepalive_secs,
            DEFAULT_KEEPALIVE_INTERVAL,
            3600,
        )?;
        let keepalive_timeout = secs(
            "keepalive_timeout_secs",
            self.keepalive_timeout_secs,
            DEFAULT_KEEPALIVE_TIMEOUT,
            600,
        )?;
        let tcp_keepalive = secs(
            "tcp_keepalive_secs",
            self.tcp_keepalive_secs,
            DEFAULT_TCP_KEEPALIVE,
            7200,
        )?;
        let listen_backlog = self.listen_backlog.unwrap_or(DEFAULT_LISTEN_BACKLOG);
        if !(16..=65_535).contains(&listen_backlog) {
            return Err("connections.listen_backlog must be 16 to 65535".into());
        }
        Ok(ConnectionLimits {
            max_concurrent_streams: streams,
            max_watches_per_caller: watches,
            idle_timeout,
            keepalive_interval,
            keepalive_timeout,
            listen_backlog,
            tcp_keepalive,
            ..ConnectionLimits::per_peer(per_peer)
        })
    }
}

/// How long a client may take to complete the TLS handshake, by default.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections one remote address may hold at once, by default.
pub const DEFAULT_CONNECTIONS_PER_PEER: usize = 1024;

/// Bounds on what one client can hold of a server's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections one remote IP address may hold at once, whether still
    /// handshaking or open; more are closed as soon as they are accepted.
    pub per_peer: usize,
    /// How long a client may take to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// HTTP/2 streams one connection may have open at once, announced in
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`; more are reset (`REFUSED_STREAM`).
    pub max_concurrent_streams: u32,
    /// Open watch streams one caller (certificate) may hold at once.
    pub max_watches_per_caller: usize,
    /// How long a connection with no call open is kept.
    pub idle_timeout: Duration,
    /// How often the server pings each connection.
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed.
    pub keepalive_timeout: Duration,
    /// Connections the kernel queues before the accept loop takes them.
    pub listen_backlog: u32,
    /// TCP keep-alive of every accepted socket: the first probe after this
    /// much silence, then one every this long; the kernel drops the
    /// connection after [`crate::grpc::TCP_KEEPALIVE_PROBES`] unanswered.
    pub tcp_keepalive: Duration,
}

impl ConnectionLimits {
    /// The defaults, with `per_peer` connections per remote address.
    pub fn per_peer(per_peer: usize) -> Self {
        Self {
            per_peer,
            ..Self::default()
        }
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            per_peer: DEFAULT_CONNECTIONS_PER_PEER,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            max_watches_per_caller: DEFAULT_MAX_WATCHES_PER_CALLER,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            keepalive_interval: DEFAULT_KEEPALIVE_INTERVAL,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            listen_backlog: DEFAULT_LISTEN_BACKLOG,
            tcp_keepalive: DEFAULT_TCP_KEEPALIVE,
        }
    }
}

/// Open watch streams per caller (certificate serial).
#[derive(Debug, Default)]
struct Watches {
    open: Mutex<HashMap<Vec<u8>, usize>>,
}

/// One open watch stream's place in its caller's count.
#[derive(Debug)]
struct WatchSlot {
    watches: Arc<Watches>,
    serial: Vec<u8>,
}

impl Watches {
    fn take(self: &Arc<Self>, serial: &[u8], limit: usize) -> Option<WatchSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(serial.to_vec()).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(WatchSlot {
            watches: Arc::clone(self),
            serial: serial.to_vec(),
        })
    }
}

impl Drop for WatchSlot {
    fn drop(&mut self) {
        let mut open = self
            .watches
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.serial) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.serial);
            }
        }
    }
}

/// Tracks the calls of each connection (for its idle timeout) and bounds
/// the open watch streams (the paths in `watch_paths`) of each caller.
/// Wrap it outermost, so that every call is seen.
#[derive(Debug, Clone)]
pub struct CallLimitsLayer {
    watches: Arc<Watches>,
    watch_paths: &'static [&'static str],
    per_caller: usize,
}

impl CallLimitsLayer {
    /// At most `per_caller` open calls to `watch_paths` per certificate.
    pub fn new(watch_paths: &'static [&'static str], per_caller: usize) -> Self {
        Self {
            watches: Arc::default(),
            watch_paths,
            per_caller,
        }
    }
}

impl<S> Layer<S> for CallLimitsLayer {
    type Service = CallLimits<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CallLimits {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`CallLimitsLayer`] builds.
#[derive(Debug, Clone)]
pub struct CallLimits<S> {
    inner: S,
    layer: CallLimitsLayer,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> Service<http::Request<B>> for CallLimits<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    R: Send + 'static,
{
    type Response = http::Response<LimitedBody<R>>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let info = request.extensions().get::<PeerConnectInfo>();
        let call = info.map(|i| i.calls().begin());
        let mut watch = None;
        if self.layer.watch_paths.contains(&request.uri().path())
            && let Some(Ok(peer)) = info.map(PeerConnectInfo::peer)
        {
            match self.layer.watches.take(&peer.serial, self.layer.per_caller) {
                Some(slot) => watch = Some(slot),
                None => {
                    let status = tonic::Status::resource_exhausted(format!(
                        "this caller already holds {} open watch streams, the most it may \
                         (connections.max_watches_per_caller): close one first",
                        self.layer.per_caller
                    ));
                    return Box::pin(std::future::ready(Ok(status.into_http())));
                }
            }
        }
        let mut ready = take_ready(&mut self.inner);
        Box::pin(async move {
            let response = ready.call(request).await?;
            Ok(response.map(|body| LimitedBody {
                inner: Some(Box::pin(body)),
                _call: call,
                _watch: watch,
            }))
        })
    }
}

/// A response body that holds its call's place (in its connection's open
/// calls, and in its caller's watch streams) until it is dropped: when the
/// stream ends or is reset.
pub struct LimitedBody<B> {
    inner: Option<Pin<Box<B>>>,
    _call: Option<CallGuard>,
    _watch: Option<WatchSlot>,
}

impl<B> Default for LimitedBody<B> {
    fn default() -> Self {
        Self {
            inner: None,
            _call: None,
            _watch: None,
        }
    }
}

impl<B> std::fmt::Debug for LimitedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitedBody").finish_non_exhaustive()
    }
}

impl<B: Body> Body for LimitedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match &mut self.get_mut().inner {
            Some(body) => body.as_mut().poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

/// Why a connection was refused, as the counter labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RefusalLabels {
    /// `tls` (the handshake failed: no or a bad certificate, not TLS at
    /// all), `timeout` (not done in time) or `per_peer` (the address holds
    /// as many connections as it may).
    pub reason: &'static str,
}

/// Lines about refused connections logged per [`LOG_WINDOW`] at most; the
/// rest are counted, and their number logged once the window is over.
pub const LOG_BURST: u32 = 10;
/// See [`LOG_BURST`].
pub const LOG_WINDOW: Duration = Duration::from_secs(60);

/// How many lines about refused connections may still be written in the
/// current window.
#[derive(Debug)]
pub struct LogBudget {
    window_start: Instant,
    logged: u32,
    suppressed: u64,
}

/// What to log about one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogDecision {
    /// Whether to log this refusal.
    pub log: bool,
    /// Refusals not logged in the window that just ended, to report once.
    pub suppressed_before: u64,
}

impl LogBudget {
    /// A budget whose first window starts at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            window_start: now,
            logged: 0,
            suppressed: 0,
        }
    }

    /// Spends one line at `now`, if the window has one left.
    pub fn spend(&mut self, now: Instant) -> LogDecision {
        let mut suppressed_before = 0;
        if now.saturating_duration_since(self.window_start) >= LOG_WINDOW {
            suppressed_before = std::mem::take(&mut self.suppressed);
            self.window_start = now;
            self.logged = 0;
        }
        let log = self.logged < LOG_BURST;
        if log {
            self.logged += 1;
        } else {
            self.suppressed += 1;
        }
        LogDecision {
            log,
            suppressed_before,
        }
    }
}

/// The reasons a connection is refused before its first call.
pub const REFUSAL_REASONS: [&str; 3] = ["tls", "timeout", "per_peer"];

/// Counts refused connections (`tessera_connections_refused_total`) and
/// logs them, at most [`LOG_BURST`] lines a minute.
#[derive(Debug, Clone)]
pub struct Refusals {
    counter: Family<RefusalLabels, Counter>,
    budget: Arc<Mutex<LogBudget>>,
}

impl Default for Refusals {
    fn default() -> Self {
        Self {
            counter: Family::default(),
            budget: Arc::new(Mutex::new(LogBudget::new(Instant::now()))),
        }
    }
}

impl Refusals {
    /// Refusals counted in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let refusals = Self::default();
        registry.register(
            "connections_refused",
            "Connections closed before their first call: TLS handshake refused (tls) or \
             timed out (timeout), or the address holds as many as it may (per_peer)",
            refusals.counter.clone(),
        );
        // Every reason exported from the start at 0, so that the series
        // exists before the first refusal and `rate()` counts that one.
        for reason in REFUSAL_REASONS {
            let _zero = refusals.counter.get_or_create(&RefusalLabels { reason });
        }
        refusals
    }

    /// Counts one refusal and logs it if the budget allows.
    pub(crate) fn refused(
        &self,
        reason: &'static str,
        peer: std::net::SocketAddr,
        error: &dyn std::fmt::Display,
    ) {
        self.refused_at(Instant::now(), reason, peer, error);
    }

    fn refused_at(
        &self,
        now: Instant,
        reason: &'static str,
        peer: std::net::SocketAddr,
        error: &dyn std::fmt::Display,
    ) {
        self.counter.get_or_create(&RefusalLabels { reason }).inc();
        let decision = self
            .budget
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .spend(now);
        if decision.suppressed_before > 0 {
            tracing::warn!(
                not_logged = decision.suppressed_before,
                "more connections were refused in the last minute than are logged; \
                 see tessera_connections_refused_total"
            );
        }
        if decision.log {
            tracing::info!(%peer, reason, error = %error, "connection refused");
        }
    }

    /// Refusals counted with `reason` so far.
    pub fn count(&self, reason: &'static str) -> u64 {
        self.counter.get_or_create(&RefusalLabels { reason }).get()
    }
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;
