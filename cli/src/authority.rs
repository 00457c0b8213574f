//! `tessera authority …`: the national authority's commands.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use tessera_certs::authority::{AuthorityDir, InitOptions, Issued, RevokeTarget};
use tessera_certs::keys;
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
    /// Sign and inspect trust lists.
    #[command(subcommand)]
    TrustList(TrustListCommand),
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

fn print_issued(what: &str, issued: &Issued) {
    println!(
        "{what} enrolled; certificates and keys in {}",
        issued.dir.display()
    );
    for e in &issued.enrolments {
        println!(
            "  {:<40} serial {}  valid until {}",
            e.identity,
            e.serial,
            fmt::time(e.not_after)
        );
    }
    println!(
        "Publish a new trust list for the change to take effect: tessera authority trust-list publish"
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
            println!(
                "Authority {:?} created in {}",
                authority.registry().name,
                dir.dir.display()
            );
            println!(
                "  root certificate   {}",
                authority.root_cert_path().display()
            );
            println!(
                "  sunset             {}",
                fmt::time(authority.registry().sunset_at)
            );
            println!(
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
                false,
            )?;
            print_issued(&format!("City {code} ({name})"), &issued);
            println!(
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
            );
        }
        AuthorityCommand::EnrolOperator { dir, city, name } => {
            let issued = AuthorityDir::open(&dir.dir)?.enrol_operator(city, &name, now)?;
            print_issued(&format!("Operator {name:?} of city {city}"), &issued);
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
                false,
            )?;
            print_issued(&format!("Gateway {name:?}"), &issued);
            println!(
                "Gateway configuration: {} (run it with: tessera gateway run --config {})",
                config.display(),
                config.display()
            );
        }
        AuthorityCommand::Revoke { dir, city, serial } => {
            let target = match (city, serial) {
                (Some(code), _) => RevokeTarget::City(code),
                (None, Some(serial)) => RevokeTarget::Serial(serial),
                (None, None) => anyhow::bail!("give --city CODE or --serial HEX"),
            };
            let revoked = AuthorityDir::open(&dir.dir)?.revoke(&target, now)?;
            for e in &revoked {
                println!("revoked {} (serial {})", e.identity, e.serial);
            }
            println!("Publish a new trust list for the revocation to take effect.");
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
            let (sequence, bytes) = authority.publish(now, valid_hours.saturating_mul(3600))?;
            println!("Trust list {sequence} signed ({} bytes)", bytes.len());
            if let Some(out) = &out {
                keys::write_new_file(out, &bytes, false)?;
                println!("  written to {}", out.display());
            }
            if let Some(gateway) = &gateway {
                let in_force = upload(&dir.dir, gateway, &bytes)?;
                println!("  uploaded to the gateway at {gateway}: sequence {in_force} in force");
            }
        }
        AuthorityCommand::TrustList(TrustListCommand::Show { file, root, dir }) => {
            let root_path = match (root, dir) {
                (Some(root), _) => root,
                (None, Some(dir)) => dir.join("root/root.crt"),
                (None, None) => anyhow::bail!("give --root ROOT.crt or --dir AUTHORITY_DIR"),
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
    println!(
        "Trust list {} — signature valid, signed by {}",
        list.sequence(),
        list.signer_certificate().identity()
    );
    println!("  issued       {}", fmt::time(list.issued_at()));
    println!("  next update  {}", fmt::time(list.next_update()));
    println!("  sunset       {}", fmt::time(list.sunset_at()));
    match list.freshness(now) {
        Freshness::Fresh => println!("  status       fresh"),
        Freshness::Stale { overdue_secs } => {
            println!(
                "  status       STALE: {} hours past next update",
                overdue_secs / 3600
            )
        }
        Freshness::Sunset => println!("  status       PAST SUNSET: nothing is trusted"),
    }
    println!();
    println!(
        "  {:<18} {:<7} {:<20} {:<22} {:<8} {:<17} valid until",
        "role", "code", "name", "endpoint", "status", "key id"
    );
    for e in list.entries() {
        let id = e.cert().identity();
        let status = match e.status() {
            EntryStatus::Active => "active",
            EntryStatus::Revoked { .. } => "REVOKED",
        };
        println!(
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
    println!();
    println!(
        "  revoked certificates not listed one by one: {}",
        list.revoked_serials().count()
    );
    Ok(())
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
