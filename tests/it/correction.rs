//! Corrections (issue 19, item 4) through a real node over mutual TLS: a
//! city replaces or retracts one record with a reason; the resident is
//! re-scored at once and their badges revoked or superseded, Explain and the
//! access log show the correction, erasure removes its trace, an unknown
//! record is NOT_FOUND and changes nothing, and only the city's own
//! operator may correct.

use tessera_proto::v1 as pb;
use tessera_proto::v1::city_node_client::CityNodeClient;
use tessera_tests::harness::{RunningNode, node_client};
use tessera_tests::{TestPki, national_id, test_record, unix_now};
use tonic::Code;
use tonic::transport::Channel;

use crate::access_log::documented_hash;

fn correction(
    national_id: &str,
    record_id: &str,
    replacement: Option<pb::Record>,
    reason: pb::CorrectionReason,
) -> pb::CorrectRecordRequest {
    use pb::correct_record_request::Correction as Kind;
    pb::CorrectRecordRequest {
        national_id: national_id.into(),
        record_id: record_id.into(),
        correction: Some(match replacement {
            Some(r) => Kind::Replacement(r),
            None => Kind::Retract(pb::Retraction {}),
        }),
        reason: reason as i32,
    }
}

async fn explain(c: &mut CityNodeClient<Channel>, id: &str) -> pb::ExplainResponse {
    c.explain(pb::ExplainRequest {
        national_id: id.into(),
    })
    .await
    .unwrap()
    .into_inner()
}

async fn access_log(c: &mut CityNodeClient<Channel>, id: &str) -> pb::AccessLogResponse {
    c.access_log(pb::AccessLogRequest {
        national_id: id.into(),
    })
    .await
    .unwrap()
    .into_inner()
}

async fn status(c: &mut CityNodeClient<Channel>, badge_id: &[u8]) -> pb::BadgeStatus {
    let answer = c
        .check_status(pb::CheckStatusRequest {
            badge_ids: vec![badge_id.to_vec()],
        })
        .await
        .unwrap()
        .into_inner();
    pb::BadgeStatus::try_from(answer.statuses[0]).unwrap()
}

#[tokio::test]
async fn a_correction_rescores_revokes_and_shows_in_explain_and_the_access_log_until_erased() {
    let mut pki = TestPki::new(unix_now()).unwrap();
    let hz = pki.add_city(330_100, "Hangzhou", "127.0.0.1:1").unwrap();
    let wuhan = pki.add_city(420_100, "Wuhan", "127.0.0.1:1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = RunningNode::start(&pki, hz, &dir.path().join("hz"))
        .await
        .unwrap();
    let op = pki.operator(hz).unwrap();
    let mut c = node_client(&pki, node.addr, &op).unwrap();
    let mut gateway = node_client(&pki, node.addr, &pki.gateway).unwrap();
    let id = national_id(hz, 19);
    let sampled = unix_now() - 3600;
    c.ingest_records(pb::IngestRequest {
        records: vec![
            test_record("lab-7", &id, false, sampled),
            test_record("lab-8", &id, false, sampled - 60),
        ],
    })
    .await
    .unwrap();
    let green = c
        .issue_badge(pb::IssueBadgeRequest {
            national_id: id.clone(),
            name: "Li Lei".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(green.colour, pb::Colour::Green as i32);

    // The lab amends lab-7 to positive: red at once, the green badge
    // revoked.
    let done = c
        .correct_record(correction(
            &id,
            "lab-7",
            Some(test_record("", "", true, sampled)),
            pb::CorrectionReason::SourceAmended,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.colour, pb::Colour::Red as i32);
    assert_eq!((done.revoked, done.superseded), (1, 0));
    assert_eq!(
        status(&mut gateway, &green.badge_id).await,
        pb::BadgeStatus::Revoked
    );
    let e = explain(&mut c, &id).await;
    assert_eq!(e.colour, pb::Colour::Red as i32);
    assert!(
        e.effects
            .iter()
            .any(|f| f.record_ids.contains(&"lab-7".to_owned())),
        "{:?}",
        e.effects
    );
    assert_eq!(e.corrections.len(), 1);
    let note = &e.corrections[0];
    assert_eq!(note.record_id, "lab-7");
    assert!(!note.retracted);
    assert_eq!(note.reason, pb::CorrectionReason::SourceAmended as i32);
    assert!(note.corrected_at > 0);

    // The resident appeals and wins: lab-7 is retracted, the colour is
    // green again and the red badge issued meanwhile is superseded, so a
    // fresh one can be issued.
    let red = c
        .issue_badge(pb::IssueBadgeRequest {
            national_id: id.clone(),
            name: "Li Lei".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(red.colour, pb::Colour::Red as i32);
    let done = c
        .correct_record(correction(
            &id,
            "lab-7",
            None,
            pb::CorrectionReason::AppealUpheld,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.colour, pb::Colour::Green as i32);
    assert_eq!((done.revoked, done.superseded), (0, 1));
    assert_eq!(
        status(&mut gateway, &red.badge_id).await,
        pb::BadgeStatus::Superseded
    );
    let e = explain(&mut c, &id).await;
    assert_eq!(e.colour, pb::Colour::Green as i32);
    assert!(
        e.effects
            .iter()
            .all(|f| !f.record_ids.contains(&"lab-7".to_owned()))
    );
    assert_eq!(e.corrections.len(), 1);
    assert!(e.corrections[0].retracted);
    assert_eq!(
        e.corrections[0].reason,
        pb::CorrectionReason::AppealUpheld as i32
    );
    let export = c
        .export_records(pb::ExportRequest {
            national_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = export
        .records
        .iter()
        .map(|r| r.record_id.as_str())
        .collect();
    assert_eq!(ids, ["lab-8"]);
    assert_eq!(
        export.corrections, e.corrections,
        "the export holds the mark too"
    );

    // Both corrections are in the resident's access log, hashed like every
    // entry, as the resident's app recomputes them.
    let log = access_log(&mut c, &id).await;
    let actions: Vec<&str> = log.entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "issue",
            "correct",
            "explain",
            "issue",
            "correct",
            "explain",
            "export",
            "access_log"
        ]
    );
    for e in &log.entries {
        assert_eq!(e.hash, documented_hash(e, &log.subject));
    }
    tessera_node::access_log::check_response(&log).unwrap();

    // A record the resident does not hold: NOT_FOUND, and nothing changes,
    // not even the log (only the AccessLog read after it adds an entry).
    for record in ["no-such-record", "lab-7"] {
        let err = c
            .correct_record(correction(
                &id,
                record,
                None,
                pb::CorrectionReason::EntryError,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{record}: {err}");
        assert!(err.message().contains("nothing was changed"), "{err}");
    }
    let after = access_log(&mut c, &id).await;
    assert_eq!(after.length, log.length + 1);
    assert_eq!(after.entries.len(), log.entries.len() + 1);
    // A request without a reason is refused as invalid.
    let mut no_reason = correction(&id, "lab-8", None, pb::CorrectionReason::EntryError);
    no_reason.reason = 0;
    let err = c.correct_record(no_reason).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");

    // Another city's operator, or the gateway, may not correct.
    for who in [pki.operator(wuhan).unwrap(), pki.gateway.clone()] {
        let mut other = node_client(&pki, node.addr, &who).unwrap();
        let err = other
            .correct_record(correction(
                &id,
                "lab-8",
                None,
                pb::CorrectionReason::EntryError,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err}");
    }
    assert_eq!(explain(&mut c, &id).await.corrections.len(), 1);

    // Erasure takes the correction's trace with everything else.
    c.erase_resident(pb::EraseRequest {
        national_id: id.clone(),
    })
    .await
    .unwrap();
    let e = explain(&mut c, &id).await;
    assert!(e.corrections.is_empty() && e.effects.is_empty(), "{e:?}");
}
