//! The relay of status checks to city nodes, built from tower: per node a
//! reused mutual-TLS channel, one retry of the idempotent check and an
//! overall deadline, behind a circuit breaker; in front, a short-lived cache
//! of answers. Checks of one city that wait at the same time share one
//! `CheckStatus` call: a node gets at most `concurrency_per_node` calls at
//! once, and whatever queued meanwhile goes out together in the next.
//!
//! The call to a node carries badge ids only: never who asked or where. The
//! cache holds (badge id → status) in memory for at most its lifetime and is
//! never written anywhere.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use tessera_core::{BadgeId, CityCode};
use tessera_proto::v1 as pb;
use tessera_proto::v1::city_node_client::CityNodeClient;
use tessera_runtime::tls::{self, TrustState};
use tessera_runtime::{TlsIdentity, grpc};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tonic::transport::Channel;
use tower::util::BoxCloneService;
use tower::{Service, ServiceBuilder, ServiceExt};

use crate::config::RelaySettings;

/// Badge ids in one `CheckStatus` call at most (a node accepts 1,000).
pub const MAX_IDS_PER_CALL: usize = 500;

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
type StatusService = BoxCloneService<Vec<Vec<u8>>, Vec<pb::BadgeStatus>, BoxError>;

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

/// One status call on a node's channel, for several badge ids.
#[derive(Clone)]
struct CheckStatus {
    client: CityNodeClient<Channel>,
}

impl Service<Vec<Vec<u8>>> for CheckStatus {
    type Response = Vec<pb::BadgeStatus>;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<Vec<pb::BadgeStatus>, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, badge_ids: Vec<Vec<u8>>) -> Self::Future {
        let mut client = self.client.clone();
        Box::pin(async move {
            let asked = badge_ids.len();
            let response = client
                .check_status(pb::CheckStatusRequest { badge_ids })
                .await?
                .into_inner();
            if response.statuses.len() != asked {
                return Err(format!(
                    "node sent {} statuses for {asked} badge ids",
                    response.statuses.len()
                )
                .into());
            }
            Ok(response
                .statuses
                .into_iter()
                .map(|s| pb::BadgeStatus::try_from(s).unwrap_or(pb::BadgeStatus::Unspecified))
                .collect())
        })
    }
}

/// A check waiting for its node's answer.
struct Waiting {
    badge: BadgeId,
    reply: oneshot::Sender<Result<pb::BadgeStatus, RelayError>>,
}

/// Sends the checks queued for one node: waits for a free call slot, takes
/// everything queued by then (up to [`MAX_IDS_PER_CALL`]) into one call.
/// Ends when the link is dropped and its queue is drained.
async fn send_queued(
    city: CityCode,
    mut queue: mpsc::Receiver<Waiting>,
    service: StatusService,
    slots: Arc<Semaphore>,
    breaker: Arc<Breaker>,
    stats: Arc<Counters>,
) {
    while let Some(first) = queue.recv().await {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        // A check whose caller has given up (its deadline passed while it
        // waited) is not sent: the node's time goes to checks still wanted.
        let mut batch = vec![first];
        batch.retain(|w| !w.reply.is_closed());
        while batch.len() < MAX_IDS_PER_CALL {
            match queue.try_recv() {
                Ok(w) if w.reply.is_closed() => {}
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        stats.calls.fetch_add(1, Ordering::Relaxed);
        stats.ids.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let service = service.clone();
        let breaker = Arc::clone(&breaker);
        tokio::spawn(async move {
            let ids = batch.iter().map(|w| w.badge.as_bytes().to_vec()).collect();
            let result = service.oneshot(ids).await;
            drop(slot);
            // The breaker counts the node's answers, not checks that ran out
            // of time waiting in the gateway's own queue.
            breaker.record(result.is_ok());
            match result {
                Ok(statuses) => {
                    for (w, status) in batch.into_iter().zip(statuses) {
                        let _ = w.reply.send(Ok(status));
                    }
                }
                Err(e) => {
                    let error = if e.is::<tower::timeout::error::Elapsed>() {
                        RelayError::Timeout(city)
                    } else {
                        RelayError::Failed {
                            city,
                            message: e.to_string(),
                        }
                    };
                    for w in batch {
                        let _ = w.reply.send(Err(error.clone()));
                    }
                }
            }
        });
    }
}

/// What the relay did, in aggregate (never per badge).
#[derive(Debug, Default)]
struct Counters {
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    calls: AtomicU64,
    ids: AtomicU64,
}

/// What the relay did with one city's node (aggregate, never per badge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CityRelay {
    /// The city.
    pub city: CityCode,
    /// `CheckStatus` calls the node answered.
    pub answered: u64,
    /// Calls that failed (error, timeout, connection).
    pub failed: u64,
    /// Checks refused without a call while the breaker was open.
    pub refused: u64,
    /// Whether the breaker is open now.
    pub open: bool,
}

/// A snapshot of the relay's aggregate counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Status checks answered from the cache.
    pub cache_hits: u64,
    /// Status checks the cache could not answer.
    pub cache_misses: u64,
    /// `CheckStatus` calls sent to nodes (a retry is not counted again).
    pub calls: u64,
    /// Badge ids those calls carried.
    pub ids: u64,
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
    /// Calls the node answered, calls that failed, checks refused while
    /// open: for metrics.
    answered: AtomicU64,
    failed: AtomicU64,
    refused: AtomicU64,
}

impl Breaker {
    fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            state: Mutex::new(BreakerState::Closed { failures: 0 }),
            threshold,
            open_for,
            answered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
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
            BreakerState::Open { .. } => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    fn record(&self, ok: bool) {
        if ok { &self.answered } else { &self.failed }.fetch_add(1, Ordering::Relaxed);
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
    /// Checks waiting to be sent to the node.
    queue: mpsc::Sender<Waiting>,
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
/// one city's answer must never stand for another's badge. Each answer keeps
/// the sequence of the trust list its node was trusted under: a newer list
/// may revoke that node, so its answers are not reused under one.
type Answers = HashMap<(CityCode, BadgeId), (pb::BadgeStatus, Instant, u64)>;

impl Cache {
    fn get(&self, id: &(CityCode, BadgeId), sequence: u64) -> Option<pb::BadgeStatus> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        entries
            .0
            .get(id)
            .filter(|(_, at, under)| at.elapsed() < self.ttl && *under == sequence)
            .map(|(s, _, _)| *s)
    }

    fn put(&self, id: (CityCode, BadgeId), status: pb::BadgeStatus, sequence: u64) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut guard) = self.entries.lock() {
            let (entries, swept) = &mut *guard;
            if swept.elapsed() >= self.ttl {
                let ttl = self.ttl;
                entries.retain(|_, (_, at, _)| at.elapsed() < ttl);
                *swept = Instant::now();
            }
            entries.insert(id, (status, Instant::now(), sequence));
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
    counters: Arc<Counters>,
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
            counters: Arc::default(),
        }
    }

    /// Whether status checks are relayed at all.
    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    /// The aggregate counters so far.
    pub fn stats(&self) -> RelayStats {
        let c = &self.counters;
        RelayStats {
            cache_hits: c.cache_hits.load(Ordering::Relaxed),
            cache_misses: c.cache_misses.load(Ordering::Relaxed),
            calls: c.calls.load(Ordering::Relaxed),
            ids: c.ids.load(Ordering::Relaxed),
        }
    }

    /// The queue and breaker of a city's node, and the sequence of the trust
    /// list its connection is verified under.
    fn link(
        &self,
        city: CityCode,
        endpoint: &str,
    ) -> Result<(mpsc::Sender<Waiting>, Arc<Breaker>, u64), RelayError> {
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
                return Ok((link.queue.clone(), Arc::clone(&link.breaker), sequence));
            }
        }
        let config = tls::client_config_for_city(&self.identity, Arc::clone(&self.trust), city)
            .map_err(|e| unreachable(e.to_string()))?;
        let channel = grpc::channel(endpoint, config).map_err(|e| unreachable(e.to_string()))?;
        let service = ServiceBuilder::new()
            .timeout(self.settings.timeout)
            .retry(RetryOnce(true))
            .service(CheckStatus {
                client: CityNodeClient::new(channel),
            });

        let breaker = kept_breaker.unwrap_or_else(|| {
            Arc::new(Breaker::new(
                self.settings.breaker_failures,
                self.settings.breaker_open,
            ))
        });
        let (queue, queued) = mpsc::channel(QUEUE_PER_NODE);
        tokio::spawn(send_queued(
            city,
            queued,
            BoxCloneService::new(service),
            Arc::new(Semaphore::new(self.settings.concurrency_per_node)),
            Arc::clone(&breaker),
            Arc::clone(&self.counters),
        ));
        links.insert(
            city,
            Arc::new(Mutex::new(Link {
                endpoint: endpoint.to_owned(),
                sequence,
                queue: queue.clone(),
                breaker: Arc::clone(&breaker),
            })),
        );
        Ok((queue, breaker, sequence))
    }

    /// Per city the relay has talked to: `CheckStatus` calls answered and
    /// failed, checks refused by an open breaker, and whether it is open.
    pub fn cities(&self) -> Vec<CityRelay> {
        let Ok(links) = self.links.lock() else {
            return vec![];
        };
        let mut cities: Vec<CityRelay> = links
            .iter()
            .filter_map(|(city, link)| {
                let b = Arc::clone(&link.lock().ok()?.breaker);
                Some(CityRelay {
                    city: *city,
                    answered: b.answered.load(Ordering::Relaxed),
                    failed: b.failed.load(Ordering::Relaxed),
                    refused: b.refused.load(Ordering::Relaxed),
                    open: b.is_open(),
                })
            })
            .collect();
        cities.sort_by_key(|c| c.city);
        cities
    }

    /// The breaker of a city's node, if the relay has talked to it.
    pub fn breaker(&self, city: CityCode) -> Option<Arc<Breaker>> {
        let links = self.links.lock().ok()?;
        let link = links.get(&city)?.lock().ok()?;
        Some(Arc::clone(&link.breaker))
    }

    /// The status of one badge at its issuing city's node, within the
    /// relay's deadline however long the node's queue.
    pub async fn status(
        &self,
        city: CityCode,
        endpoint: &str,
        badge: BadgeId,
    ) -> Result<pb::BadgeStatus, RelayError> {
        let in_force = self.trust.current().map_or(0, |l| l.sequence());
        if let Some(status) = self.cache.get(&(city, badge), in_force) {
            self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(status);
        }
        self.counters.cache_misses.fetch_add(1, Ordering::Relaxed);
        let (queue, breaker, sequence) = self.link(city, endpoint)?;
        if !breaker.allow() {
            return Err(RelayError::CircuitOpen(city));
        }
        let (reply, answer) = oneshot::channel();
        let asked = async {
            queue
                .send(Waiting { badge, reply })
                .await
                .map_err(|_| RelayError::Failed {
                    city,
                    message: "the relay to this node was replaced".into(),
                })?;
            answer.await.map_err(|_| RelayError::Failed {
                city,
                message: "the relay to this node stopped".into(),
            })?
        };
        let result = tokio::time::timeout(self.settings.timeout, asked)
            .await
            .unwrap_or(Err(RelayError::Timeout(city)));
        if let Ok(status) = result {
            self.cache.put((city, badge), status, sequence);
        }
        result
    }
}

/// Checks queued for one node at most; more wait to be queued (within the
/// deadline).
const QUEUE_PER_NODE: usize = 8192;

#[cfg(test)]
mod tests {
    use super::*;

    /// A sender to `node` with one call slot and a breaker that opens after
    /// one failed call.
    fn sender<F, Fut>(node: F) -> (mpsc::Sender<Waiting>, Arc<Breaker>, Arc<Counters>)
    where
        F: FnMut(Vec<Vec<u8>>) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = Result<Vec<pb::BadgeStatus>, BoxError>> + Send + 'static,
    {
        let (queue, queued) = mpsc::channel(64);
        let breaker = Arc::new(Breaker::new(1, Duration::from_secs(60)));
        let counters = Arc::new(Counters::default());
        tokio::spawn(send_queued(
            "330100".parse().unwrap(),
            queued,
            BoxCloneService::new(tower::service_fn(node)),
            Arc::new(Semaphore::new(1)),
            Arc::clone(&breaker),
            Arc::clone(&counters),
        ));
        (queue, breaker, counters)
    }

    /// Queues a check of badge `[byte; 16]`.
    async fn ask(
        queue: &mpsc::Sender<Waiting>,
        byte: u8,
    ) -> oneshot::Receiver<Result<pb::BadgeStatus, RelayError>> {
        let (reply, answer) = oneshot::channel();
        let badge = BadgeId::from_bytes([byte; 16]);
        queue.send(Waiting { badge, reply }).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn checks_that_wait_for_a_busy_node_share_the_next_call() {
        let sizes = Arc::new(Mutex::new(vec![]));
        let (release, released) = tokio::sync::watch::channel(false);
        let seen = Arc::clone(&sizes);
        let (queue, breaker, counters) = sender(move |ids: Vec<Vec<u8>>| {
            let (seen, mut released) = (Arc::clone(&seen), released.clone());
            async move {
                seen.lock().unwrap().push(ids.len());
                // The first call holds the node's only slot until released.
                let _ = released.wait_for(|r| *r).await;
                Ok(vec![pb::BadgeStatus::Active; ids.len()])
            }
        });
        let mut answers = vec![ask(&queue, 0).await];
        // Wait until the first call is at the node.
        while sizes.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        // A check whose caller gave up meanwhile is not sent.
        drop(ask(&queue, 0xee).await);
        for i in 1..10u8 {
            answers.push(ask(&queue, i).await);
        }
        release.send(true).unwrap();
        for answer in answers {
            assert_eq!(answer.await.unwrap().unwrap(), pb::BadgeStatus::Active);
        }
        assert_eq!(*sizes.lock().unwrap(), vec![1, 9]);
        assert_eq!(counters.calls.load(Ordering::Relaxed), 2);
        assert_eq!(counters.ids.load(Ordering::Relaxed), 10);
        assert!(!breaker.is_open());
    }

    #[tokio::test]
    async fn a_failed_call_fails_every_check_it_carried_and_counts_once_for_the_breaker() {
        let (queue, breaker, counters) = sender(|_ids: Vec<Vec<u8>>| async {
            Err::<Vec<pb::BadgeStatus>, BoxError>("connection reset".into())
        });
        let answer = ask(&queue, 1).await;
        assert!(matches!(
            answer.await.unwrap(),
            Err(RelayError::Failed { .. })
        ));
        assert!(breaker.is_open(), "a failed call did not count");
        assert_eq!(counters.calls.load(Ordering::Relaxed), 1);
    }

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
