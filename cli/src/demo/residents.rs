//! The demo's synthetic residents and the calls made for them: records,
//! badges issued and checked.

use anyhow::Context;
use tessera_proto::v1 as pb;
use tessera_proto::v1::city_node_client::CityNodeClient;
use tessera_proto::v1::gateway_client::GatewayClient;
use tonic::transport::Channel;

pub(super) fn national_id(city: u32, n: u32) -> anyhow::Result<String> {
    let first17 = format!("{:06}{:011}", city + 6, n);
    let check =
        tessera_node::pseudonym::check_character(first17.as_bytes()).context("bad demo id")?;
    Ok(format!("{first17}{check}"))
}

pub(super) fn test(id: &str, record: String, positive: bool, at: i64) -> pb::Record {
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

pub(super) fn synthetic(city: u32, residents: u32, now: i64) -> anyhow::Result<Vec<pb::Record>> {
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

pub(super) async fn check(
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

pub(super) async fn issue(
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
