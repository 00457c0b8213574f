//! CSV import for lab and clinic exports.
//!
//! The header names the columns, in any order; `record_id`, `national_id`,
//! `type` and `time` are required, the others only where a row's type needs
//! them, and a value in a column that does not apply to the row's type is an
//! error. Columns (documented in docs/OPERATIONS.md):
//!
//! | column | for | value |
//! | --- | --- | --- |
//! | record_id | all | unique id from the source system |
//! | national_id | all | 18-character ID number |
//! | type | all | test, vaccination, exposure, travel or symptoms |
//! | time | all | RFC 3339, e.g. 2026-11-20T08:30:00+08:00 (sampled, given, exposed, left, declared) |
//! | test_kind, positive, lab | test | pcr or antigen; true or false; lab code |
//! | product, dose | vaccination | product name; 1 to 10 |
//! | contact, source | exposure | close or secondary; issuing authority |
//! | area_code, risk | travel | 6-digit code; low, medium or high |
//! | symptoms | symptoms | `;`-separated: fever, cough, sore_throat, loss_of_taste_or_smell, shortness_of_breath, fatigue |
//!
//! A file is read twice, each time as a stream through a buffer of
//! [`READ_BUFFER`] bytes; neither pass holds its text or its records:
//!
//! 1. **Check**: every row is parsed and validated as the node would store
//!    it (against the store and the rows before it), and counted. Nothing is
//!    written. The file is refused when it is larger than
//!    [`Limits::max_bytes`] (no more than one byte past it is read) or has
//!    more than [`Limits::max_rows`] rows (reading stops at the first row
//!    past it), and, unless invalid lines are skipped, when any line is
//!    invalid: a refused file changes no stored data.
//! 2. **Store**: the file is read again and the accepted rows are stored in
//!    batches of the node's `max_batch_records`, each acknowledged (to the
//!    progress callback) only once durable. Each batch is compared with a
//!    digest the check took of it; a file changed in between stops the
//!    import before the first changed batch ([`ImportError::Interrupted`]).
//!
//! What the check keeps grows with the file only by about 40 bytes per
//! distinct record id (to find an id reused with other content) and by the
//! invalid lines it reports; memory for rows is one batch.

mod reader;
mod row;

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};

use sha2::{Digest, Sha256};
use tessera_proto::v1 as pb;

use crate::city::{City, NodeError};
use crate::store::Store;

pub use reader::{READ_BUFFER, Row, RowReader};

/// Every column a file may have.
pub const COLUMNS: [&str; 14] = [
    "record_id",
    "national_id",
    "type",
    "time",
    "test_kind",
    "positive",
    "lab",
    "product",
    "dose",
    "contact",
    "source",
    "area_code",
    "risk",
    "symptoms",
];
const REQUIRED: [&str; 4] = ["record_id", "national_id", "type", "time"];

/// Largest file `tessera node import` reads unless told otherwise (256 MiB).
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Most rows `tessera node import` reads unless told otherwise.
pub const DEFAULT_MAX_ROWS: u64 = 1_000_000;

/// How large a file an import accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes.
    pub max_bytes: u64,
    /// Most rows (lines after the header, valid or not).
    pub max_rows: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            max_rows: DEFAULT_MAX_ROWS,
        }
    }
}

impl Limits {
    /// Refuses a file of `len` bytes over the limit, before it is read.
    pub fn check_size(&self, len: u64) -> Result<(), ImportError> {
        if len > self.max_bytes {
            return Err(ImportError::TooLarge {
                size: Some(len),
                limit: self.max_bytes,
            });
        }
        Ok(())
    }
}

/// One refused line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    /// Why.
    pub reason: String,
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read; nothing was imported.
    #[error("cannot read the file: {0}")]
    Read(#[from] std::io::Error),
    /// The header is wrong; nothing was imported.
    #[error("header: {0}")]
    Header(String),
    /// The file is over the size limit; nothing was read past it and
    /// nothing was imported.
    #[error(
        "the file is larger than the limit of {limit} bytes{}; nothing was imported: split it, or raise the limit with --max-bytes",
        size.map_or_else(String::new, |s| format!(": it has {s}"))
    )]
    TooLarge {
        /// The file's size, when known before reading.
        size: Option<u64>,
        /// The limit.
        limit: u64,
    },
    /// The file has more rows than the limit; nothing was imported.
    #[error(
        "the file has more than {limit} rows; nothing was imported: split it, or raise the limit with --max-rows"
    )]
    TooManyRows {
        /// The limit.
        limit: u64,
    },
    /// Invalid lines; nothing was imported.
    #[error("{} invalid line(s); nothing was imported", .0.len())]
    Invalid(Vec<LineError>),
    /// Reading the store while checking failed; nothing was imported.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// Storing stopped part-way: the batches before `line` are stored and
    /// durable, nothing from it on. Running the same import again finishes
    /// it (the records already stored count as duplicates).
    #[error(
        "stopped at line {line}: {reason}; {done} of {total} records (every line before it) are stored and durable, none after: once fixed, run the same import again (records already stored count as duplicates)"
    )]
    Interrupted {
        /// The first line of the batch that was not stored.
        line: u64,
        /// Records before it, stored (or found already stored).
        done: u64,
        /// Records the check accepted.
        total: u64,
        /// Why.
        reason: String,
    },
}

/// The result of an import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Records newly stored.
    pub stored: u64,
    /// Records already stored (a re-import).
    pub duplicates: u64,
    /// Badges revoked by the new records.
    pub revoked: u64,
    /// Lines skipped as invalid (with `skip_invalid`).
    pub skipped: Vec<LineError>,
}

/// Parsed rows: line number and record.
pub type Rows = Vec<(u64, pb::Record)>;

/// Reads a CSV file into records, collecting every invalid line, within the
/// default [`Limits`]. Holds every row: for tests and fuzzing.
pub fn parse_csv(input: impl Read) -> Result<(Rows, Vec<LineError>), ImportError> {
    parse_csv_within(input, Limits::default())
}

/// Reads a CSV file into records, collecting every invalid line; refuses
/// one over `limits`, reading at most one byte past `max_bytes` and no row
/// past `max_rows`. Holds every row: for tests and fuzzing.
pub fn parse_csv_within(
    input: impl Read,
    limits: Limits,
) -> Result<(Rows, Vec<LineError>), ImportError> {
    let mut reader = RowReader::new(input, limits)?;
    let mut rows = vec![];
    let mut errors = vec![];
    while let Some((line, parsed)) = reader.next_row()? {
        match parsed {
            Ok(record) => rows.push((line, record)),
            Err(reason) => errors.push(LineError { line, reason }),
        }
    }
    Ok((rows, errors))
}

/// What the check found: the lines refused, and a digest of each batch
/// the store pass will write.
#[derive(Debug, Default)]
struct Checked {
    /// Invalid lines, in file order.
    errors: Vec<LineError>,
    /// Rows accepted.
    total: u64,
    /// One digest per batch of accepted rows (lines and content).
    batches: Vec<[u8; 32]>,
}

/// A running digest of one batch: each row's line and content fingerprint.
#[derive(Default)]
struct BatchDigest {
    hash: Sha256,
    rows: usize,
}

impl BatchDigest {
    fn add(&mut self, line: u64, fingerprint: &[u8; 32]) {
        self.hash.update(line.to_be_bytes());
        self.hash.update(fingerprint);
        self.rows += 1;
    }

    fn finish(&mut self) -> [u8; 32] {
        self.rows = 0;
        std::mem::take(&mut self.hash).finalize().into()
    }
}

/// The first 16 bytes of a SHA-256: enough to tell ids and contents apart.
fn short(bytes: &[u8]) -> [u8; 16] {
    let mut out = [0; 16];
    out.copy_from_slice(&Sha256::digest(bytes)[..16]);
    out
}

/// Pass 1: validates and counts every row, writing nothing.
fn check_file<S: Store>(
    city: &City<S>,
    input: impl Read,
    limits: Limits,
    now: i64,
) -> Result<Checked, ImportError> {
    let batch = city.max_batch().max(1);
    let mut reader = RowReader::new(input, limits)?;
    let mut checked = Checked::default();
    let mut digest = BatchDigest::default();
    // Record id -> (content, first line), both shortened.
    let mut seen: HashMap<[u8; 16], ([u8; 16], u64)> = HashMap::new();
    while let Some((line, parsed)) = reader.next_row()? {
        let refuse = |reason: String| LineError { line, reason };
        let record = match parsed {
            Ok(record) => record,
            Err(reason) => {
                checked.errors.push(refuse(reason));
                continue;
            }
        };
        let prepared = match city.prepare(&record, now) {
            Ok((prepared, _)) => prepared,
            Err(e) => {
                checked.errors.push(refuse(e.to_string()));
                continue;
            }
        };
        let id = short(prepared.record_id.as_bytes());
        let content = short(&prepared.fingerprint);
        if let Some((earlier, first)) = seen.get(&id)
            && *earlier != content
        {
            checked.errors.push(refuse(format!(
                "record_id {:?} is used on line {first} for different content",
                prepared.record_id
            )));
            continue;
        }
        if city.conflicts(&prepared)? {
            checked.errors.push(refuse(format!(
                "record_id {:?} is already stored with different content",
                prepared.record_id
            )));
            continue;
        }
        seen.entry(id).or_insert((content, line));
        digest.add(line, &prepared.fingerprint);
        checked.total += 1;
        if digest.rows == batch {
            checked.batches.push(digest.finish());
        }
    }
    if digest.rows > 0 {
        checked.batches.push(digest.finish());
    }
    Ok(checked)
}

/// Pass 2: reads the file again and stores the rows the check accepted, a
/// batch at a time, each durable before `progress` hears of it.
async fn store_file<S: Store>(
    city: &City<S>,
    input: impl Read,
    limits: Limits,
    checked: &Checked,
    now: i64,
    progress: &mut impl FnMut(u64, u64),
) -> Result<ImportReport, ImportError> {
    let size = city.max_batch().max(1);
    let mut reader = RowReader::new(input, limits)?;
    let mut skipped = checked.errors.iter().map(|e| e.line).peekable();
    let mut report = ImportReport::default();
    let mut batch: Vec<pb::Record> = Vec::with_capacity(size.min(checked.total as usize));
    let mut first_line = 0;
    let mut digest = BatchDigest::default();
    let mut done = 0u64;
    let mut number = 0usize;
    let stop = |line: u64, done: u64, reason: String| ImportError::Interrupted {
        line,
        done,
        total: checked.total,
        reason,
    };
    let changed = "the file changed since it was checked".to_owned();
    loop {
        let row = reader
            .next_row()
            .map_err(|e| stop(first_line.max(1), done, format!("{changed}: {e}")))?;
        if let Some((line, parsed)) = row {
            while skipped.next_if(|&s| s < line).is_some() {}
            if skipped.next_if_eq(&line).is_some() {
                continue;
            }
            let record = parsed.map_err(|_| stop(line, done, changed.clone()))?;
            let (prepared, _) = city
                .prepare(&record, now)
                .map_err(|_| stop(line, done, changed.clone()))?;
            if batch.is_empty() {
                first_line = line;
            }
            digest.add(line, &prepared.fingerprint);
            batch.push(record);
            if batch.len() < size {
                continue;
            }
        } else if batch.is_empty() {
            break;
        }
        if checked.batches.get(number) != Some(&digest.finish()) {
            return Err(stop(first_line, done, changed));
        }
        let outcome = city
            .ingest(&batch, now)
            .await
            .map_err(|e| stop(first_line, done, e.to_string()))?;
        report.stored += u64::from(outcome.stored);
        report.duplicates += u64::from(outcome.duplicates);
        report.revoked += u64::from(outcome.revoked);
        done += batch.len() as u64;
        number += 1;
        batch.clear();
        progress(done, checked.total);
    }
    if done != checked.total {
        return Err(stop(first_line.max(1), done, changed));
    }
    Ok(report)
}

/// Imports a CSV file into `city`: checks it whole, then stores it (see the
/// module's documentation). With `skip_invalid` false, any invalid line
/// imports nothing. `progress` is called after each durable batch with
/// (records done, records total).
pub async fn import<S: Store, R: Read + Seek>(
    city: &City<S>,
    mut input: R,
    limits: Limits,
    skip_invalid: bool,
    now: i64,
    mut progress: impl FnMut(u64, u64),
) -> Result<ImportReport, ImportError> {
    let checked = check_file(city, &mut input, limits, now)?;
    if !checked.errors.is_empty() && !skip_invalid {
        return Err(ImportError::Invalid(checked.errors));
    }
    input.seek(SeekFrom::Start(0))?;
    let mut report = store_file(city, input, limits, &checked, now, &mut progress).await?;
    report.skipped = checked.errors;
    Ok(report)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod stream_tests;
