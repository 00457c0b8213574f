//! What runs beside a serving node: the retention sweep, following the
//! gateway's trust list, publishing held policies, watching the badge-signer
//! files and waiting for the list's sunset date (waiting for room after a
//! full disk is [`tessera_runtime::disk`]).

use std::sync::Arc;
use std::time::Duration;

use tessera_core::Role;
use tessera_core::badge::BadgeSigner;
use tessera_runtime::follow::Follower;
use tessera_runtime::reload::{Outcome, Watched};
use tessera_runtime::{TrustState, grpc, tls};

use crate::data_dir;
use crate::load::Loaded;
use crate::signer::{self, Rotation};
use tessera_runtime::clock::unix_now;

/// Most entries one retention sweep batch deletes (under the writer lock).
pub const SWEEP_BATCH: usize = 1000;

/// Deletes what is past retention, at once and then every
/// `settings.sweep`, counting deletions and logging counts (never ids).
pub(crate) async fn sweep_retention(loaded: &Loaded, metrics: crate::metrics::NodeMetrics) {
    let mut every = tokio::time::interval(loaded.settings.sweep);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match loaded.city.sweep(unix_now(), SWEEP_BATCH).await {
            Ok(swept) => {
                metrics.swept(&swept);
                if swept.total_records() + swept.badges + swept.corrections > 0 {
                    tracing::info!(
                        records = swept.total_records(),
                        tests = swept.records[0],
                        vaccinations = swept.records[1],
                        exposures = swept.records[2],
                        travel = swept.records[3],
                        symptoms = swept.records[4],
                        badges = swept.badges,
                        corrections = swept.corrections,
                        "deleted what is past retention"
                    );
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "retention sweep failed; retrying at the next one")
            }
        }
    }
}

/// The badge-signer files, watched like the TLS ones; whether a new signer
/// is used is [`signer::decide`]'s call, after the certificate is checked
/// against the root and the clock. A new signer waiting for a list is taken
/// up when the files are next looked at, not when the list arrives: the log
/// says so.
pub(crate) fn watch_badge_signer(loaded: &Loaded) -> Watched {
    let city = Arc::clone(&loaded.city);
    let trust = Arc::clone(&loaded.trust);
    let gated = loaded.settings.gateway.is_some();
    let reload_secs = loaded.settings.reload.as_secs();
    let apply = Box::new(move |certs: Vec<Vec<u8>>, key| {
        let Some((der, chain)) = certs.split_first() else {
            return Outcome::Refused("no certificate in the file".into());
        };
        if tessera_core::KeyId::of_certificate(der) == city.signer().key_id() {
            return Outcome::Unchanged;
        }
        let info = match tessera_core::CertInfo::parse_with_chain(der, chain, trust.root()) {
            Ok(info) => info,
            Err(e) => {
                return Outcome::Refused(format!(
                    "not issued by the root or the issuing CA after it: {e}"
                ));
            }
        };
        if !info.valid_at(unix_now()) {
            return Outcome::Refused("the certificate is not valid now".into());
        }
        let signer = match BadgeSigner::new(key, der) {
            Ok(signer) => signer,
            Err(e) => return Outcome::Refused(e.to_string()),
        };
        let listed = match trust.current() {
            None => signer::Listed::NoList,
            Some(list) => match list.by_key_id(&signer.key_id()) {
                None => signer::Listed::Absent {
                    sequence: list.sequence(),
                },
                Some(entry) if entry.is_revoked() => signer::Listed::Revoked,
                Some(_) => signer::Listed::Active,
            },
        };
        let old = city.signer().key_id();
        let new = signer.key_id();
        match signer::decide(old, new, listed, gated, reload_secs) {
            Rotation::Unchanged => Outcome::Unchanged,
            Rotation::Refused(why) => Outcome::Refused(why),
            Rotation::Wait(why) => Outcome::Wait(why),
            Rotation::Use => match city.replace_signer(signer) {
                Ok(true) => Outcome::Applied(format!(
                    "badges are signed with key {new} (was {old}), valid until {}",
                    info.not_after()
                )),
                Ok(false) => Outcome::Unchanged,
                Err(e) => Outcome::Refused(e.to_string()),
            },
        }
    });
    Watched::new(
        "badge_signer",
        loaded.settings.signer_certificate.clone(),
        loaded.settings.signer_key.clone(),
        apply,
    )
}

/// Follows the gateway's trust list ([`tessera_runtime::follow`]): each newer
/// list is put in force at once (rollback refused) and kept in the data
/// directory for the next start. The watch is reopened, so the gateway is
/// asked, at least every `settings.refresh`, and again after as long when
/// the gateway cannot be reached.
pub(crate) async fn follow_trust_lists(loaded: &Loaded, follower: Follower) {
    let trust = Arc::clone(&loaded.trust);
    let path = loaded.settings.data_dir.join(data_dir::TRUST_CACHE);
    let never = follower
        .run(|bytes| {
            let result = trust.update(&bytes, unix_now()).map(|list| {
                let tmp = path.with_extension("tmp");
                if let Err(e) = tessera_certs::files::write_private(&tmp, &bytes).and_then(|()| {
                    std::fs::rename(&tmp, &path).map_err(|source| {
                        tessera_certs::files::FileError::Io {
                            path: path.display().to_string(),
                            source,
                        }
                    })
                }) {
                    tracing::warn!(error = %e, "cannot keep the trust list on disk");
                }
                list.sequence()
            });
            std::future::ready(result)
        })
        .await;
    match never {}
}

/// Hands the gateway every signed policy this node holds that the gateway
/// lacks, oldest first: a node's first policy (signed at its first start)
/// reaches the gateway without an operator's step. Retries while the gateway
/// cannot be reached; a policy the gateway refuses is logged and skipped
/// (the operator publishes it by hand once fixed).
pub(crate) async fn publish_policies(loaded: &Loaded, gateway: &str) {
    use tessera_proto::v1 as pb;
    let held: Vec<pb::SignedPolicy> = loaded
        .city
        .policies()
        .held()
        .iter()
        .filter_map(|h| h.signed.as_ref().map(|v| v.signed().clone()))
        .collect();
    if held.is_empty() {
        return;
    }
    let client = tls::client_config(&loaded.identity, Arc::clone(&loaded.trust), Role::Gateway)
        .map_err(|e| e.to_string())
        .and_then(|config| grpc::channel(gateway, config).map_err(|e| e.to_string()));
    let mut client = match client {
        Ok(channel) => tessera_proto::v1::gateway_client::GatewayClient::new(channel),
        Err(e) => {
            tracing::warn!(error = %e, gateway, "cannot publish policies to the gateway");
            return;
        }
    };
    let city = loaded.city.city().get();
    loop {
        let published = match client
            .fetch_policies(pb::FetchPoliciesRequest { city })
            .await
        {
            Ok(r) => r.into_inner().policies,
            Err(status) => {
                tracing::debug!(error = %status.message(), "gateway not reachable for policies; retrying");
                tokio::time::sleep(loaded.settings.refresh).await;
                continue;
            }
        };
        let mut unreachable = false;
        for policy in held.iter().filter(|p| !published.contains(p)) {
            match client
                .publish_policy(pb::PublishPolicyRequest {
                    policy: Some(policy.clone()),
                })
                .await
            {
                Ok(r) => tracing::info!(
                    effective_from = r.into_inner().effective_from,
                    "scoring policy published to the gateway"
                ),
                Err(status)
                    if matches!(
                        status.code(),
                        tonic::Code::Unavailable
                            | tonic::Code::Unknown
                            | tonic::Code::Cancelled
                            | tonic::Code::DeadlineExceeded
                            // The gateway's disk is full: it takes uploads
                            // again by itself once there is room.
                            | tonic::Code::ResourceExhausted
                    ) =>
                {
                    unreachable = true;
                    break;
                }
                // The gateway's trust list does not carry this city's
                // signer yet (a city enrolled moments ago): try again later
                // rather than leave the city's first policy unpublished.
                Err(status) if status.code() == tonic::Code::NotFound => {
                    tracing::info!(
                        error = %status.message(),
                        "the gateway does not know this city's badge signer yet; publishing the policy later"
                    );
                    unreachable = true;
                    break;
                }
                Err(status) => tracing::warn!(
                    error = %status.message(),
                    "the gateway refused a scoring policy this node holds: publish it with `tessera policy publish` once fixed"
                ),
            }
        }
        if !unreachable {
            return;
        }
        tokio::time::sleep(loaded.settings.refresh).await;
    }
}

/// Resolves once the trust list in force is past its sunset date (the
/// first second at which it no longer verifies), re-read at least every
/// minute so that a newer list's date counts.
pub async fn wait_until_due(trust: Arc<TrustState>) {
    loop {
        let now = unix_now();
        let wait = match trust.current() {
            Some(list) if now > list.sunset_at() => return,
            Some(list) => list
                .sunset_at()
                .saturating_add(1)
                .saturating_sub(now)
                .clamp(1, 60),
            None => 60,
        };
        tokio::time::sleep(Duration::from_secs(wait.unsigned_abs())).await;
    }
}
