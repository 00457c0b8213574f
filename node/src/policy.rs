//! How a resident scores: the policy format and scoring live in
//! [`tessera_core::policy`] (the gateway refuses a published policy with the
//! same parser); this module adds the node's set of signed policies, of
//! which the one in force at a moment is the newest whose effective date has
//! come. A policy announced for later is held but never scored under.
//!
//! It also owns which signed policies a node holds (`load`): how each is
//! verified, the city's first policy (signed by the node itself, exempt
//! from notice and pinned in the store) and the notice every later one
//! needs; and which version is in force for a sunset's attestation
//! ([`version_in_force`]).

pub use tessera_core::policy::*;

use tessera_certs::keys;
use tessera_core::badge::{BadgeSigner, SignError};
use tessera_core::policy_doc;
use tessera_core::{CheckedTrustList, TrustAnchor};
use tessera_runtime::TrustState;

use crate::config::NodeSettings;
use crate::data_dir;
use crate::error::{StartError, io};
use crate::store::Store;

pub use crate::policy_set::{HeldPolicy, NotInForce, PolicySet, PolicySetError, rfc3339};

/// Checks a signed policy of this city: by the badge signer in use (the
/// node trusts its own certificate), or by an earlier signer that the trust
/// list held names as an active badge signer of this city, or by the
/// certificate kept beside the file (`<name>.crt`, chained to the root: the
/// signer of a policy the node signed itself, so that a rotation does not
/// orphan it on a node that holds no trust list). A signer the held list
/// revokes is refused either way.
fn verify_held(
    signed: &tessera_proto::v1::SignedPolicy,
    signer_cert: &tessera_core::CertInfo,
    kept: Option<&tessera_core::CertInfo>,
    list: Option<&CheckedTrustList>,
) -> Result<tessera_core::policy_doc::VerifiedPolicy, tessera_core::policy_doc::PolicyDocError> {
    use tessera_core::policy_doc::{self, PolicyDocError};
    let verified = match policy_doc::verify_with_certificate(signed, signer_cert) {
        Err(PolicyDocError::UnknownSigner(key_id)) => match (kept, list) {
            (Some(kept), _) if kept.key_id() == key_id => {
                policy_doc::verify_with_certificate(signed, kept)?
            }
            (_, Some(list)) => policy_doc::verify_with_trust_list(signed, list)?,
            _ => return Err(PolicyDocError::UnknownSigner(key_id)),
        },
        other => other?,
    };
    if let Some(list) = list
        && list
            .by_key_id(&verified.key_id())
            .is_some_and(|e| e.is_revoked() || list.is_revoked(e.cert()))
    {
        return Err(PolicyDocError::SignerRevoked(verified.key_id()));
    }
    Ok(verified)
}

/// The node's policies: the signed files configured under `[badges]
/// policies` and those in `data_dir/policies`. A node holding none signs its
/// configured TOML policy (or the built-in default) itself, in force at
/// once, and keeps it in `data_dir/policies`: a city's first policy, which
/// the gateway accepts without notice (docs/POLICY.md). Later, a configured
/// TOML policy must be one of those held: a changed policy needs notice.
pub(crate) fn load(
    settings: &NodeSettings,
    signer: &BadgeSigner,
    signer_der: &[u8],
    trust: &TrustState,
    store: &impl Store,
    now: i64,
) -> Result<PolicySet, StartError> {
    use tessera_core::policy_doc;
    let signer_cert = tessera_core::CertInfo::parse(signer_der)
        .map_err(|e| StartError::Signer(SignError::Certificate(e)))?;
    let dir = settings.data_dir.join(data_dir::POLICY_DIR);
    let paths = data_dir::signed_policy_files(settings)?;
    let list = trust.current();
    let mut verified: Vec<policy_doc::VerifiedPolicy> = vec![];
    for path in &paths {
        let refused = |source| StartError::SignedPolicy {
            path: path.display().to_string(),
            source,
        };
        let bytes = std::fs::read(path).map_err(io(format!("reading {}", path.display())))?;
        let signed = policy_doc::decode_signed(&bytes).map_err(refused)?;
        let kept_path = path.with_extension("crt");
        let kept = if kept_path.exists() {
            // The signer's certificate, then the issuing CA's if it issued it.
            let certs = keys::read_certs(&kept_path)?;
            Some(
                tessera_core::CertInfo::parse_with_chain(&certs[0], &certs[1..], trust.root())
                    .map_err(|e| StartError::Signer(SignError::Certificate(e)))?,
            )
        } else {
            None
        };
        let policy =
            verify_held(&signed, &signer_cert, kept.as_ref(), list.as_deref()).map_err(refused)?;
        if policy.city() != settings.city.get() {
            return Err(StartError::PolicyRefused {
                path: path.display().to_string(),
                reason: format!(
                    "it is city {:06}'s policy, and this node serves {}",
                    policy.city(),
                    settings.city
                ),
            });
        }
        // The same document listed twice (a copy of the one in the data
        // directory) is held once.
        if !verified.iter().any(|v| v.signed() == policy.signed()) {
            verified.push(policy);
        }
    }
    let (text, source) = match &settings.policy {
        None => (
            DEFAULT_POLICY.to_owned(),
            "built-in default policy".to_owned(),
        ),
        Some(path) => (
            std::fs::read_to_string(path).map_err(io(format!("reading {}", path.display())))?,
            path.display().to_string(),
        ),
    };
    let configured = Policy::parse(&text).map_err(|source_error| StartError::Policy {
        path: source.clone(),
        source: source_error,
    })?;
    let first = store.first_policy()?;
    if verified.is_empty() && (first.is_some() || store.holds_data()?) {
        // Signing a policy now, in force at once, would be a change without
        // notice for residents already served.
        return Err(StartError::PolicyRefused {
            path: dir.display().to_string(),
            reason: "this node holds no signed policy, but its store already holds \
                     residents' data (or a first policy was recorded): restore the signed \
                     policies from backup, or sign one with notice and list it under \
                     [badges] policies"
                .into(),
        });
    }
    if verified.is_empty() {
        let document = tessera_proto::v1::PolicyDocument {
            version: policy_doc::POLICY_DOC_VERSION,
            city: settings.city.get(),
            policy_version: configured.version(),
            signed_at: now,
            effective_from: now,
            rules: text,
        };
        let refused = |e| StartError::SignedPolicy {
            path: source.clone(),
            source: e,
        };
        let signed = signer.sign_policy(&document).map_err(refused)?;
        let policy = policy_doc::verify_with_certificate(&signed, &signer_cert).map_err(refused)?;
        tessera_certs::files::private_dir(&dir)?;
        let path = dir.join(format!("policy-v{}.signed", configured.version()));
        keys::write_new_file(&path, &policy.to_bytes(), true)?;
        // Its signer's certificate, to verify it after a rotation, with the
        // chain after it in the signer's certificate file (the issuing CA's).
        let mut kept = keys::cert_to_pem(signer_der);
        if let Ok(certs) = keys::read_certs(&settings.signer_certificate)
            && certs.first().map(Vec::as_slice) == Some(signer_der)
        {
            for der in &certs[1..] {
                kept.push_str(&keys::cert_to_pem(der));
            }
        }
        keys::write_new_file(&path.with_extension("crt"), kept.as_bytes(), true)?;
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io(format!("syncing {}", dir.display())))?;
        tracing::info!(
            version = configured.version(),
            path = %path.display(),
            "signed the city's first policy, in force at once; publish it with `tessera policy publish`"
        );
        verified.push(policy);
    } else if settings.policy.is_some() && !verified.iter().any(|v| v.policy() == &configured) {
        return Err(StartError::PolicyNeedsNotice {
            path: source,
            version: configured.version(),
            held: verified
                .iter()
                .map(|v| format!("version {}", v.policy_version()))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    // The city's first policy is the only one that may take effect without
    // notice. It is pinned in the store the first time (a node that signed
    // it itself, or was given it); every other policy must have been signed
    // at least `[badges] notice_hours` before its effective date.
    let hash = |v: &policy_doc::VerifiedPolicy| -> [u8; 32] {
        <sha2::Sha256 as sha2::Digest>::digest(v.to_bytes()).into()
    };
    let first = match first {
        Some(first) => first,
        None => {
            // Never empty here: a node holding none signed one above.
            let Some(earliest) = verified
                .iter()
                .min_by_key(|v| (v.effective_from(), v.policy_version()))
                .map(hash)
            else {
                return Ok(PolicySet::new(verified)?);
            };
            store.record_first_policy(earliest)?;
            earliest
        }
    };
    for v in &verified {
        let notice = v.effective_from() - v.signed_at();
        // The one notice rule (core), counted from the signing here.
        let short = policy_doc::check_notice(
            v.signed_at(),
            v.effective_from(),
            settings.policy_notice_secs,
        )
        .is_err();
        if hash(v) != first && short {
            return Err(StartError::PolicyRefused {
                path: format!("policy version {}", v.policy_version()),
                reason: format!(
                    "it was signed {} hours before it takes effect, and this node requires {} \
                     hours of notice for every policy but the city's first ([badges] notice_hours)",
                    notice / 3600,
                    settings.policy_notice_secs / 3600
                ),
            });
        }
    }
    Ok(PolicySet::new(verified)?)
}

/// The version of the policy in force at `now` among the signed policies
/// the node holds (each verified as at start: by the badge-signer
/// certificate, a certificate kept beside it, or the trust list `list`), or,
/// for a node that never started and so holds none, of the policy it would
/// sign at its first start. For a sunset's attestation: the policy the node
/// last scored under.
pub fn version_in_force(
    settings: &NodeSettings,
    root: &TrustAnchor,
    list: Option<&CheckedTrustList>,
    now: i64,
) -> Result<u32, String> {
    let signer_cert = keys::read_cert(&settings.signer_certificate)
        .ok()
        .and_then(|der| tessera_core::CertInfo::parse(&der).ok());
    let paths = data_dir::signed_policy_files(settings).map_err(|e| e.to_string())?;
    let in_force = paths
        .iter()
        .filter_map(|path| {
            let signed = policy_doc::decode_signed(&std::fs::read(path).ok()?).ok()?;
            let kept = keys::read_certs(&path.with_extension("crt"))
                .ok()
                .and_then(|certs| {
                    tessera_core::CertInfo::parse_with_chain(&certs[0], &certs[1..], root).ok()
                });
            let verified = match &signer_cert {
                Some(cert) => verify_held(&signed, cert, kept.as_ref(), list),
                None => match &kept {
                    Some(kept) => policy_doc::verify_with_certificate(&signed, kept),
                    None => policy_doc::verify_with_trust_list(&signed, list?),
                },
            };
            match verified {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "a held policy does not verify; not counted");
                    None
                }
            }
        })
        .filter(|v| v.effective_from() <= now)
        .max_by_key(|v| (v.effective_from(), v.policy_version()));
    if let Some(v) = in_force {
        return Ok(v.policy_version());
    }
    let policy = match &settings.policy {
        None => Policy::default_policy(),
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Policy::parse(&text)
        }
    }
    .map_err(|e| format!("policy: {e}"))?;
    Ok(policy.version())
}
