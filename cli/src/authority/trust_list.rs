//! Trust lists: signing the next one, uploading it to a gateway, and
//! printing one.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tessera_certs::authority::AuthorityDir;
use tessera_certs::keys;
use tessera_core::TrustAnchor;
use tessera_core::trust::{CheckedTrustList, EntryStatus, Freshness};

use super::DirArg;
use crate::fmt;

/// `tessera authority trust-list publish`: sign the next list, write it, upload it.
pub(super) fn publish(
    dir: DirArg,
    out: Option<PathBuf>,
    gateway: Option<String>,
    valid_hours: i64,
    now: i64,
) -> anyhow::Result<()> {
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
    // The client certificate in use now uploads the list: one this list
    // installs (re-certified by a new issuing CA) is accepted by the gateway
    // only once the gateway holds this list.
    let client = match &gateway {
        Some(_) => Some(client_identity(&dir.dir)?),
        None => None,
    };
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
    if let (Some(gateway), Some(client)) = (&gateway, client) {
        let in_force = crate::block_on(upload_as(&dir.dir, client, gateway, &bytes))?;
        outln!("  uploaded to the gateway at {gateway}: sequence {in_force} in force");
    }
    Ok(())
}

/// `tessera authority trust-list show`: verify a list and print it.
pub(super) fn show_file(
    file: PathBuf,
    root: Option<PathBuf>,
    dir: Option<PathBuf>,
    now: i64,
) -> anyhow::Result<()> {
    let root_path = super::root_path(root, dir)?;
    show(&file, &root_path, now)?;
    Ok(())
}

pub(super) fn show(file: &Path, root_path: &Path, now: i64) -> anyhow::Result<()> {
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
            fmt::truncate(e.name(), 20),
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

/// The authority's admin client, from its files as they are now.
fn client_identity(dir: &Path) -> anyhow::Result<tessera_runtime::TlsIdentity> {
    Ok(tessera_runtime::TlsIdentity::from_files(
        &dir.join("authority/authority.crt"),
        &dir.join("authority/authority.key"),
    )?)
}

/// Uploads a signed list to the gateway as the authority's admin client.
pub async fn upload_async(dir: &Path, gateway: &str, bytes: &[u8]) -> anyhow::Result<u64> {
    upload_as(dir, client_identity(dir)?, gateway, bytes).await
}

/// Uploads a signed list to the gateway as `identity`.
async fn upload_as(
    dir: &Path,
    identity: tessera_runtime::TlsIdentity,
    gateway: &str,
    bytes: &[u8],
) -> anyhow::Result<u64> {
    use prost::Message;
    use std::sync::Arc;
    let root = TrustAnchor::from_der(&keys::read_cert(&dir.join("root/root.crt"))?)?;
    let trust = Arc::new(tessera_runtime::TrustState::new(root)?);
    let config =
        tessera_runtime::tls::client_config(&identity, trust, tessera_core::Role::Gateway)?;
    let list = tessera_proto::v1::SignedTrustList::decode(bytes)?;
    {
        let channel = tessera_runtime::grpc::channel(gateway, config)?;
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
