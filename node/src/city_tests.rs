//! Tests of [`crate::city`]: retention and export with an injected clock, batches, issuance and revocation.

use tessera_certs::keys;
use tessera_certs::profile::{CertRequest, RootCa};
use tessera_core::badge::BadgeKey;
use tessera_core::ed25519_dalek;
use tessera_core::{Colour, Identity, Role, Scope};

use super::*;
use crate::store::SledStore;

pub(crate) const NOW: i64 = 1_800_000_000;

/// The operator the tests issue badges as.
pub(crate) fn operator() -> crate::access_log::Actor {
    crate::access_log::Actor {
        serial: "0a1b2c".into(),
        city: 330100,
    }
}

fn city(dir: &std::path::Path) -> City<SledStore> {
    city_with_max_batch(dir, 1000)
}

/// A city over a sled store in `dir`, storing at most `max_batch`
/// records at a time.
pub(crate) fn city_with_max_batch(dir: &std::path::Path, max_batch: usize) -> City<SledStore> {
    city_with_key(dir, max_batch, |key| Arc::new(key))
}

/// A city whose badge-signer key is `held(key)`: the key as a token would
/// hold it, for instance.
pub(crate) fn city_with_key(
    dir: &std::path::Path,
    max_batch: usize,
    held: impl FnOnce(ed25519_dalek::SigningKey) -> Arc<dyn BadgeKey>,
) -> City<SledStore> {
    let request = |identity, name: &str| CertRequest {
        identity,
        common_name: name.into(),
        hosts: vec![],
        not_before: NOW - 86_400,
        not_after: NOW + 86_400 * 365,
        serial: None,
    };
    let root = RootCa::create(
        &request(Identity::new(Role::Root, Scope::Nation).unwrap(), "root"),
        keys::TlsKey::generate(),
    )
    .unwrap();
    let code: CityCode = "330100".parse().unwrap();
    let key = keys::generate_signer_key();
    let der = root
        .issue(
            &request(
                Identity::new(Role::BadgeSigner, Scope::City(code)).unwrap(),
                "signer",
            ),
            &key,
        )
        .unwrap();
    City::new(
        Arc::new(SledStore::open(&dir.join("store"), &dir.join("master.key")).unwrap()),
        Policy::default_policy().unwrap(),
        BadgeSigner::with_key(held(key), &der).unwrap(),
        PseudonymKey::from_bytes([9; 32]),
        max_batch,
    )
}

pub(super) fn queued(
    city: &City<SledStore>,
    national_id: &str,
) -> (Queued, oneshot::Receiver<Result<IssuedBadge, NodeError>>) {
    let id = NationalId::parse(national_id).unwrap();
    let (decided, answer) = oneshot::channel();
    let q = Queued {
        resident: city.pseudonyms.pseudonym(&id),
        id,
        name: "Li Lei".into(),
        now: NOW,
        actor: operator(),
        decided,
    };
    (q, answer)
}

pub(crate) fn state(city: &City<SledStore>, issued: &IssuedBadge) -> BadgeState {
    city.store
        .badge_state(&issued.claims.badge_id)
        .unwrap()
        .unwrap()
}

#[test]
fn an_end_of_validity_is_brought_forward_at_most_a_quarter_and_never_repeats_a_taken_one() {
    // Every end the jitter could pick is taken: the badge steps past
    // them, still inside its window.
    let taken: HashSet<i64> = (NOW + 75..=NOW + 100).collect();
    for _ in 0..100 {
        let end = unlinkable_end(NOW, NOW + 100, &taken);
        assert!(!taken.contains(&end) && end > NOW, "{end}");
    }
    let free = HashSet::new();
    for _ in 0..100 {
        let end = unlinkable_end(NOW, NOW + 100, &free);
        assert!((NOW + 75..=NOW + 100).contains(&end), "{end}");
    }
    let long = NOW + 72 * 3600;
    let end = unlinkable_end(NOW, long, &free);
    assert!((long - VALIDITY_JITTER_SECS..=long).contains(&end), "{end}");
}

#[test]
fn one_batch_with_two_issuances_for_one_resident_leaves_the_later_one_active() {
    let dir = tempfile::tempdir().unwrap();
    let city = city(dir.path());
    let first17 = "33010619900101123";
    let id = format!(
        "{first17}{}",
        crate::pseudonym::check_character(first17.as_bytes()).unwrap()
    );
    let other17 = "33010619900101456";
    let other = format!(
        "{other17}{}",
        crate::pseudonym::check_character(other17.as_bytes()).unwrap()
    );
    // An earlier badge, stored before the batch.
    let (q, answer) = queued(&city, &id);
    city.decide(vec![q]);
    let earliest = answer.blocking_recv().unwrap().unwrap();

    let (a, first) = queued(&city, &id);
    let (b, bystander) = queued(&city, &other);
    let (c, second) = queued(&city, &id);
    city.decide(vec![a, b, c]);
    let first = first.blocking_recv().unwrap().unwrap();
    let bystander = bystander.blocking_recv().unwrap().unwrap();
    let second = second.blocking_recv().unwrap().unwrap();

    assert_eq!(state(&city, &earliest), BadgeState::Superseded(NOW));
    assert_eq!(state(&city, &first), BadgeState::Superseded(NOW));
    assert_eq!(state(&city, &second), BadgeState::Active);
    assert_eq!(state(&city, &bystander), BadgeState::Active);
    let active = city
        .store
        .badges_of(&city.pseudonyms.pseudonym(&NationalId::parse(&id).unwrap()))
        .unwrap()
        .into_iter()
        .filter(|(_, b)| b.state == BadgeState::Active)
        .count();
    assert_eq!(active, 1);
}

pub(crate) fn valid_id(n: u32) -> String {
    let first17 = format!("33010619900101{n:03}");
    format!(
        "{first17}{}",
        crate::pseudonym::check_character(first17.as_bytes()).unwrap()
    )
}

fn test_record(id: &str, national_id: &str, positive: bool, sampled_at: i64) -> pb::Record {
    pb::Record {
        record_id: id.into(),
        national_id: national_id.into(),
        kind: Some(pb::record::Kind::Test(pb::TestResult {
            kind: pb::TestKind::Pcr as i32,
            positive,
            sampled_at,
            lab: "HZ-LAB-01".into(),
        })),
    }
}

const DAY: i64 = 86_400;

#[tokio::test]
async fn an_expired_positive_test_stops_counting_at_once_and_the_sweep_deletes_it() {
    let dir = tempfile::tempdir().unwrap();
    // Tests kept 10 days: shorter than the 14 days the positive-test
    // rule looks back, so retention alone turns the badge green.
    let city = city(dir.path()).with_retention(Retention {
        test_days: 10,
        ..Retention::default()
    });
    let id = valid_id(1);
    let sampled = NOW - 60;
    city.ingest(&[test_record("pos-1", &id, true, sampled)], NOW)
        .await
        .unwrap();
    assert_eq!(city.explain(&id, NOW).unwrap().colour, Colour::Red);
    let last_kept = sampled + 10 * DAY;
    assert_eq!(city.explain(&id, last_kept).unwrap().colour, Colour::Red);
    let badge = city
        .issue(&id, "Li Lei", last_kept, &operator())
        .await
        .unwrap();
    assert_eq!(badge.claims.colour, Colour::Red);

    // One second later it counts for nothing, before any sweep...
    let expired = last_kept + 1;
    let a = city.explain(&id, expired).unwrap();
    assert_eq!(a.colour, Colour::Green);
    assert!(a.fired.is_empty(), "{:?}", a.fired);
    let badge = city
        .issue(&id, "Li Lei", expired, &operator())
        .await
        .unwrap();
    assert_eq!(badge.claims.colour, Colour::Green);
    assert!(city.export(&id, expired).unwrap().is_empty());
    // ...though it is still stored until the sweep runs.
    let resident = city.pseudonyms.pseudonym(&NationalId::parse(&id).unwrap());
    assert_eq!(city.store.records_of(&resident).unwrap().len(), 1);

    let swept = city.sweep(expired, 1000).await.unwrap();
    assert_eq!(swept.records, [1, 0, 0, 0, 0]);
    assert!(city.store.records_of(&resident).unwrap().is_empty());
    assert_eq!(city.store.fingerprint("pos-1").unwrap(), None);
    assert!(
        city.store
            .raw_keys()
            .unwrap()
            .iter()
            .all(|k| !k.windows(5).any(|w| w == b"pos-1")),
        "a key naming the record is left in the tree"
    );
    // The badges stay until 7 days after their validity ends.
    let badges = city.store.badges_of(&resident).unwrap();
    assert_eq!(badges.len(), 2);
    let gone = badges.iter().map(|(_, b)| b.valid_until).max().unwrap() + 7 * DAY + 1;
    let swept = city.sweep(gone, 1).await.unwrap();
    assert_eq!(swept.badges, 2, "two batches of one, both counted");
    let statuses = city
        .check_status(&[badge.claims.badge_id.as_bytes().to_vec()])
        .unwrap();
    assert_eq!(statuses, vec![pb::BadgeStatus::Unknown]);
}

#[tokio::test]
async fn a_record_already_past_retention_is_refused_naming_type_and_period() {
    let dir = tempfile::tempdir().unwrap();
    let city = city(dir.path());
    let id = valid_id(2);
    let err = city
        .ingest(
            &[
                test_record("ok", &id, false, NOW - 60),
                test_record("old", &id, false, NOW - 28 * DAY - 1),
            ],
            NOW,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("record 1: test record dated 1797580799 is past the 28-day retention"),
        "{err}"
    );
    // Nothing of the batch was stored.
    assert!(city.export(&id, NOW).unwrap().is_empty());
    // Exactly 28 days old is still kept.
    city.ingest(&[test_record("edge", &id, false, NOW - 28 * DAY)], NOW)
        .await
        .unwrap();
}

#[tokio::test]
async fn export_is_oldest_first_without_the_id_and_erase_counts_what_it_destroyed() {
    let dir = tempfile::tempdir().unwrap();
    let city = city(dir.path());
    let id = valid_id(3);
    city.ingest(
        &[
            test_record("late", &id, false, NOW - 60),
            test_record("early", &id, false, NOW - 3 * DAY),
        ],
        NOW,
    )
    .await
    .unwrap();
    let badge = city.issue(&id, "Li Lei", NOW, &operator()).await.unwrap();
    let export = city.export(&id, NOW).unwrap();
    let ids: Vec<_> = export.iter().map(|r| r.record_id.as_str()).collect();
    assert_eq!(ids, ["early", "late"]);
    assert!(export.iter().all(|r| r.national_id.is_empty()));

    let erased = city.erase(&id).await.unwrap();
    assert_eq!((erased.records, erased.badges), (2, 1));
    assert!(city.export(&id, NOW).unwrap().is_empty());
    assert_eq!(
        city.check_status(&[badge.claims.badge_id.as_bytes().to_vec()])
            .unwrap(),
        vec![pb::BadgeStatus::Unknown]
    );
    // The record ids are free again: the same record is stored anew.
    let again = city
        .ingest(&[test_record("late", &id, false, NOW - 60)], NOW)
        .await
        .unwrap();
    assert_eq!(again.stored, 1);
}

fn correction(
    national_id: &str,
    record_id: &str,
    replacement: Option<pb::Record>,
) -> pb::CorrectRecordRequest {
    use pb::correct_record_request::Correction as Kind;
    pb::CorrectRecordRequest {
        national_id: national_id.into(),
        record_id: record_id.into(),
        correction: Some(match replacement {
            Some(r) => Kind::Replacement(r),
            None => Kind::Retract(pb::Retraction {}),
        }),
        reason: pb::CorrectionReason::SourceAmended as i32,
    }
}

async fn correct(
    city: &City<SledStore>,
    request: &pb::CorrectRecordRequest,
    now: i64,
) -> Result<Corrected, NodeError> {
    let prepared = city.prepare_correction(request, now)?;
    city.correct(&prepared, now).await
}

fn names(city: &City<SledStore>, needle: &[u8]) -> bool {
    city.store
        .raw_keys()
        .unwrap()
        .iter()
        .any(|k| k.windows(needle.len()).any(|w| w == needle))
}

#[tokio::test]
async fn a_correction_that_worsens_the_colour_revokes_and_one_that_improves_it_supersedes() {
    let dir = tempfile::tempdir().unwrap();
    let city = city(dir.path());
    let id = valid_id(4);
    let negative = test_record("lab-7", &id, false, NOW - 3600);
    city.ingest(std::slice::from_ref(&negative), NOW)
        .await
        .unwrap();
    let green = city.issue(&id, "Li Lei", NOW, &operator()).await.unwrap();
    assert_eq!(green.claims.colour, Colour::Green);

    // The lab amends its result to positive: the resident is red at once
    // and the green badge is revoked.
    let positive = pb::Record {
        record_id: String::new(),
        national_id: String::new(),
        ..test_record("", "", true, NOW - 3600)
    };
    let done = correct(&city, &correction(&id, "lab-7", Some(positive)), NOW + 1)
        .await
        .unwrap();
    assert_eq!(
        done,
        Corrected {
            colour: Some(Colour::Red),
            revoked: 1,
            superseded: 0
        }
    );
    assert_eq!(state(&city, &green), BadgeState::Revoked(NOW + 1));
    assert_eq!(city.explain(&id, NOW + 1).unwrap().colour, Colour::Red);
    let marks = city.corrections(&id, NOW + 1).unwrap();
    assert_eq!(marks.len(), 1);
    assert!(!marks[0].retracted);
    assert_eq!(marks[0].record_id, "lab-7");
    assert_eq!(marks[0].reason, pb::CorrectionReason::SourceAmended as u8);

    // Retracted: green again, the red badge superseded so a fresh one can
    // be issued, and the record is gone from the export.
    let red = city
        .issue(&id, "Li Lei", NOW + 2, &operator())
        .await
        .unwrap();
    assert_eq!(red.claims.colour, Colour::Red);
    let done = correct(&city, &correction(&id, "lab-7", None), NOW + 3)
        .await
        .unwrap();
    assert_eq!((done.revoked, done.superseded), (0, 1));
    assert_eq!(done.colour, Some(Colour::Green));
    assert_eq!(state(&city, &red), BadgeState::Superseded(NOW + 3));
    assert!(city.export(&id, NOW + 3).unwrap().is_empty());
    let marks = city.corrections(&id, NOW + 3).unwrap();
    assert!(marks.len() == 1 && marks[0].retracted, "{marks:?}");

    // The lab's retry of its original batch does not bring the record back.
    let retry = city
        .ingest(std::slice::from_ref(&negative), NOW + 4)
        .await
        .unwrap();
    assert_eq!((retry.stored, retry.duplicates), (0, 1));
    assert!(city.export(&id, NOW + 4).unwrap().is_empty());
    // A retracted record cannot be corrected again.
    assert!(matches!(
        correct(&city, &correction(&id, "lab-7", None), NOW + 5).await,
        Err(NodeError::UnknownRecord(_))
    ));
}

#[tokio::test]
async fn a_correction_of_a_record_the_resident_does_not_hold_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let city = city(dir.path());
    let (id, other) = (valid_id(5), valid_id(6));
    city.ingest(&[test_record("theirs", &other, true, NOW - 60)], NOW)
        .await
        .unwrap();
    city.ingest(&[test_record("mine", &id, false, NOW - 60)], NOW)
        .await
        .unwrap();
    let before = city.store.raw_keys().unwrap();
    for (record, replacement) in [
        ("nowhere", None),
        // Another resident's record is not found through this one.
        ("theirs", None),
        ("theirs", Some(test_record("", "", false, NOW - 60))),
    ] {
        let err = correct(&city, &correction(&id, record, replacement), NOW)
            .await
            .unwrap_err();
        assert!(matches!(err, NodeError::UnknownRecord(_)), "{err}");
    }
    // Bad requests are refused precisely.
    let mut no_reason = correction(&id, "mine", None);
    no_reason.reason = 0;
    let moved = correction(
        &id,
        "mine",
        Some(test_record("mine", &other, false, NOW - 60)),
    );
    let mut nothing = correction(&id, "mine", None);
    nothing.correction = None;
    let invalid = correction(&id, "mine", Some(test_record("", "", false, NOW + DAY)));
    for (request, says) in [
        (no_reason, "reason 0"),
        (moved, "national_id differs"),
        (nothing, "neither a replacement nor a retraction"),
        (invalid, "record 0"),
    ] {
        let err = correct(&city, &request, NOW).await.unwrap_err();
        assert!(err.to_string().contains(says), "{err}");
    }
    assert_eq!(city.store.raw_keys().unwrap(), before);
    assert!(city.corrections(&id, NOW).unwrap().is_empty());
}

#[tokio::test]
async fn erasure_and_the_sweep_remove_a_corrections_trace() {
    let dir = tempfile::tempdir().unwrap();
    let city = city(dir.path()).with_retention(Retention {
        test_days: 10,
        ..Retention::default()
    });
    let (erased, swept) = (valid_id(7), valid_id(8));
    city.ingest(
        &[
            test_record("erase-me", &erased, true, NOW - 60),
            test_record("sweep-replaced", &swept, true, NOW - 60),
            test_record("sweep-retracted", &swept, true, NOW - 120),
        ],
        NOW,
    )
    .await
    .unwrap();
    correct(&city, &correction(&erased, "erase-me", None), NOW)
        .await
        .unwrap();
    let replacement = test_record("", "", false, NOW - 60);
    correct(
        &city,
        &correction(&swept, "sweep-replaced", Some(replacement)),
        NOW,
    )
    .await
    .unwrap();
    correct(&city, &correction(&swept, "sweep-retracted", None), NOW)
        .await
        .unwrap();
    assert!(names(&city, b"erase-me"));

    city.erase(&erased).await.unwrap();
    assert!(!names(&city, b"erase-me"), "erasure left the mark");
    assert!(city.corrections(&erased, NOW).unwrap().is_empty());

    // Past the tests' retention both marks go, with the replaced record
    // and with the retracted one's reserved id; the resident's data key
    // goes too, as nothing of theirs is left.
    let past = NOW + 10 * DAY + 1;
    assert!(city.corrections(&swept, past).unwrap().is_empty());
    let done = city.sweep(past, 1000).await.unwrap();
    assert_eq!(done.records, [1, 0, 0, 0, 0]);
    assert_eq!((done.corrections, done.keys), (2, 1));
    assert!(!names(&city, b"sweep-re"), "the sweep left a trace");
    let resident = city.resident(&swept).unwrap();
    assert!(city.store.corrections_of(&resident).unwrap().is_empty());
}

/// A key that answers with its public half but cannot sign, as a token
/// that was unplugged or logged out would.
pub(crate) struct Unplugged(pub(crate) ed25519_dalek::VerifyingKey);

impl BadgeKey for Unplugged {
    fn public_key(&self) -> ed25519_dalek::VerifyingKey {
        self.0
    }

    fn sign(&self, _message: &[u8]) -> Result<[u8; 64], SignError> {
        Err(SignError::Key(
            "token \"hangzhou\": signing: the device was removed".into(),
        ))
    }
}

#[tokio::test]
async fn a_key_that_cannot_sign_fails_the_issuance_as_internal_and_stores_no_badge() {
    let dir = tempfile::tempdir().unwrap();
    let city = city_with_key(dir.path(), 1000, |key| {
        Arc::new(Unplugged(key.verifying_key()))
    });
    let first17 = "33010619900101123";
    let id = format!(
        "{first17}{}",
        crate::pseudonym::check_character(first17.as_bytes()).unwrap()
    );
    let err = city
        .issue(&id, "Li Lei", NOW, &operator())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, NodeError::Sign(SignError::Key(why)) if why.contains("device was removed")),
        "{err:?}"
    );
    assert_eq!(tonic::Status::from(err).code(), tonic::Code::Internal);
    // Nothing was stored for the failed issuance: the resident holds no badge.
    let resident = city.pseudonyms.pseudonym(&NationalId::parse(&id).unwrap());
    assert!(city.store.badges_of(&resident).unwrap().is_empty());
}
