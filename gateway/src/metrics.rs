//! What the gateway tells Prometheus, beside the RPC counts every server
//! has: verdicts by outcome, the relay's cache and calls, and per city the
//! node's answered and failed calls, checks refused by its circuit breaker
//! and whether the breaker is open. Read from the gateway's own counters at
//! each scrape; labelled by outcome or city code only, never by badge or
//! caller.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use tessera_proto::v1 as pb;

use crate::verdict::Verifier;

/// An outcome label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// A city label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CityLabel {
    city: String,
}

const OUTCOMES: [(pb::Outcome, &str); 9] = [
    (pb::Outcome::Valid, "valid"),
    (pb::Outcome::Revoked, "revoked"),
    (pb::Outcome::Expired, "expired"),
    (pb::Outcome::NotYetValid, "not_yet_valid"),
    (pb::Outcome::BadSignature, "bad_signature"),
    (pb::Outcome::UnknownSigner, "unknown_signer"),
    (pb::Outcome::SignerRevoked, "signer_revoked"),
    (pb::Outcome::Malformed, "malformed"),
    (pb::Outcome::StatusUnavailable, "status_unavailable"),
];

/// The gateway's collector: register it with
/// `metrics.registry().register_collector(...)`.
#[derive(Debug)]
pub struct GatewayCollector {
    verifier: Arc<Verifier>,
}

impl GatewayCollector {
    /// Reads `verifier`'s counters at each scrape.
    pub fn new(verifier: Arc<Verifier>) -> Self {
        Self { verifier }
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

impl Collector for GatewayCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let counters = self.verifier.counters();
        let mut family = encoder.encode_descriptor(
            "gateway_verdicts",
            "Verdicts given since start, by outcome",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (outcome, name) in OUTCOMES {
            ConstCounter::new(counters.get(outcome))
                .encode(family.encode_family(&OutcomeLabel { outcome: name })?)?;
        }
        let relay = self.verifier.relay();
        let stats = relay.stats();
        counter(
            &mut encoder,
            "relay_cache_hits",
            "Status checks answered from the relay's cache",
            stats.cache_hits,
        )?;
        counter(
            &mut encoder,
            "relay_cache_misses",
            "Status checks the relay's cache could not answer",
            stats.cache_misses,
        )?;
        counter(
            &mut encoder,
            "relay_status_ids",
            "Badge ids carried by CheckStatus calls to nodes",
            stats.ids,
        )?;
        let cities = relay.cities();
        let per_city = |encoder: &mut DescriptorEncoder,
                        name: &str,
                        help: &str,
                        value: fn(&crate::relay::CityRelay) -> u64|
         -> Result<(), std::fmt::Error> {
            let mut family = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for c in &cities {
                ConstCounter::new(value(c)).encode(family.encode_family(&CityLabel {
                    city: c.city.to_string(),
                })?)?;
            }
            Ok(())
        };
        per_city(
            &mut encoder,
            "relay_calls_answered",
            "CheckStatus calls the city's node answered",
            |c| c.answered,
        )?;
        per_city(
            &mut encoder,
            "relay_calls_failed",
            "CheckStatus calls to the city's node that failed (error, timeout, connection)",
            |c| c.failed,
        )?;
        per_city(
            &mut encoder,
            "relay_checks_refused",
            "Status checks refused without a call while the city's circuit breaker was open",
            |c| c.refused,
        )?;
        let mut family = encoder.encode_descriptor(
            "relay_breaker_open",
            "1 while the city's circuit breaker is open, else 0",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for c in &cities {
            ConstGauge::new(i64::from(c.open)).encode(family.encode_family(&CityLabel {
                city: c.city.to_string(),
            })?)?;
        }
        Ok(())
    }
}
