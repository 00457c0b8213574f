//! The import against a real city over a sled store: two passes, batches of
//! `max_batch`, nothing stored by a refused file, a file changed between
//! the passes.

use std::cell::Cell;
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::rc::Rc;

use super::*;
use crate::city::tests::{NOW, city_with_max_batch};
use crate::pseudonym::check_character;

const HEADER: &str = "record_id,national_id,type,time,test_kind,positive,lab\n";

fn national_id(n: u64) -> String {
    let first17 = format!("33010619900101{:03}", n % 1000);
    let check = check_character(first17.as_bytes()).unwrap();
    format!("{first17}{check}")
}

fn row(i: u64) -> String {
    format!(
        "r{i},{},test,2027-01-15T00:00:00Z,pcr,false,HZ-LAB-01\n",
        national_id(i)
    )
}

/// A file of `n` rows, and the byte offset after each row.
fn file(n: u64) -> (Vec<u8>, Vec<u64>) {
    let mut text = HEADER.as_bytes().to_vec();
    let mut ends = vec![];
    for i in 0..n {
        text.extend_from_slice(row(i).as_bytes());
        ends.push(text.len() as u64);
    }
    (text, ends)
}

/// Serves `first` until it is rewound, then `then`; counts the bytes read
/// since the last rewind.
struct TwoFaces {
    first: Cursor<Vec<u8>>,
    then: Cursor<Vec<u8>>,
    rewound: bool,
    read: Rc<Cell<u64>>,
}

impl TwoFaces {
    fn new(first: Vec<u8>, then: Vec<u8>) -> (Self, Rc<Cell<u64>>) {
        let read = Rc::new(Cell::new(0));
        let faces = Self {
            first: Cursor::new(first),
            then: Cursor::new(then),
            rewound: false,
            read: Rc::clone(&read),
        };
        (faces, read)
    }
}

impl Read for TwoFaces {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = if self.rewound {
            self.then.read(buf)?
        } else {
            self.first.read(buf)?
        };
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

impl Seek for TwoFaces {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        assert_eq!(to, SeekFrom::Start(0), "only rewinds");
        self.rewound = true;
        self.read.set(0);
        self.then.seek(to)
    }
}

/// Imports `text` with the default limits; returns the report and every
/// (done, total) the progress callback was given.
async fn import_text(
    city: &City<crate::store::SledStore>,
    text: &[u8],
    skip_invalid: bool,
) -> (Result<ImportReport, ImportError>, Vec<(u64, u64)>) {
    let mut steps = vec![];
    let result = import(
        city,
        Cursor::new(text),
        Limits::default(),
        skip_invalid,
        NOW,
        |done, total| steps.push((done, total)),
    )
    .await;
    (result, steps)
}

#[tokio::test]
async fn a_file_far_larger_than_the_read_buffer_is_stored_whole_one_batch_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let city = city_with_max_batch(dir.path(), 500);
    let (text, ends) = file(20_000);
    assert!(text.len() > 20 * READ_BUFFER, "{} bytes", text.len());
    let (faces, read) = TwoFaces::new(text.clone(), text.clone());
    let mut steps = vec![];
    let report = import(
        &city,
        faces,
        Limits::default(),
        false,
        NOW,
        |done, total| {
            // When a batch is durable, the store pass has read its rows and at
            // most one buffer more: the file is not read ahead of the batches.
            let last = usize::try_from(done).unwrap() - 1;
            assert!(
                read.get() <= ends[last] + READ_BUFFER as u64,
                "{} bytes read when {done} rows were stored",
                read.get()
            );
            steps.push((done, total));
        },
    )
    .await
    .unwrap();
    assert_eq!(report.stored, 20_000);
    assert_eq!(report.duplicates, 0);
    // 40 batches of exactly 500, each acknowledged once durable.
    let expected: Vec<(u64, u64)> = (1..=40).map(|k| (k * 500, 20_000)).collect();
    assert_eq!(steps, expected);

    // Every row is stored: each resident holds its 20, and the same file
    // again stores nothing new.
    for n in [0, 1, 500, 999] {
        let held = city.export(&national_id(n), NOW).unwrap();
        assert_eq!(held.len(), 20, "resident {n}");
    }
    let (again, _) = import_text(&city, &text, false).await;
    let again = again.unwrap();
    assert_eq!((again.stored, again.duplicates), (0, 20_000));
}

#[tokio::test]
async fn a_bad_row_in_the_middle_names_its_line_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let city = city_with_max_batch(dir.path(), 100);
    let (good, _) = file(3_000);
    // Row 1,499 (line 1,501) has a type no record has: the 14 batches
    // before it are valid, and none of them may be stored.
    let bad = String::from_utf8(good.clone()).unwrap().replacen(
        &row(1499),
        &row(1499).replace(",test,", ",colour,"),
        1,
    );
    assert_ne!(bad.as_bytes(), good.as_slice());
    let (result, steps) = import_text(&city, bad.as_bytes(), false).await;
    let Err(ImportError::Invalid(errors)) = result else {
        panic!("{result:?}");
    };
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, 1_501);
    assert!(
        errors[0].reason.contains("\"colour\""),
        "{}",
        errors[0].reason
    );
    assert!(steps.is_empty(), "{steps:?}");

    // The store is unchanged: the good file is all new.
    let (report, _) = import_text(&city, &good, false).await;
    let report = report.unwrap();
    assert_eq!((report.stored, report.duplicates), (3_000, 0));
}

#[tokio::test]
async fn a_file_over_either_limit_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let city = city_with_max_batch(dir.path(), 10);
    let (text, _) = file(100);
    for limits in [
        Limits {
            max_bytes: u64::MAX,
            max_rows: 99,
        },
        Limits {
            max_bytes: text.len() as u64 - 1,
            max_rows: u64::MAX,
        },
    ] {
        let mut steps = 0;
        let err = import(&city, Cursor::new(&text), limits, true, NOW, |_, _| {
            steps += 1;
        })
        .await
        .unwrap_err();
        assert!(
            matches!(
                err,
                ImportError::TooManyRows { limit: 99 } | ImportError::TooLarge { .. }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains("raise the limit with --max-"),
            "{err}"
        );
        assert_eq!(steps, 0);
    }
    let (report, _) = import_text(&city, &text, false).await;
    assert_eq!(report.unwrap().stored, 100);
}

#[tokio::test]
async fn skipped_lines_are_the_same_in_both_passes() {
    let dir = tempfile::tempdir().unwrap();
    let city = city_with_max_batch(dir.path(), 7);
    let mut text = String::from_utf8(file(50).0).unwrap();
    // Line 52: r3 again, same content (a duplicate); line 53: r4 again with
    // other content (refused); line 54: one field (refused).
    text.push_str(&row(3));
    text.push_str(&row(4).replace("false", "true"));
    text.push_str("x\n");
    let (report, steps) = import_text(&city, text.as_bytes(), true).await;
    let report = report.unwrap();
    let skipped: Vec<u64> = report.skipped.iter().map(|e| e.line).collect();
    assert_eq!(skipped, [53, 54]);
    assert!(
        report.skipped[0].reason.contains("used on line 6"),
        "{}",
        report.skipped[0].reason
    );
    assert_eq!((report.stored, report.duplicates), (50, 1));
    assert_eq!(steps.last(), Some(&(51, 51)));
}

#[tokio::test]
async fn a_file_changed_between_check_and_store_stops_before_the_changed_batch() {
    let dir = tempfile::tempdir().unwrap();
    let city = city_with_max_batch(dir.path(), 100);
    let (text, _) = file(1_000);
    // Row 250 (line 252, in the third batch, which starts at line 202)
    // reads differently the second time, still valid.
    let changed = String::from_utf8(text.clone()).unwrap().replacen(
        &row(250),
        &row(250).replace(",false,", ",true,"),
        1,
    );
    assert_ne!(changed.as_bytes(), text.as_slice());
    let (faces, _) = TwoFaces::new(text.clone(), changed.into_bytes());
    let mut steps = vec![];
    let err = import(&city, faces, Limits::default(), false, NOW, |done, _| {
        steps.push(done);
    })
    .await
    .unwrap_err();
    let ImportError::Interrupted {
        line, done, total, ..
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!((*line, *done, *total), (202, 200, 1_000), "{err}");
    assert!(err.to_string().contains("the file changed"), "{err}");
    assert_eq!(steps, [100, 200]);
    // The two batches before it are stored; the original file finishes it.
    let (report, _) = import_text(&city, &text, false).await;
    let report = report.unwrap();
    assert_eq!((report.stored, report.duplicates), (800, 200));
}
