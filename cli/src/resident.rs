//! `tessera resident …`: a help desk's commands about one resident, sent to
//! the city node with an operator's bundle. The national ID number is read
//! from `--id` or standard input and never printed whole: output names the
//! resident by the last four characters only.
//!
//! Exit statuses: 0 done, 1 failure (the node refused or could not be
//! reached), 2 usage, 3 the node holds nothing about the resident (export:
//! no record; erase: nothing to erase; correct: no such record).

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;
use tessera_core::Colour;
use tessera_proto::v1 as pb;
use tessera_proto::v1::city_node_client::CityNodeClient;
use tonic::transport::Channel;

use crate::{creds, fmt};

/// Nothing is held about the resident: exit status 3.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotFound(String);

/// The exit status of [`NotFound`].
pub const NOT_FOUND: u8 = 3;

/// Where to send the request, as whom, and about whom.
#[derive(Debug, Args)]
pub struct Target {
    /// The city node, host:port.
    #[arg(long)]
    node: String,
    /// The operator's bundle directory (operator.crt, operator.key, root.crt).
    #[arg(long)]
    bundle: PathBuf,
    /// The resident's national ID number; read from standard input (one
    /// line) when absent or `-`, which keeps it out of the shell history.
    #[arg(long)]
    id: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

const EXIT_CODES: &str = "Exit status: 0 done, 1 failure (refused, unreachable), 2 usage, 3 the node holds nothing about the resident.";

#[derive(Debug, Subcommand)]
pub enum ResidentCommand {
    /// Why the resident has their colour: score, rules that fired and the
    /// records that fired them (logged in the access log).
    #[command(after_help = format!("Example:\n  echo 33010619900101123X | tessera resident explain --node 127.0.0.1:7101 --bundle operators/330100-helpdesk\n\n{EXIT_CODES}"))]
    Explain(Target),
    /// Every record the node holds about the resident, oldest first
    /// (logged).
    #[command(after_help = format!("Example:\n  tessera resident export --node 127.0.0.1:7101 --bundle operators/330100-helpdesk --id 33010619900101123X --json > records.json\n\n{EXIT_CODES}"))]
    Export(Target),
    /// Erase the resident: records, badge states and data key; their badges
    /// read UNKNOWN from now on. Cannot be undone (logged).
    #[command(after_help = format!("Example:\n  tessera resident erase --node 127.0.0.1:7101 --bundle operators/330100-helpdesk --yes\n\n{EXIT_CODES}"))]
    Erase {
        #[command(flatten)]
        target: Target,
        /// Required: the erasure cannot be undone.
        #[arg(long)]
        yes: bool,
    },
    /// Who read the resident's records, when and how (this read included).
    #[command(
        name = "access-log",
        after_help = format!("Example:\n  tessera resident access-log --node 127.0.0.1:7101 --bundle operators/330100-helpdesk\n\n{EXIT_CODES}")
    )]
    AccessLog(Target),
    /// Replace or retract one record of the resident, with a reason: the
    /// resident is re-scored at once (logged; Explain lists it).
    #[command(after_help = format!("Examples:\n  tessera resident correct --node 127.0.0.1:7101 --bundle operators/330100-helpdesk \\\n      --record lab-0042 --retract --reason wrong-person\n  tessera resident correct --node 127.0.0.1:7101 --bundle operators/330100-helpdesk \\\n      --record lab-0042 --replacement fixed.csv --reason source-amended\n\nThe replacement is a CSV file in the format of `tessera node import` holding one\nrow; its record_id and national_id must be the ones corrected.\n\n{EXIT_CODES} (3: no such record of this resident)"))]
    Correct {
        #[command(flatten)]
        target: Target,
        /// The id of the stored record to correct.
        #[arg(long)]
        record: String,
        /// Retract it: it is deleted and counts for nothing from now on.
        #[arg(
            long,
            conflicts_with = "replacement",
            required_unless_present = "replacement"
        )]
        retract: bool,
        /// Replace its content with the one row of this CSV file.
        #[arg(long)]
        replacement: Option<PathBuf>,
        /// Why.
        #[arg(long, value_enum)]
        reason: Reason,
    },
}

/// Why a record is corrected (the standard's fixed list).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Reason {
    /// Entered wrongly (a typing or transfer error).
    EntryError,
    /// It belongs to another person.
    WrongPerson,
    /// The laboratory or clinic withdrew or amended it.
    SourceAmended,
    /// The resident's appeal against it was upheld.
    AppealUpheld,
    /// It repeats another record of the same event.
    Duplicate,
}

impl Reason {
    fn to_proto(self) -> pb::CorrectionReason {
        match self {
            Self::EntryError => pb::CorrectionReason::EntryError,
            Self::WrongPerson => pb::CorrectionReason::WrongPerson,
            Self::SourceAmended => pb::CorrectionReason::SourceAmended,
            Self::AppealUpheld => pb::CorrectionReason::AppealUpheld,
            Self::Duplicate => pb::CorrectionReason::Duplicate,
        }
    }
}

pub fn run(cmd: ResidentCommand) -> anyhow::Result<()> {
    match cmd {
        ResidentCommand::Explain(t) => explain(t),
        ResidentCommand::Export(t) => export(t),
        ResidentCommand::Erase { target, yes } => erase(target, yes),
        ResidentCommand::AccessLog(t) => access_log(t),
        ResidentCommand::Correct {
            target,
            record,
            retract,
            replacement,
            reason,
        } => correct(target, record, retract, replacement, reason),
    }
}

/// The ID number from `--id` or one line of standard input.
fn national_id(arg: Option<String>) -> anyhow::Result<String> {
    let given = match arg {
        Some(id) if id != "-" => id,
        _ => {
            let mut line = String::new();
            std::io::stdin()
                .take(256)
                .read_to_string(&mut line)
                .context("reading the ID number from standard input")?;
            line
        }
    };
    let id = given.trim().to_owned();
    if id.is_empty() {
        return Err(crate::Usage::new(
            "no national ID number: give --id or one line on standard input",
        )
        .into());
    }
    Ok(id)
}

/// How output names the resident: the last four characters only.
fn masked(id: &str) -> String {
    let tail: String = id
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("ID ending {tail}")
}

fn refused(node: &str) -> impl FnOnce(tonic::Status) -> anyhow::Error + '_ {
    move |s| anyhow::anyhow!("the node at {node} refused: {}", s.message())
}

fn colour_name(c: i32) -> String {
    Colour::from_proto(c).map_or_else(|| "none".into(), |c| c.to_string())
}

fn reason_name(reason: i32) -> &'static str {
    match pb::CorrectionReason::try_from(reason) {
        Ok(pb::CorrectionReason::EntryError) => "entry-error",
        Ok(pb::CorrectionReason::WrongPerson) => "wrong-person",
        Ok(pb::CorrectionReason::SourceAmended) => "source-amended",
        Ok(pb::CorrectionReason::AppealUpheld) => "appeal-upheld",
        Ok(pb::CorrectionReason::Duplicate) => "duplicate",
        _ => "unknown",
    }
}

/// Asks the node, as the bundle's operator, with `rpc`: its answer, or the
/// refusal in words.
fn ask<T, F, Fut>(bundle: &std::path::Path, node: &str, rpc: F) -> anyhow::Result<T>
where
    F: FnOnce(CityNodeClient<Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    crate::block_on(async {
        rpc(creds::node(bundle, node)?)
            .await
            .map(tonic::Response::into_inner)
            .map_err(refused(node))
    })
}

fn print_json(value: &serde_json::Value) {
    outln!("{value}");
}

fn explain(t: Target) -> anyhow::Result<()> {
    let id = national_id(t.id)?;
    let request = pb::ExplainRequest {
        national_id: id.clone(),
    };
    let a = ask(&t.bundle, &t.node, |mut node| async move {
        node.explain(request).await
    })?;
    if t.json {
        print_json(&json!({
            "resident": masked(&id),
            "score": a.score,
            "colour": colour_name(a.colour),
            "policy_version": a.policy_version,
            "computed_at": a.computed_at,
            "valid_until": a.valid_until,
            "effects": a.effects.iter().map(|e| json!({
                "rule_id": e.rule_id,
                "description": e.description,
                "score_delta": e.score_delta,
                "colour": colour_name(e.colour),
                "record_ids": e.record_ids,
                "valid_until_cap": e.valid_until_cap,
            })).collect::<Vec<_>>(),
            "lifted": a.lifted.iter().map(|l| json!({
                "rule_id": l.rule_id,
                "sentence": l.sentence,
                "record_ids": l.record_ids,
                "lifted_by": l.lifted_by,
                "lifted_until": l.lifted_until,
            })).collect::<Vec<_>>(),
            "corrections": a.corrections.iter().map(|c| json!({
                "record_id": c.record_id,
                "retracted": c.retracted,
                "reason": reason_name(c.reason),
                "corrected_at": c.corrected_at,
            })).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    outln!("resident     {}", masked(&id));
    outln!(
        "colour       {} (score {}, policy version {})",
        colour_name(a.colour),
        a.score,
        a.policy_version
    );
    outln!("computed at  {}", fmt::time(a.computed_at));
    outln!("a badge now  valid until {}", fmt::time(a.valid_until));
    if a.effects.is_empty() {
        outln!("no rule fired");
    }
    for e in &a.effects {
        outln!(
            "rule {}: {} (score {:+}{}) from records {}",
            e.rule_id,
            e.description,
            e.score_delta,
            if e.colour == 0 {
                String::new()
            } else {
                format!(", at least {}", colour_name(e.colour))
            },
            e.record_ids.join(", ")
        );
    }
    for l in &a.lifted {
        outln!("lifted: {}", l.sentence);
    }
    for c in &a.corrections {
        outln!(
            "corrected: record {} {} at {} ({})",
            c.record_id,
            if c.retracted { "retracted" } else { "replaced" },
            fmt::time(c.corrected_at),
            reason_name(c.reason)
        );
    }
    Ok(())
}

/// A record's type, time and what it says, in words.
fn describe(r: &pb::Record) -> (&'static str, i64, String) {
    use pb::record::Kind;
    match &r.kind {
        Some(Kind::Test(t)) => (
            "test",
            t.sampled_at,
            format!(
                "{} {} at {}",
                pb::TestKind::try_from(t.kind).map_or("test", |k| match k {
                    pb::TestKind::Antigen => "antigen",
                    _ => "PCR",
                }),
                if t.positive { "POSITIVE" } else { "negative" },
                t.lab
            ),
        ),
        Some(Kind::Vaccination(v)) => (
            "vaccination",
            v.given_at,
            format!("{} dose {}", v.product, v.dose),
        ),
        Some(Kind::Exposure(e)) => (
            "exposure",
            e.exposed_at,
            format!(
                "{} contact, from {}",
                if e.level == pb::ContactLevel::Close as i32 {
                    "close"
                } else {
                    "secondary"
                },
                e.source
            ),
        ),
        Some(Kind::Travel(t)) => (
            "travel",
            t.left_at,
            format!("left area {} (risk level {})", t.area_code, t.level),
        ),
        Some(Kind::Symptoms(s)) => (
            "symptoms",
            s.declared_at,
            format!("{} symptom(s) declared", s.symptoms.len()),
        ),
        None => ("unknown", 0, String::new()),
    }
}

fn export(t: Target) -> anyhow::Result<()> {
    let id = national_id(t.id)?;
    let request = pb::ExportRequest {
        national_id: id.clone(),
    };
    let held = ask(&t.bundle, &t.node, |mut node| async move {
        node.export_records(request).await
    })?;
    let (records, corrections) = (&held.records, &held.corrections);
    if t.json {
        print_json(&json!({
            "resident": masked(&id),
            "records": records.iter().map(|r| {
                let (kind, at, what) = describe(r);
                json!({"record_id": r.record_id, "type": kind, "at": at, "what": what})
            }).collect::<Vec<_>>(),
            "corrections": corrections.iter().map(|c| json!({
                "record_id": c.record_id,
                "retracted": c.retracted,
                "reason": reason_name(c.reason),
                "corrected_at": c.corrected_at,
            })).collect::<Vec<_>>(),
        }));
    } else {
        outln!("{} records of resident {}", records.len(), masked(&id));
        for r in records {
            let (kind, at, what) = describe(r);
            outln!("{}  {kind:<11}  {}  {what}", fmt::time(at), r.record_id);
        }
        for c in corrections {
            outln!(
                "corrected: record {} {} at {} ({})",
                c.record_id,
                if c.retracted { "retracted" } else { "replaced" },
                fmt::time(c.corrected_at),
                reason_name(c.reason)
            );
        }
    }
    if records.is_empty() && corrections.is_empty() {
        return Err(NotFound(format!(
            "the node holds no record of resident {}",
            masked(&id)
        ))
        .into());
    }
    Ok(())
}

fn erase(t: Target, yes: bool) -> anyhow::Result<()> {
    if !yes {
        return Err(crate::Usage::new(
            "an erasure cannot be undone: pass --yes to erase the resident",
        )
        .into());
    }
    let id = national_id(t.id)?;
    let request = pb::EraseRequest {
        national_id: id.clone(),
    };
    let erased = ask(&t.bundle, &t.node, |mut node| async move {
        node.erase_resident(request).await
    })?;
    if t.json {
        print_json(&json!({
            "resident": masked(&id),
            "records": erased.records,
            "badges": erased.badges,
        }));
    } else {
        outln!(
            "erased resident {}: {} records, {} badge states (those badges now read UNKNOWN); \
             back up the master key again (docs/OPERATIONS.md, \"Back up and restore\")",
            masked(&id),
            erased.records,
            erased.badges
        );
    }
    if erased.records == 0 && erased.badges == 0 {
        return Err(NotFound(format!(
            "the node held nothing about resident {}",
            masked(&id)
        ))
        .into());
    }
    Ok(())
}

fn access_log(t: Target) -> anyhow::Result<()> {
    let id = national_id(t.id)?;
    let request = pb::AccessLogRequest {
        national_id: id.clone(),
    };
    let log = ask(&t.bundle, &t.node, |mut node| async move {
        node.access_log(request).await
    })?;
    if t.json {
        print_json(&json!({
            "resident": masked(&id),
            "length": log.length,
            "head_hash": hex::encode(&log.head_hash),
            "entries": log.entries.iter().map(|e| json!({
                "sequence": e.sequence,
                "at": e.at,
                "action": e.action,
                "actor_serial": e.actor_serial,
                "actor_city": e.actor_city,
                "hash": hex::encode(&e.hash),
            })).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    outln!(
        "{} access-log entries about resident {} (the log holds {}, head {})",
        log.entries.len(),
        masked(&id),
        log.length,
        hex::encode(&log.head_hash)
    );
    for e in &log.entries {
        outln!(
            "#{:<6} {}  {:<10}  by certificate {} of city {}",
            e.sequence,
            fmt::time(e.at),
            e.action,
            e.actor_serial,
            e.actor_city
        );
    }
    Ok(())
}

/// The one record of a replacement CSV file, checked against the record
/// and resident corrected.
fn replacement_record(
    path: &std::path::Path,
    record: &str,
    id: &str,
) -> anyhow::Result<pb::Record> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let (rows, errors) = tessera_node::import::parse_csv(file)
        .with_context(|| format!("reading {}", path.display()))?;
    if let Some(e) = errors.first() {
        return Err(
            crate::Usage::new(format!("{} line {}: {}", path.display(), e.line, e.reason)).into(),
        );
    }
    let [(_, row)] = <[_; 1]>::try_from(rows).map_err(|rows: Vec<_>| {
        crate::Usage::new(format!(
            "{} holds {} records: a replacement is exactly one",
            path.display(),
            rows.len()
        ))
    })?;
    if row.record_id != record {
        return Err(crate::Usage::new(format!(
            "the replacement's record_id is {:?}, not {record:?}: a record never moves to another id",
            row.record_id
        ))
        .into());
    }
    if row.national_id != id {
        return Err(crate::Usage::new(
            "the replacement names another resident than the one corrected",
        )
        .into());
    }
    Ok(row)
}

fn correct(
    t: Target,
    record: String,
    retract: bool,
    replacement: Option<PathBuf>,
    reason: Reason,
) -> anyhow::Result<()> {
    let id = national_id(t.id)?;
    let correction = match (retract, replacement) {
        (true, None) => pb::correct_record_request::Correction::Retract(pb::Retraction {}),
        (false, Some(path)) => pb::correct_record_request::Correction::Replacement(
            replacement_record(&path, &record, &id)?,
        ),
        _ => {
            return Err(crate::Usage::new("give either --retract or --replacement FILE").into());
        }
    };
    let retracted = retract;
    let answer = crate::block_on(async {
        creds::node(&t.bundle, &t.node)?
            .correct_record(pb::CorrectRecordRequest {
                national_id: id.clone(),
                record_id: record.clone(),
                correction: Some(correction),
                reason: reason.to_proto() as i32,
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| {
                if s.code() == tonic::Code::NotFound {
                    NotFound(format!(
                        "the node holds no record {record:?} of resident {}: {}",
                        masked(&id),
                        s.message()
                    ))
                    .into()
                } else {
                    refused(&t.node)(s)
                }
            })
    })?;
    let what = if retracted { "retracted" } else { "replaced" };
    if t.json {
        print_json(&json!({
            "resident": masked(&id),
            "record_id": record,
            "correction": what,
            "colour": colour_name(answer.colour),
            "revoked": answer.revoked,
            "superseded": answer.superseded,
        }));
        return Ok(());
    }
    outln!(
        "{what} record {record} of resident {}: colour now {}",
        masked(&id),
        colour_name(answer.colour)
    );
    if answer.revoked > 0 {
        outln!("{} badge(s) revoked: the colour is worse", answer.revoked);
    }
    if answer.superseded > 0 {
        outln!(
            "{} badge(s) superseded: the colour is better, issue a fresh badge",
            answer.superseded
        );
    }
    Ok(())
}
