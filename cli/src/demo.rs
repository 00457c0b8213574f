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
        outln!(
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
        // Columns as wide as their longest cell, in characters.
        let width = |cell: fn(&Step) -> &str, head: &str| {
            self.steps
                .iter()
                .map(|s| cell(s).chars().count())
                .chain([head.chars().count()])
                .max()
                .unwrap_or(0)
        };
        let (t, e, g) = (
            width(|s| &s.title, "step"),
            width(|s| &s.expected, "expected"),
            width(|s| &s.got, "got"),
        );
        outln!("\n  #  {:<t$} {:<e$} {:<g$}", "step", "expected", "got");
        for (i, s) in self.steps.iter().enumerate() {
            let mark = if s.expected == s.got { "✓" } else { "✗" };
            outln!(
                "  {:<2} {:<t$} {:<e$} {:<g$} {mark}",
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

/// Step 2: every city's first policy, published by its node at start, read
/// back through the gateway and verified; a change with too little notice
/// refused, one with enough announced.
async fn policies(
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

/// What step 10 left: Wang Fang's badge id, and her records stored, then
/// erased.
struct Rights {
    badge_id: Vec<u8>,
    stored: u64,
    erased: u64,
}

/// Step 10: a resident's rights of access and erasure, through her city's
/// operator credentials (what her app's backend uses).
async fn rights(
    s: &mut Story,
    manifest: &mut Manifest,
    hz: &crate::federation::CityLayout,
    checkpoint: &mut GatewayClient<Channel>,
    now: i64,
) -> anyhow::Result<Rights> {
    outln!("\n10. Wang Fang of Hangzhou, GREEN, asks her city what it holds about her and who");
    outln!("    read it, then to erase her.");
    let wang = national_id(330_100, 900_002)?;
    let mut op = creds::node(&hz.operator, &hz.node.to_string())?;
    let records = vec![
        test(&wang, "wang-fang-pcr-1".into(), false, now - 5 * 86_400),
        test(&wang, "wang-fang-pcr-2".into(), false, now - 10 * 3600),
    ];
    manifest.ingested(&records);
    let stored = op
        .ingest_records(pb::IngestRequest { records })
        .await?
        .into_inner()
        .stored;
    let badge = issue(&mut op, &wang, "王芳").await?;
    manifest.issued(&wang, &badge);
    let valid = outcome_name(&check(checkpoint, &badge.qr_text).await?);
    outln!(
        "    her badge is {}; a checkpoint reads {valid}",
        colour_name(badge.colour)
    );
    let e = op
        .explain(pb::ExplainRequest {
            national_id: wang.clone(),
        })
        .await?
        .into_inner();
    outln!("    explain: score {} → {}", e.score, colour_name(e.colour));
    let export = |op: &mut CityNodeClient<Channel>| {
        let request = pb::ExportRequest {
            national_id: wang.clone(),
        };
        let mut op = op.clone();
        async move {
            anyhow::Ok(
                op.export_records(request)
                    .await
                    .context("the node refused the export")?
                    .into_inner()
                    .records,
            )
        }
    };
    let before = export(&mut op).await?;
    outln!(
        "    export: {} records ({})",
        before.len(),
        before
            .iter()
            .map(|r| r.record_id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let log = op
        .access_log(pb::AccessLogRequest {
            national_id: wang.clone(),
        })
        .await
        .context("the node refused the access log")?
        .into_inner();
    let got = match tessera_node::access_log::check_response(&log) {
        Ok(actions) => {
            let mut readers: Vec<&str> = log
                .entries
                .iter()
                .map(|e| e.actor_serial.as_str())
                .collect();
            readers.dedup();
            outln!(
                "    access log: entries {} of the node's {} are about her, read by operator {};",
                log.entries
                    .iter()
                    .map(|e| e.sequence.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                log.length,
                readers.join(", ")
            );
            outln!("    every hash recomputes, the entries link, the last is the log's head");
            actions
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
        Err(e) => format!("broken: {e}"),
    };
    s.check(
        "her access log, checked as her app does",
        "explain, export, access_log",
        got,
    );
    let erased = op
        .erase_resident(pb::EraseRequest {
            national_id: wang.clone(),
        })
        .await
        .context("the node refused the erasure")?
        .into_inner();
    outln!(
        "    erased: {} records and {} badge; her data key is destroyed",
        erased.records,
        erased.badges
    );
    let after = export(&mut op).await?;
    s.check(
        "records exported before / after erasure",
        "2 / 0",
        format!("{} / {}", before.len(), after.len()),
    );
    // The gateway caches a status answer for 1 s in this demo.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut v = check(checkpoint, &badge.qr_text).await?;
    while v.outcome == pb::Outcome::Valid as i32 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        v = check(checkpoint, &badge.qr_text).await?;
    }
    crate::verify::print(&v, false);
    let unknown = v.detail.contains("does not know this badge");
    s.check(
        "her badge at the checkpoint, then erased",
        "VALID, REVOKED (unknown)",
        format!(
            "{valid}, {} ({})",
            outcome_name(&v),
            if unknown {
                "unknown"
            } else {
                v.detail.as_str()
            }
        ),
    );
    Ok(Rights {
        badge_id: badge.badge_id,
        stored: u64::from(stored),
        erased: u64::from(erased.records),
    })
}

/// Step 11: every node stopped and switched off with `tessera node
/// sunset`'s functions; the attestations collected at the gateway and
/// checked by the authority. `expected` is the records each city's node
/// holds, "/"-separated in city order; `revoked` the city whose node the
/// authority revoked, which the gateway no longer admits.
async fn switch_off(
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
    let root = tessera_core::TrustAnchor::from_der(
        tessera_certs::authority::AuthorityDir::open(&l.authority)?.root_der(),
    )?;
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
                let verdict = match tessera_core::attestation::verify_attestation(
                    &bytes,
                    &root,
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
