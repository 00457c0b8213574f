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
    /// The header is wrong; nothing was imported.
    #[error("header: {0}")]
    Header(String),
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

/// Reads a CSV file into records, collecting every invalid line.
pub fn parse_csv(input: impl Read) -> Result<(Rows, Vec<LineError>), ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(input);
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
        let fallback_line = i as u64 + 2;
        match result {
            Ok(row) => {
                let line = row.position().map_or(fallback_line, |p| p.line());
                match row_to_record(&row, &cols) {
                    Ok(record) => rows.push((line, record)),
                    Err(reason) => errors.push(LineError { line, reason }),
                }
            }
            Err(e) => errors.push(LineError {
                line: e.position().map_or(fallback_line, |p| p.line()),
                reason: e.to_string(),
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
    skip_invalid: bool,
    now: i64,
    mut progress: impl FnMut(u64, u64),
) -> Result<ImportReport, ImportError> {
    let (rows, mut errors) = parse_csv(input)?;
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
