//! What the station counts, and nothing more: checks by outcome, refusals
//! by reason, pairings by result. No badge text, no verdict, no device is
//! ever logged or stored (docs/OPERATIONS.md, "A checkpoint station").

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tessera_runtime::metrics::Metrics;

type Labels = Vec<(String, String)>;

/// The station's counters, registered in the runtime's metrics.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    checks: Family<Labels, Counter>,
    refused: Family<Labels, Counter>,
    pairings: Family<Labels, Counter>,
}

impl Counters {
    /// Registers the counters in `metrics`.
    pub fn register(metrics: &mut Metrics) -> Self {
        let c = Self::default();
        let r = metrics.registry();
        r.register(
            "checkpoint_checks",
            "Online checks relayed to the gateway, by outcome",
            c.checks.clone(),
        );
        r.register(
            "checkpoint_refused",
            "Requests to the station's API refused, by reason",
            c.refused.clone(),
        );
        r.register(
            "checkpoint_pairings",
            "Pairing attempts, by result",
            c.pairings.clone(),
        );
        c
    }

    fn one(family: &Family<Labels, Counter>, key: &str, value: &str) {
        family
            .get_or_create(&vec![(key.to_owned(), value.to_owned())])
            .inc();
    }

    /// One check answered with `outcome`.
    pub fn check(&self, outcome: &str) {
        Self::one(&self.checks, "outcome", outcome);
    }

    /// One request refused for `reason`.
    pub fn refused(&self, reason: &str) {
        Self::one(&self.refused, "reason", reason);
    }

    /// One pairing attempt ending in `result`.
    pub fn pairing(&self, result: &str) {
        Self::one(&self.pairings, "result", result);
    }

    /// Checks answered so far with `outcome` (for tests and the bench).
    pub fn checks(&self, outcome: &str) -> u64 {
        self.checks
            .get_or_create(&vec![("outcome".to_owned(), outcome.to_owned())])
            .get()
    }
}
