//! `tessera resident …`: a help desk's commands about one resident, sent to
//! the city node with an operator's bundle. The national ID number is read
//! from `--id` or standard input and never printed whole: output names the
//! resident by the last four characters only.
//!
//! Exit statuses: 0 done, 1 failure (the node refused or could not be
//! reached), 2 usage, 3 the node holds nothing about the resident (export:
//! no record; erase: nothing to erase).

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::json;
use tessera_core::Colour;
use tessera_proto::v1 as pb;

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
}

pub fn run(cmd: ResidentCommand) -> anyhow::Result<()> {
    match cmd {
        ResidentCommand::Explain(t) => explain(t),
        ResidentCommand::Export(t) => export(t),
        ResidentCommand::Erase { target, yes } => erase(target, yes),
        ResidentCommand::AccessLog(t) => access_log(t),
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

fn print_json(value: &serde_json::Value) {
    outln!("{value}");
}

fn explain(t: Target) -> anyhow::Result<()> {
    let id = national_id(t.id)?;
    let a = crate::block_on(async {
        creds::node(&t.bundle, &t.node)?
            .explain(pb::ExplainRequest {
                national_id: id.clone(),
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(refused(&t.node))
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
    let records = crate::block_on(async {
        creds::node(&t.bundle, &t.node)?
            .export_records(pb::ExportRequest {
                national_id: id.clone(),
            })
            .await
            .map(|r| r.into_inner().records)
            .map_err(refused(&t.node))
    })?;
    if t.json {
        print_json(&json!({
            "resident": masked(&id),
            "records": records.iter().map(|r| {
                let (kind, at, what) = describe(r);
                json!({"record_id": r.record_id, "type": kind, "at": at, "what": what})
            }).collect::<Vec<_>>(),
        }));
    } else {
        outln!("{} records of resident {}", records.len(), masked(&id));
        for r in &records {
            let (kind, at, what) = describe(r);
            outln!("{}  {kind:<11}  {}  {what}", fmt::time(at), r.record_id);
        }
    }
    if records.is_empty() {
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
    let erased = crate::block_on(async {
        creds::node(&t.bundle, &t.node)?
            .erase_resident(pb::EraseRequest {
                national_id: id.clone(),
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(refused(&t.node))
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
    let log = crate::block_on(async {
        creds::node(&t.bundle, &t.node)?
            .access_log(pb::AccessLogRequest {
                national_id: id.clone(),
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(refused(&t.node))
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
