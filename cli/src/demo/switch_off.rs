//! The switch-off of every node and the census of their deletion
//! attestations.

use std::time::Duration;

use anyhow::Context;

use super::*;
use crate::federation::Federation;
use crate::fmt;

/// Step 11: every node stopped and switched off with `tessera node
/// sunset`'s functions; the attestations collected at the gateway and
/// checked by the authority. `expected` is the records each city's node
/// holds, "/"-separated in city order; `revoked` the city whose node the
/// authority revoked, which the gateway no longer admits.
pub(super) async fn switch_off(
    s: &mut Story,
    fed: &mut Federation,
    expected: &str,
    revoked: u32,
) -> anyhow::Result<()> {
    outln!("\n11. The crisis ends. Each city stops its node and switches it off: every record,");
    outln!("    data key, the master key and the badge-signer key destroyed, and a deletion");
    outln!("    attestation signed and sent to the gateway.");
    fed.stop_nodes().await?;
    let l = fed.layout.clone();
    let mut destroyed = vec![];
    let mut signer_keys = 0;
    let mut submissions = vec![];
    for c in &l.cities {
        let settings = tessera_node::config::NodeSettings::load(&c.bundle.join("node.toml"))?;
        // A stopped node's last connections may hold its store a moment.
        let mut tries = 0;
        let done = loop {
            let settings = settings.clone();
            match tokio::task::spawn_blocking(move || {
                tessera_node::sunset::destroy(&settings, tessera_node::sunset::Reason::Operator)
            })
            .await?
            {
                Err(tessera_node::sunset::SunsetError::Running(_)) if tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => break other.with_context(|| format!("the sunset of {}", c.name))?,
            }
        };
        let k = &done.claims;
        outln!(
            "    {:<9} destroyed {} residents, {} records, {} badge states; signer key {}",
            c.name,
            k.residents,
            k.records,
            k.badges,
            if k.signer_key_destroyed {
                "destroyed"
            } else {
                "KEPT"
            }
        );
        destroyed.push(k.records.to_string());
        signer_keys += usize::from(k.signer_key_destroyed);
        let signed = done.signed.clone();
        let submission = (c.code != revoked).then(|| {
            tokio::spawn(async move { tessera_node::sunset::submit(&settings, &signed).await })
        });
        submissions.push((c.name.clone(), done, submission));
    }
    s.check("records destroyed, by city", expected, destroyed.join("/"));
    let authority = tessera_certs::authority::AuthorityDir::open(&l.authority)?;
    let root = tessera_core::TrustAnchor::from_der(authority.root_der())?;
    let cas = authority.issuing_cas();
    let mut by_hand = vec![];
    for (name, done, submission) in submissions {
        let refused = match submission {
            Some(submission) => match submission.await? {
                Ok(true) => {
                    outln!("    {name:<9} attestation submitted to the gateway");
                    None
                }
                Ok(false) => Some("no gateway configured".to_owned()),
                Err(e) => Some(e.to_string()),
            },
            None => Some(
                "its node certificate is revoked (step 9): the gateway admits it no more".into(),
            ),
        };
        match refused {
            None => {}
            Some(why) => {
                outln!("    {name:<9} {why}");
                // Handed to the authority as a file instead, and checked as
                // `tessera authority verify-attestation` does.
                let bytes = std::fs::read(&done.file)?;
                let verdict = match tessera_core::attestation::verify_attestation_within(
                    &bytes,
                    &root,
                    &cas,
                    fmt::now(),
                ) {
                    Ok(v) => format!("VALID ({} records)", v.claims().records),
                    Err(e) => format!("INVALID: {e}"),
                };
                outln!(
                    "    {name:<9} {} handed to the authority: {verdict}",
                    done.file.file_name().map_or_else(
                        || done.file.display().to_string(),
                        |f| f.to_string_lossy().into_owned()
                    )
                );
                by_hand.push(format!(
                    "{name} {}",
                    verdict.split(' ').next().unwrap_or("")
                ));
            }
        }
    }
    let census = crate::authority::census(&l.authority, &l.gateway.to_string(), fmt::now()).await?;
    outln!(
        "    the authority's view (`tessera authority attestations`), trust list {}:",
        census.sequence
    );
    let mut attested = vec![];
    for (code, name, verdict) in &census.cities {
        match verdict {
            Ok(Some(k)) => {
                attested.push(name.clone());
                outln!(
                    "    {code:06} {name:<9} ATTESTED  {} residents, {} records, {} badge states",
                    k.residents,
                    k.records,
                    k.badges
                );
            }
            Ok(None) => outln!("    {code:06} {name:<9} MISSING"),
            Err(e) => outln!("    {code:06} {name:<9} INVALID {e}"),
        }
    }
    s.check(
        "cities of the list attested at the gateway",
        "Hangzhou, Wuhan",
        format!(
            "{}{}",
            attested.join(", "),
            if census.missing() == 0 {
                String::new()
            } else {
                format!(" ({} missing)", census.missing())
            }
        ),
    );
    s.check(
        "revoked Guangzhou's attestation file",
        "Guangzhou VALID",
        by_hand.join(", "),
    );
    s.check(
        "badge-signer keys destroyed",
        &l.cities.len().to_string(),
        signer_keys.to_string(),
    );
    Ok(())
}
