//! Who may make which call, enforced before any handler runs: a tower layer
//! that takes the caller read from its certificate once per connection
//! ([`crate::connection`]), refuses one the current trust list revokes or
//! whose certificate has expired (on every call: either can happen while a
//! connection is open; [`end_at_expiry`] ends a caller's open streams at its
//! certificate's expiry), checks the
//! call against a service's one authorization table, and hands the caller's
//! [`PeerIdentity`] to the handler in the request's extensions.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tessera_core::{CheckedTrustList, CityCode, Identity, Role};
use tonic::Status;
use tower::{Layer, Service};

pub use crate::allowed::Allowed;
use crate::clock::unix_now;
use crate::connection::PeerConnectInfo;
use crate::peer::PeerIdentity;
use crate::ready::take_ready;
use crate::tls::TrustState;

/// One service's authorization table: every RPC (full gRPC path) and who may
/// call it, plus the standard health and reflection services
/// ([`crate::standard::ENTRIES`]) every server offers. A path missing from
/// both is refused.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// The entries.
    pub entries: &'static [(&'static str, Allowed)],
    /// The serving node's city, for [`Allowed::OperatorOfThisCity`].
    pub city: Option<CityCode>,
}

impl Table {
    /// Checks `peer` calling `method`.
    pub fn check(&self, method: &str, peer: &Identity) -> Result<(), Status> {
        let allowed = self
            .entries
            .iter()
            .chain(crate::standard::ENTRIES.iter())
            .find(|(m, _)| *m == method)
            .map(|(_, a)| *a)
            .ok_or_else(|| {
                Status::permission_denied(format!("{method} is not in the authorization table"))
            })?;
        let ok = match allowed {
            Allowed::Roles(roles) => roles.contains(&peer.role()),
            Allowed::OperatorOfThisCity => {
                peer.role() == Role::Operator && self.city.is_some() && peer.city() == self.city
            }
            Allowed::AnyEnrolled => true,
        };
        if ok {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "{peer} may not call {method}"
            )))
        }
    }
}

/// The full gRPC paths of every `rpc` of `service` in a `.proto` file's
/// text: what a service's table must list, for its tests.
pub fn rpcs_in_proto(proto: &str, service: &str) -> Vec<String> {
    let mut paths: Vec<String> = proto
        .lines()
        .filter_map(|l| l.trim().strip_prefix("rpc "))
        .filter_map(|l| l.split('(').next())
        .map(|name| format!("/tessera.v1.{service}/{}", name.trim()))
        .collect();
    paths.sort();
    paths
}

impl Table {
    /// `path` as the table (or the standard services) spells it, or
    /// `"unknown"`: a bounded set of values, for metrics labels.
    pub fn known_path(&self, path: &str) -> &'static str {
        self.entries
            .iter()
            .chain(crate::standard::ENTRIES.iter())
            .find(|(m, _)| *m == path)
            .map_or("unknown", |(m, _)| m)
    }

    /// The paths of the service's own RPCs, sorted (the standard services'
    /// are [`crate::standard::ENTRIES`]).
    pub fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self.entries.iter().map(|(m, _)| (*m).to_owned()).collect();
        paths.sort();
        paths
    }
}

/// Reads the caller from a request's connection info (put there by a server
/// fed by [`crate::grpc::incoming`]), refusing one the current trust list
/// revokes. A request without that info is refused.
pub fn peer_from_extensions(
    extensions: &http::Extensions,
    trust: &TrustState,
) -> Result<PeerIdentity, Status> {
    let info = extensions
        .get::<PeerConnectInfo>()
        .ok_or_else(|| Status::unauthenticated("no TLS connection"))?;
    let peer = info
        .peer()
        .map_err(|e| Status::unauthenticated(e.to_string()))?;
    if let Some(list) = trust.current()
        && let Some(status) = refused_by(&list, peer)
    {
        return Err(status);
    }
    if expired(peer) {
        return Err(expired_status());
    }
    Ok(peer.clone())
}

/// Why `list` refuses a caller, as the status its call gets: its
/// certificate revoked ("client certificate has been revoked"), or issued by
/// an issuing CA the list lists REVOKED or does not list ("client
/// certificate issued by revoked issuing CA <serial>"). For a caller
/// admitted earlier too, on a long-lived stream.
pub fn refused_by(list: &CheckedTrustList, peer: &PeerIdentity) -> Option<Status> {
    if list.revokes(&peer.serial, &peer.key_id) {
        return Some(Status::permission_denied(
            "client certificate has been revoked",
        ));
    }
    let issuer = peer.issuer.as_ref()?;
    list.issuer_refusal(&issuer.key_id, &issuer.serial)
        .map(|refusal| Status::permission_denied(format!("client certificate {refusal}")))
}

/// Whether the caller's certificate has expired (it was valid at the
/// handshake; the connection may outlive it).
pub fn expired(peer: &PeerIdentity) -> bool {
    unix_now() > peer.not_after
}

fn expired_status() -> Status {
    Status::unauthenticated("client certificate has expired")
}

/// Ends `stream` with `UNAUTHENTICATED` ("client certificate has expired")
/// once `peer`'s certificate expires, as a revocation ends it: a long-lived
/// stream must not outlive the certificate it was opened with.
pub fn end_at_expiry<S>(stream: S, peer: &PeerIdentity) -> EndAtExpiry<S> {
    EndAtExpiry {
        inner: stream,
        not_after: peer.not_after,
        sleep: Box::pin(tokio::time::sleep(until_expiry(peer.not_after))),
        ended: false,
    }
}

/// The time left until a certificate valid to `not_after` has expired.
fn until_expiry(not_after: i64) -> Duration {
    let left = not_after.saturating_add(1).saturating_sub(unix_now());
    // Woken at least daily to look at the clock again, so a far expiry
    // needs no far timer.
    Duration::from_secs(u64::try_from(left).unwrap_or(0).min(86_400))
}

/// The stream [`end_at_expiry`] returns.
#[derive(Debug)]
pub struct EndAtExpiry<S> {
    inner: S,
    not_after: i64,
    sleep: Pin<Box<tokio::time::Sleep>>,
    ended: bool,
}

impl<S, T> tokio_stream::Stream for EndAtExpiry<S>
where
    S: tokio_stream::Stream<Item = Result<T, Status>> + Unpin,
{
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        while self.sleep.as_mut().poll(cx).is_ready() {
            if unix_now() > self.not_after {
                self.ended = true;
                return Poll::Ready(Some(Err(expired_status())));
            }
            let next = tokio::time::Instant::now()
                + until_expiry(self.not_after).max(Duration::from_millis(100));
            self.sleep.as_mut().reset(next);
        }
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

/// The layer: wrap a service's routes with it.
#[derive(Debug, Clone)]
pub struct AuthzLayer {
    trust: Arc<TrustState>,
    table: Table,
}

impl AuthzLayer {
    /// Enforces `table` with revocation by `trust`.
    pub fn new(trust: Arc<TrustState>, table: Table) -> Self {
        Self { trust, table }
    }
}

impl<S> Layer<S> for AuthzLayer {
    type Service = Authz<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Authz {
            inner,
            trust: Arc::clone(&self.trust),
            table: self.table,
        }
    }
}

/// The service the layer builds.
#[derive(Debug, Clone)]
pub struct Authz<S> {
    inner: S,
    trust: Arc<TrustState>,
    table: Table,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> Service<http::Request<B>> for Authz<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let admitted = peer_from_extensions(request.extensions(), &self.trust).and_then(|peer| {
            self.table
                .check(request.uri().path(), &peer.identity)
                .map(|()| peer)
        });
        match admitted {
            Ok(peer) => {
                request.extensions_mut().insert(peer);
                Box::pin(take_ready(&mut self.inner).call(request))
            }
            Err(status) => {
                tracing::info!(path = request.uri().path(), code = ?status.code(), "call refused");
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        }
    }
}

/// The caller of a request admitted by [`AuthzLayer`].
pub fn caller<T>(request: &tonic::Request<T>) -> Result<&PeerIdentity, Status> {
    request
        .extensions()
        .get::<PeerIdentity>()
        .ok_or_else(|| Status::unauthenticated("call did not pass authorization"))
}
