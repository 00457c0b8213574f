//! Loading a node: read and check every file the configuration names, open
//! the store and the access log, and hand back what serving needs. The
//! rules live elsewhere ([`crate::data_dir`], [`crate::policy`]); this file
//! only puts them in order.

use std::sync::Arc;

use tessera_certs::keys;
use tessera_core::Role;
use tessera_core::badge::BadgeSigner;
use tessera_runtime::metrics::Expiry;
use tessera_runtime::{TlsIdentity, TrustState};

use crate::access_log::{self, AccessLog};
use crate::city::City;
use crate::config::NodeSettings;
use crate::data_dir;
use crate::error::{StartError, io};
use crate::store::{SledStore, StoreError};
use tessera_runtime::clock::unix_now;

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

/// The badge signer: its key from the key file, or opened in the token
/// (logged in, found by label, a probe signature checked) and compared
/// with the certificate's key, so a wrong token key stops the start.
fn badge_signer(settings: &NodeSettings) -> Result<BadgeSigner, StartError> {
    let der = keys::read_cert(&settings.signer_certificate)?;
    let Some(token) = &settings.signer_token else {
        return Ok(BadgeSigner::new(
            keys::read_signer_key(&settings.signer_key)?,
            &der,
        )?);
    };
    let key = tessera_certs::pkcs11::TokenKey::open(token)?;
    let in_token = tessera_core::badge::BadgeKey::public_key(&key);
    let named = tessera_core::CertInfo::parse(&der)
        .map_err(|e| StartError::Signer(e.into()))?
        .ed25519_key()
        .copied();
    if named != Some(in_token) {
        return Err(StartError::TokenKeyMismatch {
            token: token.token.clone(),
            key: token.key.clone(),
            certificate: settings.signer_certificate.display().to_string(),
            in_token: hex::encode(in_token.as_bytes()),
            in_certificate: named
                .map_or_else(|| "no Ed25519 key".into(), |k| hex::encode(k.as_bytes())),
        });
    }
    Ok(BadgeSigner::with_key(Arc::new(key), &der)?)
}

/// Loads keys, certificates, policy and store named by `settings`.
pub fn load(settings: NodeSettings) -> Result<Loaded, StartError> {
    if let Some(marker) = data_dir::switched_off(&settings.data_dir) {
        return Err(StartError::SwitchedOff(marker.display().to_string()));
    }
    // Secret keys readable by others, or in a directory others may write,
    // are refused before anything is read from them.
    let signer_file = settings
        .signer_token
        .is_none()
        .then_some(&settings.signer_key);
    for secret in [
        Some(&settings.tls_key),
        signer_file,
        Some(&settings.master_key),
        Some(&settings.data_dir.join(data_dir::PSEUDONYM_KEY)),
    ]
    .into_iter()
    .flatten()
    {
        tessera_certs::files::check_secret(secret)?;
    }
    let root = keys::read_root(&settings.root)?;
    let trust = Arc::new(TrustState::new(root)?);
    if let Some(list) = &settings.trust_list {
        let bytes = std::fs::read(list).map_err(io(format!("reading {}", list.display())))?;
        trust.update(&bytes, unix_now())?;
    }
    // The newest list fetched before a restart, if newer than the configured one.
    if let Ok(bytes) = std::fs::read(settings.data_dir.join(data_dir::TRUST_CACHE))
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
    let signer = badge_signer(&settings)?;
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
    data_dir::check_master_key_outside(&settings)?;
    if !tessera_certs::files::has_room(&settings.data_dir, tessera_certs::files::ROOM_BYTES) {
        return Err(StoreError::DiskFull(settings.data_dir.display().to_string()).into());
    }
    let pseudonyms = data_dir::pseudonym_key(&settings.data_dir)?;
    let store = Arc::new(SledStore::open_with_cache(
        &settings.data_dir.join(data_dir::STORE),
        settings.store_cache_bytes,
        &settings.master_key,
    )?);
    let policies = crate::policy::load(
        &settings,
        &signer,
        &keys::read_cert(&settings.signer_certificate)?,
        &trust,
        store.as_ref(),
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
        .with_retention(settings.retention)
        .with_access_log(Arc::clone(&access_log)),
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
