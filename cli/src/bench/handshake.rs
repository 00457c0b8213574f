//! Full mutual-TLS handshakes: every call opens a new connection to the
//! gateway (TCP, then TLS 1.3 with both certificates checked and no session
//! resumption), makes one WhoAmI call and closes it. This is what a fleet of
//! checkpoints reconnecting at once costs the gateway, and what the key type
//! of the TLS certificates decides.

use std::sync::Arc;

use tessera_core::Role;
use tessera_proto::v1 as pb;
use tessera_proto::v1::gateway_client::GatewayClient;
use tessera_runtime::{grpc, tls};

use super::BenchArgs;
use super::fixture::Fixture;
use super::load::{self, Plan};
use super::report::Report;
use crate::creds;

/// Handshakes in flight at once, at most: more only queues in the accept
/// loop of a two-core machine.
const MAX_CONCURRENT_HANDSHAKES: usize = 32;

/// Full handshakes per second against the gateway, and the ratio to E.
pub async fn handshake(args: &BenchArgs, e: f64, report: &mut Report) -> anyhow::Result<()> {
    let fx = Fixture::start("").await?;
    let layout = &fx.fed.layout;
    let (identity, trust) = creds::bundle(&layout.checkpoint)?;
    let mut config = (*tls::client_config(&identity, trust, Role::Gateway)?).clone();
    // A resumed session skips the certificates and their signatures: each
    // connection here pays for a full handshake.
    config.resumption = rustls::client::Resumption::disabled();
    let config = Arc::new(config);
    let addr = layout.gateway.to_string();
    let plan = Plan {
        concurrency: args.concurrency.min(MAX_CONCURRENT_HANDSHAKES),
        ..args.plan()
    };
    let sample = load::median_of(args.runs, || {
        let (config, addr) = (Arc::clone(&config), addr.clone());
        load::drive(plan, move |_, _| {
            let (config, addr) = (Arc::clone(&config), addr.clone());
            async move {
                let channel = grpc::channel(&addr, config).map_err(|e| e.to_string())?;
                GatewayClient::new(channel)
                    .who_am_i(pb::WhoAmIRequest {})
                    .await
                    .map(|_| 1)
                    .map_err(|e| e.to_string())
            }
        })
    })
    .await?;
    fx.stop().await?;
    report.sample("full mTLS handshakes (new connection + WhoAmI)", &sample);
    report.ratio("handshakes / E", sample.per_second() / e);
    Ok(())
}
