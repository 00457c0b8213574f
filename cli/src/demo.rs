//! `tessera demo`: a whole federation in one process, telling its story step
//! by step and checking each step, so a broken system cannot demo green.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use prost::Message;
use tessera_core::trust::CheckedTrustList;
use tessera_core::verify_text;
use tessera_proto::v1 as pb;
use tessera_proto::v1::city_node_client::CityNodeClient;
use tessera_proto::v1::gateway_client::GatewayClient;
use tonic::transport::Channel;

use crate::federation::{CHECKPOINT, Federation, Layout};
use crate::{creds, fmt, qr};

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  cargo run --release -- demo\n  tessera demo --keep ./demo-federation"
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

/// Everything the demo ingested and issued, written as `demo-manifest.json`
/// beside the federation's files so a test can look for each of them where
/// they must not be (the gateway's directory).
#[derive(Default, serde::Serialize)]
struct Manifest {
    /// Badge ids issued, hex.
    badge_ids: Vec<String>,
    /// Record ids ingested.
    record_ids: Vec<String>,
    /// Residents' ID numbers ingested or issued to.
    national_ids: Vec<String>,
    /// Labs and sources named in the records.
    sources: Vec<String>,
}

impl Manifest {
    fn ingested(&mut self, records: &[pb::Record]) {
        for r in records {
            self.record_ids.push(r.record_id.clone());
            self.national_ids.push(r.national_id.clone());
            let source = match &r.kind {
                Some(pb::record::Kind::Test(t)) => t.lab.clone(),
                Some(pb::record::Kind::Exposure(e)) => e.source.clone(),
                _ => continue,
            };
            if !self.sources.contains(&source) {
                self.sources.push(source);
            }
        }
    }

    fn issued(&mut self, national_id: &str, badge: &pb::IssueBadgeResponse) {
        self.national_ids.push(national_id.into());
        self.badge_ids
            .push(badge.badge_id.iter().map(|b| format!("{b:02x}")).collect());
    }
}

struct Step {
    title: String,
    expected: String,
    got: String,
}

#[derive(Default)]
struct Story {
    steps: Vec<Step>,
}

impl Story {
    fn check(&mut self, title: &str, expected: &str, got: impl Into<String>) -> bool {
        let got = got.into();
        let ok = got == expected;
        println!(
            "   {} expected {expected}, got {got}",
            if ok { "✓" } else { "✗" }
        );
        self.steps.push(Step {
            title: title.into(),
            expected: expected.into(),
            got,
        });
        ok
    }

    fn all_ok(&self) -> bool {
        self.steps.iter().all(|s| s.expected == s.got)
    }

    fn table(&self) {
        println!("\n  #  {:<54} {:<24} {:<24}", "step", "expected", "got");
        for (i, s) in self.steps.iter().enumerate() {
            let mark = if s.expected == s.got { "✓" } else { "✗" };
            println!(
                "  {:<2} {:<54} {:<24} {:<24} {mark}",
                i + 1,
                s.title,
                s.expected,
                s.got
            );
        }
    }
}

fn national_id(city: u32, n: u32) -> anyhow::Result<String> {
    let first17 = format!("{:06}{:011}", city + 6, n);
    let check =
        tessera_node::pseudonym::check_character(first17.as_bytes()).context("bad demo id")?;
    Ok(format!("{first17}{check}"))
}

fn test(id: &str, record: String, positive: bool, at: i64) -> pb::Record {
    pb::Record {
        record_id: record,
        national_id: id.into(),
        kind: Some(pb::record::Kind::Test(pb::TestResult {
            kind: pb::TestKind::Pcr as i32,
            positive,
            sampled_at: at,
            lab: "LAB-01".into(),
        })),
    }
}

fn synthetic(city: u32, residents: u32, now: i64) -> anyhow::Result<Vec<pb::Record>> {
    let mut records = Vec::with_capacity(residents as usize * 2);
    for n in 1..=residents {
        let id = national_id(city, n)?;
        let hours = i64::from(n % 60) + 2;
        records.push(test(
            &id,
            format!("{city}-t-{n}"),
            n % 100 == 0,
            now - hours * 3600,
        ));
        if n % 20 == 0 {
            records.push(pb::Record {
                record_id: format!("{city}-e-{n}"),
                national_id: id,
                kind: Some(pb::record::Kind::Exposure(pb::ExposureNotice {
                    level: pb::ContactLevel::Close as i32,
                    exposed_at: now - 3600,
                    source: "CDC".into(),
                })),
            });
        }
    }
    Ok(records)
}

fn outcome_name(v: &pb::Verdict) -> String {
    pb::Outcome::try_from(v.outcome)
        .map(|o| o.as_str_name().trim_start_matches("OUTCOME_").to_owned())
        .unwrap_or_else(|_| "?".into())
}

fn colour_name(c: i32) -> String {
    pb::Colour::try_from(c)
        .map(|c| c.as_str_name().trim_start_matches("COLOUR_").to_owned())
        .unwrap_or_else(|_| "?".into())
}

async fn check(
    checkpoint: &mut GatewayClient<Channel>,
    qr_text: &str,
) -> anyhow::Result<pb::Verdict> {
    Ok(checkpoint
        .verify(pb::VerifyRequest {
            badge: Some(pb::verify_request::Badge::QrText(qr_text.into())),
        })
        .await
        .context("the gateway refused the checkpoint")?
        .into_inner())
}

async fn issue(
    op: &mut CityNodeClient<Channel>,
    id: &str,
    name: &str,
) -> anyhow::Result<pb::IssueBadgeResponse> {
    Ok(op
        .issue_badge(pb::IssueBadgeRequest {
            national_id: id.into(),
            name: name.into(),
        })
        .await
        .context("the node refused to issue")?
        .into_inner())
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
    let ok = crate::node::runtime()?.block_on(story(&dir, args.residents))?;
    if args.keep.is_some() {
        println!("\nThe federation's files are kept in {}", dir.display());
    }
    Ok(ok)
}

async fn story(dir: &std::path::Path, residents: u32) -> anyhow::Result<bool> {
    let mut s = Story::default();
    let mut manifest = Manifest::default();
    let now = fmt::now();
    println!("tessera demo: a national authority, a gateway and three city nodes on loopback,");
    println!("with real mutual TLS, real Ed25519 signatures and real sled stores.\n");

    println!("1. The authority creates the root of trust, enrols Hangzhou, Wuhan and Guangzhou,");
    println!("   a Wuhan checkpoint and the gateway, and publishes trust list 1.");
    let (layout, listeners) = Layout::create(dir, 0, "cache_ttl_ms = 1000").await?;
    let fed = Federation::start(layout, listeners).await?;
    let l = fed.layout.clone();
    for c in &l.cities {
        println!("   node of {:<9} ({}) at {}", c.name, c.code, c.node);
    }
    println!(
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

    println!("\n2. Each city's lab feeds its own node; no record leaves its city.");
    let hz = l.city(330_100)?.clone();
    let gz = l.city(440_100)?.clone();
    let mut total = 0;
    let mut stored = 0;
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
            stored += op
                .ingest_records(pb::IngestRequest {
                    records: batch.to_vec(),
                })
                .await
                .context("ingest failed")?
                .into_inner()
                .stored;
        }
        total += records.len();
        println!(
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

    println!("\n3. Li Hua of Hangzhou, negative test yesterday, gets a badge from her city.");
    let li = national_id(330_100, 900_001)?;
    let mut hz_op = creds::node(&hz.operator, &hz.node.to_string())?;
    let first = vec![test(&li, "li-hua-pcr-1".into(), false, now - 20 * 3600)];
    manifest.ingested(&first);
    hz_op
        .ingest_records(pb::IngestRequest { records: first })
        .await?;
    let badge = issue(&mut hz_op, &li, "李华").await?;
    manifest.issued(&li, &badge);
    println!("{}", qr::terminal(&badge.qr_text)?);
    qr::save(
        &badge.qr_text,
        Some(&dir.join("badge.png")),
        Some(&dir.join("badge.svg")),
    )?;
    std::fs::write(dir.join("badge.txt"), &badge.qr_text)?;
    println!(
        "   {} ({} bytes; saved as badge.png, badge.svg, badge.txt)",
        badge.qr_text,
        badge.badge.len()
    );
    println!("{}", crate::badge::describe(&badge.qr_text)?);
    s.check("Li Hua's badge colour", "GREEN", colour_name(badge.colour));

    println!("\n4. A checkpoint in Wuhan (province 420000) checks it through the gateway.");
    let v = check(&mut checkpoint, &badge.qr_text).await?;
    crate::verify::print(&v, false);
    s.check(
        "online check through the gateway",
        "VALID",
        outcome_name(&v),
    );

    println!(
        "\n5. The checkpoint keeps an offline copy of the trust list and checks again, offline."
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
    println!(
        "   trust list {} saved as {}",
        list.sequence(),
        cached.display()
    );
    s.check(
        "offline check from the cached trust list",
        "VALID (GREEN Hangzhou)",
        offline,
    );

    println!("\n6. Li Hua tests positive. Hangzhou's node revokes her badge at once.");
    let positive = vec![test(&li, "li-hua-pcr-2".into(), true, now - 60)];
    manifest.ingested(&positive);
    let ack = hz_op
        .ingest_records(pb::IngestRequest { records: positive })
        .await?
        .into_inner();
    println!(
        "   {} record stored, {} badge revoked by the node",
        ack.stored, ack.revoked
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

    println!("\n7. Li Hua asks her city why. The explanation names each rule and record.");
    let e = hz_op
        .explain(pb::ExplainRequest {
            national_id: li.clone(),
        })
        .await?
        .into_inner();
    println!(
        "   score {} → {} (policy version {})",
        e.score,
        colour_name(e.colour),
        e.policy_version
    );
    for f in &e.effects {
        println!(
            "   - {}: {} [{:+}] from {}",
            f.rule_id,
            f.description,
            f.score_delta,
            f.record_ids.join(", ")
        );
    }
    let positive_rule = e
        .effects
        .iter()
        .any(|f| f.rule_id == "positive-test-14d" && f.record_ids == ["li-hua-pcr-2"]);
    s.check(
        "explanation names the positive-test rule and record",
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

    println!("\n8. The authority revokes Guangzhou and publishes trust list 2.");
    let mut gz_op = creds::node(&gz.operator, &gz.node.to_string())?;
    let gz_id = national_id(440_100, 1)?;
    let gz_badge = issue(&mut gz_op, &gz_id, "陈明").await?;
    manifest.issued(&gz_id, &gz_badge);
    let before = outcome_name(&check(&mut checkpoint, &gz_badge.qr_text).await?);
    AuthorityDirRevoke::city(&l.authority, 440_100)?;
    let seq = fed.publish().await?;
    println!("   a Guangzhou badge was {before}; trust list {seq} is now in force at the gateway");
    let v = check(&mut checkpoint, &gz_badge.qr_text).await?;
    crate::verify::print(&v, false);
    s.check(
        "a Guangzhou badge after the revocation",
        "SIGNER_REVOKED",
        outcome_name(&v),
    );

    println!("\n9. What the gateway kept: only the trust list, no badge id.");
    let gw_data = l.gateway_bundle.join("data");
    fed.stop_all().await?;
    let ids = [badge.badge_id.clone(), gz_badge.badge_id.clone()];
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
    println!("   {files} files in the gateway's data directory");
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
    println!(
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
