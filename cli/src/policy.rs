//! `tessera policy …`: sign a city's scoring policy with its badge-signer
//! key, publish it through the gateway (which enforces the notice period),
//! and show a city's published policies in plain words.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use prost::Message;
use tessera_certs::keys;
use tessera_core::badge::BadgeSigner;
use tessera_core::cert::CertInfo;
use tessera_core::policy::Policy;
use tessera_core::policy_doc::{self, VerifiedPolicy};
use tessera_core::trust::CheckedTrustList;
use tessera_core::{CityCode, Role};
use tessera_node::config::NodeSettings;
use tessera_proto::v1 as pb;
use tessera_proto::v1::gateway_client::GatewayClient;
use tessera_runtime::{TrustState, grpc, tls};

use crate::{creds, fmt};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Sign a policy (TOML rules) with the city's badge-signer key, to come
    /// into force at --effective-from.
    #[command(
        after_help = "Example:\n  tessera policy sign --key badge-signer.key --certificate badge-signer.crt \\\n    --rules policy-v2.toml --effective-from +72h --out policy-v2.signed"
    )]
    Sign {
        /// The badge-signer key (PEM).
        #[arg(long)]
        key: PathBuf,
        /// The badge-signer certificate (PEM).
        #[arg(long)]
        certificate: PathBuf,
        /// The rules, in the format docs/POLICY.md defines.
        #[arg(long)]
        rules: PathBuf,
        /// When it comes into force: RFC 3339 (2026-12-01T00:00:00Z) or
        /// a delay from now (+72h, +3d). The gateway refuses less than its
        /// notice period (48 hours unless configured).
        #[arg(long)]
        effective_from: String,
        /// Where to write the signed policy (refused if it exists).
        #[arg(long)]
        out: PathBuf,
    },
    /// Publish a signed policy to the gateway.
    #[command(
        after_help = "Examples:\n  tessera policy publish --config node.toml policy-v2.signed\n  tessera policy publish --bundle operators/330100 --gateway 127.0.0.1:7000 policy-v2.signed"
    )]
    Publish {
        /// A node configuration: its TLS identity, root and [tls] gateway are used.
        #[arg(long, conflicts_with = "bundle")]
        config: Option<PathBuf>,
        /// An operator's bundle directory instead (certificate, key, root.crt).
        #[arg(long, requires = "gateway")]
        bundle: Option<PathBuf>,
        /// The gateway, host:port (default: the node configuration's).
        #[arg(long)]
        gateway: Option<String>,
        /// The signed policy file.
        file: PathBuf,
    },
    /// A city's published policies, verified against the trust list, in
    /// plain words; or a local policy file with --file.
    #[command(
        after_help = "Examples:\n  tessera policy show 330100 --gateway 127.0.0.1:7000 --bundle verifiers/420000-wuhan-station\n  tessera policy show --file policy-v2.signed --certificate badge-signer.crt\n  tessera policy show --file policy-v3.signed --trust-list trust-list --root root.crt\n  tessera policy show --file policy.toml"
    )]
    Show {
        /// The city's 6-digit code.
        #[arg(required_unless_present = "file")]
        city: Option<String>,
        /// The gateway, host:port.
        #[arg(long, requires = "bundle")]
        gateway: Option<String>,
        /// Your bundle directory (certificate, key, root.crt).
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// A local policy to render instead: signed, or TOML rules.
        #[arg(long, conflicts_with_all = ["city", "gateway"])]
        file: Option<PathBuf>,
        /// The certificate that should have signed --file.
        #[arg(long, requires = "file", conflicts_with = "trust_list")]
        certificate: Option<PathBuf>,
        /// Check --file against this signed trust list instead (as the
        /// gateway's public copy serves it at /trust-list): no enrolment
        /// needed.
        #[arg(long, requires_all = ["file", "root"])]
        trust_list: Option<PathBuf>,
        /// The national root certificate (PEM) the trust list must chain to.
        #[arg(long, requires = "trust_list")]
        root: Option<PathBuf>,
    },
}

pub fn run(cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Sign {
            key,
            certificate,
            rules,
            effective_from,
            out,
        } => sign(&key, &certificate, &rules, &effective_from, &out),
        PolicyCommand::Publish {
            config,
            bundle,
            gateway,
            file,
        } => publish(config.as_deref(), bundle.as_deref(), gateway, &file),
        PolicyCommand::Show {
            city,
            gateway,
            bundle,
            file,
            certificate,
            trust_list,
            root,
        } => match (file, city, gateway, bundle) {
            (Some(file), _, _, _) => match (trust_list, root) {
                (Some(list), Some(root)) => show_file_with_list(&file, &list, &root),
                _ => show_file(&file, certificate.as_deref()),
            },
            (None, Some(city), Some(gateway), Some(bundle)) => show(&city, &gateway, &bundle),
            _ => anyhow::bail!("pass CITY with --gateway and --bundle, or --file"),
        },
    }
}

/// An RFC 3339 time, or `+N` followed by `h` (hours) or `d` (days) from `now`.
pub fn parse_when(text: &str, now: i64) -> anyhow::Result<i64> {
    if let Some(delay) = text.strip_prefix('+') {
        let (number, unit) = delay.split_at(delay.len().saturating_sub(1));
        let n: i64 = number
            .parse()
            .with_context(|| format!("{text:?}: expected +<hours>h or +<days>d"))?;
        let secs = match unit {
            "h" => n.checked_mul(3600),
            "d" => n.checked_mul(86_400),
            _ => None,
        }
        .with_context(|| format!("{text:?}: expected +<hours>h or +<days>d"))?;
        return Ok(now.saturating_add(secs));
    }
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| {
            format!("{text:?} is neither RFC 3339 (2026-12-01T00:00:00Z) nor +<hours>h")
        })?;
    Ok(t.unix_timestamp())
}

fn sign(
    key: &Path,
    certificate: &Path,
    rules: &Path,
    effective_from: &str,
    out: &Path,
) -> anyhow::Result<()> {
    let signer = BadgeSigner::new(keys::read_signer_key(key)?, &keys::read_cert(certificate)?)
        .context("the key and certificate are not a badge signer's pair")?;
    let text =
        std::fs::read_to_string(rules).with_context(|| format!("reading {}", rules.display()))?;
    let now = fmt::now();
    let (document, signed) = sign_rules(&signer, text, parse_when(effective_from, now)?, now)
        .with_context(|| format!("{} is refused", rules.display()))?;
    keys::write_new_file(out, &signed.encode_to_vec(), false)
        .with_context(|| format!("writing {}", out.display()))?;
    outln!(
        "policy version {} of city {} signed, effective from {}: {}",
        document.policy_version,
        signer.city(),
        fmt::time(document.effective_from),
        out.display()
    );
    Ok(())
}

/// Signs `rules` (TOML, docs/POLICY.md) with the city's badge signer, to
/// come into force at `effective_from`: the document and its signed form.
pub fn sign_rules(
    signer: &BadgeSigner,
    rules: String,
    effective_from: i64,
    now: i64,
) -> anyhow::Result<(pb::PolicyDocument, pb::SignedPolicy)> {
    let policy = Policy::parse(&rules)?;
    let document = pb::PolicyDocument {
        version: policy_doc::POLICY_DOC_VERSION,
        city: signer.city().get(),
        policy_version: policy.version(),
        signed_at: now,
        effective_from,
        rules,
    };
    let signed = signer.sign_policy(&document)?;
    Ok((document, signed))
}

/// Publishes `signed` to the gateway at `gateway`; its effective date as
/// the gateway accepted it, or the gateway's refusal word for word.
pub async fn publish_to(
    client: &mut GatewayClient<tonic::transport::Channel>,
    gateway: &str,
    signed: pb::SignedPolicy,
) -> anyhow::Result<i64> {
    client
        .publish_policy(pb::PublishPolicyRequest {
            policy: Some(signed),
        })
        .await
        .map(|r| r.into_inner().effective_from)
        .map_err(|s| anyhow::anyhow!("the gateway at {gateway} refused: {}", s.message()))
}

fn read_signed(path: &Path) -> anyhow::Result<pb::SignedPolicy> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    policy_doc::decode_signed(&bytes)
        .with_context(|| format!("{} is not a signed policy", path.display()))
}

fn publish(
    config: Option<&Path>,
    bundle: Option<&Path>,
    gateway: Option<String>,
    file: &Path,
) -> anyhow::Result<()> {
    let signed = read_signed(file)?;
    tls::install_default_provider();
    let (mut client, gateway) = match (config, bundle) {
        (Some(config), None) => {
            let settings = NodeSettings::load(config)?;
            let gateway = gateway.or(settings.gateway.clone()).with_context(|| {
                format!(
                    "{} names no [tls] gateway: pass --gateway",
                    config.display()
                )
            })?;
            let identity = tessera_runtime::TlsIdentity::from_files(
                &settings.tls_certificate,
                &settings.tls_key,
            )?;
            let trust = std::sync::Arc::new(TrustState::new(creds::root(&settings.root)?)?);
            let tls = tls::client_config(&identity, trust, Role::Gateway)?;
            (GatewayClient::new(grpc::channel(&gateway, tls)?), gateway)
        }
        (None, Some(bundle)) => {
            let gateway = gateway.ok_or_else(|| crate::Usage::new("--bundle needs --gateway"))?;
            (creds::gateway(bundle, &gateway)?, gateway)
        }
        _ => anyhow::bail!("pass --config node.toml or --bundle DIR --gateway HOST:PORT"),
    };
    let effective_from = crate::block_on(publish_to(&mut client, &gateway, signed))?;
    outln!(
        "published {}: in force from {}",
        file.display(),
        fmt::time(effective_from)
    );
    Ok(())
}

fn show(city: &str, gateway: &str, bundle: &Path) -> anyhow::Result<()> {
    let code: CityCode = city
        .parse()
        .map_err(|e| anyhow::anyhow!("city {city:?}: {e}"))?;
    let root = creds::root(&bundle.join("root.crt"))?;
    let now = fmt::now();
    let verified = crate::block_on(async {
        let mut client = creds::gateway(bundle, gateway)?;
        fetch_verified(&mut client, gateway, &root, code, now).await
    })?;
    out!("{}", render_city(code, &verified, now));
    Ok(())
}

/// A city's published policies as the gateway at `gateway` hands them out,
/// each verified against the gateway's trust list, itself verified against
/// `root` at `now`; oldest effective first.
pub async fn fetch_verified(
    client: &mut GatewayClient<tonic::transport::Channel>,
    gateway: &str,
    root: &tessera_core::TrustAnchor,
    code: CityCode,
    now: i64,
) -> anyhow::Result<Vec<VerifiedPolicy>> {
    let refused =
        |s: tonic::Status| anyhow::anyhow!("the gateway at {gateway} refused: {}", s.message());
    let list = client
        .fetch_trust_list(pb::FetchTrustListRequest { known_sequence: 0 })
        .await
        .map_err(refused)?
        .into_inner()
        .list
        .context("the gateway sent no trust list")?;
    let policies = client
        .fetch_policies(pb::FetchPoliciesRequest { city: code.get() })
        .await
        .map_err(refused)?
        .into_inner()
        .policies;
    let list = CheckedTrustList::verify(&list.encode_to_vec(), root, now)
        .context("the gateway's trust list does not verify")?;
    policies
        .iter()
        .enumerate()
        .map(|(i, p)| {
            policy_doc::verify_with_trust_list(p, &list).with_context(|| {
                format!("published policy {} of city {code} does not verify", i + 1)
            })
        })
        .collect()
}

/// GET `path` from a gateway's public copy at `addr` over HTTPS, trusting
/// `root` alone and presenting no certificate: the status and the body.
pub async fn public_get(
    addr: std::net::SocketAddr,
    root: &tessera_core::TrustAnchor,
    path: &str,
) -> anyhow::Result<(u16, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls_pki_types::CertificateDer::from(root.der().to_vec()))?;
    let config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::from(addr.ip());
    let mut stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .with_context(|| format!("no TLS with the public copy at {addr}"))?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut raw = vec![];
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut raw),
    )
    .await;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("the public copy sent no HTTP response")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("the public copy sent no HTTP status")?;
    Ok((status, raw[split + 4..].to_vec()))
}

/// Each policy's standing at `now`: "IN FORCE", "superseded", or
/// "ANNOUNCED, takes effect in …" (as [`render_city`] marks them).
pub fn standings(policies: &[VerifiedPolicy], now: i64) -> Vec<String> {
    let in_force = policies.iter().rposition(|p| p.effective_from() <= now);
    policies
        .iter()
        .enumerate()
        .map(|(i, p)| match in_force {
            Some(f) if f == i => "IN FORCE".to_owned(),
            Some(f) if i < f => "superseded".to_owned(),
            _ => format!(
                "ANNOUNCED, takes effect in {}",
                span(p.effective_from() - now)
            ),
        })
        .collect()
}

fn show_file(path: &Path, certificate: Option<&Path>) -> anyhow::Result<()> {
    let now = fmt::now();
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if let Ok(text) = std::str::from_utf8(&bytes)
        && let Ok(policy) = Policy::parse(text)
    {
        outln!(
            "{} (unsigned rules, version {})",
            path.display(),
            policy.version()
        );
        out!("{}", render_rules(&policy));
        return Ok(());
    }
    let signed = read_signed(path)?;
    match certificate {
        Some(cert) => {
            let cert = CertInfo::parse(&keys::read_cert(cert)?)?;
            let verified = policy_doc::verify_with_certificate(&signed, &cert)
                .with_context(|| format!("{} does not verify", path.display()))?;
            let status = if verified.in_force_at(now) {
                "signature checked, in force since its date".to_owned()
            } else {
                format!(
                    "signature checked, takes effect in {}",
                    span(verified.effective_from() - now)
                )
            };
            out!("{}", render_policy(&verified, &status));
        }
        None => {
            let document = pb::PolicyDocument::decode(signed.payload.as_slice())
                .with_context(|| format!("{} is not a signed policy", path.display()))?;
            let policy = policy_doc::check_document(&document)?;
            outln!(
                "policy version {} of city {:06}, signed {}, effective from {} \
                 (signature NOT checked: pass --certificate)",
                document.policy_version,
                document.city,
                fmt::time(document.signed_at),
                fmt::time(document.effective_from)
            );
            out!("{}", render_rules(&policy));
        }
    }
    Ok(())
}

/// A signed policy checked against a signed trust list, itself checked
/// against the root: what anyone can do with the gateway's public copy.
fn show_file_with_list(path: &Path, list: &Path, root: &Path) -> anyhow::Result<()> {
    let now = fmt::now();
    let root = creds::root(root)?;
    let bytes = std::fs::read(list).with_context(|| format!("reading {}", list.display()))?;
    let list = CheckedTrustList::verify(&bytes, &root, now)
        .with_context(|| format!("{} does not verify against the root", list.display()))?;
    let signed = read_signed(path)?;
    let verified = policy_doc::verify_with_trust_list(&signed, &list).with_context(|| {
        format!(
            "{} does not verify against trust list {}",
            path.display(),
            list.sequence()
        )
    })?;
    let status = if verified.in_force_at(now) {
        format!(
            "signature checked against trust list {}, in force since its date",
            list.sequence()
        )
    } else {
        format!(
            "signature checked against trust list {}, takes effect in {}",
            list.sequence(),
            span(verified.effective_from() - now)
        )
    };
    out!("{}", render_policy(&verified, &status));
    Ok(())
}

/// "2 days 3 hours", "45 minutes".
pub fn span(secs: i64) -> String {
    let secs = secs.max(0);
    let (days, hours, minutes) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    let unit = |n: i64, one: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    };
    match (days, hours) {
        (0, 0) => unit(minutes, "minute"),
        (0, h) => unit(h, "hour"),
        (d, 0) => unit(d, "day"),
        (d, h) => format!("{} {}", unit(d, "day"), unit(h, "hour")),
    }
}

/// The rules of a policy, one plain sentence each, after how scoring works.
pub fn render_rules(policy: &Policy) -> String {
    let mut out = String::new();
    for line in policy.summary_sentences() {
        out.push_str(&format!("  {line}\n"));
    }
    out.push_str("  Rules:\n");
    for (id, sentence) in policy.rule_sentences() {
        out.push_str(&format!("  - {sentence} [{id}]\n"));
    }
    out
}

fn render_policy(p: &VerifiedPolicy, status: &str) -> String {
    let mut out = format!(
        "policy version {} \"{}\" of city {:06}: {status}\n  signed {} by key {}, effective from {}\n",
        p.policy_version(),
        p.policy().name(),
        p.city(),
        fmt::time(p.signed_at()),
        p.key_id(),
        fmt::time(p.effective_from()),
    );
    out.push_str(&render_rules(p.policy()));
    out
}

/// A city's published policies, oldest effective first, each marked in
/// force, superseded or announced (and in how long).
pub fn render_city(city: CityCode, policies: &[VerifiedPolicy], now: i64) -> String {
    if policies.is_empty() {
        return format!("city {city} has published no scoring policy\n");
    }
    let mut out = format!(
        "city {city}: {} published scoring {} (verified against the trust list)\n",
        policies.len(),
        if policies.len() == 1 {
            "policy"
        } else {
            "policies"
        }
    );
    for (p, status) in policies.iter().zip(standings(policies, now)) {
        out.push('\n');
        out.push_str(&render_policy(p, &status));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_reads_rfc3339_and_delays() {
        assert_eq!(parse_when("+72h", 1000).unwrap(), 1000 + 72 * 3600);
        assert_eq!(parse_when("+3d", 0).unwrap(), 3 * 86_400);
        assert_eq!(
            parse_when("2026-12-01T00:00:00Z", 0).unwrap(),
            1_796_083_200
        );
        for bad in ["+72", "+h", "72h", "+1y", "tomorrow"] {
            assert!(parse_when(bad, 0).is_err(), "{bad}");
        }
        assert_eq!(span(49 * 3600), "2 days 1 hour");
        assert_eq!(span(47 * 3600 + 59 * 60), "1 day 23 hours");
        assert_eq!(span(120), "2 minutes");
    }
}
