//! Deletion attestations: checking one file, and the census of every
//! listed city's switch-off as a gateway collected them.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tessera_certs::authority::AuthorityDir;
use tessera_certs::keys;
use tessera_core::TrustAnchor;
use tessera_core::attestation::{Census, verify_attestation_within};
use tessera_core::trust::CheckedTrustList;

use super::DirArg;
use crate::fmt;

/// `tessera authority verify-attestation`: check a deletion attestation file.
pub(super) fn verify_file(
    file: PathBuf,
    root: Option<PathBuf>,
    dir: Option<PathBuf>,
    now: i64,
) -> anyhow::Result<()> {
    let root_path = super::root_path(root, dir.clone())?;
    let root = TrustAnchor::from_der(&keys::read_cert(&root_path)?)
        .with_context(|| format!("{} is not a tessera root certificate", root_path.display()))?;
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    // With the authority's directory, a node certificate its issuing CAs
    // issued verifies too; with the root alone, only a root-issued one.
    let cas = match &dir {
        Some(dir) if root_given_or_same(&root, dir) => AuthorityDir::open(dir)?.issuing_cas(),
        _ => vec![],
    };
    verify_attestation_file(&bytes, &root, &cas, now)?;
    Ok(())
}

/// `tessera authority attestations`: the census of switch-offs, printed.
pub(super) fn attestations_cmd(dir: DirArg, gateway: String, now: i64) -> anyhow::Result<()> {
    crate::block_on(attestations(&dir.dir, &gateway, now))?;
    Ok(())
}

/// Prints what an attestation says, then VALID, or INVALID and the reason
/// (as an error, so the exit code is non-zero).
/// Whether the authority in `dir` has `root` as its root.
fn root_given_or_same(root: &TrustAnchor, dir: &Path) -> bool {
    keys::read_cert(&dir.join("root/root.crt")).is_ok_and(|der| der == root.der())
}

pub(super) fn verify_attestation_file(
    bytes: &[u8],
    root: &TrustAnchor,
    cas: &[tessera_core::cert::IssuingCa],
    now: i64,
) -> anyhow::Result<()> {
    use prost::Message;
    // What it claims, read before verification only to show it; the verdict
    // below is what counts.
    if let Some(claims) = tessera_proto::v1::SignedAttestation::decode(bytes)
        .ok()
        .and_then(|s| tessera_proto::v1::DeletionAttestation::decode(s.payload.as_slice()).ok())
    {
        print_claims(&claims);
    }
    match verify_attestation_within(bytes, root, cas, now) {
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

pub(super) fn print_claims(c: &tessera_proto::v1::DeletionAttestation) {
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

/// Fetches every attestation the gateway at `gateway` collected, as the
/// authority in `dir`, and accounts for the cities of the last list it
/// signed ([`tessera_core::attestation::census`], at `now`).
pub async fn census(dir: &Path, gateway: &str, now: i64) -> anyhow::Result<Census> {
    use prost::Message;
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

    let trust = std::sync::Arc::new(tessera_runtime::TrustState::new(root.clone())?);
    let identity = tessera_runtime::TlsIdentity::from_files(
        &dir.join("authority/authority.crt"),
        &dir.join("authority/authority.key"),
    )?;
    let config =
        tessera_runtime::tls::client_config(&identity, trust, tessera_core::Role::Gateway)?;
    let channel = tessera_runtime::grpc::channel(gateway, config)?;
    let held = tessera_proto::v1::gateway_client::GatewayClient::new(channel)
        .list_attestations(tessera_proto::v1::ListAttestationsRequest {})
        .await
        .map_err(|s| anyhow::anyhow!("the gateway at {gateway} refused: {}", s.message()))?
        .into_inner()
        .attestations;
    Ok(tessera_core::attestation::census(&list, &held, &root, now))
}

/// `tessera authority attestations`: the [`census`], printed; an error
/// unless every city attested.
pub(super) async fn attestations(dir: &Path, gateway: &str, now: i64) -> anyhow::Result<()> {
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
                fmt::truncate(name, 20),
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
            Err(e) => outln!("  {code:06} {:<20} INVALID   {e}", fmt::truncate(name, 20)),
            Ok(None) => outln!("  {code:06} {:<20} MISSING", fmt::truncate(name, 20)),
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
