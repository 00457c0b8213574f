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
//! The whole file is checked before anything is stored: one invalid line
//! imports nothing, unless the caller skips invalid lines, which are then
//! listed.
//!
//! A file is refused, before anything is stored, when it is larger than
//! [`Limits::max_bytes`] (checked on its size before it is read, and by
//! reading no more than that) or has more than [`Limits::max_rows`] rows
//! (parsing stops at the first row past it). The accepted rows are stored
//! in batches of the node's `max_batch_records`.

use std::collections::HashMap;
use std::io::Read;

use tessera_proto::v1 as pb;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::city::{City, NodeError};
use crate::store::Store;

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
        "the file is larger than the limit of {limit} bytes (--max-bytes){}; nothing was imported: split it or raise the limit",
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
        "the file has more than {limit} rows (--max-rows); nothing was imported: split it or raise the limit"
    )]
    TooManyRows {
        /// The limit.
        limit: u64,
    },
    /// Invalid lines; nothing was imported.
    #[error("{} invalid line(s); nothing was imported", .0.len())]
    Invalid(Vec<LineError>),
    /// Storing failed.
    #[error(transparent)]
    Node(#[from] NodeError),
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

fn field<'a>(row: &'a csv::StringRecord, cols: &HashMap<&str, usize>, name: &str) -> &'a str {
    cols.get(name)
        .and_then(|&i| row.get(i))
        .map_or("", str::trim)
}

fn parse_time(s: &str) -> Result<i64, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .map_err(|_| format!("time {s:?} is not RFC 3339 (e.g. 2026-11-20T08:30:00+08:00)"))
}

fn row_to_record(
    row: &csv::StringRecord,
    cols: &HashMap<&str, usize>,
) -> Result<pb::Record, String> {
    use pb::record::Kind;
    let get = |name: &str| field(row, cols, name);
    let kind_name = get("type");
    let applies: &[&str] = match kind_name {
        "test" => &["test_kind", "positive", "lab"],
        "vaccination" => &["product", "dose"],
        "exposure" => &["contact", "source"],
        "travel" => &["area_code", "risk"],
        "symptoms" => &["symptoms"],
        "" => return Err("type is missing".into()),
        other => {
            return Err(format!(
                "unknown record type {other:?} (test, vaccination, exposure, travel or symptoms)"
            ));
        }
    };
    for col in &COLUMNS[4..] {
        if !applies.contains(col) && !get(col).is_empty() {
            return Err(format!(
                "column {col} does not apply to {kind_name} records"
            ));
        }
    }
    let time = parse_time(get("time"))?;
    let kind = match kind_name {
        "test" => Kind::Test(pb::TestResult {
            kind: match get("test_kind") {
                "pcr" => pb::TestKind::Pcr,
                "antigen" => pb::TestKind::Antigen,
                other => return Err(format!("test_kind {other:?} must be pcr or antigen")),
            } as i32,
            positive: match get("positive") {
                "true" => true,
                "false" => false,
                other => return Err(format!("positive {other:?} must be true or false")),
            },
            sampled_at: time,
            lab: get("lab").to_owned(),
        }),
        "vaccination" => Kind::Vaccination(pb::Vaccination {
            product: get("product").to_owned(),
            dose: get("dose")
                .parse()
                .map_err(|_| format!("dose {:?} must be a number", get("dose")))?,
            given_at: time,
        }),
        "exposure" => Kind::Exposure(pb::ExposureNotice {
            level: match get("contact") {
                "close" => pb::ContactLevel::Close,
                "secondary" => pb::ContactLevel::Secondary,
                other => return Err(format!("contact {other:?} must be close or secondary")),
            } as i32,
            exposed_at: time,
            source: get("source").to_owned(),
        }),
        "travel" => Kind::Travel(pb::RiskAreaTravel {
            area_code: get("area_code")
                .parse()
                .map_err(|_| format!("area_code {:?} must be a 6-digit code", get("area_code")))?,
            level: match get("risk") {
                "low" => pb::RiskLevel::Low,
                "medium" => pb::RiskLevel::Medium,
                "high" => pb::RiskLevel::High,
                other => return Err(format!("risk {other:?} must be low, medium or high")),
            } as i32,
            left_at: time,
        }),
        _ => Kind::Symptoms(pb::SymptomDeclaration {
            declared_at: time,
            symptoms: get("symptoms")
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    Ok(match s {
                        "fever" => pb::Symptom::Fever,
                        "cough" => pb::Symptom::Cough,
                        "sore_throat" => pb::Symptom::SoreThroat,
                        "loss_of_taste_or_smell" => pb::Symptom::LossOfTasteOrSmell,
                        "shortness_of_breath" => pb::Symptom::ShortnessOfBreath,
                        "fatigue" => pb::Symptom::Fatigue,
                        other => return Err(format!("unknown symptom {other:?}")),
                    } as i32)
                })
                .collect::<Result<_, String>>()?,
        }),
    };
    Ok(pb::Record {
        record_id: get("record_id").to_owned(),
        national_id: get("national_id").to_owned(),
        kind: Some(kind),
    })
}

/// Line numbers of records, counted as a text editor counts them.
///
/// The csv crate's own line count is wrong for line numbers shown to a user:
/// it counts only `\n` although `\r` alone also ends a record (every record
/// of a file with bare-CR line endings was "line 1"), and a record's position
/// is where the previous one ended, before the `\n` of a CRLF and before any
/// blank lines (every line of a CRLF file was one too low).
struct Lines<'a> {
    bytes: &'a [u8],
    /// Bytes before this offset are counted.
    counted: usize,
    /// The line `counted` is on.
    line: u64,
}

impl<'a> Lines<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            counted: 0,
            line: 1,
        }
    }

    /// The line of the record csv places at byte `position`: the line of its
    /// first byte after the line breaks that precede it. Positions must come
    /// in file order, as csv reads them.
    fn of(&mut self, position: u64) -> u64 {
        let mut start = usize::try_from(position).unwrap_or(usize::MAX);
        while let Some(b'\r' | b'\n') = self.bytes.get(start) {
            start += 1;
        }
        let start = start.min(self.bytes.len());
        if let Some(between) = self.bytes.get(self.counted..start) {
            for (i, &b) in between.iter().enumerate() {
                let crlf = b == b'\r' && between.get(i + 1).is_some_and(|&n| n == b'\n');
                if b == b'\n' || (b == b'\r' && !crlf) {
                    self.line += 1;
                }
            }
            self.counted = start;
        }
        self.line
    }
}

/// What is wrong with a line csv could not read, without csv's own (wrong)
/// line number.
fn csv_reason(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("has {len} field(s) where the header has {expected_len}"),
        csv::ErrorKind::Utf8 { err, .. } => format!(
            "field {} is not valid UTF-8 (after byte {})",
            err.field() + 1,
            err.valid_up_to()
        ),
        _ => e.to_string(),
    }
}

/// Reads a CSV file into records, collecting every invalid line, within the
/// default [`Limits`].
pub fn parse_csv(input: impl Read) -> Result<(Rows, Vec<LineError>), ImportError> {
    parse_csv_within(input, Limits::default())
}

/// Reads a CSV file into records, collecting every invalid line; refuses
/// one over `limits`, reading at most one byte past `max_bytes` and no row
/// past `max_rows`.
pub fn parse_csv_within(
    input: impl Read,
    limits: Limits,
) -> Result<(Rows, Vec<LineError>), ImportError> {
    // Read whole (up to the limit), to number lines exactly; the records
    // take more memory than the text anyway.
    let mut bytes = vec![];
    input
        .take(limits.max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limits.max_bytes {
        return Err(ImportError::TooLarge {
            size: None,
            limit: limits.max_bytes,
        });
    }
    let mut lines = Lines::new(&bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(bytes.as_slice());
    let headers = reader
        .headers()
        .map_err(|e| ImportError::Header(e.to_string()))?
        .clone();
    let mut cols = HashMap::new();
    for (i, h) in headers.iter().enumerate() {
        let h = h.trim();
        let known = COLUMNS.iter().find(|c| **c == h).ok_or_else(|| {
            ImportError::Header(format!(
                "unknown column {h:?}; the columns are {}",
                COLUMNS.join(", ")
            ))
        })?;
        if cols.insert(*known, i).is_some() {
            return Err(ImportError::Header(format!("column {h:?} appears twice")));
        }
    }
    if let Some(missing) = REQUIRED.iter().find(|c| !cols.contains_key(**c)) {
        return Err(ImportError::Header(format!(
            "required column {missing:?} is missing"
        )));
    }
    let mut rows = vec![];
    let mut errors = vec![];
    for (i, result) in reader.records().enumerate() {
        if i as u64 >= limits.max_rows {
            return Err(ImportError::TooManyRows {
                limit: limits.max_rows,
            });
        }
        let fallback_line = i as u64 + 2;
        match result {
            Ok(row) => {
                let line = row.position().map_or(fallback_line, |p| lines.of(p.byte()));
                match row_to_record(&row, &cols) {
                    Ok(record) => rows.push((line, record)),
                    Err(reason) => errors.push(LineError { line, reason }),
                }
            }
            Err(e) => errors.push(LineError {
                line: e.position().map_or(fallback_line, |p| lines.of(p.byte())),
                reason: csv_reason(&e),
            }),
        }
    }
    Ok((rows, errors))
}

/// Checks every row as the node would (validation, ids reused in the file
/// or the store with other content) and returns the rows that pass, with
/// the errors of the others.
pub fn check_rows<S: Store>(
    city: &City<S>,
    rows: Rows,
    now: i64,
) -> Result<(Rows, Vec<LineError>), NodeError> {
    let mut good = Vec::with_capacity(rows.len());
    let mut errors = vec![];
    let mut seen: HashMap<String, ([u8; 32], u64)> = HashMap::new();
    for (line, record) in rows {
        let (prepared, _) = match city.prepare(&record, now) {
            Ok(p) => p,
            Err(e) => {
                errors.push(LineError {
                    line,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        if let Some((fingerprint, first)) = seen.get(&prepared.record_id)
            && *fingerprint != prepared.fingerprint
        {
            errors.push(LineError {
                line,
                reason: format!(
                    "record_id {:?} is used on line {first} for different content",
                    prepared.record_id
                ),
            });
            continue;
        }
        if city.conflicts(&prepared)? {
            errors.push(LineError {
                line,
                reason: format!(
                    "record_id {:?} is already stored with different content",
                    prepared.record_id
                ),
            });
            continue;
        }
        seen.insert(prepared.record_id.clone(), (prepared.fingerprint, line));
        good.push((line, record));
    }
    Ok((good, errors))
}

/// Imports a CSV file into `city`. With `skip_invalid` false, any invalid
/// line imports nothing. `progress` is called after each stored batch with
/// (records done, records total).
pub async fn import<S: Store>(
    city: &City<S>,
    input: impl Read,
    limits: Limits,
    skip_invalid: bool,
    now: i64,
    mut progress: impl FnMut(u64, u64),
) -> Result<ImportReport, ImportError> {
    let (rows, mut errors) = parse_csv_within(input, limits)?;
    let (good, more) = check_rows(city, rows, now)?;
    errors.extend(more);
    errors.sort_by_key(|e| e.line);
    if !errors.is_empty() && !skip_invalid {
        return Err(ImportError::Invalid(errors));
    }
    let mut report = ImportReport {
        skipped: errors,
        ..ImportReport::default()
    };
    let total = good.len() as u64;
    let records: Vec<pb::Record> = good.into_iter().map(|(_, r)| r).collect();
    let mut done = 0;
    for chunk in records.chunks(city.max_batch().max(1)) {
        let outcome = city.ingest(chunk, now).await?;
        report.stored += u64::from(outcome.stored);
        report.duplicates += u64::from(outcome.duplicates);
        report.revoked += u64::from(outcome.revoked);
        done += chunk.len() as u64;
        progress(done, total);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "record_id,national_id,type,time,test_kind,positive,lab";

    fn row(record_id: &str, kind: &str) -> String {
        format!(
            "{record_id},11010519491231002X,{kind},2026-11-27T08:00:00+08:00,pcr,false,HZ-LAB-01"
        )
    }

    fn lines_of(input: &str) -> (Vec<u64>, Vec<(u64, String)>) {
        let (rows, errors) = parse_csv(input.as_bytes()).unwrap();
        (
            rows.iter().map(|(line, _)| *line).collect(),
            errors.into_iter().map(|e| (e.line, e.reason)).collect(),
        )
    }

    #[test]
    fn line_numbers_are_an_editors_whatever_the_line_endings() {
        for ending in ["\n", "\r\n", "\r"] {
            // 1 header, 2 good, 3 bad type, 4 blank, 5 good, 6 one field.
            let file = [
                HEADER.to_owned(),
                row("a", "test"),
                row("b", "colour"),
                String::new(),
                row("c", "test"),
                "d".to_owned(),
            ]
            .join(ending);
            let (rows, errors) = lines_of(&file);
            assert_eq!(rows, [2, 5], "{ending:?}");
            let errors: Vec<u64> = errors.iter().map(|(line, _)| *line).collect();
            assert_eq!(errors, [3, 6], "{ending:?}");
        }
    }

    /// Counts the bytes read through it.
    struct Counting<R> {
        inner: R,
        read: std::rc::Rc<std::cell::Cell<u64>>,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read.set(self.read.get() + n as u64);
            Ok(n)
        }
    }

    #[test]
    fn a_file_over_the_limits_is_refused_without_being_read_whole() {
        let body: String = (0..10_000)
            .map(|i| row(&format!("r{i}"), "test") + "\n")
            .collect();
        let file = format!("{HEADER}\n{body}");
        let limits = Limits {
            max_bytes: 4096,
            max_rows: u64::MAX,
        };
        assert!(matches!(
            limits.check_size(file.len() as u64),
            Err(ImportError::TooLarge { limit: 4096, .. })
        ));
        let read = std::rc::Rc::new(std::cell::Cell::new(0));
        let input = Counting {
            inner: file.as_bytes(),
            read: std::rc::Rc::clone(&read),
        };
        let err = parse_csv_within(input, limits).unwrap_err();
        assert!(
            matches!(err, ImportError::TooLarge { limit: 4096, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("limit of 4096 bytes"), "{err}");
        assert!(read.get() <= 4097, "read {} bytes", read.get());

        let limits = Limits {
            max_bytes: u64::MAX,
            max_rows: 3,
        };
        let err = parse_csv_within(file.as_bytes(), limits).unwrap_err();
        assert!(
            matches!(err, ImportError::TooManyRows { limit: 3 }),
            "{err}"
        );
        assert!(err.to_string().contains("more than 3 rows"), "{err}");
        // At the limit, it is read.
        let three = format!(
            "{HEADER}\n{}\n{}\n{}\n",
            row("a", "test"),
            row("b", "test"),
            row("c", "test")
        );
        assert_eq!(
            parse_csv_within(three.as_bytes(), limits).unwrap().0.len(),
            3
        );
        let exact = Limits {
            max_bytes: three.len() as u64,
            max_rows: 3,
        };
        assert!(parse_csv_within(three.as_bytes(), exact).is_ok());
    }

    #[test]
    fn a_quoted_line_break_counts_as_a_line() {
        let file = format!(
            "{HEADER}\n\"a\nb\",11010519491231002X,test,2026-11-27T08:00:00+08:00,pcr,false,HZ\n{}\n",
            row("c", "colour")
        );
        let (rows, errors) = lines_of(&file);
        assert_eq!(rows, [2]);
        assert_eq!(errors[0].0, 4);
    }

    /// Found by `cargo fuzz run csv_import` (minimised): a bare CR after the
    /// header put the next record on "line 1", the header's line.
    #[test]
    fn fuzz_bare_cr_after_the_header_is_line_2() {
        let (rows, errors) = lines_of("record_id,national_id,type,time\r5");
        assert!(rows.is_empty());
        assert_eq!(
            errors,
            [(2, "has 1 field(s) where the header has 4".to_owned())]
        );
    }

    #[test]
    fn csv_errors_do_not_repeat_csvs_own_line_count() {
        let (_, errors) = lines_of(&format!("{HEADER}\r\n{}\r\nx,\u{0}\r\n", row("a", "test")));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, 3);
        assert!(!errors[0].1.contains("line"), "{}", errors[0].1);
        let bad_utf8 = [HEADER.as_bytes(), b"\n\xff,1,2,3,4,5,6\n"].concat();
        let (_, errors) = parse_csv(bad_utf8.as_slice()).unwrap();
        assert_eq!(errors[0].line, 2);
        assert_eq!(
            errors[0].reason,
            "field 1 is not valid UTF-8 (after byte 0)"
        );
    }
}
