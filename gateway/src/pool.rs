//! A pool that agrees: a follower gateway copies its peer's scoring
//! policies and deletion attestations, as it follows its peer's trust list
//! (`tessera_runtime::follow`), so that `FetchPolicies`, the public copy and
//! `ListAttestations` answer the same on every gateway of a pool.
//!
//! At start, every `[follow] refresh_secs`, and whenever a new trust list
//! comes into force (a city enrolled moments ago may publish at once), the
//! follower asks its peer `FetchPolicies` for each city whose badge signer
//! the list in force carries, and `ListAttestations`. Each item goes through
//! the checks of an upload ([`Policies::adopt`], [`Attestations::adopt`]):
//! verified against the root and the trust list, in order after what is
//! held, durable before it is served. The peer is not trusted for any of
//! it: a forged or out-of-order item is refused and logged, and the rest is
//! still copied. A follower's own followers copy from it in turn.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prost::Message;
use tessera_core::Role;
use tessera_proto::v1 as pb;
use tessera_proto::v1::gateway_client::GatewayClient;
use tessera_runtime::TrustState;
use tessera_runtime::clock::unix_now;
use tessera_runtime::follow::Follower;
use tonic::transport::Channel;

use crate::attestations::Attestations;
use crate::policies::Policies;
use crate::registry::Registry;

/// What one round copied and refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    /// Policies new here.
    pub policies: u32,
    /// Attestations new here.
    pub attestations: u32,
    /// Policies the peer offered that were refused.
    pub refused_policies: u32,
    /// Attestations the peer offered that were refused.
    pub refused_attestations: u32,
}

/// A kind label: `policy` or `attestation`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// What the copies count, for Prometheus: items copied from the peer and
/// items it offered that were refused (a forged or out-of-order one, to
/// look into), by kind.
#[derive(Debug, Clone, Default)]
pub struct PoolMetrics {
    copied: Family<KindLabel, Counter>,
    refused: Family<KindLabel, Counter>,
}

impl PoolMetrics {
    /// Counters registered in `metrics` (zero on a gateway that follows
    /// nobody).
    pub fn register(metrics: &mut tessera_runtime::metrics::Metrics) -> Self {
        let m = Self::default();
        for kind in ["policy", "attestation"] {
            let _ = m.copied.get_or_create(&KindLabel { kind });
            let _ = m.refused.get_or_create(&KindLabel { kind });
        }
        let r = metrics.registry();
        r.register(
            "pool_copied",
            "Policies and attestations copied from the followed peer gateway since start, by kind",
            m.copied.clone(),
        );
        r.register(
            "pool_refused",
            "Policies and attestations the followed peer offered and this gateway refused since start, by kind",
            m.refused.clone(),
        );
        m
    }

    fn count(&self, copied: &Copied) {
        for (kind, new, refused) in [
            ("policy", copied.policies, copied.refused_policies),
            (
                "attestation",
                copied.attestations,
                copied.refused_attestations,
            ),
        ] {
            self.copied
                .get_or_create(&KindLabel { kind })
                .inc_by(u64::from(new));
            self.refused
                .get_or_create(&KindLabel { kind })
                .inc_by(u64::from(refused));
        }
    }
}

/// The cities whose badge signer `trust`'s list in force carries, not
/// revoked: the only ones whose policies can verify.
fn cities(trust: &TrustState) -> BTreeSet<u32> {
    trust.current().map_or_else(BTreeSet::new, |list| {
        list.entries()
            .iter()
            .filter(|e| !e.is_revoked())
            .map(|e| e.cert().identity())
            .filter(|id| id.role() == Role::BadgeSigner)
            .filter_map(|id| id.city().map(|c| c.get()))
            .collect()
    })
}

/// One round: everything the peer holds that is new here, checked and
/// stored. `Err` when the peer could not be asked (what was copied before
/// the failure stays).
pub async fn copy_once(
    client: &mut GatewayClient<Channel>,
    trust: &TrustState,
    policies: &Policies,
    attestations: &Attestations,
    peer: &str,
) -> Result<Copied, tonic::Status> {
    let mut copied = Copied::default();
    for city in cities(trust) {
        let offered = client
            .fetch_policies(pb::FetchPoliciesRequest { city })
            .await?
            .into_inner()
            .policies;
        // Oldest effective first, the order they were accepted in.
        for signed in offered {
            let list = trust.current();
            match policies.adopt(&signed, list.as_deref()).await {
                Ok(true) => copied.policies += 1,
                Ok(false) => {}
                Err(e) => {
                    copied.refused_policies += 1;
                    tracing::warn!(peer, city, error = %e, "a policy from the peer gateway was refused");
                }
            }
        }
    }
    let offered = client
        .list_attestations(pb::ListAttestationsRequest {})
        .await?
        .into_inner()
        .attestations;
    for signed in offered {
        match attestations
            .adopt(&signed.encode_to_vec(), trust, unix_now())
            .await
        {
            Ok(true) => copied.attestations += 1,
            Ok(false) => {}
            Err(e) => {
                copied.refused_attestations += 1;
                tracing::warn!(peer, error = %e, "an attestation from the peer gateway was refused");
            }
        }
    }
    Ok(copied)
}

/// Copies for ever: a round at start, then after every `refresh` or new
/// trust list in force, whichever comes first; after a failure, a new
/// connection and a round after `retry`.
pub async fn follow_publications(
    registry: &Arc<Registry>,
    policies: &Policies,
    follower: &Follower,
    metrics: PoolMetrics,
) -> Infallible {
    let peer = follower.peer().to_owned();
    let trust = Arc::clone(registry.trust());
    let mut lists = registry.subscribe();
    let mut client = follower.client();
    loop {
        let attestations = Attestations::open(&registry.db(), registry.disk().clone());
        let round = match &attestations {
            Ok(attestations) => copy_once(&mut client, &trust, policies, attestations, &peer)
                .await
                .map_err(|s| s.message().to_owned()),
            Err(e) => Err(format!("attestation storage: {e}")),
        };
        let pause = match round {
            Ok(copied) => {
                metrics.count(&copied);
                if copied != Copied::default() {
                    tracing::info!(
                        peer,
                        policies = copied.policies,
                        attestations = copied.attestations,
                        refused_policies = copied.refused_policies,
                        refused_attestations = copied.refused_attestations,
                        "copied from the peer gateway"
                    );
                }
                follower.refresh()
            }
            Err(why) => {
                tracing::warn!(peer, error = %why, retry = ?follower.retry(), "cannot copy policies and attestations from the peer gateway");
                if let Ok(fresh) = follower.reconnect() {
                    client = fresh;
                }
                follower.retry()
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            changed = lists.changed() => {
                if changed.is_err() {
                    // The registry is gone (shutting down): pace by time.
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }
}
