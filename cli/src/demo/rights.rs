//! A resident's rights: explanation, export, access log and erasure.

use std::time::{Duration, Instant};

use anyhow::Context;
use tessera_proto::v1 as pb;
use tessera_proto::v1::city_node_client::CityNodeClient;
use tessera_proto::v1::gateway_client::GatewayClient;
use tonic::transport::Channel;

use super::*;
use crate::creds;

/// What step 10 left: Wang Fang's badge id, and her records stored, then
/// erased.
pub(super) struct Rights {
    pub(super) badge_id: Vec<u8>,
    pub(super) stored: u64,
    pub(super) erased: u64,
}

/// Step 10: a resident's rights of access and erasure, through her city's
/// operator credentials (what her app's backend uses).
pub(super) async fn rights(
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
        "issue, explain, export, access_log",
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
