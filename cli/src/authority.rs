//! `tessera authority …`: the national authority's commands.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use tessera_certs::authority::{
    AuthorityDir, InitOptions, Issued, Recovered, Reissued, RenewTarget, RevokeTarget,
};
use tessera_certs::keys;
use tessera_core::attestation::verify_attestation;
use tessera_core::trust::{CheckedTrustList, EntryStatus, Freshness};
use tessera_core::{CityCode, ProvinceCode, TrustAnchor};

use crate::fmt;

const DAY: i64 = 86_400;

#[derive(Debug, Subcommand)]
pub enum AuthorityCommand {
    /// Create a national authority: root CA, trust-list signer, admin client.
    #[command(
        after_help = "Example:\n  tessera authority init --dir ./authority --name \"National Health Authority\""
    )]
    Init {
        #[command(flatten)]
        dir: DirArg,
        /// The authority's display name.
        #[arg(long, default_value = "National Health Authority")]
        name: String,
        /// Days until the federation's sunset: past it, nothing is trusted.
        #[arg(long, default_value_t = 730)]
        sunset_days: i64,
    },
    /// Enrol a city: its node's TLS certificate and its badge-signer key.
    #[command(
        after_help = "Example:\n  tessera authority enrol-city --dir ./authority --code 330100 --name Hangzhou --endpoint 127.0.0.1:7101"
    )]
    EnrolCity {
        #[command(flatten)]
        dir: DirArg,
        /// The city's 6-digit administrative division code, e.g. 330100.
        #[arg(long)]
        code: CityCode,
        /// Display name, e.g. Hangzhou.
        #[arg(long)]
        name: String,
        /// Where the city's node listens, as host:port.
        #[arg(long)]
        endpoint: String,
    },
    /// Enrol a checkpoint verifier scoped to a province.
    #[command(
        after_help = "Example:\n  tessera authority enrol-verifier --dir ./authority --province 420000 --name \"Wuhan station\""
    )]
    EnrolVerifier {
        #[command(flatten)]
        dir: DirArg,
        /// The province code, e.g. 420000.
        #[arg(long)]
        province: ProvinceCode,
        /// Display name of the checkpoint.
        #[arg(long)]
        name: String,
    },
    /// Enrol an operator of an enrolled city (feeds records, issues badges).
    #[command(
        after_help = "Example:\n  tessera authority enrol-operator --dir ./authority --city 330100 --name \"Hangzhou CDC\""
    )]
    EnrolOperator {
        #[command(flatten)]
        dir: DirArg,
        /// The city code, e.g. 330100.
        #[arg(long)]
        city: CityCode,
        /// Display name of the operator.
        #[arg(long)]
        name: String,
    },
    /// Enrol a national gateway.
    #[command(
        after_help = "Example:\n  tessera authority enrol-gateway --dir ./authority --endpoint 127.0.0.1:7000"
    )]
    EnrolGateway {
        #[command(flatten)]
        dir: DirArg,
        /// Where the gateway listens, as host:port.
        #[arg(long)]
        endpoint: String,
        /// Display name.
        #[arg(long, default_value = "gateway")]
        name: String,
    },
    /// Revoke a city (its node and badge signer) or any certificate by serial.
    /// Takes effect with the next published trust list.
    #[command(
        after_help = "Examples:\n  tessera authority revoke --dir ./authority --city 330100\n  tessera authority revoke --dir ./authority --serial 4f2a…"
    )]
    Revoke {
        #[command(flatten)]
        dir: DirArg,
        /// Revoke this city's node and badge signer.
        #[arg(long, conflicts_with = "serial", required_unless_present = "serial")]
        city: Option<CityCode>,
        /// Revoke the certificate with this serial (hex, as listed in registry.json).
        #[arg(long)]
        serial: Option<String>,
    },
    /// Rotate a city's badge signer: a new signing key, the old one retired
    /// but still trusted so the badges it signed stay valid until they expire.
    #[command(
        long_about = r"Rotate a city's badge signer.

Issues a new badge-signer certificate and key for the city and keeps them as
badge-signer.<n>.crt and .key in the city's bundle. The bundle's live
badge-signer.crt and .key (the files node.toml names) keep the old signer, whose
certificate and key are also kept as badge-signer.<m>.crt and .key, until the
next trust-list publish, which lists the new signer and installs it over the
live files: a node restarted in between still signs with a key the lists carry.
The old signer is retired, not revoked: it stays ACTIVE in every trust list, so
the badges it signed verify until they expire (30 days at most), and its key
stays in the bundle until prune-signers. Needs the root key.

In order:
  1. tessera authority rotate-signer --dir D --city CODE
  2. tessera authority trust-list publish --dir D --gateway HOST:PORT
     (both signers are listed ACTIVE; the new pair becomes the live files)
  3. hand the city badge-signer.<n>.crt and .key, to install over the files its
     node.toml names once it holds that list (a node running from this bundle
     already has them)
  4. the node signs with the new key as soon as it holds that list (it checks
     its files every reload_secs and on SIGHUP); until then it keeps the old key
  5. 30 days after step 2: tessera authority prune-signers --dir D",
        after_help = "Example:\n  tessera authority rotate-signer --dir ./authority --city 330100"
    )]
    RotateSigner {
        #[command(flatten)]
        dir: DirArg,
        /// The city code, e.g. 330100.
        #[arg(long)]
        city: CityCode,
    },
    /// Leave retired badge signers out of later trust lists once every badge
    /// they signed has expired.
    #[command(
        long_about = r"Leave retired badge signers out of later trust lists once every badge they
signed has expired.

A signer retired by rotate-signer goes on signing until its node holds a list
carrying its successor, and a badge lives 30 days at most. So a retired signer
can be pruned 30 days (plus 5 minutes of clock skew) after the first list
carrying its successor was published, or once its own certificate has expired.
It first prints what it will prune; the others (whose badges could still be
valid) are refused, listed with the date they can go. Pruning removes the
signer's key from the bundle (its certificate stays on file); it is the only
command that does. A pruned signer is not revoked; its badges, all expired,
verify as UNKNOWN_SIGNER. Takes effect in the next published list. --dry-run
prints the same and changes nothing. (A signer whose key leaked is revoked
instead: revoke --serial.)",
        after_help = "Examples:\n  tessera authority prune-signers --dir ./authority\n  tessera authority prune-signers --dir ./authority --city 330100"
    )]
    PruneSigners {
        #[command(flatten)]
        dir: DirArg,
        /// Only this city's signers.
        #[arg(long)]
        city: Option<CityCode>,
        /// Print what would be pruned; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Renew a TLS certificate (a city node's, a gateway's, or any by serial)
    /// with a new key; a running server picks it up without a restart.
    #[command(
        long_about = r"Renew a TLS certificate with a new key.

Issues a new certificate and key for the same party (same role, scope, name and
endpoint; valid a year from now, capped at the sunset), keeps them as
<stem>.<n>.crt and .key in the bundle, and installs them over the bundle's live
<stem>.crt and .key (node.crt, gateway.crt, ...). The old certificate is
retired, not revoked: it stays valid until it expires, and connections made
with it go on. A node or gateway checks its files every reload_secs (30 s by
default) and at once on SIGHUP, and presents the new certificate on every new
connection, as server and as client. Needs the root key. No trust list has to
be published for a renewal to work; publish anyway to list the new
certificate.

A city elsewhere installs node.<n>.crt and .key over the files its node.toml
names (key first, each with an atomic mv) and sends SIGHUP or waits.",
        after_help = "Examples:\n  tessera authority renew --dir ./authority --city 330100\n  tessera authority renew --dir ./authority --gateway national\n  tessera authority renew --dir ./authority --serial 4f2a…"
    )]
    Renew {
        #[command(flatten)]
        dir: DirArg,
        /// Renew this city's node certificate.
        #[arg(long, conflicts_with_all = ["gateway", "serial"], required_unless_present_any = ["gateway", "serial"])]
        city: Option<CityCode>,
        /// Renew the gateway enrolled under this name.
        #[arg(long, conflicts_with = "serial")]
        gateway: Option<String>,
        /// Renew the TLS certificate with this serial (an operator's, a
        /// verifier's, the authority's own).
        #[arg(long)]
        serial: Option<String>,
    },
    /// Rotate the trust-list signer: lists from the next one on are signed by a
    /// new key, and the old signer is revoked in that first list.
    #[command(
        long_about = r"Rotate the trust-list signer.

Issues a new trust-list-signer certificate and key (kept as
trust-list-signer/signer.<n>.crt and .key, installed over signer.crt and .key)
and revokes the old signer. The next list published is signed by the new
signer and lists the old one REVOKED. Verifiers need nothing new: the new
signer chains to the root they pin. Once a verifier (gateway, node, a
checkpoint's trust-list fetch) holds that list, it refuses every list the old
key signs, whatever its sequence; a list that revokes its own signer is
refused everywhere. Needs the root key.

In order:
  1. tessera authority rotate-list-signer --dir D
  2. tessera authority trust-list publish --dir D --gateway HOST:PORT at once
     (every list from now on is signed by the new key)",
        after_help = "Example:\n  tessera authority rotate-list-signer --dir ./authority"
    )]
    RotateListSigner {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Finish or undo a command that was interrupted half way (a crash, a
    /// kill): every other command refuses to run until this has.
    #[command(
        long_about = r"Finish or undo a command that was interrupted half way.

Every command that writes several files (init, enrol-*, renew, rotate-signer,
rotate-list-signer, prune-signers, trust-list publish) first writes
D/journal.json with what it will create and do, and removes it when done. If it
was interrupted, every later command refuses and says what was half done. This
command finishes it when registry.json had recorded the change (installs the
new pair over the live files, removes a pruned key), and otherwise undoes it
(removes the files it had created), so the command can simply be run again.",
        after_help = "Example:
  tessera authority recover --dir ./authority"
    )]
    Recover {
        #[command(flatten)]
        dir: DirArg,
    },
    /// Sign and inspect trust lists.
    #[command(subcommand)]
    TrustList(TrustListCommand),
    /// Check one city's deletion attestation against the national root.
    #[command(
        long_about = "Check one city's deletion attestation (the file `tessera node sunset` writes)
against the national root: the signer chains to the root, is that city's node,
was valid when the destruction finished, and signed exactly these bytes.
Prints what it attests and VALID, or INVALID and why (exit code 1).",
        after_help = "Examples:\n  tessera authority verify-attestation attestation-330100-1893456000.pb --root root.crt\n  tessera authority verify-attestation attestation-330100-1893456000.pb --dir ./authority"
    )]
    VerifyAttestation {
        /// The signed attestation.
        file: PathBuf,
        /// The national root certificate (PEM) to verify against.
        #[arg(long, conflicts_with = "dir", required_unless_present = "dir")]
        root: Option<PathBuf>,
        /// Or the authority directory, whose root is used.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Fetch every city's deletion attestation from the gateway, verify each,
    /// and say whether every city of the last trust list has switched off.
    #[command(
        long_about = "Fetch the deletion attestations the gateway collected, verify each against
the root, and print, for every city whose node the last trust list the
authority signed carries, whether it has attested. Exit code 0 only when every
such city has a valid attestation: the whole country switched off.",
        after_help = "Example:\n  tessera authority attestations --dir ./authority --gateway gateway.example:7443"
    )]
    Attestations {
        #[command(flatten)]
        dir: DirArg,
        /// The gateway, as host:port (called as the authority, with
        /// D/authority/authority.crt).
        #[arg(long)]
        gateway: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrustListCommand {
    /// Sign the next trust list from the registry and write it to a file.
    #[command(
        after_help = "Example:\n  tessera authority trust-list publish --dir ./authority --out trust-list.tsl"
    )]
    Publish {
        #[command(flatten)]
        dir: DirArg,
        /// Where to write the signed list.
        #[arg(long, required_unless_present = "gateway")]
        out: Option<PathBuf>,
        /// Also upload it to the gateway at this host:port, as the authority
        /// (with D/authority/authority.crt).
        #[arg(long)]
        gateway: Option<String>,
        /// Hours until the list is due for renewal (its next_update).
        #[arg(long, default_value_t = 24)]
        valid_hours: i64,
    },
    /// Verify a trust list against the national root and print it.
    #[command(
        after_help = "Examples:\n  tessera authority trust-list show trust-list.tsl --dir ./authority\n  tessera authority trust-list show trust-list.tsl --root root.crt"
    )]
    Show {
        /// The signed list.
        file: PathBuf,
        /// The national root certificate (PEM) to verify against.
        #[arg(long, conflicts_with = "dir", required_unless_present = "dir")]
        root: Option<PathBuf>,
        /// Or the authority directory, whose root is used.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct DirArg {
    /// The authority directory.
    #[arg(long)]
    dir: PathBuf,
}

/// Prints what was enrolled; `listed` when trust lists carry it, so that
/// it takes effect with the next one published.
fn print_issued(what: &str, issued: &Issued, listed: bool) {
    outln!(
        "{what} enrolled; certificates and keys in {}",
        issued.dir.display()
    );
    for e in &issued.enrolments {
        outln!(
            "  {:<40} serial {}  valid until {}",
            e.identity,
            e.serial,
            fmt::time(e.not_after)
        );
    }
    if !listed {
        // Operators and verifiers are never listed in a trust list: they
        // are admitted once their certificate chains to the root.
        outln!(
            "No new trust list is needed: operators and verifiers are not listed; they are admitted once their certificate chains to the root and is not revoked"
        );
    } else {
        outln!(
            "Publish a new trust list for the change to take effect: tessera authority trust-list publish"
        );
    }
}

fn print_reissued(what: &str, r: &Reissued) {
    outln!("{what}: {}", r.new.identity);
    outln!(
        "  old  serial {}  valid until {}  ({})",
        r.old.serial,
        fmt::time(r.old.not_after),
        if r.old.revoked_at.is_some() {
            "revoked"
        } else {
            "retired"
        }
    );
    outln!(
        "  new  serial {}  valid until {}",
        r.new.serial,
        fmt::time(r.new.not_after)
    );
    outln!(
        "  issued as {} and {}",
        r.issued.0.display(),
        r.issued.1.display()
    );
    outln!(
        "  {} {} and {}",
        if r.deferred {
            "installed by the next trust-list publish as"
        } else {
            "installed as"
        },
        r.live.0.display(),
        r.live.1.display()
    );
}

pub fn run(cmd: AuthorityCommand) -> anyhow::Result<()> {
    let now = fmt::now();
    match cmd {
        AuthorityCommand::Init {
            dir,
            name,
            sunset_days,
        } => {
            let options = InitOptions {
                name,
                sunset_at: now.saturating_add(sunset_days.saturating_mul(DAY)),
            };
            let authority = AuthorityDir::init(&dir.dir, &options, now)?;
            outln!(
                "Authority {:?} created in {}",
                authority.registry().name,
                dir.dir.display()
            );
            outln!(
                "  root certificate   {}",
                authority.root_cert_path().display()
            );
            outln!(
                "  sunset             {}",
                fmt::time(authority.registry().sunset_at)
            );
            outln!(
                "Keep root/root.key offline. Next: tessera authority enrol-city --dir {} …",
                dir.dir.display()
            );
        }
        AuthorityCommand::EnrolCity {
            dir,
            code,
            name,
            endpoint,
        } => {
            let issued = AuthorityDir::open(&dir.dir)?.enrol_city(code, &name, &endpoint, now)?;
            let config = issued.dir.join("node.toml");
            keys::write_new_file(
                &config,
                tessera_node::config::bundle_config(code, &endpoint).as_bytes(),
                // 0600 like everything in the authority's directory.
                true,
            )?;
            print_issued(&format!("City {code} ({name})"), &issued, true);
            outln!(
                "Node configuration: {} (run it with: tessera node run --config {})",
                config.display(),
                config.display()
            );
        }
        AuthorityCommand::EnrolVerifier {
            dir,
            province,
            name,
        } => {
            let issued = AuthorityDir::open(&dir.dir)?.enrol_verifier(province, &name, now)?;
            print_issued(
                &format!("Verifier {name:?} of province {province}"),
                &issued,
                false,
            );
        }
        AuthorityCommand::EnrolOperator { dir, city, name } => {
            let issued = AuthorityDir::open(&dir.dir)?.enrol_operator(city, &name, now)?;
            print_issued(&format!("Operator {name:?} of city {city}"), &issued, false);
        }
        AuthorityCommand::EnrolGateway {
            dir,
            endpoint,
            name,
        } => {
            let issued = AuthorityDir::open(&dir.dir)?.enrol_gateway(&name, &endpoint, now)?;
            let config = issued.dir.join("gateway.toml");
            keys::write_new_file(
                &config,
                tessera_gateway::config::bundle_config(&endpoint).as_bytes(),
                // 0600 like everything in the authority's directory.
                true,
            )?;
            print_issued(&format!("Gateway {name:?}"), &issued, true);
            outln!(
                "Gateway configuration: {} (run it with: tessera gateway run --config {})",
                config.display(),
                config.display()
            );
        }
        AuthorityCommand::Revoke { dir, city, serial } => {
            let target = match (city, serial) {
                (Some(code), _) => RevokeTarget::City(code),
                (None, Some(serial)) => RevokeTarget::Serial(serial),
                (None, None) => {
                    return Err(crate::Usage::new("give --city CODE or --serial HEX").into());
                }
            };
            let revoked = AuthorityDir::open(&dir.dir)?.revoke(&target, now)?;
            for e in &revoked {
                outln!("revoked {} (serial {})", e.identity, e.serial);
            }
            outln!("Publish a new trust list for the revocation to take effect.");
        }
        AuthorityCommand::RotateSigner { dir, city } => {
            let r = AuthorityDir::open(&dir.dir)?.rotate_signer(city, now)?;
            print_reissued(&format!("Badge signer of city {city} rotated"), &r);
            outln!(
                "The old signer stays ACTIVE: badges it signed verify until they expire, and\n\
                 the live files keep it (its key is kept until prune-signers).\n\
                 Next: publish a trust list (both signers are listed); it installs the new\n\
                 pair as the live files, and the node signs with the new key once it holds\n\
                 that list. 30 days after publishing, run\n\
                 `tessera authority prune-signers --dir {}`.",
                dir.dir.display()
            );
        }
        AuthorityCommand::PruneSigners { dir, city, dry_run } => {
            let mut authority = AuthorityDir::open(&dir.dir)?;
            let plan = authority.prune_signers(city, now, true)?;
            for e in &plan.pruned {
                outln!(
                    "{} {} (serial {}): left out of the next trust list, key {} removed",
                    if dry_run { "would prune" } else { "will prune" },
                    e.identity,
                    e.serial,
                    dir.dir.join(&e.cert_file).with_extension("key").display()
                );
            }
            let pruned = if dry_run {
                plan
            } else {
                authority.prune_signers(city, now, false)?
            };
            for (e, at, published) in &pruned.waiting {
                outln!(
                    "kept   {} (serial {}): refused, its badges may be valid until {}{}",
                    e.identity,
                    e.serial,
                    fmt::time(*at),
                    if *published {
                        ""
                    } else {
                        " (its successor is not published yet: publish a trust list)"
                    }
                );
            }
            if pruned.pruned.is_empty() {
                outln!("No retired badge signer can be pruned yet.");
            } else if dry_run {
                outln!("Dry run: nothing was changed.");
            } else {
                for e in &pruned.pruned {
                    outln!("pruned {} (serial {})", e.identity, e.serial);
                }
                outln!("Publish a new trust list for the change to take effect.");
            }
        }
        AuthorityCommand::Renew {
            dir,
            city,
            gateway,
            serial,
        } => {
            let target = match (city, gateway, serial) {
                (Some(code), _, _) => RenewTarget::City(code),
                (None, Some(name), _) => RenewTarget::Gateway(name),
                (None, None, Some(serial)) => RenewTarget::Serial(serial),
                (None, None, None) => {
                    return Err(crate::Usage::new(
                        "give --city CODE, --gateway NAME or --serial HEX",
                    )
                    .into());
                }
            };
            let r = AuthorityDir::open(&dir.dir)?.renew(&target, now)?;
            print_reissued("Certificate renewed", &r);
            outln!(
                "The old certificate is retired, not revoked: it stays valid until it expires.\n\
                 A server running from this bundle presents the new one on new connections\n\
                 within its reload_secs (or at once on SIGHUP). If the old key may have\n\
                 leaked, revoke it: tessera authority revoke --dir {} --serial {}",
                dir.dir.display(),
                r.old.serial
            );
        }
        AuthorityCommand::Recover { dir } => match tessera_certs::authority::recover(&dir.dir)? {
            Recovered::Clean => outln!("Nothing to recover: no command was interrupted."),
            Recovered::Finished { command, done } => {
                outln!("The interrupted `{command}` had been recorded; finished it:");
                for d in &done {
                    outln!("  {d}");
                }
            }
            Recovered::Undone { command, removed } => {
                outln!("The interrupted `{command}` had not been recorded; undid it:");
                for r in &removed {
                    outln!("  removed {r}");
                }
                outln!("Run it again.");
            }
        },
        AuthorityCommand::RotateListSigner { dir } => {
            let r = AuthorityDir::open(&dir.dir)?.rotate_list_signer(now)?;
            print_reissued("Trust-list signer rotated", &r);
            outln!(
                "The old signer is revoked. Publish a trust list now: it is signed by the new\n\
                 signer and lists the old one REVOKED, and whoever holds it refuses lists\n\
                 from the old key from then on."
            );
        }
        AuthorityCommand::TrustList(TrustListCommand::Publish {
            dir,
            out,
            gateway,
            valid_hours,
        }) => {
            if let Some(out) = &out
                && out.exists()
            {
                anyhow::bail!(
                    "{} already exists: choose another --out or remove it",
                    out.display()
                );
            }
            let mut authority = AuthorityDir::open(&dir.dir)?;
            let installs = authority.pending_installs();
            let (sequence, bytes) = authority.publish(now, valid_hours.saturating_mul(3600))?;
            outln!("Trust list {sequence} signed ({} bytes)", bytes.len());
            for (from, to) in &installs {
                outln!(
                    "  it carries a rotated badge signer: {} installed as {} (and its key)",
                    from.display(),
                    to.display()
                );
            }
            if let Some(out) = &out {
                keys::write_new_file(out, &bytes, false)?;
                outln!("  written to {}", out.display());
            }
            if let Some(gateway) = &gateway {
                let in_force = upload(&dir.dir, gateway, &bytes)?;
                outln!("  uploaded to the gateway at {gateway}: sequence {in_force} in force");
            }
        }
        AuthorityCommand::VerifyAttestation { file, root, dir } => {
            let root_path = match (root, dir) {
                (Some(root), _) => root,
                (None, Some(dir)) => dir.join("root/root.crt"),
                (None, None) => {
                    return Err(
                        crate::Usage::new("give --root ROOT.crt or --dir AUTHORITY_DIR").into(),
                    );
                }
            };
            let root = TrustAnchor::from_der(&keys::read_cert(&root_path)?).with_context(|| {
                format!("{} is not a tessera root certificate", root_path.display())
            })?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            verify_attestation_file(&bytes, &root, now)?;
        }
        AuthorityCommand::Attestations { dir, gateway } => {
            crate::node::runtime()?.block_on(attestations(&dir.dir, &gateway, now))?;
        }
        AuthorityCommand::TrustList(TrustListCommand::Show { file, root, dir }) => {
            let root_path = match (root, dir) {
                (Some(root), _) => root,
                (None, Some(dir)) => dir.join("root/root.crt"),
                (None, None) => {
                    return Err(
                        crate::Usage::new("give --root ROOT.crt or --dir AUTHORITY_DIR").into(),
                    );
                }
            };
            show(&file, &root_path, now)?;
        }
    }
    Ok(())
}

fn show(file: &Path, root_path: &Path, now: i64) -> anyhow::Result<()> {
    let root = TrustAnchor::from_der(&keys::read_cert(root_path)?)
        .with_context(|| format!("{} is not a tessera root certificate", root_path.display()))?;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let list = CheckedTrustList::verify(&bytes, &root, now).with_context(|| {
        format!(
            "{} does not verify against {}",
            file.display(),
            root_path.display()
        )
    })?;
    outln!(
        "Trust list {} — signature valid, signed by {} (key id {})",
        list.sequence(),
        list.signer_certificate().identity(),
        list.signer_certificate().key_id()
    );
    outln!("  issued       {}", fmt::time(list.issued_at()));
    outln!("  next update  {}", fmt::time(list.next_update()));
    outln!("  sunset       {}", fmt::time(list.sunset_at()));
    match list.freshness(now) {
        Freshness::Fresh => outln!("  status       fresh"),
        Freshness::Stale { overdue_secs } => {
            outln!(
                "  status       STALE: {} hours past next update",
                overdue_secs / 3600
            )
        }
        Freshness::Sunset => outln!("  status       PAST SUNSET: nothing is trusted"),
    }
    outln!();
    outln!(
        "  {:<18} {:<7} {:<20} {:<22} {:<8} {:<17} valid until",
        "role",
        "code",
        "name",
        "endpoint",
        "status",
        "key id"
    );
    for e in list.entries() {
        let id = e.cert().identity();
        let status = match e.status() {
            EntryStatus::Active => "active",
            EntryStatus::Revoked { .. } => "REVOKED",
        };
        outln!(
            "  {:<18} {:06} {:<20} {:<22} {:<8} {:<17} {}",
            id.role().as_str(),
            id.scope().code(),
            truncate(e.name(), 20),
            e.endpoint(),
            status,
            e.cert().key_id().to_string(),
            fmt::time(e.cert().not_after())
        );
    }
    outln!();
    outln!(
        "  revoked certificates not listed one by one: {}",
        list.revoked_serials().count()
    );
    Ok(())
}

/// Prints what an attestation says, then VALID, or INVALID and the reason
/// (as an error, so the exit code is non-zero).
fn verify_attestation_file(bytes: &[u8], root: &TrustAnchor, now: i64) -> anyhow::Result<()> {
    use prost::Message;
    // What it claims, read before verification only to show it; the verdict
    // below is what counts.
    if let Some(claims) = tessera_proto::v1::SignedAttestation::decode(bytes)
        .ok()
        .and_then(|s| tessera_proto::v1::DeletionAttestation::decode(s.payload.as_slice()).ok())
    {
        print_claims(&claims);
    }
    match verify_attestation(bytes, root, now) {
        Ok(verified) => {
            outln!(
                "  signed by    {} (serial {}, key id {})",
                verified.signer().identity(),
                tessera_core::cert::hex_string(verified.signer().serial()),
                verified.signer().key_id()
            );
            outln!("VALID");
            Ok(())
        }
        Err(e) => {
            outln!("INVALID: {e}");
            anyhow::bail!("the deletion attestation does not verify: {e}")
        }
    }
}

fn print_claims(c: &tessera_proto::v1::DeletionAttestation) {
    outln!("Deletion attestation of city {:06}", c.city);
    outln!("  destroyed at {}", fmt::time(c.destroyed_at));
    outln!("  reason       {}", c.reason);
    outln!(
        "  destroyed    {} residents, {} records, {} badges",
        c.residents,
        c.records,
        c.badges
    );
    outln!(
        "  signer key   {}",
        if c.signer_key_destroyed {
            "destroyed"
        } else {
            "NOT destroyed"
        }
    );
    outln!("  policy       version {}", c.policy_version);
    outln!(
        "  trust list   sequence {}, sunset {}",
        c.trust_list_sequence,
        if c.sunset_at == 0 {
            "none held".to_owned()
        } else {
            fmt::time(c.sunset_at)
        }
    );
}

/// The authority's view of the switch-off: the cities whose node the last
/// list it signed carries (not revoked), each with its verified attestation
/// or why none counts, as [`census`] finds them.
#[derive(Debug)]
pub struct Census {
    /// The sequence of the last list the authority signed.
    pub sequence: u64,
    /// That list's sunset date.
    pub sunset_at: i64,
    /// Each city of the list: code, name, and its verified attestation's
    /// claims, or `Err` (why it is invalid) or `Ok(None)` (none held).
    pub cities: Vec<(
        u32,
        String,
        Result<Option<tessera_proto::v1::DeletionAttestation>, String>,
    )>,
    /// Attestations the gateway holds for cities not in the list.
    pub others: Vec<(u32, Result<tessera_proto::v1::DeletionAttestation, String>)>,
}

impl Census {
    /// How many cities of the list have no valid attestation.
    pub fn missing(&self) -> usize {
        self.cities
            .iter()
            .filter(|(_, _, v)| !matches!(v, Ok(Some(_))))
            .count()
    }
}

/// Fetches every attestation the gateway at `gateway` collected, as the
/// authority in `dir`, and verifies each against the root at `now`.
pub async fn census(dir: &Path, gateway: &str, now: i64) -> anyhow::Result<Census> {
    use prost::Message;
    use std::collections::BTreeMap;
    let authority = AuthorityDir::open(dir)?;
    let root = TrustAnchor::from_der(authority.root_der())?;
    let sequence = authority.registry().last_sequence;
    anyhow::ensure!(
        sequence > 0,
        "no trust list was published yet: there is no city to account for"
    );
    let list_path = dir.join(format!("trust-lists/{sequence:06}.tsl"));
    let list_bytes =
        std::fs::read(&list_path).with_context(|| format!("reading {}", list_path.display()))?;
    // Checked as of its own issue: after the sunset the list refuses to
    // verify "now", but which cities it listed is still the question.
    let issued_at = tessera_proto::v1::SignedTrustList::decode(list_bytes.as_slice())
        .ok()
        .and_then(|s| tessera_proto::v1::TrustList::decode(s.payload.as_slice()).ok())
        .map(|l| l.issued_at)
        .with_context(|| format!("{} does not decode", list_path.display()))?;
    let list = CheckedTrustList::verify(&list_bytes, &root, issued_at)
        .with_context(|| format!("{} does not verify", list_path.display()))?;
    let mut cities: BTreeMap<u32, String> = BTreeMap::new();
    // The node keys each city has in the list: an attestation signed by
    // another (an earlier node of the city, wiped long ago) says nothing of
    // the node that serves it now.
    let mut node_keys: BTreeMap<u32, Vec<tessera_core::KeyId>> = BTreeMap::new();
    for e in list.entries() {
        let id = e.cert().identity();
        if id.role() == tessera_core::Role::CityNode
            && !e.is_revoked()
            && let Some(city) = id.city()
        {
            cities.insert(city.get(), e.name().to_owned());
            node_keys
                .entry(city.get())
                .or_default()
                .push(e.cert().key_id());
        }
    }

    let trust = std::sync::Arc::new(tessera_certs::TrustState::new(root.clone())?);
    let identity = tessera_certs::TlsIdentity::from_files(
        &dir.join("authority/authority.crt"),
        &dir.join("authority/authority.key"),
    )?;
    let config = tessera_certs::tls::client_config(&identity, trust, tessera_core::Role::Gateway)?;
    let channel = tessera_certs::grpc::channel(gateway, config)?;
    let held = tessera_proto::v1::gateway_client::GatewayClient::new(channel)
        .list_attestations(tessera_proto::v1::ListAttestationsRequest {})
        .await
        .map_err(|s| anyhow::anyhow!("the gateway at {gateway} refused: {}", s.message()))?
        .into_inner()
        .attestations;

    let mut verdicts: BTreeMap<u32, Result<tessera_proto::v1::DeletionAttestation, String>> =
        BTreeMap::new();
    for signed in held {
        let bytes = signed.encode_to_vec();
        match verify_attestation(&bytes, &root, now) {
            Ok(v) => {
                let city = v.city().get();
                let current = node_keys
                    .get(&city)
                    .is_none_or(|keys| keys.contains(&v.signer().key_id()));
                let verdict = if !current {
                    Err(format!(
                        "signed by node key {}, which is not this city's node in trust list {sequence}: an earlier node's switch-off",
                        v.signer().key_id()
                    ))
                } else if !v.claims().signer_key_destroyed {
                    Err("the badge-signer key was not destroyed".to_owned())
                } else {
                    Ok(v.claims().clone())
                };
                verdicts.insert(city, verdict);
            }
            Err(e) => {
                // Name the city it claims, to say which one is in doubt.
                let claimed =
                    tessera_proto::v1::DeletionAttestation::decode(signed.payload.as_slice())
                        .map_or(0, |c| c.city);
                verdicts.entry(claimed).or_insert(Err(e.to_string()));
            }
        }
    }
    Ok(Census {
        sequence,
        sunset_at: list.sunset_at(),
        cities: cities
            .iter()
            .map(|(code, name)| {
                let verdict = match verdicts.get(code) {
                    Some(Ok(c)) => Ok(Some(c.clone())),
                    Some(Err(e)) => Err(e.clone()),
                    None => Ok(None),
                };
                (*code, name.clone(), verdict)
            })
            .collect(),
        others: verdicts
            .into_iter()
            .filter(|(code, _)| !cities.contains_key(code))
            .collect(),
    })
}

/// `tessera authority attestations`: the [`census`], printed; an error
/// unless every city attested.
async fn attestations(dir: &Path, gateway: &str, now: i64) -> anyhow::Result<()> {
    let census = census(dir, gateway, now).await?;
    outln!(
        "Deletion attestations for the {} cities of trust list {} (sunset {}):",
        census.cities.len(),
        census.sequence,
        fmt::time(census.sunset_at)
    );
    for (code, name, verdict) in &census.cities {
        match verdict {
            Ok(Some(c)) => outln!(
                "  {code:06} {:<20} ATTESTED  {}  {} residents, {} records, {} badges, signer key {}",
                truncate(name, 20),
                fmt::time(c.destroyed_at),
                c.residents,
                c.records,
                c.badges,
                if c.signer_key_destroyed {
                    "destroyed"
                } else {
                    "KEPT"
                }
            ),
            Err(e) => outln!("  {code:06} {:<20} INVALID   {e}", truncate(name, 20)),
            Ok(None) => outln!("  {code:06} {:<20} MISSING", truncate(name, 20)),
        }
    }
    for (code, verdict) in &census.others {
        match verdict {
            Ok(c) => outln!(
                "  {code:06} (not in the list)    attested {}",
                fmt::time(c.destroyed_at)
            ),
            Err(e) => outln!("  {code:06} (not in the list)    INVALID   {e}"),
        }
    }
    let missing = census.missing();
    if missing == 0 {
        outln!("Every city has switched off and attested it.");
        Ok(())
    } else {
        anyhow::bail!(
            "{missing} of {} cities have no valid deletion attestation",
            census.cities.len()
        )
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// Uploads a signed list to the gateway as the authority's admin client.
fn upload(dir: &Path, gateway: &str, bytes: &[u8]) -> anyhow::Result<u64> {
    crate::node::runtime()?.block_on(upload_async(dir, gateway, bytes))
}

/// Uploads a signed list to the gateway as the authority's admin client.
pub async fn upload_async(dir: &Path, gateway: &str, bytes: &[u8]) -> anyhow::Result<u64> {
    use prost::Message;
    use std::sync::Arc;
    let root = TrustAnchor::from_der(&keys::read_cert(&dir.join("root/root.crt"))?)?;
    let trust = Arc::new(tessera_certs::TrustState::new(root)?);
    let identity = tessera_certs::TlsIdentity::from_files(
        &dir.join("authority/authority.crt"),
        &dir.join("authority/authority.key"),
    )?;
    let config = tessera_certs::tls::client_config(&identity, trust, tessera_core::Role::Gateway)?;
    let list = tessera_proto::v1::SignedTrustList::decode(bytes)?;
    {
        let channel = tessera_certs::grpc::channel(gateway, config)?;
        let mut client = tessera_proto::v1::gateway_client::GatewayClient::new(channel);
        let response = client
            .publish_trust_list(tessera_proto::v1::PublishTrustListRequest { list: Some(list) })
            .await
            .map_err(|s| {
                anyhow::anyhow!(
                    "the gateway at {gateway} refused the list: {} (the list is signed and kept in trust-lists/; fix the cause and upload again)",
                    s.message()
                )
            })?;
        Ok(response.into_inner().sequence)
    }
}
