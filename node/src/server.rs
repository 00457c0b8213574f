//! Starting a node: load and check every file the configuration names, open
//! the store, and serve over mutual TLS until asked to stop, then flush.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use tessera_certs::authz::AuthzLayer;
use tessera_certs::follow::{FollowError, Follower};
use tessera_certs::keys::{self, KeyError};
use tessera_certs::metrics::{Expiry, Metrics};
use tessera_certs::reload::{self, Outcome, Watched};
use tessera_certs::tls::{self, TlsError};
use tessera_certs::{TlsIdentity, TrustState, grpc};
use tessera_core::Role;
use tessera_core::badge::{BadgeSigner, SignError};
use tessera_proto::v1::city_node_server::CityNodeServer;
use tokio::net::TcpListener;

use crate::access_log::{self, AccessLog};
use crate::city::City;
use crate::config::NodeSettings;
use crate::policy::{DEFAULT_POLICY, Policy, PolicyError, PolicySet, PolicySetError};
use crate::pseudonym::PseudonymKey;
use crate::service::{NodeService, unix_now};
use crate::store::{SledStore, StoreError};

/// Why a node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A key or certificate file.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The trust list.
    #[error("trust list: {0}")]
    TrustList(#[from] tessera_core::trust::TrustListError),
    /// The TLS identity or configuration.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The badge signer.
    #[error("badge signer: {0}")]
    Signer(#[from] SignError),
    /// The certificates belong to another city than configured.
    #[error("{what} belongs to {found}, but the configuration says city {configured}")]
    WrongCity {
        /// Which certificate.
        what: &'static str,
        /// What it says.
        found: String,
        /// What the configuration says.
        configured: String,
    },
    /// The policy file.
    #[error("{path}: {source}")]
    Policy {
        /// The file.
        path: String,
        /// What is wrong.
        source: PolicyError,
    },
    /// A signed policy file.
    #[error("signed policy {path}: {source}")]
    SignedPolicy {
        /// The file.
        path: String,
        /// What is wrong.
        source: tessera_core::policy_doc::PolicyDocError,
    },
    /// The signed policies held do not hang together.
    #[error("signed policies: {0}")]
    PolicySet(#[from] PolicySetError),
    /// The configured policy file is none of the signed policies held: a
    /// changed policy needs notice.
    #[error(
        "{path} (policy version {version}) is not among the signed policies this node holds ({held}): a new or changed policy needs notice: sign it with `tessera policy sign --effective-from +72h`, publish it with `tessera policy publish`, and list the signed file under [badges] policies (docs/POLICY.md)"
    )]
    PolicyNeedsNotice {
        /// The file.
        path: String,
        /// Its version.
        version: u32,
        /// Versions held.
        held: String,
    },
    /// A signed policy the node will not score under.
    #[error("{path}: refused: {reason}")]
    PolicyRefused {
        /// The file or policy.
        path: String,
        /// Why.
        reason: String,
    },
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Files or sockets.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The server failed.
    #[error("server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The health or reflection service.
    #[error(transparent)]
    Standard(#[from] tessera_certs::standard::StandardError),
    /// Following the gateway's trust list.
    #[error(transparent)]
    Follow(#[from] FollowError),
    /// The access log's storage.
    #[error("access log: {0}")]
    AccessLog(String),
    /// A data directory or a secret key file (modes, see
    /// `tessera_certs::files`).
    #[error(transparent)]
    Files(#[from] tessera_certs::files::FileError),
    /// The node was switched off (`tessera node sunset`).
    #[error(
        "this node was switched off ({0} exists): it never serves again; run `tessera node sunset` to finish an interrupted sunset or resubmit its attestation"
    )]
    SwitchedOff(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let what = what.into();
    move |source| StartError::Io { what, source }
}

/// Reads the pseudonym secret from the data directory, creating it on first
/// start.
fn pseudonym_key(data_dir: &Path) -> Result<PseudonymKey, StartError> {
    let path = data_dir.join("pseudonym.key");
    if !path.exists() && data_dir.join("store").exists() {
        // A new secret would silently orphan every stored record.
        return Err(StartError::Io {
            what: format!(
                "{} is missing but a store exists beside it: restore the key from backup \
                 (a new key would make every stored record unreachable)",
                path.display()
            ),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    if !path.exists() {
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
        keys::write_new_file(&path, hex::encode(bytes).as_bytes(), true)?;
        // The key's directory entry must be durable before any record
        // pseudonymised with it is.
        std::fs::File::open(data_dir)
            .and_then(|d| d.sync_all())
            .map_err(io(format!("syncing {}", data_dir.display())))?;
    }
    let text = std::fs::read_to_string(&path).map_err(io(format!("reading {}", path.display())))?;
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| StartError::Io {
            what: format!("{} is not 32 hex-encoded bytes", path.display()),
            source: std::io::Error::from(std::io::ErrorKind::InvalidData),
        })?;
    Ok(PseudonymKey::from_bytes(bytes))
}

/// Refuses a master key file inside the data directory: a copy of the
/// directory (a backup, a stolen disk) must not carry the key that decrypts
/// it.
fn check_master_key_outside(settings: &NodeSettings) -> Result<(), StartError> {
    let data = std::fs::canonicalize(&settings.data_dir)
        .map_err(io(format!("resolving {}", settings.data_dir.display())))?;
    let key = &settings.master_key;
    let parent = match key.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let parent = std::fs::canonicalize(parent).map_err(io(format!(
        "the directory of the master key {}",
        key.display()
    )))?;
    if parent.starts_with(&data) {
        return Err(StartError::Io {
            what: format!(
                "[storage] master_key {} lies inside data_dir {}: a copy of the data \
                 directory would carry the key that decrypts it; keep the key elsewhere \
                 (default: master.key beside the configuration file)",
                key.display(),
                settings.data_dir.display()
            ),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        });
    }
    Ok(())
}

/// Most entries one retention sweep batch deletes (under the writer lock).
pub const SWEEP_BATCH: usize = 1000;

/// Deletes what is past retention, at once and then every
/// `settings.sweep`, counting deletions and logging counts (never ids).
async fn sweep_retention(loaded: &Loaded, metrics: crate::metrics::NodeMetrics) {
    let mut every = tokio::time::interval(loaded.settings.sweep);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match loaded.city.sweep(unix_now(), SWEEP_BATCH).await {
            Ok(swept) => {
                metrics.swept(&swept);
                if swept.total_records() + swept.badges > 0 {
                    tracing::info!(
                        records = swept.total_records(),
                        tests = swept.records[0],
                        vaccinations = swept.records[1],
                        exposures = swept.records[2],
                        travel = swept.records[3],
                        symptoms = swept.records[4],
                        badges = swept.badges,
                        "deleted what is past retention"
                    );
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "retention sweep failed; retrying at the next one")
            }
        }
    }
}

/// Everything a node needs, loaded and checked.
pub struct Loaded {
    /// The city's state.
    pub city: Arc<City<SledStore>>,
    /// The certificates to watch for expiry: name and the not-after of the
    /// one in use.
    pub expiries: Vec<Expiry>,
    /// Trust for TLS.
    pub trust: Arc<TrustState>,
    /// The node's TLS identity.
    pub identity: TlsIdentity,
    /// Settings.
    pub settings: NodeSettings,
    /// The log of operators' reads of residents' records.
    pub access_log: Arc<AccessLog>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("city", &self.settings.city)
            .finish_non_exhaustive()
    }
}

/// Loads keys, certificates, policy and store named by `settings`.
pub fn load(settings: NodeSettings) -> Result<Loaded, StartError> {
    if let Some(marker) = crate::sunset::switched_off(&settings.data_dir) {
        return Err(StartError::SwitchedOff(marker.display().to_string()));
    }
    // Secret keys readable by others, or in a directory others may write,
    // are refused before anything is read from them.
    for secret in [
        &settings.tls_key,
        &settings.signer_key,
        &settings.master_key,
        &settings.data_dir.join("pseudonym.key"),
    ] {
        tessera_certs::files::check_secret(secret)?;
    }
    let root = keys::read_root(&settings.root)?;
    let trust = Arc::new(TrustState::new(root)?);
    if let Some(list) = &settings.trust_list {
        let bytes = std::fs::read(list).map_err(io(format!("reading {}", list.display())))?;
        trust.update(&bytes, unix_now())?;
    }
    // The newest list fetched before a restart, if newer than the configured one.
    if let Ok(bytes) = std::fs::read(settings.data_dir.join(TRUST_CACHE))
        && let Err(e) = trust.update(&bytes, unix_now())
    {
        tracing::warn!(error = %e, "ignoring the cached trust list");
    }
    let identity = TlsIdentity::from_files(&settings.tls_certificate, &settings.tls_key)?;
    if identity.identity().role() != Role::CityNode
        || identity.identity().city() != Some(settings.city)
    {
        return Err(StartError::WrongCity {
            what: "the TLS certificate",
            found: identity.identity().to_uri(),
            configured: settings.city.to_string(),
        });
    }
    let signer = BadgeSigner::new(
        keys::read_signer_key(&settings.signer_key)?,
        &keys::read_cert(&settings.signer_certificate)?,
    )?;
    if signer.city() != settings.city {
        return Err(StartError::WrongCity {
            what: "the badge-signer certificate",
            found: signer.city().to_string(),
            configured: settings.city.to_string(),
        });
    }
    // 0700 whatever the umask, and what an earlier version or umask left
    // wider is tightened (directories 0700, files 0600).
    tessera_certs::files::private_dir(&settings.data_dir)?;
    tessera_certs::files::tighten_tree(&settings.data_dir)?;
    check_master_key_outside(&settings)?;
    if !tessera_certs::files::has_room(&settings.data_dir, tessera_certs::files::ROOM_BYTES) {
        return Err(StoreError::DiskFull(settings.data_dir.display().to_string()).into());
    }
    let pseudonyms = pseudonym_key(&settings.data_dir)?;
    let store = Arc::new(SledStore::open_with_cache(
        &settings.data_dir.join("store"),
        settings.store_cache_bytes,
        &settings.master_key,
    )?);
    let policies = load_policies(
        &settings,
        &signer,
        &keys::read_cert(&settings.signer_certificate)?,
        &trust,
        &store,
        unix_now(),
    )?;
    let access_log = Arc::new(
        AccessLog::open(store.open_tree(access_log::TREE)?)
            .map_err(|e| StartError::AccessLog(e.to_string()))?,
    );
    let city = Arc::new(
        City::new(
            store,
            policies,
            signer,
            pseudonyms,
            settings.max_batch_records,
        )
        .with_retention(settings.retention),
    );
    let tls = identity.clone();
    let signing = Arc::clone(&city);
    let expiries: Vec<Expiry> = vec![
        ("tls", Arc::new(move || tls.not_after())),
        (
            "badge_signer",
            Arc::new(move || signing.signer().not_after()),
        ),
    ];
    Ok(Loaded {
        city,
        expiries,
        trust,
        identity,
        settings,
        access_log,
    })
}

/// The newest trust list fetched, kept in the data directory.
pub const TRUST_CACHE: &str = "trust-list.tsl";

/// Where the node keeps the policy it signed itself at its first start.
pub const POLICY_DIR: &str = "policies";

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
    trust: &TrustState,
) -> Result<tessera_core::policy_doc::VerifiedPolicy, tessera_core::policy_doc::PolicyDocError> {
    use tessera_core::policy_doc::{self, PolicyDocError};
    let list = trust.current();
    let verified = match policy_doc::verify_with_certificate(signed, signer_cert) {
        Err(PolicyDocError::UnknownSigner(key_id)) => match (kept, &list) {
            (Some(kept), _) if kept.key_id() == key_id => {
                policy_doc::verify_with_certificate(signed, kept)?
            }
            (_, Some(list)) => policy_doc::verify_with_trust_list(signed, list)?,
            _ => return Err(PolicyDocError::UnknownSigner(key_id)),
        },
        other => other?,
    };
    if let Some(list) = &list
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
fn load_policies(
    settings: &NodeSettings,
    signer: &BadgeSigner,
    signer_der: &[u8],
    trust: &TrustState,
    store: &SledStore,
    now: i64,
) -> Result<PolicySet, StartError> {
    use tessera_core::policy_doc;
    let signer_cert = tessera_core::CertInfo::parse(signer_der)
        .map_err(|e| StartError::Signer(SignError::Certificate(e)))?;
    let dir = settings.data_dir.join(POLICY_DIR);
    let mut paths = settings.policies.clone();
    if dir.is_dir() {
        let mut own: Vec<_> = std::fs::read_dir(&dir)
            .map_err(io(format!("reading {}", dir.display())))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "signed"))
            .collect();
        own.sort();
        paths.extend(own);
    }
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
            let der = keys::read_cert(&kept_path)?;
            Some(
                tessera_core::CertInfo::parse_issued_by(&der, trust.root())
                    .map_err(|e| StartError::Signer(SignError::Certificate(e)))?,
            )
        } else {
            None
        };
        let policy = verify_held(&signed, &signer_cert, kept.as_ref(), trust).map_err(refused)?;
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
        // Its signer's certificate, to verify it after a rotation.
        keys::write_new_file(
            &path.with_extension("crt"),
            keys::cert_to_pem(signer_der).as_bytes(),
            true,
        )?;
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
        if hash(v) != first && notice < settings.policy_notice_secs {
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

/// The badge-signer files, watched like the TLS ones. A new signer is used
/// only once the trust list in force here carries it (when the node follows
/// a gateway): a badge signed by a key that verifiers do not know yet would
/// be refused as UNKNOWN_SIGNER. Until then the node goes on signing with
/// the old key, which stays valid: a rotation leaves it ACTIVE.
fn watch_badge_signer(loaded: &Loaded) -> Watched {
    let city = Arc::clone(&loaded.city);
    let trust = Arc::clone(&loaded.trust);
    let gated = loaded.settings.gateway.is_some();
    // A new signer waiting for a list is taken up when the files are next
    // looked at, not when the list arrives: the log says so.
    let reload_secs = loaded.settings.reload.as_secs();
    let apply = Box::new(move |der: Vec<u8>, key| {
        if tessera_core::KeyId::of_certificate(&der) == city.signer().key_id() {
            return Outcome::Unchanged;
        }
        let info = match tessera_core::CertInfo::parse_issued_by(&der, trust.root()) {
            Ok(info) => info,
            Err(e) => return Outcome::Refused(format!("not issued by the root: {e}")),
        };
        if !info.valid_at(unix_now()) {
            return Outcome::Refused("the certificate is not valid now".into());
        }
        let signer = match BadgeSigner::new(key, &der) {
            Ok(signer) => signer,
            Err(e) => return Outcome::Refused(e.to_string()),
        };
        match trust.current() {
            Some(list) => match list.by_key_id(&signer.key_id()) {
                Some(entry) if entry.is_revoked() => {
                    return Outcome::Refused("the trust list in force revokes it".into());
                }
                Some(_) => {}
                None if gated => {
                    return Outcome::Wait(format!(
                        "key {} is not in the trust list in force (sequence {}): \
                         signing with key {} until the first look at the files \
                         (every {} s, or at once on SIGHUP) after a list carrying it is in force",
                        signer.key_id(),
                        list.sequence(),
                        city.signer().key_id(),
                        reload_secs
                    ));
                }
                None => {}
            },
            None if gated => {
                return Outcome::Wait(format!(
                    "no trust list yet: signing with key {} until the first look at the files \
                     (every {} s, or at once on SIGHUP) after a list carrying key {} is in force",
                    city.signer().key_id(),
                    reload_secs,
                    signer.key_id()
                ));
            }
            None => {}
        }
        let old = city.signer().key_id();
        let new = signer.key_id();
        match city.replace_signer(signer) {
            Ok(true) => Outcome::Applied(format!(
                "badges are signed with key {new} (was {old}), valid until {}",
                info.not_after()
            )),
            Ok(false) => Outcome::Unchanged,
            Err(e) => Outcome::Refused(e.to_string()),
        }
    });
    Watched::new(
        "badge_signer",
        loaded.settings.signer_certificate.clone(),
        loaded.settings.signer_key.clone(),
        apply,
    )
}

/// Follows the gateway's trust list ([`tessera_certs::follow`]): each newer
/// list is put in force at once (rollback refused) and kept in the data
/// directory for the next start. The watch is reopened, so the gateway is
/// asked, at least every `settings.refresh`, and again after as long when
/// the gateway cannot be reached.
async fn follow_trust_lists(loaded: &Loaded, follower: Follower) {
    let trust = Arc::clone(&loaded.trust);
    let path = loaded.settings.data_dir.join(TRUST_CACHE);
    let never = follower
        .run(|bytes| {
            let result = trust.update(&bytes, unix_now()).map(|list| {
                let tmp = path.with_extension("tmp");
                if let Err(e) = tessera_certs::files::write_private(&tmp, &bytes).and_then(|()| {
                    std::fs::rename(&tmp, &path).map_err(|source| {
                        tessera_certs::files::FileError::Io {
                            path: path.display().to_string(),
                            source,
                        }
                    })
                }) {
                    tracing::warn!(error = %e, "cannot keep the trust list on disk");
                }
                list.sequence()
            });
            std::future::ready(result)
        })
        .await;
    match never {}
}

/// Hands the gateway every signed policy this node holds that the gateway
/// lacks, oldest first: a node's first policy (signed at its first start)
/// reaches the gateway without an operator's step. Retries while the gateway
/// cannot be reached; a policy the gateway refuses is logged and skipped
/// (the operator publishes it by hand once fixed).
async fn publish_policies(loaded: &Loaded, gateway: &str) {
    use tessera_proto::v1 as pb;
    let held: Vec<pb::SignedPolicy> = loaded
        .city
        .policies()
        .held()
        .iter()
        .filter_map(|h| h.signed.as_ref().map(|v| v.signed().clone()))
        .collect();
    if held.is_empty() {
        return;
    }
    let client = tls::client_config(&loaded.identity, Arc::clone(&loaded.trust), Role::Gateway)
        .map_err(|e| e.to_string())
        .and_then(|config| grpc::channel(gateway, config).map_err(|e| e.to_string()));
    let mut client = match client {
        Ok(channel) => tessera_proto::v1::gateway_client::GatewayClient::new(channel),
        Err(e) => {
            tracing::warn!(error = %e, gateway, "cannot publish policies to the gateway");
            return;
        }
    };
    let city = loaded.city.city().get();
    loop {
        let published = match client
            .fetch_policies(pb::FetchPoliciesRequest { city })
            .await
        {
            Ok(r) => r.into_inner().policies,
            Err(status) => {
                tracing::debug!(error = %status.message(), "gateway not reachable for policies; retrying");
                tokio::time::sleep(loaded.settings.refresh).await;
                continue;
            }
        };
        let mut unreachable = false;
        for policy in held.iter().filter(|p| !published.contains(p)) {
            match client
                .publish_policy(pb::PublishPolicyRequest {
                    policy: Some(policy.clone()),
                })
                .await
            {
                Ok(r) => tracing::info!(
                    effective_from = r.into_inner().effective_from,
                    "scoring policy published to the gateway"
                ),
                Err(status)
                    if matches!(
                        status.code(),
                        tonic::Code::Unavailable
                            | tonic::Code::Unknown
                            | tonic::Code::Cancelled
                            | tonic::Code::DeadlineExceeded
                    ) =>
                {
                    unreachable = true;
                    break;
                }
                // The gateway's trust list does not carry this city's
                // signer yet (a city enrolled moments ago): try again later
                // rather than leave the city's first policy unpublished.
                Err(status) if status.message().contains("unknown key") => {
                    tracing::info!(
                        error = %status.message(),
                        "the gateway does not know this city's badge signer yet; publishing the policy later"
                    );
                    unreachable = true;
                    break;
                }
                Err(status) => tracing::warn!(
                    error = %status.message(),
                    "the gateway refused a scoring policy this node holds: publish it with `tessera policy publish` once fixed"
                ),
            }
        }
        if !unreachable {
            return;
        }
        tokio::time::sleep(loaded.settings.refresh).await;
    }
}

/// The node's service, as health checking and reflection name it.
pub const SERVICE: &str = "tessera.v1.CityNode";

/// Why [`serve`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// `shutdown` resolved.
    Stopped,
    /// `[sunset] automatic` and the trust list in force reached its sunset
    /// date: the node stopped accepting calls; the caller destroys
    /// everything ([`crate::sunset`]).
    SunsetDue,
    /// The store's disk was full and has room again: the node stopped
    /// cleanly so that the caller opens the store afresh (sled keeps its
    /// first I/O error in an open database) and serves again.
    DiskFreed,
}

/// The health-check name of the node's writes (ingest, issuance, erasure):
/// NOT_SERVING while its disk is full, as is the node as a whole (`""`),
/// while `tessera.v1.CityNode` (status checks and other reads) stays
/// SERVING.
pub const WRITES: &str = "tessera.v1.CityNode.Writes";

/// How often a node whose disk is full looks for room again.
const DISK_PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Resolves once the store's disk was full and has room again, after
/// saying NOT_SERVING while it was full.
async fn room_after_full_disk(loaded: &Loaded, health: &tessera_certs::standard::Health) {
    let mut every = tokio::time::interval(DISK_PROBE_EVERY);
    while !loaded.city.disk_full() {
        every.tick().await;
    }
    health.writable(false).await;
    tracing::error!(
        data_dir = %loaded.settings.data_dir.display(),
        "the disk is full: health reads NOT_SERVING for writes, changes are refused with RESOURCE_EXHAUSTED, \
         reads and status checks go on; the node reopens its store once there is room"
    );
    let dir = loaded.settings.data_dir.clone();
    loop {
        every.tick().await;
        let dir = dir.clone();
        if tokio::task::spawn_blocking(move || {
            // Twice what a start needs, so that the reopened store starts.
            tessera_certs::files::has_room(&dir, 2 * tessera_certs::files::ROOM_BYTES)
        })
        .await
        .unwrap_or(false)
        {
            tracing::warn!("the disk has room again: stopping to reopen the store");
            return;
        }
    }
}

/// Serves a loaded node on `listener` until `shutdown` resolves (or, with
/// `[sunset] automatic`, the trust list's sunset date comes), then flushes
/// the store.
pub async fn serve(
    loaded: &Loaded,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<Served, StartError> {
    let config = tls::server_config(&loaded.identity, Arc::clone(&loaded.trust))?;
    let follower = match &loaded.settings.gateway {
        Some(gateway) => Some(Follower::new(
            &loaded.identity,
            Arc::clone(&loaded.trust),
            gateway,
            loaded.settings.refresh,
            loaded.settings.refresh,
        )?),
        None => None,
    };
    let limits = loaded.settings.connections;
    let mut metrics = Metrics::new();
    let refusals = tessera_certs::limits::Refusals::register(metrics.registry());
    let incoming = grpc::incoming_counted(listener, config, limits, refusals);
    let node_metrics = crate::metrics::NodeMetrics::register(&mut metrics);
    metrics.watch_trust_list(Arc::clone(&loaded.trust));
    metrics.watch_expiry(loaded.expiries.clone());
    let metrics = Arc::new(metrics);
    let metrics_listener = match loaded.settings.metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(io(format!("listening for metrics on {addr}")))?,
        ),
        None => None,
    };
    let sweeping = sweep_retention(loaded, node_metrics.clone());
    let service = CityNodeServer::new(NodeService::new(
        Arc::clone(&loaded.city),
        Arc::clone(&loaded.access_log),
        node_metrics,
    ))
    .max_decoding_message_size(loaded.settings.max_message_bytes);
    let table = crate::authz::table(loaded.city.city());
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let (health, routes) = tessera_certs::standard::routes_with_writes(SERVICE, WRITES).await?;
    health.serving(true).await;
    let health = Arc::new(health);
    let disk_freed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let room = {
        let (health, freed) = (Arc::clone(&health), Arc::clone(&disk_freed));
        async move {
            room_after_full_disk(loaded, &health).await;
            freed.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    };
    let sunset_due = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sunset = {
        let (due, trust) = (Arc::clone(&sunset_due), Arc::clone(&loaded.trust));
        let automatic = loaded.settings.sunset_automatic;
        async move {
            if !automatic {
                return std::future::pending().await;
            }
            crate::sunset::wait_until_due(trust).await;
            tracing::warn!("the trust list reached its sunset date: switching this node off");
            due.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    };
    let signal = async move {
        tokio::select! {
            () = shutdown => {}
            () = sunset => {}
            () = room => {}
        }
        health.serving(false).await;
        let _ = stopping_tx.send(true);
    };
    // A node serves no watch stream: the layer only tracks open calls, for
    // the idle timeout.
    let server = grpc::server_builder(&limits)
        .layer(tessera_certs::limits::CallLimitsLayer::new(
            &[],
            limits.max_watches_per_caller,
        ))
        .layer(metrics.layer(table))
        .layer(tessera_certs::status::DecodeStatusLayer)
        .layer(AuthzLayer::new(Arc::clone(&loaded.trust), table))
        .add_routes(routes.add_service(service))
        .serve_with_incoming_shutdown(incoming, signal);
    let follow = async {
        match (follower, &loaded.settings.gateway) {
            (Some(follower), Some(gateway)) => {
                let publish = async {
                    publish_policies(loaded, gateway).await;
                    std::future::pending::<()>().await;
                };
                tokio::join!(follow_trust_lists(loaded, follower), publish).0
            }
            _ => std::future::pending().await,
        }
    };
    let endpoint = tessera_certs::metrics::serve_while_running(metrics_listener, metrics);
    let watched = vec![
        Watched::tls(
            loaded.identity.clone(),
            Arc::clone(&loaded.trust),
            loaded.settings.tls_certificate.clone(),
            loaded.settings.tls_key.clone(),
        ),
        watch_badge_signer(loaded),
    ];
    // None of these ends while the server runs.
    let beside = async {
        tokio::join!(
            follow,
            endpoint,
            sweeping,
            tessera_certs::metrics::warn_before_expiry(loaded.expiries.clone()),
            reload::run(watched, loaded.settings.reload)
        )
    };
    tokio::select! {
        result = grpc::with_grace(server, stopping, std::time::Duration::from_secs(10)) => result?,
        _ = beside => {}
    }
    if loaded.city.disk_full() {
        // Every acknowledged change was flushed before its answer; the
        // store refuses any flush since its disk filled, and what it holds
        // unflushed was never acknowledged.
        tracing::warn!(
            "the store's disk filled while serving: stopped without a final flush \
             (every acknowledged change is durable)"
        );
    } else {
        loaded.city.flush().await.map_err(|e| StartError::Io {
            what: format!("final flush: {e}"),
            source: std::io::Error::other("flush failed"),
        })?;
    }
    Ok(if disk_freed.load(std::sync::atomic::Ordering::SeqCst) {
        Served::DiskFreed
    } else if sunset_due.load(std::sync::atomic::Ordering::SeqCst) {
        Served::SunsetDue
    } else {
        Served::Stopped
    })
}

/// Binds the configured address, with the configured listen backlog.
pub async fn bind(settings: &NodeSettings) -> Result<TcpListener, StartError> {
    grpc::bind(settings.listen, settings.connections.listen_backlog)
        .map_err(io(format!("listening on {}", settings.listen)))
}
