//! Prometheus metrics of a node or a gateway: a registry each server fills
//! with its own families, a tower layer that counts and times every gRPC
//! call by method and outcome, and a plain-HTTP endpoint (`GET /metrics`)
//! in the Prometheus text format.
//!
//! No label ever holds a badge id, a pseudonym, a name or a caller: the
//! method label only takes the paths of the server's authorization table
//! (anything else is `unknown`, so a client sending random paths cannot
//! grow the label set), and servers label by city code at most.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body_util::Full;
use hyper::body::{Body, Bytes, Frame, SizeHint};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tower::{Layer, Service};

use crate::authz::Table;
use crate::clock::unix_now;
use crate::tls::TrustState;

/// Labels of the RPC counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RpcLabels {
    /// The full gRPC path, or `unknown`.
    pub method: &'static str,
    /// The gRPC status code's name (`OK`, `PERMISSION_DENIED`, ...).
    pub code: &'static str,
}

/// Labels of the RPC latency histogram.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct MethodLabels {
    /// The full gRPC path, or `unknown`.
    pub method: &'static str,
}

/// Something that brings gauges up to date just before a scrape (trust-list
/// age, breaker states): cheap, and never blocking.
pub type Refresh = Box<dyn Fn() + Send + Sync>;

/// A server's metrics: its registry and the refreshers run before encoding.
pub struct Metrics {
    registry: Registry,
    /// The families under their standard names, with no `tessera_` prefix:
    /// `process_*`.
    unprefixed: Registry,
    refreshers: Vec<Refresh>,
    rpc_calls: Family<RpcLabels, Counter>,
    rpc_seconds: Family<MethodLabels, Histogram>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with the RPC families (`tessera_rpc_calls_total`,
    /// `tessera_rpc_duration_seconds`), `tessera_build_info` and the
    /// standard `process_*` families in it.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tessera");
        let rpc_calls = Family::<RpcLabels, Counter>::default();
        registry.register(
            "rpc_calls",
            "gRPC calls answered, by method and status code",
            rpc_calls.clone(),
        );
        let rpc_seconds = Family::<MethodLabels, Histogram>::new_with_constructor(|| {
            // 100 µs to ~13 s.
            Histogram::new(exponential_buckets(0.0001, 2.0, 18))
        });
        registry.register(
            "rpc_duration_seconds",
            "Time from a gRPC call's arrival to its response headers, by method",
            rpc_seconds.clone(),
        );
        registry.register(
            "build",
            "The version and commit this server was built from",
            prometheus_client::metrics::info::Info::new(vec![
                ("version", crate::build::VERSION),
                ("commit", crate::build::COMMIT),
            ]),
        );
        let mut unprefixed = Registry::default();
        unprefixed.register_collector(Box::new(crate::process_metrics::ProcessCollector));
        Self {
            registry,
            unprefixed,
            refreshers: vec![],
            rpc_calls,
            rpc_seconds,
        }
    }

    /// The registry, for a server to add its own families.
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Runs `refresh` before every scrape.
    pub fn on_scrape(&mut self, refresh: Refresh) {
        self.refreshers.push(refresh);
    }

    /// The text exposition of every metric, refreshed.
    pub fn encode(&self) -> String {
        for refresh in &self.refreshers {
            refresh();
        }
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode_registry(&mut text, &self.registry);
        let _ = encode_registry(&mut text, &self.unprefixed);
        let _ = encode_eof(&mut text);
        text
    }

    /// The layer that counts and times calls to the RPCs of `table` (and the
    /// standard services).
    pub fn layer(self: &Arc<Self>, table: Table) -> RpcMetricsLayer {
        RpcMetricsLayer {
            metrics: Arc::clone(self),
            table,
        }
    }

    fn count(&self, method: &'static str, code: &'static str) {
        self.rpc_calls
            .get_or_create(&RpcLabels { method, code })
            .inc();
    }

    fn time(&self, method: &'static str, started: Instant) {
        self.rpc_seconds
            .get_or_create(&MethodLabels { method })
            .observe(started.elapsed().as_secs_f64());
    }
}

/// The name of a gRPC status code as the `grpc-status` header gives it.
fn code_name(header: Option<&http::HeaderValue>) -> &'static str {
    let code = header
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0);
    match tonic::Code::from_i32(code) {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "CANCELLED",
        tonic::Code::Unknown => "UNKNOWN",
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::AlreadyExists => "ALREADY_EXISTS",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
        tonic::Code::Aborted => "ABORTED",
        tonic::Code::OutOfRange => "OUT_OF_RANGE",
        tonic::Code::Unimplemented => "UNIMPLEMENTED",
        tonic::Code::Internal => "INTERNAL",
        tonic::Code::Unavailable => "UNAVAILABLE",
        tonic::Code::DataLoss => "DATA_LOSS",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Counts and times every call; wrap it outside the authorization layer so
/// that refused calls are counted too.
#[derive(Debug, Clone)]
pub struct RpcMetricsLayer {
    metrics: Arc<Metrics>,
    table: Table,
}

impl<S> Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics {
            inner,
            metrics: Arc::clone(&self.metrics),
            table: self.table,
        }
    }
}

/// The service [`RpcMetricsLayer`] builds.
#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
    table: Table,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> Service<http::Request<B>> for RpcMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    R: Body + Send + 'static,
{
    type Response = http::Response<MeteredBody<R>>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = self.table.known_path(request.uri().path());
        let metrics = Arc::clone(&self.metrics);
        let started = Instant::now();
        let mut ready = crate::ready::take_ready(&mut self.inner);
        Box::pin(async move {
            let result = ready.call(request).await;
            metrics.time(method, started);
            match result {
                Ok(response) => {
                    // A refused call's status is in the headers (a
                    // "trailers-only" response); any other call's comes in
                    // the trailers at the end of its body.
                    let pending = match response.headers().get("grpc-status") {
                        Some(status) => {
                            metrics.count(method, code_name(Some(status)));
                            None
                        }
                        None => Some(Pending { metrics, method }),
                    };
                    Ok(response.map(|body| MeteredBody {
                        inner: Box::pin(body),
                        pending,
                    }))
                }
                Err(e) => {
                    metrics.count(method, "UNKNOWN");
                    Err(e)
                }
            }
        })
    }
}

/// A call not counted yet: its status is still to come in its trailers.
struct Pending {
    metrics: Arc<Metrics>,
    method: &'static str,
}

/// A response body that counts its call with the status its trailers
/// carry (a stream that ends with an error after some answers included);
/// `CANCELLED` if it is dropped before they come (the client reset the
/// stream), `OK` if it ends without trailers.
pub struct MeteredBody<B: Body> {
    inner: Pin<Box<B>>,
    pending: Option<Pending>,
}

impl<B: Body> MeteredBody<B> {
    fn counted(&mut self, code: &'static str) {
        if let Some(p) = self.pending.take() {
            p.metrics.count(p.method, code);
        }
    }
}

impl<B: Body> Drop for MeteredBody<B> {
    fn drop(&mut self) {
        // A body that was empty from the start is never polled.
        let code = if self.inner.is_end_stream() {
            "OK"
        } else {
            "CANCELLED"
        };
        self.counted(code);
    }
}

impl<B: Body> std::fmt::Debug for MeteredBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeteredBody").finish_non_exhaustive()
    }
}

impl<B: Body> Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        let frame = this.inner.as_mut().poll_frame(cx);
        match &frame {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(trailers) = f.trailers_ref() {
                    this.counted(code_name(trailers.get("grpc-status")));
                }
            }
            Poll::Ready(Some(Err(_))) => this.counted("UNKNOWN"),
            Poll::Ready(None) => this.counted("OK"),
            Poll::Pending => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `GET /metrics` on `listener`, if there is one, for as long as the
/// server it sits beside runs (this future never ends by itself).
pub async fn serve_while_running(listener: Option<TcpListener>, metrics: Arc<Metrics>) {
    match listener {
        Some(listener) => serve(listener, metrics, std::future::pending()).await,
        None => std::future::pending().await,
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves. Anything
/// else gets 404. Plain HTTP: bind it to an address only the monitoring
/// network reaches.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send,
) {
    tokio::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
                let metrics = Arc::clone(&metrics);
                async move {
                    if request.uri().path() == "/metrics" && request.method() == hyper::Method::GET
                    {
                        hyper::Response::builder()
                            .header(
                                "content-type",
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )
                            .body(Full::new(Bytes::from(metrics.encode())))
                    } else {
                        hyper::Response::builder()
                            .status(404)
                            .body(Full::new(Bytes::from_static(b"only GET /metrics here\n")))
                    }
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(30), conn).await;
        });
    }
}

/// A certificate label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CertificateLabel {
    /// Which certificate: `tls`, `badge_signer`.
    pub certificate: &'static str,
}

/// How long before a certificate expires its server starts warning.
pub const EXPIRY_WARNING_SECS: i64 = 30 * 86_400;

/// The not-after of the certificate a server uses now: read afresh at every
/// scrape and every warning, so a renewed certificate (see
/// [`crate::reload`]) replaces the old one's figures at once.
pub type NotAfter = Arc<dyn Fn() -> i64 + Send + Sync>;

/// A certificate to watch: its label and where to read its expiry.
pub type Expiry = (&'static str, NotAfter);

impl Metrics {
    /// `tessera_trust_list_sequence` and `tessera_trust_list_age_seconds`
    /// (since the list in force was issued), read from `trust` at each
    /// scrape. Both are absent while no list is in force, so that "no list"
    /// never reads as a fresh list 0 (alert on `absent(...)`).
    pub fn watch_trust_list(&mut self, trust: Arc<TrustState>) {
        self.registry
            .register_collector(Box::new(TrustListCollector { trust }));
    }

    /// `tessera_certificate_expiry_seconds{certificate}`: seconds until each
    /// of `certificates` (name, not-after of the one in use) expires, at
    /// each scrape. Alert on it going under 30 days; the server also logs a
    /// warning then ([`warn_before_expiry`]).
    pub fn watch_expiry(&mut self, certificates: Vec<Expiry>) {
        let family = Family::<CertificateLabel, Gauge>::default();
        self.registry.register(
            "certificate_expiry_seconds",
            "Seconds until each certificate of this server expires",
            family.clone(),
        );
        self.on_scrape(Box::new(move || {
            let now = unix_now();
            for (certificate, not_after) in &certificates {
                family
                    .get_or_create(&CertificateLabel { certificate })
                    .set(not_after().saturating_sub(now));
            }
        }));
    }
}

/// Logs a warning for each of `certificates` (name, not-after of the one in
/// use) within [`EXPIRY_WARNING_SECS`] of expiring, now and then once a day,
/// for as long as the server runs. A renewed certificate is read at the next
/// look, so its warnings stop.
pub async fn warn_before_expiry(certificates: Vec<Expiry>) {
    loop {
        let now = unix_now();
        for (certificate, not_after) in &certificates {
            let left = not_after().saturating_sub(now);
            if left <= 0 {
                tracing::error!(certificate, "certificate has expired: renew it now");
            } else if left <= EXPIRY_WARNING_SECS {
                tracing::warn!(
                    certificate,
                    days_left = left / 86_400,
                    "certificate expires within 30 days: renew it"
                );
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(86_400)).await;
    }
}

/// The `[metrics]` section of a node's or gateway's configuration.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsFile {
    /// Where to serve `GET /metrics` (plain HTTP), as IP:port.
    pub listen: String,
}

impl MetricsFile {
    /// The validated listen address.
    pub fn address(&self) -> Result<std::net::SocketAddr, String> {
        self.listen.parse().map_err(|_| {
            format!(
                "metrics.listen: {:?} is not an IP:port address",
                self.listen
            )
        })
    }
}

/// The trust list in force, read at each scrape.
#[derive(Debug)]
struct TrustListCollector {
    trust: Arc<TrustState>,
}

impl prometheus_client::collector::Collector for TrustListCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::gauge::ConstGauge;
        let Some(list) = self.trust.current() else {
            return Ok(());
        };
        for (name, help, value) in [
            (
                "trust_list_sequence",
                "Sequence number of the trust list in force",
                i64::try_from(list.sequence()).unwrap_or(i64::MAX),
            ),
            (
                "trust_list_age_seconds",
                "Seconds since the trust list in force was issued",
                unix_now().saturating_sub(list.issued_at()),
            ),
        ] {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::convert::Infallible;

    use http_body_util::{BodyExt, StreamBody};
    use tower::ServiceExt;

    use super::*;
    use crate::authz::Allowed;

    const PATH: &str = "/test.v1.Test/Stream";
    static ENTRIES: [(&str, Allowed); 1] = [(PATH, Allowed::AnyEnrolled)];

    type Frames =
        StreamBody<tokio_stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

    /// A call through the metrics layer whose handler answers with
    /// `headers` (a `grpc-status`, or none) and a body of `frames`.
    async fn answer(
        metrics: &Arc<Metrics>,
        status_in_headers: Option<i32>,
        frames: Vec<Result<Frame<Bytes>, Infallible>>,
    ) -> http::Response<MeteredBody<Frames>> {
        let table = Table {
            entries: &ENTRIES,
            city: None,
        };
        let frames = Arc::new(std::sync::Mutex::new(Some(frames)));
        let handler = tower::service_fn(move |_: http::Request<()>| {
            let frames = frames.lock().unwrap().take().unwrap();
            async move {
                let mut response = http::Response::new(StreamBody::new(tokio_stream::iter(frames)));
                if let Some(code) = status_in_headers {
                    response
                        .headers_mut()
                        .insert("grpc-status", http::HeaderValue::from(code));
                }
                Ok::<_, Infallible>(response)
            }
        });
        metrics
            .layer(table)
            .layer(handler)
            .oneshot(http::Request::builder().uri(PATH).body(()).unwrap())
            .await
            .unwrap()
    }

    fn count(metrics: &Metrics, code: &str) -> bool {
        metrics.encode().contains(&format!(
            r#"tessera_rpc_calls_total{{method="{PATH}",code="{code}"}} 1"#
        ))
    }

    fn trailers(code: i32) -> Frame<Bytes> {
        let mut map = http::HeaderMap::new();
        map.insert("grpc-status", http::HeaderValue::from(code));
        Frame::trailers(map)
    }

    #[tokio::test]
    async fn a_stream_that_ends_with_an_error_is_counted_with_its_code() {
        let metrics = Arc::new(Metrics::new());
        let frames = vec![
            Ok(Frame::data(Bytes::from_static(b"verdict"))),
            Ok(trailers(3)),
        ];
        let response = answer(&metrics, None, frames).await;
        // Not counted before its status is known.
        assert!(
            !metrics
                .encode()
                .contains(r#"method="/test.v1.Test/Stream",code"#)
        );
        response.into_body().collect().await.unwrap();
        assert!(count(&metrics, "INVALID_ARGUMENT"), "{}", metrics.encode());
        assert!(!count(&metrics, "OK"), "{}", metrics.encode());
    }

    #[tokio::test]
    async fn a_stream_that_ends_well_is_ok_and_one_dropped_half_way_cancelled() {
        let metrics = Arc::new(Metrics::new());
        let frames = || vec![Ok(Frame::data(Bytes::from_static(b"a"))), Ok(trailers(0))];
        let response = answer(&metrics, None, frames()).await;
        response.into_body().collect().await.unwrap();
        assert!(count(&metrics, "OK"), "{}", metrics.encode());
        let mut body = answer(&metrics, None, frames()).await.into_body();
        body.frame().await.unwrap().unwrap();
        drop(body);
        assert!(count(&metrics, "CANCELLED"), "{}", metrics.encode());
    }

    #[tokio::test]
    async fn a_refusal_in_the_headers_is_counted_at_once() {
        let metrics = Arc::new(Metrics::new());
        let response = answer(&metrics, Some(7), vec![]).await;
        assert!(count(&metrics, "PERMISSION_DENIED"), "{}", metrics.encode());
        drop(response);
        assert!(!count(&metrics, "CANCELLED"), "{}", metrics.encode());
    }
}
