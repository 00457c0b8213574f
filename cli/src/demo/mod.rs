//! `tessera demo`: a whole federation in one process, telling its story step
//! by step and checking each step, so a broken system cannot demo green.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use prost::Message;
use tessera_core::trust::CheckedTrustList;
use tessera_core::verify_text;
use tessera_proto::v1 as pb;

use crate::federation::{CHECKPOINT, Federation, Layout};
use crate::{creds, fmt, qr};

mod narration;
mod policies;
mod residents;
mod rights;
mod switch_off;

use narration::*;
use policies::*;
use residents::*;
use rights::*;
use switch_off::*;

#[derive(Debug, Args)]
#[command(
    after_help = "The demo's authority makes every party's keys itself: that is for local use only\n(a real party makes its own with `tessera keygen`; see docs/PKI.md).\n\nExample:\n  cargo run --release -- demo\n  tessera demo --keep ./demo-federation"
)]
pub struct DemoArgs {
    /// Keep the federation's files (certificates, stores, badge images) in
    /// this new directory instead of a temporary one.
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Synthetic residents per city (Hangzhou gets twice as many).
    #[arg(long, default_value_t = 1000)]
    residents: u32,
}

/// Runs the demo; `Ok(true)` when every step behaved as told.
pub fn run(args: DemoArgs) -> anyhow::Result<bool> {
    let tmp;
    let dir = match &args.keep {
        Some(d) => {
            anyhow::ensure!(
                !d.exists() || std::fs::read_dir(d)?.next().is_none(),
                "{} is not empty: --keep needs a new directory",
                d.display()
            );
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir().context("creating a temporary directory")?;
            tmp.path().to_path_buf()
        }
    };
    let ok = crate::block_on(story(&dir, args.residents))?;
    if args.keep.is_some() {
        outln!("\nThe federation's files are kept in {}", dir.display());
    }
    Ok(ok)
}

async fn story(dir: &std::path::Path, residents: u32) -> anyhow::Result<bool> {
    let mut s = Story::default();
    let mut manifest = Manifest::default();
    let now = fmt::now();
    outln!("tessera demo: a national authority, a gateway and three city nodes on loopback,");
    outln!("with real mutual TLS, real Ed25519 signatures and real sled stores.\n");

    outln!("1. The authority creates the root of trust, enrols Hangzhou, Wuhan and Guangzhou,");
    outln!("   a Wuhan checkpoint and the gateway, and publishes trust list 1.");
    let (layout, listeners) = Layout::create(dir, 0, "cache_ttl_ms = 1000").await?;
    let fed = Federation::start(layout, listeners).await?;
    let l = fed.layout.clone();
    for c in &l.cities {
        outln!("   node of {:<9} ({}) at {}", c.name, c.code, c.node);
    }
    outln!(
        "   gateway at {} (status answers cached 1 s in this demo; 5 s by default)",
        l.gateway
    );
    let mut checkpoint = creds::gateway(&l.checkpoint, &l.gateway.to_string())?;
    let me = checkpoint
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .context("the checkpoint cannot reach the gateway")?
        .into_inner();
    s.check(
        "checkpoint is admitted by the gateway",
        &format!("verifier/{}", CHECKPOINT.0),
        format!(
            "{}/{}",
            tessera_core::Role::from_proto(me.role as i32).map_or("?", |r| r.as_str()),
            me.code
        ),
    );

    policies(&mut s, &l, &mut checkpoint).await?;

    outln!("\n3. Each city's lab feeds its own node; no record leaves its city.");
    let hz = l.city(330_100)?.clone();
    let gz = l.city(440_100)?.clone();
    let mut total = 0;
    let mut stored = 0;
    // Records each node acknowledged, less those erased: what a sunset
    // must attest to have destroyed.
    let mut held: BTreeMap<u32, u64> = BTreeMap::new();
    for c in &l.cities {
        let n = if c.code == 330_100 {
            residents * 2
        } else {
            residents
        };
        let records = synthetic(c.code, n, now)?;
        manifest.ingested(&records);
        let mut op = creds::node(&c.operator, &c.node.to_string())?;
        let started = Instant::now();
        for batch in records.chunks(1000) {
            let n = op
                .ingest_records(pb::IngestRequest {
                    records: batch.to_vec(),
                })
                .await
                .context("ingest failed")?
                .into_inner()
                .stored;
            stored += n;
            *held.entry(c.code).or_default() += u64::from(n);
        }
        total += records.len();
        outln!(
            "   {:<9} {n} residents, {} records stored durably in {:.2?}",
            c.name,
            records.len(),
            started.elapsed()
        );
    }
    s.check(
        "every synthetic record is acknowledged",
        &total.to_string(),
        stored.to_string(),
    );

    outln!("\n4. Li Hua of Hangzhou, negative test yesterday, gets a badge from her city.");
    let li = national_id(330_100, 900_001)?;
    let mut hz_op = creds::node(&hz.operator, &hz.node.to_string())?;
    let first = vec![test(&li, "li-hua-pcr-1".into(), false, now - 20 * 3600)];
    manifest.ingested(&first);
    *held.entry(hz.code).or_default() += u64::from(
        hz_op
            .ingest_records(pb::IngestRequest { records: first })
            .await?
            .into_inner()
            .stored,
    );
    let badge = issue(&mut hz_op, &li, "李华").await?;
    manifest.issued(&li, &badge);
    outln!("{}", qr::terminal(&badge.qr_text)?);
    qr::save(
        &badge.qr_text,
        Some(&dir.join("badge.png")),
        Some(&dir.join("badge.svg")),
    )?;
    std::fs::write(dir.join("badge.txt"), &badge.qr_text)?;
    outln!(
        "   {} ({} bytes; saved as badge.png, badge.svg, badge.txt)",
        badge.qr_text,
        badge.badge.len()
    );
    outln!("{}", crate::badge::describe(&badge.qr_text)?);
    s.check("Li Hua's badge colour", "GREEN", colour_name(badge.colour));

    outln!("\n5. A checkpoint in Wuhan (province 420000) checks it through the gateway.");
    let v = check(&mut checkpoint, &badge.qr_text).await?;
    crate::verify::print(&v, false);
    s.check(
        "online check through the gateway",
        "VALID",
        outcome_name(&v),
    );

    outln!(
        "\n6. The checkpoint keeps an offline copy of the trust list and checks again, offline."
    );
    let fetched = checkpoint
        .fetch_trust_list(pb::FetchTrustListRequest { known_sequence: 0 })
        .await?
        .into_inner();
    let bytes = fetched
        .list
        .context("the gateway sent no list")?
        .encode_to_vec();
    let cached = dir.join("checkpoint-trust-list.tsl");
    std::fs::write(&cached, &bytes)?;
    let root = creds::root(&l.checkpoint.join("root.crt"))?;
    let list = CheckedTrustList::verify(&bytes, &root, fmt::now())?;
    let offline = match verify_text(&badge.qr_text, &list, fmt::now()) {
        Ok(v) => format!(
            "VALID ({} {})",
            v.claims().colour.as_str().to_uppercase(),
            v.issuer_name()
        ),
        Err(e) => format!("{:?}", e.outcome()),
    };
    outln!(
        "   trust list {} saved as {}",
        list.sequence(),
        cached.display()
    );
    s.check(
        "offline check from the cached trust list",
        "VALID (GREEN Hangzhou)",
        offline,
    );

    outln!("\n7. Li Hua tests positive. Hangzhou's node revokes her badge at once.");
    let positive = vec![test(&li, "li-hua-pcr-2".into(), true, now - 60)];
    manifest.ingested(&positive);
    let ack = hz_op
        .ingest_records(pb::IngestRequest { records: positive })
        .await?
        .into_inner();
    *held.entry(hz.code).or_default() += u64::from(ack.stored);
    outln!(
        "   {} record stored, {} badge revoked by the node",
        ack.stored,
        ack.revoked
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut v = check(&mut checkpoint, &badge.qr_text).await?;
    while v.outcome != pb::Outcome::Revoked as i32 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        v = check(&mut checkpoint, &badge.qr_text).await?;
    }
    crate::verify::print(&v, false);
    s.check(
        "the next check of the same badge",
        "REVOKED",
        outcome_name(&v),
    );

    outln!("\n8. Li Hua asks her city why. The explanation names each rule and record.");
    let e = hz_op
        .explain(pb::ExplainRequest {
            national_id: li.clone(),
        })
        .await?
        .into_inner();
    outln!(
        "   score {} → {} (policy version {})",
        e.score,
        colour_name(e.colour),
        e.policy_version
    );
    for f in &e.effects {
        outln!(
            "   - {}: {} [{:+}] from {}",
            f.rule_id,
            f.description,
            f.score_delta,
            f.record_ids.join(", ")
        );
    }
    for l in &e.lifted {
        outln!("   - {}", l.sentence);
    }
    let positive_rule = e
        .effects
        .iter()
        .any(|f| f.rule_id == "positive-test-14d" && f.record_ids == ["li-hua-pcr-2"]);
    s.check(
        "explanation names the rule and the record",
        "RED, positive-test-14d",
        format!(
            "{}, {}",
            colour_name(e.colour),
            if positive_rule {
                "positive-test-14d"
            } else {
                "missing"
            }
        ),
    );

    outln!("\n9. The authority revokes Guangzhou and publishes trust list 2.");
    let mut gz_op = creds::node(&gz.operator, &gz.node.to_string())?;
    let gz_id = national_id(440_100, 1)?;
    let gz_badge = issue(&mut gz_op, &gz_id, "陈明").await?;
    manifest.issued(&gz_id, &gz_badge);
    let before = outcome_name(&check(&mut checkpoint, &gz_badge.qr_text).await?);
    AuthorityDirRevoke::city(&l.authority, 440_100)?;
    let seq = fed.publish().await?;
    outln!("   a Guangzhou badge was {before}; trust list {seq} is now in force at the gateway");
    let v = check(&mut checkpoint, &gz_badge.qr_text).await?;
    crate::verify::print(&v, false);
    s.check(
        "a Guangzhou badge after the revocation",
        "SIGNER_REVOKED",
        outcome_name(&v),
    );

    let wang = rights(&mut s, &mut manifest, &hz, &mut checkpoint, now).await?;
    *held.entry(hz.code).or_default() += wang.stored;
    *held.entry(hz.code).or_default() -= wang.erased;
    let expected: Vec<String> = l
        .cities
        .iter()
        .map(|c| held.get(&c.code).copied().unwrap_or(0).to_string())
        .collect();
    let mut fed = fed;
    switch_off(&mut s, &mut fed, &expected.join("/"), gz.code).await?;

    outln!("\n12. What the gateway kept: the trust list, the policies and the attestations,");
    outln!("    and no badge id.");
    let gw_data = l.gateway_bundle.join("data");
    fed.stop_all().await?;
    let ids = [
        badge.badge_id.clone(),
        gz_badge.badge_id.clone(),
        wang.badge_id,
    ];
    let mut leaked = 0;
    let mut files = 0;
    let mut stack = vec![gw_data];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let p = entry?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files += 1;
                let bytes = std::fs::read(&p)?;
                leaked += ids
                    .iter()
                    .filter(|id| bytes.windows(id.len()).any(|w| w == id.as_slice()))
                    .count();
            }
        }
    }
    outln!("    {files} files in the gateway's data directory");
    s.check(
        "badge ids found on the gateway's disk",
        "0",
        leaked.to_string(),
    );

    std::fs::write(
        dir.join("demo-manifest.json"),
        serde_json::to_string_pretty(&manifest)?,
    )?;

    s.table();
    let ok = s.all_ok();
    outln!(
        "\n{}",
        if ok {
            "Every step behaved as told."
        } else {
            "SOME STEPS DID NOT BEHAVE AS TOLD."
        }
    );
    Ok(ok)
}

/// The authority's revocation, as the demo's authority does it.
struct AuthorityDirRevoke;

impl AuthorityDirRevoke {
    fn city(authority: &std::path::Path, code: u32) -> anyhow::Result<()> {
        let mut dir = tessera_certs::authority::AuthorityDir::open(authority)?;
        dir.revoke(
            &tessera_certs::authority::RevokeTarget::City(tessera_core::CityCode::new(code)?),
            fmt::now(),
        )?;
        Ok(())
    }
}
