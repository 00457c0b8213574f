//! Switching a node off for good: destroy every record, badge state and key
//! it holds, then sign a deletion attestation that says so.
//!
//! The order makes the attestation true and the job finishable:
//!
//! 1. Before anything is destroyed, the node's TLS key must be able to sign
//!    an attestation that verifies against the root (else nothing is
//!    touched), and the store must not be open in a running node (sled's
//!    lock tells).
//! 2. The store is counted ([`crate::store::Store::census`]) and the counts, policy
//!    version, trust list and reason are written durably to
//!    `data_dir/sunset.pending` — the unsigned attestation to be.
//! 3. Every file in the data directory (the store, the pseudonym key, any
//!    key file kept there) and every key file the configuration names except
//!    the TLS key ([`key_files`]: the badge-signer key, and a master key when
//!    configured) is overwritten with zeros, synced and unlinked. Only the
//!    node's TLS key, certificate and root are spared, wherever they are.
//! 4. Only then is the attestation signed, with `destroyed_at` = now, and
//!    written durably beside the data directory; a copy in
//!    `data_dir/sunset-attestation.pb` marks the job done and the pending
//!    marker goes.
//!
//! A run that dies anywhere in 3 or 4 is finished by the next run, which
//! takes its counts from the pending marker (the store may be half gone). A
//! run after a finished one destroys nothing and hands back the attestation
//! it made, to be submitted again. A node whose data directory carries
//! either marker refuses to start.
//!
//! The TLS key is kept: it is the node's identity to the gateway, needed to
//! submit (and resubmit) the attestation; it cannot sign badges, and the
//! authority revokes or lets expire the node's certificate.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tessera_certs::keys::{self, KeyError};
use tessera_core::attestation::{
    self, ATTESTATION_VERSION, AttestationError, REASON_OPERATOR, REASON_SUNSET,
};
use tessera_core::{CertInfo, Role, TrustAnchor};
use tessera_proto::v1 as pb;
use tessera_runtime::{TlsIdentity, TrustState, grpc, tls};

use crate::config::NodeSettings;
use crate::data_dir::{self, DONE, PENDING};
use crate::error::StartError;
use crate::store::{SledStore, StoreError};
use tessera_runtime::clock::unix_now;

/// Why a node was destroyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// By hand (`tessera node sunset`).
    Operator,
    /// At the trust list's sunset date (`[sunset] automatic`).
    Sunset,
}

impl Reason {
    /// The attestation's `reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Operator => REASON_OPERATOR,
            Reason::Sunset => REASON_SUNSET,
        }
    }
}

/// Why a sunset did not finish.
#[derive(Debug, thiserror::Error)]
pub enum SunsetError {
    /// The node runs (its store is locked).
    #[error(
        "the node is running (data directory {0} is locked): stop it first; nothing was destroyed"
    )]
    Running(String),
    /// The node cannot sign an attestation; nothing was destroyed.
    #[error("cannot sign a deletion attestation, so nothing was destroyed: {0}")]
    CannotAttest(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file operation failed (the job is resumable: run it again).
    #[error("{what}: {source} (run the sunset again to finish it)")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A marker left by an earlier run is unreadable.
    #[error("{0}")]
    Marker(String),
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] AttestationError),
    /// The gateway did not take the attestation.
    #[error("submitting the attestation to the gateway at {gateway}: {message}")]
    Submit {
        /// The gateway.
        gateway: String,
        /// What went wrong.
        message: String,
    },
    /// The node could not start or serve.
    #[error(transparent)]
    Start(#[from] StartError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SunsetError {
    let what = what.into();
    move |source| SunsetError::Io { what, source }
}

/// A finished sunset.
#[derive(Debug, Clone)]
pub struct Sunset {
    /// The encoded SignedAttestation.
    pub signed: Vec<u8>,
    /// What it attests.
    pub claims: pb::DeletionAttestation,
    /// Where it was written (beside the data directory).
    pub file: PathBuf,
    /// Whether an earlier run had already finished (nothing was destroyed
    /// now).
    pub earlier: bool,
    /// Whether this run finished one an earlier run left half done.
    pub resumed: bool,
}

/// The key files the configuration names that a sunset destroys: the
/// badge-signer key (and, once configured, the master key). The TLS key is
/// not among them (see the module documentation).
pub fn key_files(settings: &NodeSettings) -> Vec<PathBuf> {
    let mut next = settings.master_key.clone().into_os_string();
    next.push(".next");
    // A key in a token is not a file: the token's owner destroys it with
    // the token's tools, and the attestation says it was not destroyed here.
    let signer = settings
        .signer_token
        .is_none()
        .then(|| settings.signer_key.clone());
    signer
        .into_iter()
        .chain([
            // Every resident's data key is wrapped under it: with it gone, no
            // copy of the store anywhere can be decrypted.
            settings.master_key.clone(),
            // A replacement a stop interrupted (node/src/vault.rs).
            PathBuf::from(next),
        ])
        .collect()
}

/// The node's signing identity, checked before anything is destroyed.
struct Attester {
    key: keys::TlsKey,
    der: Vec<u8>,
    root: TrustAnchor,
    /// The issuing CA of the node's certificate, if one issued it.
    cas: Vec<tessera_core::cert::IssuingCa>,
}

fn attester(settings: &NodeSettings, now: i64) -> Result<Attester, SunsetError> {
    let cannot = |e: String| SunsetError::CannotAttest(e);
    let root = keys::read_root(&settings.root).map_err(|e| cannot(e.to_string()))?;
    // The node's certificate, then the issuing CA's if it issued it.
    let mut certs =
        keys::read_certs(&settings.tls_certificate).map_err(|e| cannot(e.to_string()))?;
    let key = keys::read_tls_key(&settings.tls_key).map_err(|e| cannot(e.to_string()))?;
    let chain = certs.split_off(1);
    let der = certs.swap_remove(0);
    let cert = CertInfo::parse_with_chain(&der, &chain, &root)
        .map_err(|e| cannot(format!("node certificate: {e}")))?;
    if cert.identity().role() != Role::CityNode || cert.identity().city() != Some(settings.city) {
        return Err(cannot(format!(
            "the TLS certificate is {}, not the node of city {}",
            cert.identity(),
            settings.city
        )));
    }
    if !cert.valid_at(now) {
        return Err(cannot(format!(
            "the node certificate is not valid now (valid {} to {}): renew it first",
            cert.not_before(),
            cert.not_after()
        )));
    }
    let cas = chain
        .iter()
        .filter_map(|c| tessera_core::cert::IssuingCa::from_der(c, &root).ok())
        .collect();
    let attester = Attester {
        key,
        der,
        root,
        cas,
    };
    // A trial signature, verified as the authority will, proves the whole
    // path before anything is gone.
    let trial = attestation::sign_attestation(
        &pb::DeletionAttestation {
            destroyed_at: now,
            ..claims_template(settings, Reason::Operator)
        },
        attester.key.ecdsa(),
        &attester.der,
    )
    .map_err(|e| cannot(e.to_string()))?;
    attestation::verify_attestation_within(&trial, &attester.root, &attester.cas, now)
        .map_err(|e| cannot(e.to_string()))?;
    Ok(attester)
}

impl Attester {
    fn sign(&self, claims: &pb::DeletionAttestation, now: i64) -> Result<Vec<u8>, SunsetError> {
        let mut claims = claims.clone();
        claims.destroyed_at = now;
        Ok(attestation::sign_attestation(
            &claims,
            self.key.ecdsa(),
            &self.der,
        )?)
    }
}

fn claims_template(settings: &NodeSettings, reason: Reason) -> pb::DeletionAttestation {
    pb::DeletionAttestation {
        version: ATTESTATION_VERSION,
        city: settings.city.get(),
        reason: reason.as_str().into(),
        ..Default::default()
    }
}

/// Whether a node with `[sunset] automatic` must switch off at start: a
/// sunset was left half done, or the trust list it holds is past its
/// sunset date.
pub fn due_at_start(settings: &NodeSettings, now: i64) -> bool {
    if data_dir::switched_off(&settings.data_dir).is_some() {
        return true;
    }
    let Ok(root) = keys::read_cert(&settings.root).map(|der| TrustAnchor::from_der(&der)) else {
        return false;
    };
    root.ok()
        .and_then(|root| data_dir::held_trust_list(settings, &root))
        .is_some_and(|list| now > list.sunset_at())
}

/// Writes `bytes` to `path` durably: a temporary file, synced, renamed,
/// and the directory synced.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), SunsetError> {
    let tmp = path.with_extension("tmp");
    let mut file =
        std::fs::File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("renaming to {}", path.display())))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn sync_dir(dir: &Path) -> Result<(), SunsetError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("syncing {}", dir.display())))
}

/// Overwrites a file with zeros, syncs it, and unlinks it. A file that is
/// already gone is fine (an earlier run got there).
fn shred(path: &Path) -> Result<(), SunsetError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
    };
    if meta.is_file() {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io(format!("opening {}", path.display())))?;
        let zeros = vec![0u8; 1 << 20];
        let mut left = meta.len();
        while left > 0 {
            let n = usize::try_from(left.min(zeros.len() as u64)).unwrap_or(zeros.len());
            file.write_all(&zeros[..n])
                .map_err(io(format!("overwriting {}", path.display())))?;
            left -= n as u64;
        }
        file.sync_all()
            .map_err(io(format!("syncing {}", path.display())))?;
    }
    std::fs::remove_file(path).map_err(io(format!("removing {}", path.display())))
}

/// Shreds every file under `dir` (not following links) except those in
/// `keep`, and removes the emptied subdirectories.
fn shred_tree(dir: &Path, keep: &[PathBuf]) -> Result<(), SunsetError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(format!("listing {}", dir.display()))(e)),
    };
    for entry in entries {
        let path = entry
            .map_err(io(format!("listing {}", dir.display())))?
            .path();
        if keep.contains(&path) {
            continue;
        }
        let meta =
            std::fs::symlink_metadata(&path).map_err(io(format!("reading {}", path.display())))?;
        if meta.is_dir() {
            shred_tree(&path, keep)?;
            if std::fs::read_dir(&path)
                .map_err(io(format!("listing {}", path.display())))?
                .next()
                .is_none()
            {
                std::fs::remove_dir(&path).map_err(io(format!("removing {}", path.display())))?;
            }
        } else {
            shred(&path)?;
        }
    }
    sync_dir(dir)
}

/// The census to attest: from the pending marker of an interrupted run, or
/// counted now (and the marker written) on a first run.
fn pending_or_count(
    settings: &NodeSettings,
    reason: Reason,
    attester: &Attester,
) -> Result<(pb::DeletionAttestation, bool), SunsetError> {
    let marker = settings.data_dir.join(PENDING);
    if let Ok(bytes) = std::fs::read(&marker) {
        let claims = pb::DeletionAttestation::decode(bytes.as_slice()).map_err(|e| {
            SunsetError::Marker(format!(
                "{} is unreadable ({e}): it holds the counts of an interrupted sunset",
                marker.display()
            ))
        })?;
        return Ok((claims, true));
    }
    let mut claims = claims_template(settings, reason);
    let held = data_dir::held_trust_list(settings, &attester.root);
    claims.policy_version =
        crate::policy::version_in_force(settings, &attester.root, held.as_ref(), unix_now())
            .map_err(SunsetError::CannotAttest)?;
    if let Some(list) = held {
        claims.sunset_at = list.sunset_at();
        claims.trust_list_sequence = list.sequence();
    }
    let store_dir = settings.data_dir.join(data_dir::STORE);
    // The store stays locked until the marker is durable: a node started in
    // between would serve from files about to be destroyed; once the marker
    // exists, a node refuses to start.
    let mut lock = None;
    if store_dir.exists() {
        let (census, db) = SledStore::census_at(&store_dir).map_err(|e| match e {
            StoreError::Locked(dir) => SunsetError::Running(dir),
            other => SunsetError::Store(other),
        })?;
        claims.residents = census.residents;
        claims.records = census.records;
        claims.badges = census.badges;
        lock = Some(db);
    }
    std::fs::create_dir_all(&settings.data_dir)
        .map_err(io(format!("creating {}", settings.data_dir.display())))?;
    write_durably(&marker, &claims.encode_to_vec())?;
    drop(lock);
    Ok((claims, false))
}

fn attestation_file(settings: &NodeSettings, claims: &pb::DeletionAttestation) -> PathBuf {
    let beside = settings
        .data_dir
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    beside.join(format!(
        "attestation-{:06}-{}.pb",
        claims.city, claims.destroyed_at
    ))
}

/// A point where [`destroy_until`] stops as if the process died there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Halt {
    /// After the pending marker is written, before anything is destroyed.
    AfterMarker,
    /// After the key files are destroyed, before the data directory is.
    AfterKeys,
    /// After everything is destroyed and the attestation file written,
    /// before the done marker.
    AfterAttestationFile,
}

/// Destroys everything the node holds and signs the attestation (see the
/// module documentation for the order). The node must be stopped.
pub fn destroy(settings: &NodeSettings, reason: Reason) -> Result<Sunset, SunsetError> {
    destroy_until(settings, reason, None)?.ok_or_else(|| {
        SunsetError::Marker("the sunset stopped before it finished: run it again".into())
    })
}

/// [`destroy`], stopping at `halt` as a crash there would (for the tests
/// that prove a re-run finishes the job): `Ok(None)` when halted.
pub fn destroy_until(
    settings: &NodeSettings,
    reason: Reason,
    halt: Option<Halt>,
) -> Result<Option<Sunset>, SunsetError> {
    let attester = attester(settings, unix_now())?;
    let done = settings.data_dir.join(DONE);
    if let Ok(signed) = std::fs::read(&done) {
        let verified = attestation::verify_attestation_within(
            &signed,
            &attester.root,
            &attester.cas,
            unix_now(),
        )
        .map_err(|e| SunsetError::Marker(format!("{}: {e}", done.display())))?;
        let claims = verified.claims().clone();
        let file = attestation_file(settings, &claims);
        if !file.exists() {
            write_durably(&file, &signed)?;
        }
        return Ok(Some(Sunset {
            signed,
            claims,
            file,
            earlier: true,
            resumed: false,
        }));
    }
    let (mut claims, resumed) = pending_or_count(settings, reason, &attester)?;
    if halt == Some(Halt::AfterMarker) {
        return Ok(None);
    }
    let marker = settings.data_dir.join(PENDING);
    for key in key_files(settings) {
        shred(&key)?;
        if let Some(dir) = key.parent() {
            sync_dir(dir)?;
        }
    }
    if halt == Some(Halt::AfterKeys) {
        return Ok(None);
    }
    // The node's identity files stay even if kept in the data directory:
    // they sign and submit the attestation, now and on a re-run.
    let keep = [
        marker.clone(),
        settings.tls_key.clone(),
        settings.tls_certificate.clone(),
        settings.root.clone(),
    ];
    shred_tree(&settings.data_dir, &keep)?;
    claims.signer_key_destroyed = settings.signer_token.is_none() && !settings.signer_key.exists();
    claims.destroyed_at = unix_now();
    let signed = attester.sign(&claims, claims.destroyed_at)?;
    let file = attestation_file(settings, &claims);
    write_durably(&file, &signed)?;
    if halt == Some(Halt::AfterAttestationFile) {
        return Ok(None);
    }
    write_durably(&done, &signed)?;
    std::fs::remove_file(&marker).map_err(io(format!("removing {}", marker.display())))?;
    sync_dir(&settings.data_dir)?;
    tracing::warn!(
        city = claims.city,
        residents = claims.residents,
        records = claims.records,
        badges = claims.badges,
        file = %file.display(),
        "node switched off: everything destroyed, deletion attestation signed"
    );
    Ok(Some(Sunset {
        signed,
        claims,
        file,
        earlier: false,
        resumed,
    }))
}

/// Submits a signed attestation to the configured gateway as the node (its
/// TLS identity), trying three times. `Ok(false)` when no gateway is
/// configured.
pub async fn submit(settings: &NodeSettings, signed: &[u8]) -> Result<bool, SunsetError> {
    let Some(gateway) = &settings.gateway else {
        return Ok(false);
    };
    let failed = |message: String| SunsetError::Submit {
        gateway: gateway.clone(),
        message,
    };
    let attestation = pb::SignedAttestation::decode(signed).map_err(|e| failed(e.to_string()))?;
    let key_error = |e: KeyError| failed(e.to_string());
    let root = TrustAnchor::from_der(&keys::read_cert(&settings.root).map_err(key_error)?)
        .map_err(|e| failed(e.to_string()))?;
    let trust = Arc::new(TrustState::new(root).map_err(|e| failed(e.to_string()))?);
    let identity = TlsIdentity::from_files(&settings.tls_certificate, &settings.tls_key)
        .map_err(|e| failed(e.to_string()))?;
    let config =
        tls::client_config(&identity, trust, Role::Gateway).map_err(|e| failed(e.to_string()))?;
    let mut last = String::new();
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(u64::from(attempt))).await;
        }
        let channel =
            grpc::channel(gateway, Arc::clone(&config)).map_err(|e| failed(e.to_string()))?;
        let mut client = pb::gateway_client::GatewayClient::new(channel);
        let call = client.submit_attestation(pb::SubmitAttestationRequest {
            attestation: Some(attestation.clone()),
        });
        match tokio::time::timeout(Duration::from_secs(10), call).await {
            Ok(Ok(_)) => return Ok(true),
            // A refusal will not change on retry.
            Ok(Err(status))
                if matches!(
                    status.code(),
                    tonic::Code::InvalidArgument
                        | tonic::Code::PermissionDenied
                        | tonic::Code::FailedPrecondition
                ) =>
            {
                return Err(failed(format!("refused: {}", status.message())));
            }
            Ok(Err(status)) => last = format!("{:?}: {}", status.code(), status.message()),
            Err(_) => last = "no answer within 10 s".into(),
        }
    }
    Err(failed(last))
}
