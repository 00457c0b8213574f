//! Tests of issuance in the access log: every issuance of a valid ID number
//! is an `issue` entry, a decided batch is appended whole and the chain
//! verifies, and a failed issuance keeps its entry and stores nothing else.

use tessera_core::badge::SignError;

use super::tests::{NOW, Unplugged, city_with_key, operator, queued, state, valid_id};
use super::*;
use crate::access_log::{self, Action};
use crate::store::SledStore;

/// A city over a sled store in `dir` that logs in the store's database,
/// as a node does, with the key `held` signs.
fn logged_city(
    dir: &std::path::Path,
    held: impl FnOnce(tessera_core::ed25519_dalek::SigningKey) -> Arc<dyn tessera_core::badge::BadgeKey>,
) -> (City<SledStore>, Arc<AccessLog>, sled::Tree) {
    let city = city_with_key(dir, 1000, held);
    let tree = city.store.open_tree(access_log::TREE).unwrap();
    let log = Arc::new(AccessLog::open(tree.clone()).unwrap());
    (city.with_access_log(Arc::clone(&log)), log, tree)
}

fn resident(city: &City<SledStore>, id: &str) -> Pseudonym {
    city.resident(id).unwrap()
}

#[tokio::test]
async fn an_issuance_is_logged_as_its_callers_issue_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (city, log, tree) = logged_city(dir.path(), |k| Arc::new(k));
    let id = valid_id(1);
    let badge = city.issue(&id, "Li Lei", NOW, &operator()).await.unwrap();

    let entries = log.entries_of(&resident(&city, &id)).unwrap();
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!((e.sequence, e.action, e.at), (1, Action::Issue, NOW));
    assert_eq!(e.actor, operator());
    assert_eq!(log.head().unwrap().hash, e.hash);
    assert_eq!(state(&city, &badge), BadgeState::Active);
    let report = access_log::verify(&tree, None).unwrap();
    assert_eq!((report.problem, report.length), (None, 1));
}

#[test]
fn a_decided_batch_of_issuances_appends_one_linked_entry_each_and_the_chain_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (city, log, tree) = logged_city(dir.path(), |k| Arc::new(k));
    // A read logged before, so the batch links to an entry that exists.
    log.append(
        NOW,
        Action::Explain,
        &operator(),
        &resident(&city, &valid_id(0)),
    )
    .unwrap();
    // Twelve residents, one of them twice: thirteen issuances, one batch.
    let ids: Vec<String> = (1..=12).map(valid_id).chain([valid_id(5)]).collect();
    let (batch, answers): (Vec<_>, Vec<_>) = ids.iter().map(|id| queued(&city, id)).unzip();
    city.decide(batch);
    let badges: Vec<IssuedBadge> = answers
        .into_iter()
        .map(|a| a.blocking_recv().unwrap().unwrap())
        .collect();
    assert_eq!(badges.len(), 13);

    let head = log.head().unwrap();
    assert_eq!(head.length, 14);
    for (n, id) in ids.iter().enumerate().take(12) {
        let seqs: Vec<(u64, Action)> = log
            .entries_of(&resident(&city, id))
            .unwrap()
            .iter()
            .map(|e| (e.sequence, e.action))
            .collect();
        // Entries are numbered in the order the batch was queued.
        let own = u64::try_from(n).unwrap() + 2;
        if id == &valid_id(5) {
            assert_eq!(seqs, [(own, Action::Issue), (14, Action::Issue)]);
        } else {
            assert_eq!(seqs, [(own, Action::Issue)]);
        }
    }
    let report = access_log::verify(&tree, None).unwrap();
    assert_eq!(report.problem, None);
    assert_eq!((report.length, report.head_hash), (14, head.hash));
}

#[tokio::test]
async fn an_issuance_that_fails_after_its_entry_keeps_the_entry_and_stores_no_badge() {
    let dir = tempfile::tempdir().unwrap();
    let (city, log, tree) = logged_city(dir.path(), |key| Arc::new(Unplugged(key.verifying_key())));
    let id = valid_id(7);
    let err = city
        .issue(&id, "Li Lei", NOW, &operator())
        .await
        .unwrap_err();
    assert!(matches!(err, NodeError::Sign(SignError::Key(_))), "{err:?}");
    // The records were read to decide, so the request is in the log...
    let entries = log.entries_of(&resident(&city, &id)).unwrap();
    let actions: Vec<Action> = entries.iter().map(|e| e.action).collect();
    assert_eq!(actions, [Action::Issue]);
    // ...and nothing else was stored.
    assert!(
        city.store
            .badges_of(&resident(&city, &id))
            .unwrap()
            .is_empty()
    );
    assert_eq!(access_log::verify(&tree, None).unwrap().problem, None);
}

#[tokio::test]
async fn an_invalid_id_number_is_refused_and_logs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (city, log, _tree) = logged_city(dir.path(), |k| Arc::new(k));
    let err = city
        .issue("33010619900101123X0", "Li Lei", NOW, &operator())
        .await
        .unwrap_err();
    assert!(matches!(err, NodeError::NationalId(_)), "{err:?}");
    assert_eq!(log.head().unwrap().length, 0);
}

#[tokio::test]
async fn a_batch_that_cannot_be_logged_fails_whole_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let city = city_with_key(dir.path(), 1000, |k| Arc::new(k));
    let tree = city.store.open_tree(access_log::TREE).unwrap();
    // A head that records an entry the log does not hold: a damaged log.
    tree.insert(
        b"h",
        &[[0u8; 7].as_slice(), &[1u8], &[0u8; 32]].concat()[..],
    )
    .unwrap();
    let log = Arc::new(AccessLog::open(tree.clone()).unwrap());
    let city = city.with_access_log(log);
    let id = valid_id(3);
    let err = city
        .issue(&id, "Li Lei", NOW, &operator())
        .await
        .unwrap_err();
    assert!(
        matches!(err, NodeError::Unlogged(AccessLogError::Damaged(_))),
        "{err:?}"
    );
    assert_eq!(
        tonic::Status::from(err).code(),
        tonic::Code::FailedPrecondition
    );
    assert!(
        city.store
            .badges_of(&resident(&city, &id))
            .unwrap()
            .is_empty()
    );
}

/// A key that signs every other time, as a flaky token would.
struct EveryOther(
    tessera_core::ed25519_dalek::SigningKey,
    std::sync::atomic::AtomicUsize,
);

impl tessera_core::badge::BadgeKey for EveryOther {
    fn public_key(&self) -> tessera_core::ed25519_dalek::VerifyingKey {
        self.0.verifying_key()
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], SignError> {
        let n = self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n % 2 == 1 {
            return Err(SignError::Key("the device did not answer".into()));
        }
        tessera_core::badge::BadgeKey::sign(&self.0, message)
    }
}

#[test]
fn badges_that_fail_to_sign_in_a_batch_store_nothing_and_supersede_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (city, log, tree) = logged_city(dir.path(), |k| {
        Arc::new(EveryOther(k, std::sync::atomic::AtomicUsize::new(0)))
    });
    let id = valid_id(9);
    // One badge stored before the batch (the key's first call signs).
    let (q, answer) = queued(&city, &id);
    city.decide(vec![q]);
    let earliest = answer.blocking_recv().unwrap().unwrap();
    // Eight issuances for the same resident in one batch, signed on two
    // threads: some fail, and which depends on the order the threads call
    // the key in.
    let (batch, answers): (Vec<_>, Vec<_>) = (0..8).map(|_| queued(&city, &id)).unzip();
    city.decide(batch);
    let results: Vec<_> = answers
        .into_iter()
        .map(|a| a.blocking_recv().unwrap())
        .collect();
    let signed: Vec<&IssuedBadge> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let failed = results.iter().filter(|r| r.is_err()).count();
    assert_eq!((signed.len(), failed), (4, 4));
    // Only the signed badges are stored, the last of them active, the
    // earlier ones and the badge from before superseded.
    let stored = city.store.badges_of(&resident(&city, &id)).unwrap();
    assert_eq!(stored.len(), 5);
    assert_eq!(state(&city, &earliest), BadgeState::Superseded(NOW));
    let (last, before) = signed.split_last().unwrap();
    assert_eq!(state(&city, last), BadgeState::Active);
    for b in before {
        assert_eq!(state(&city, b), BadgeState::Superseded(NOW));
    }
    // Every one of the nine issuances is in the log, failed or not.
    assert_eq!(log.entries_of(&resident(&city, &id)).unwrap().len(), 9);
    assert_eq!(access_log::verify(&tree, None).unwrap().problem, None);
}
