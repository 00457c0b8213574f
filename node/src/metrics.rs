//! What a city node tells Prometheus, beside the RPC counts every server
//! has: records stored, badges issued by colour, badges revoked, status
//! answers by status, retention deletions by kind, erasures, corrections. Aggregates only: no label names a resident or a badge.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tessera_core::Colour;
use tessera_runtime::metrics::Metrics;

/// A colour label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ColourLabel {
    /// `green`, `yellow` or `red`.
    pub colour: &'static str,
}

/// A badge-status label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StatusLabel {
    /// `active`, `revoked`, `superseded` or `unknown`.
    pub status: &'static str,
}

/// A retention-deletion label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct KindLabel {
    /// A record type (`test`, `vaccination`, `exposure`, `travel`,
    /// `symptoms`), `badge`, or `correction` (a correction's mark).
    pub kind: &'static str,
}

/// The node's own counters.
#[derive(Debug, Clone, Default)]
pub struct NodeMetrics {
    records_stored: Counter,
    records_duplicate: Counter,
    badges_issued: Family<ColourLabel, Counter>,
    badges_revoked: Counter,
    status_answers: Family<StatusLabel, Counter>,
    retention_deletions: Family<KindLabel, Counter>,
    erasures: Counter,
    corrections: Counter,
}

impl NodeMetrics {
    /// Counters registered in `metrics`.
    pub fn register(metrics: &mut Metrics) -> Self {
        let m = Self::default();
        let r = metrics.registry();
        r.register(
            "node_records_stored",
            "Records stored (durably) since start",
            m.records_stored.clone(),
        );
        r.register(
            "node_records_duplicate",
            "Records sent again and not stored twice, since start",
            m.records_duplicate.clone(),
        );
        r.register(
            "node_badges_issued",
            "Badges issued since start, by colour",
            m.badges_issued.clone(),
        );
        r.register(
            "node_badges_revoked",
            "Badges revoked by new or corrected records since start",
            m.badges_revoked.clone(),
        );
        r.register(
            "node_status_answers",
            "Badge statuses answered to the gateway since start, by status",
            m.status_answers.clone(),
        );
        // Named without the node_ prefix: tessera_retention_deletions_total.
        r.register(
            "retention_deletions",
            "Records and badge states deleted as past retention since start, by kind",
            m.retention_deletions.clone(),
        );
        r.register(
            "node_erasures",
            "Residents erased on request since start",
            m.erasures.clone(),
        );
        r.register(
            "node_corrections",
            "Records corrected or retracted on request since start",
            m.corrections.clone(),
        );
        m
    }

    /// A retention sweep deleted these.
    pub fn swept(&self, swept: &crate::store::Swept) {
        for (kind, n) in crate::records::RecordType::ALL.iter().zip(swept.records) {
            self.retention_deletions
                .get_or_create(&KindLabel { kind: kind.name() })
                .inc_by(u64::from(n));
        }
        self.retention_deletions
            .get_or_create(&KindLabel { kind: "badge" })
            .inc_by(u64::from(swept.badges));
        self.retention_deletions
            .get_or_create(&KindLabel { kind: "correction" })
            .inc_by(u64::from(swept.corrections));
    }

    /// A record was corrected or retracted, revoking `revoked` badges.
    pub fn corrected(&self, revoked: u32) {
        self.corrections.inc();
        self.badges_revoked.inc_by(u64::from(revoked));
    }

    /// A resident was erased.
    pub fn erased(&self) {
        self.erasures.inc();
    }

    /// An ingest stored `stored` records, skipped `duplicates`, revoked
    /// `revoked` badges.
    pub fn ingested(&self, stored: u32, duplicates: u32, revoked: u32) {
        self.records_stored.inc_by(u64::from(stored));
        self.records_duplicate.inc_by(u64::from(duplicates));
        self.badges_revoked.inc_by(u64::from(revoked));
    }

    /// A badge of `colour` was issued.
    pub fn issued(&self, colour: Colour) {
        let colour = match colour {
            Colour::Green => "green",
            Colour::Yellow => "yellow",
            Colour::Red => "red",
        };
        self.badges_issued
            .get_or_create(&ColourLabel { colour })
            .inc();
    }

    /// Statuses (as `BadgeStatus` numbers) were answered.
    pub fn answered(&self, statuses: &[i32]) {
        use tessera_proto::v1::BadgeStatus;
        for s in statuses {
            let status = match BadgeStatus::try_from(*s) {
                Ok(BadgeStatus::Active) => "active",
                Ok(BadgeStatus::Revoked) => "revoked",
                Ok(BadgeStatus::Superseded) => "superseded",
                _ => "unknown",
            };
            self.status_answers
                .get_or_create(&StatusLabel { status })
                .inc();
        }
    }
}
