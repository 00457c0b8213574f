//! Step 2: every city's published scoring policy.

use std::time::{Duration, Instant};

use anyhow::Context;
use tessera_proto::v1::gateway_client::GatewayClient;
use tonic::transport::Channel;

use super::*;
use crate::federation::Layout;
use crate::{creds, fmt};

/// Step 2: every city's first policy, published by its node at start, read
/// back through the gateway and verified; a change with too little notice
/// refused, one with enough announced.
pub(super) async fn policies(
    s: &mut Story,
    l: &Layout,
    checkpoint: &mut GatewayClient<Channel>,
) -> anyhow::Result<()> {
    outln!("\n2. Each city's node publishes its signed scoring policy through the gateway.");
    outln!("   Anyone enrolled reads it back and checks it against the trust list.");
    let gateway = l.gateway.to_string();
    let root = creds::root(&l.checkpoint.join("root.crt"))?;
    // Each node publishes as it starts following the gateway: wait for
    // all three, bounded.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut published = vec![];
    for c in &l.cities {
        let code = tessera_core::CityCode::new(c.code)?;
        let verified = loop {
            let verified =
                crate::policy::fetch_verified(checkpoint, &gateway, &root, code, fmt::now())
                    .await?;
            if !verified.is_empty() || Instant::now() >= deadline {
                break verified;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let standing = crate::policy::standings(&verified, fmt::now());
        if let (Some(p), Some(st)) = (verified.last(), standing.last()) {
            outln!(
                "   {:<9} policy version {} \"{}\", {} rules, {st} since {}",
                c.name,
                p.policy_version(),
                p.policy().name(),
                p.policy().rule_sentences().len(),
                fmt::time(p.effective_from())
            );
            if st == "IN FORCE" {
                published.push(c.name.clone());
            }
        } else {
            outln!("   {:<9} no policy published", c.name);
        }
    }
    s.check(
        "each city's policy in force, verified",
        "Hangzhou, Wuhan, Guangzhou",
        published.join(", "),
    );

    outln!("   Hangzhou signs version 3 (green badges valid 48 h instead of 72 h) and");
    outln!("   publishes it to take effect in 24 hours: less than the 48 hours of notice.");
    let hz = l.city(330_100)?;
    let signer = tessera_core::badge::BadgeSigner::new(
        tessera_certs::keys::read_signer_key(&hz.bundle.join("badge-signer.key"))?,
        &tessera_certs::keys::read_cert(&hz.bundle.join("badge-signer.crt"))?,
    )
    .context("Hangzhou's badge-signer key and certificate are not a pair")?;
    let rules = tessera_core::policy::DEFAULT_POLICY
        .replacen("\nversion = 2\n", "\nversion = 3\n", 1)
        .replacen("green_hours = 72", "green_hours = 48", 1);
    anyhow::ensure!(
        rules.contains("\nversion = 3\n") && rules.contains("green_hours = 48"),
        "the default policy changed shape: the demo cannot derive version 3 from it"
    );
    let mut operator = creds::gateway(&hz.operator, &gateway)?;
    let now = fmt::now();
    let (_, early) = crate::policy::sign_rules(&signer, rules.clone(), now + 24 * 3600, now)?;
    let refused = match crate::policy::publish_to(&mut operator, &gateway, early).await {
        Ok(_) => "accepted".to_owned(),
        Err(e) => {
            outln!("   {e}");
            if e.to_string().contains("less than the notice period") {
                "refused".to_owned()
            } else {
                format!("refused otherwise: {e}")
            }
        }
    };
    s.check("version 3 with 24 h of notice", "refused", refused);

    outln!("   Signed again to take effect in 72 hours, it is accepted and announced:");
    let now = fmt::now();
    let (_, later) = crate::policy::sign_rules(&signer, rules, now + 72 * 3600 + 60, now)?;
    let from = crate::policy::publish_to(&mut operator, &gateway, later).await?;
    outln!("   the gateway took it, in force from {}", fmt::time(from));
    let now = fmt::now();
    let verified = crate::policy::fetch_verified(
        checkpoint,
        &gateway,
        &root,
        tessera_core::CityCode::new(hz.code)?,
        now,
    )
    .await?;
    let standing = crate::policy::standings(&verified, now);
    for (p, st) in verified.iter().zip(&standing) {
        outln!("   Hangzhou  policy version {}: {st}", p.policy_version());
    }
    let got = verified
        .iter()
        .zip(&standing)
        .map(|(p, st)| {
            format!(
                "v{} {}",
                p.policy_version(),
                st.split(',').next().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    s.check(
        "Hangzhou's policies read back",
        "v2 IN FORCE, v3 ANNOUNCED",
        got,
    );
    if let Some(public) = l.public {
        public_page(public, &root, &verified).await?;
    }
    Ok(())
}

/// The gateway's public copy, read with no certificate: Hangzhou's page in
/// Chinese names every rule in force and the announced version. Printed,
/// not one of the story's checks (cli/tests/public.rs tests it).
async fn public_page(
    public: std::net::SocketAddr,
    root: &tessera_core::TrustAnchor,
    verified: &[tessera_core::policy_doc::VerifiedPolicy],
) -> anyhow::Result<()> {
    let (status, body) = crate::policy::public_get(public, root, "/cities/330100?lang=zh").await?;
    let page = String::from_utf8_lossy(&body);
    let rules = verified
        .first()
        .map(|p| p.policy().rule_sentences_zh())
        .unwrap_or_default();
    let listed = rules
        .iter()
        .filter(|(_, r)| page.contains(&tessera_gateway::public_page::escape(r)))
        .count();
    outln!("   Anyone, with no certificate, reads them at https://{public}/cities/330100?lang=zh");
    outln!(
        "   (HTTP {status}: {listed} of {} rules in force in Chinese, version 3 {}announced there)",
        rules.len(),
        if page.contains("已公告：第 3 版") {
            ""
        } else {
            "NOT "
        }
    );
    Ok(())
}
