//! The committed store fixtures: a small store written by an earlier
//! release must open, read and keep reading in this one (see
//! `layout.rs`, the layout version, and docs/OPERATIONS.md, "Upgrade").

use std::path::{Path, PathBuf};

use super::*;
use crate::access_log::{AccessLog, Action, Actor};

const NOW: i64 = 1_800_000_000;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn resident(b: u8) -> Pseudonym {
    Pseudonym::from_slice(&[b; 32]).unwrap()
}

/// What the v1 fixture holds, written through the store of its time.
fn v1_change() -> Change {
    let record = |who: u8, id: &str, kind: RecordType, text: &str| NewRecord {
        resident: resident(who),
        record_id: id.into(),
        kind,
        at: NOW - 60,
        fingerprint: [0xf0 + who; 32],
        encoded: format!("plain:{text}").into_bytes(),
    };
    Change {
        records: vec![
            record(1, "a-1", RecordType::Test, "QUASAR-LAB"),
            record(1, "a-2", RecordType::Vaccination, "ORION-VAX"),
            record(2, "b-1", RecordType::Test, "PULSAR-LAB"),
        ],
        badges: vec![(
            BadgeId::from_bytes([7; 16]),
            BadgeRecord {
                resident: resident(1),
                colour: Colour::Green,
                issued_at: NOW,
                valid_until: NOW + 3600,
                state: BadgeState::Active,
            },
        )],
        states: vec![],
    }
}

/// Writes the v1 fixture into `$TESSERA_WRITE_STORE_FIXTURE` (an empty
/// directory): `store/` and `master.key` beside it. Run with the release
/// whose layout the fixture pins, then commit the directory:
/// `TESSERA_WRITE_STORE_FIXTURE=node/tests/fixtures/store-v1 cargo nextest run -p tessera-node --run-ignored only write_the_store_fixture`
#[test]
#[ignore = "writes a committed fixture; run by hand"]
fn write_the_store_fixture() {
    let dir = PathBuf::from(std::env::var("TESSERA_WRITE_STORE_FIXTURE").unwrap());
    let store = SledStore::open(&dir.join("store"), &dir.join("master.key")).unwrap();
    store.apply(&v1_change()).unwrap();
    let log = AccessLog::open(store.open_tree(crate::access_log::TREE).unwrap()).unwrap();
    let actor = Actor {
        serial: "0a0b".into(),
        city: 330100,
    };
    log.append(NOW, Action::Explain, &actor, &resident(1))
        .unwrap();
    store.flush().unwrap();
}
