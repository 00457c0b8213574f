//! One CSV row into a record: which columns a type takes and what their
//! values may be.

use std::collections::HashMap;

use tessera_proto::v1 as pb;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::COLUMNS;

/// Column name to its index in the header.
pub(super) type Columns = HashMap<&'static str, usize>;

fn field<'a>(row: &'a csv::StringRecord, cols: &Columns, name: &str) -> &'a str {
    cols.get(name)
        .and_then(|&i| row.get(i))
        .map_or("", str::trim)
}

fn parse_time(s: &str) -> Result<i64, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .map_err(|_| format!("time {s:?} is not RFC 3339 (e.g. 2026-11-20T08:30:00+08:00)"))
}

pub(super) fn row_to_record(row: &csv::StringRecord, cols: &Columns) -> Result<pb::Record, String> {
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
