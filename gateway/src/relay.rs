//! The relay of status checks to city nodes, built from tower: per node a
//! reused mutual-TLS channel behind a concurrency limit, one retry of the
//! idempotent check, an overall deadline, and a circuit breaker; in front, a
//! short-lived cache of answers.
//!
//! The call to a node carries badge ids only: never who asked or where. The
//! cache holds (badge id → status) in memory for at most its lifetime and is
//! never written anywhere.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tessera_certs::tls::{self, TrustState};
use tessera_certs::{TlsIdentity, grpc};
use tessera_core::{BadgeId, CityCode};
use tessera_proto::v1 as pb;
use tessera_proto::v1::city_node_client::CityNodeClient;
use tonic::transport::Channel;
use tower::util::BoxCloneService;
use tower::{Service, ServiceBuilder, ServiceExt};

use crate::config::RelaySettings;

/// Why a node's status could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RelayError {
    /// The breaker is open after repeated failures.
    #[error("the node of {0} is failing; its circuit breaker is open")]
    CircuitOpen(CityCode),
    /// No answer within the deadline.
    #[error("the node of {0} did not answer in time")]
    Timeout(CityCode),
    /// The node answered with an error or the connection failed.
    #[error("the node of {city} failed: {message}")]
    Failed {
        /// The city.
        city: CityCode,
        /// What happened.
        message: String,
    },
    /// The endpoint or TLS set-up is unusable.
    #[error("cannot reach the node of {city}: {message}")]
    Unreachable {
        /// The city.
        city: CityCode,
        /// What is wrong.
        message: String,
    },
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type StatusService = BoxCloneService<Vec<u8>, pb::BadgeStatus, BoxError>;

/// Retries a failed check once (status checks are idempotent).
#[derive(Debug, Clone, Copy)]
struct RetryOnce(bool);

impl<Req: Clone, Res> tower::retry::Policy<Req, Res, BoxError> for RetryOnce {
    type Future = std::future::Ready<()>;

    fn retry(
        &mut self,
        _req: &mut Req,
        result: &mut Result<Res, BoxError>,
    ) -> Option<Self::Future> {
        if result.is_err() && self.0 {
            self.0 = false;
            Some(std::future::ready(()))
        } else {
            None
        }
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        Some(req.clone())
    }
}

/// One status call on a node's channel.
#[derive(Clone)]
struct CheckStatus {
    client: CityNodeClient<Channel>,
}

impl Service<Vec<u8>> for CheckStatus {
    type Response = pb::BadgeStatus;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<pb::BadgeStatus, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, badge_id: Vec<u8>) -> Self::Future {
        let mut client = self.client.clone();
        Box::pin(async move {
            let response = client
                .check_status(pb::CheckStatusRequest {
                    badge_ids: vec![badge_id],
                })
                .await?
                .into_inner();
            let status = response
                .statuses
                .first()
                .copied()
                .ok_or("node sent no status")?;
            Ok(pb::BadgeStatus::try_from(status).unwrap_or(pb::BadgeStatus::Unspecified))
        })
    }
}

#[derive(Debug)]
enum BreakerState {
    Closed {
        failures: u32,
    },
    /// Refusing calls until `until`; the first call after it is a probe,
    /// which moves `until` on again, so a probe that never reports back
    /// (its caller went away) cannot leave the breaker stuck.
    Open {
        until: Instant,
    },
}

/// A circuit breaker: after `threshold` consecutive failures it refuses calls
/// for `open_for`, then lets one probe through per `open_for`; a success
/// closes it.
#[derive(Debug)]
pub struct Breaker {
    state: Mutex<BreakerState>,
    threshold: u32,
    open_for: Duration,
}

impl Breaker {
    fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            state: Mutex::new(BreakerState::Closed { failures: 0 }),
            threshold,
            open_for,
        }
    }

    fn allow(&self) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return true;
        };
        match *state {
            BreakerState::Closed { .. } => true,
            BreakerState::Open { until } if Instant::now() >= until => {
                *state = BreakerState::Open {
                    until: Instant::now() + self.open_for,
                };
                true
            }
            BreakerState::Open { .. } => false,
        }
    }

    fn record(&self, ok: bool) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        *state = match (&*state, ok) {
            (_, true) => BreakerState::Closed { failures: 0 },
            (BreakerState::Closed { failures }, false) if failures + 1 < self.threshold => {
                BreakerState::Closed {
                    failures: failures + 1,
                }
            }
            _ => BreakerState::Open {
                until: Instant::now() + self.open_for,
            },
        };
    }

    /// Whether the breaker is open (refusing all but a periodic probe).
    pub fn is_open(&self) -> bool {
        self.state
            .lock()
            .map(|s| matches!(*s, BreakerState::Open { .. }))
            .unwrap_or(false)
    }
}

struct Link {
    endpoint: String,
    /// The trust list the connection was made under: a new list (which may
    /// revoke the node's certificate) means a new handshake.
    sequence: u64,
    service: StatusService,
    breaker: Arc<Breaker>,
}

/// Status answers kept for a short time: expired answers are swept out at
/// least once per lifetime, so none outlives two lifetimes in memory.
struct Cache {
    ttl: Duration,
    /// The answers with when each arrived, and when expired ones were last
    /// swept out.
    entries: Mutex<(Answers, Instant)>,
}

/// Keyed by issuing city and badge id: a badge id is chosen by its issuer, so
/// one city's answer must never stand for another's badge.
type Answers = HashMap<(CityCode, BadgeId), (pb::BadgeStatus, Instant)>;

impl Cache {
    fn get(&self, id: &(CityCode, BadgeId)) -> Option<pb::BadgeStatus> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        entries
            .0
            .get(id)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(s, _)| *s)
    }

    fn put(&self, id: (CityCode, BadgeId), status: pb::BadgeStatus) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut guard) = self.entries.lock() {
            let (entries, swept) = &mut *guard;
            if swept.elapsed() >= self.ttl {
                let ttl = self.ttl;
                entries.retain(|_, (_, at)| at.elapsed() < ttl);
                *swept = Instant::now();
            }
            entries.insert(id, (status, Instant::now()));
        }
    }
}

/// The relay.
pub struct Relay {
    settings: RelaySettings,
    identity: TlsIdentity,
    trust: Arc<TrustState>,
    links: Mutex<HashMap<CityCode, Arc<Mutex<Link>>>>,
    cache: Cache,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// A relay presenting the gateway's `identity` to nodes.
    pub fn new(settings: RelaySettings, identity: TlsIdentity, trust: Arc<TrustState>) -> Self {
        Self {
            cache: Cache {
                ttl: settings.cache_ttl,
                entries: Mutex::new((HashMap::new(), Instant::now())),
            },
            settings,
            identity,
            trust,
            links: Mutex::new(HashMap::new()),
        }
    }

    fn link(
        &self,
        city: CityCode,
        endpoint: &str,
    ) -> Result<(StatusService, Arc<Breaker>), RelayError> {
        let unreachable = |message: String| RelayError::Unreachable { city, message };
        let sequence = self.trust.current().map_or(0, |l| l.sequence());
        let mut links = self
            .links
            .lock()
            .map_err(|_| unreachable("relay state poisoned".into()))?;
        let mut kept_breaker = None;
        if let Some(link) = links.get(&city) {
            let link = link
                .lock()
                .map_err(|_| unreachable("relay state poisoned".into()))?;
            kept_breaker = Some(Arc::clone(&link.breaker));
            if link.endpoint == endpoint && link.sequence == sequence {
                return Ok((link.service.clone(), Arc::clone(&link.breaker)));
            }
        }
        let config = tls::client_config_for_city(&self.identity, Arc::clone(&self.trust), city)
            .map_err(|e| unreachable(e.to_string()))?;
        let channel = grpc::channel(endpoint, config).map_err(|e| unreachable(e.to_string()))?;
        let service = ServiceBuilder::new()
            .timeout(self.settings.timeout)
            .retry(RetryOnce(true))
            .concurrency_limit(self.settings.concurrency_per_node)
            .service(CheckStatus {
                client: CityNodeClient::new(channel),
            });
        let service = BoxCloneService::new(service);
        let breaker = kept_breaker.unwrap_or_else(|| {
            Arc::new(Breaker::new(
                self.settings.breaker_failures,
                self.settings.breaker_open,
            ))
        });
        links.insert(
            city,
            Arc::new(Mutex::new(Link {
                endpoint: endpoint.to_owned(),
                sequence,
                service: service.clone(),
                breaker: Arc::clone(&breaker),
            })),
        );
        Ok((service, breaker))
    }

    /// The breaker of a city's node, if the relay has talked to it.
    pub fn breaker(&self, city: CityCode) -> Option<Arc<Breaker>> {
        let links = self.links.lock().ok()?;
        let link = links.get(&city)?.lock().ok()?;
        Some(Arc::clone(&link.breaker))
    }

    /// The status of one badge at its issuing city's node.
    pub async fn status(
        &self,
        city: CityCode,
        endpoint: &str,
        badge: BadgeId,
    ) -> Result<pb::BadgeStatus, RelayError> {
        if let Some(status) = self.cache.get(&(city, badge)) {
            return Ok(status);
        }
        let (service, breaker) = self.link(city, endpoint)?;
        if !breaker.allow() {
            return Err(RelayError::CircuitOpen(city));
        }
        let result = service.oneshot(badge.as_bytes().to_vec()).await;
        breaker.record(result.is_ok());
        match result {
            Ok(status) => {
                self.cache.put((city, badge), status);
                Ok(status)
            }
            Err(e) if e.is::<tower::timeout::error::Elapsed>() => Err(RelayError::Timeout(city)),
            Err(e) => Err(RelayError::Failed {
                city,
                message: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_probes_and_is_never_stuck_by_a_lost_probe() {
        let b = Breaker::new(2, Duration::from_millis(40));
        assert!(b.allow());
        b.record(false);
        assert!(!b.is_open());
        b.record(false);
        assert!(b.is_open() && !b.allow());
        std::thread::sleep(Duration::from_millis(50));
        assert!(b.allow(), "no probe after the open period");
        // The probe's caller goes away without reporting back.
        assert!(!b.allow(), "a second call got through during the probe");
        std::thread::sleep(Duration::from_millis(50));
        assert!(b.allow(), "a lost probe left the breaker stuck");
        b.record(true);
        assert!(!b.is_open() && b.allow());
    }
}
