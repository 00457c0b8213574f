//! The national authority's directory: the root, the issuing CA, the
//! trust-list signer, the record of every certificate issued, and the trust
//! lists published.
//!
//! ```text
//! D/registry.json                    what was issued, revoked, published
//! D/authority.toml                   where the keys are (absent: all files; [`custody`])
//! D/root/root.crt, root.key          the national root (keep offline)
//! D/issuing-ca/issuing-ca.crt, .key  the online issuing CA (root-issued)
//! D/trust-list-signer/signer.crt, signer.key, root.crt
//!   (a key kept in a PKCS#11 token has no `.key` file)
//! D/authority/authority.crt, authority.key, root.crt   the authority's TLS client
//! D/cities/<code>/node.crt, .key, badge-signer.crt, .key, root.crt
//! D/gateways/<name>/gateway.crt, .key, root.crt
//! D/verifiers/<province>-<name>/verifier.crt, .key, root.crt
//! D/operators/<city>-<name>/operator.crt, .key, root.crt
//!   (enrolled by request: `.csr`, the request, instead of `.key`)
//! D/trust-lists/000001.tsl          every list signed, by sequence
//! ```
//!
//! The root issues only the issuing CA and the trust-list signer, so its
//! key is needed by `init`, `rotate-list-signer` and `rotate-issuing-ca`
//! alone; enrolment, renewal and `rotate-signer` use the issuing CA's key.
//! A certificate file of a certificate the issuing CA issued holds the
//! certificate, then the issuing CA's (PEM). A directory made before issuing
//! CAs existed has none and keeps issuing from its root.
//!
//! Rotation and renewal ([`AuthorityDir::rotate_signer`],
//! [`AuthorityDir::renew`], [`AuthorityDir::rotate_list_signer`]) write the
//! new certificate and key as `<stem>.<n>.crt` and `.key` beside the old
//! ones and then install them over the live `<stem>.crt` and `.key`.
//!
//! Every operation checks all its preconditions before it writes anything, so
//! a refused command leaves the directory as it was. Private keys are written
//! with mode 0600.

mod by_request;
pub mod custody;
mod enrol;
mod issuing_ca;
mod journal;
mod publish;
mod registry;
mod rotation;

use std::fs;
use std::path::{Path, PathBuf};

use tessera_core::ids::CodeError;
use tessera_core::trust::TrustListError;
use tessera_core::{CityCode, Identity, Role, Scope};

pub use by_request::ReissuedByRequest;
pub use custody::{CUSTODY_FILE, CaRole, Custody, CustodyError, TokenSettings};
pub use issuing_ca::IssuingCaRotation;
pub use journal::{JOURNAL, Recovered, recover};
pub use registry::{Enrolment, Registry};
pub use rotation::{Pruned, Reissued, RenewTarget};

use crate::keys::{self, KeyError};
use crate::profile::{CertRequest, IssueError, IssuingCa, RootCa, SubjectKey};
use crate::request::{CheckedRequest, RequestError};

const REGISTRY: &str = "registry.json";
const DAY: i64 = 86_400;
/// Validity of the root certificate.
pub const ROOT_VALIDITY_SECS: i64 = 20 * 365 * DAY;
/// Validity of the issuing CA's certificate (K7 accepts at most 5 years).
pub const ISSUING_CA_VALIDITY_SECS: i64 = 5 * 365 * DAY;
/// Where the issuing CA's certificate lives, relative to the directory.
pub const ISSUING_CA_CERT: &str = "issuing-ca/issuing-ca.crt";
/// Where the issuing CA's key lives, relative to the directory.
pub const ISSUING_CA_KEY: &str = "issuing-ca/issuing-ca.key";
/// Validity of the trust-list signer certificate.
pub const SIGNER_VALIDITY_SECS: i64 = 2 * 365 * DAY;
/// Validity of every other certificate.
pub const LEAF_VALIDITY_SECS: i64 = 365 * DAY;
/// Backdating of not_before, for clocks slightly behind.
pub const BACKDATE_SECS: i64 = 300;

/// Why an authority command was refused. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    /// The directory does not exist.
    #[error("directory {0} does not exist")]
    MissingDirectory(String),
    /// No authority was initialised in the directory.
    #[error("{0} holds no authority: run `tessera authority init --dir {0}` first")]
    NotInitialised(String),
    /// An authority already exists in the directory.
    #[error("{0} already holds an authority: choose another directory (nothing was changed)")]
    AlreadyInitialised(String),
    /// The city is already enrolled and active.
    #[error("city {0} is already enrolled: revoke it first to re-enrol")]
    DuplicateCity(CityCode),
    /// A verifier or operator or gateway of this name already exists.
    #[error("{0} is already enrolled")]
    Duplicate(String),
    /// The city is not enrolled (for an operator).
    #[error("city {0} is not enrolled: enrol it with `tessera authority enrol-city` first")]
    UnknownCity(CityCode),
    /// A code is malformed.
    #[error(transparent)]
    Code(#[from] CodeError),
    /// A bad endpoint.
    #[error("{0:?} is not a host:port endpoint")]
    BadEndpoint(String),
    /// A bad name.
    #[error("name {0:?} is empty or too long (1 to 64 characters)")]
    BadName(String),
    /// Nothing matches the revocation target.
    #[error("no active certificate matches {0}")]
    NothingToRevoke(String),
    /// Nothing matches the renewal target.
    #[error("no certificate in use matches {0}")]
    NothingToRenew(String),
    /// Options out of range.
    #[error("{0}")]
    BadOption(String),
    /// The registry is unreadable.
    #[error("registry.json: {0}")]
    Registry(String),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Key or certificate files.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A directory or file could not be made private.
    #[error(transparent)]
    Files(#[from] crate::files::FileError),
    /// Issuing failed.
    #[error(transparent)]
    Issue(#[from] IssueError),
    /// A certificate signing request was refused.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The authority does not hold the key to replace: the party made it
    /// and enrolled by request.
    #[error(
        "{0} was enrolled by certificate request, so the authority does not hold its key and cannot make a new one for it: have its holder make a new key and request (`tessera keygen`) and give that request with --csr"
    )]
    KeyNotHeld(String),
    /// A request to renew by was given for a party whose key the authority
    /// made and holds.
    #[error(
        "{0} was enrolled all in one: the authority holds its key, so it is renewed without --csr"
    )]
    KeyHeld(String),
    /// A renewal's request carries a key an earlier certificate of the same
    /// party carries: a renewal must change the key.
    #[error(
        "the request's key is the key of {identity}'s certificate with serial {serial}: a renewal must change the key; make a new one with `tessera keygen`"
    )]
    KeyReused {
        /// The party.
        identity: String,
        /// The certificate carrying that key.
        serial: String,
    },
    /// Signing the trust list failed.
    #[error(transparent)]
    TrustList(#[from] TrustListError),
    /// A key is not where `authority.toml` says, or the token refused.
    #[error(transparent)]
    Custody(#[from] CustodyError),
    /// An earlier command was interrupted half way (see `journal.json`).
    #[error("the `{command}` started at Unix time {started_at} did not finish: {state}")]
    Interrupted {
        /// The interrupted command.
        command: String,
        /// When it started (Unix seconds).
        started_at: i64,
        /// What it had done and how to finish or undo it.
        state: String,
    },
}

impl AuthorityError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Settings of a new authority.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Display name.
    pub name: String,
    /// When the federation switches off (Unix seconds).
    pub sunset_at: i64,
}

/// What to revoke.
#[derive(Debug, Clone)]
pub enum RevokeTarget {
    /// A city: its node and badge-signer certificates.
    City(CityCode),
    /// One certificate by serial (hex).
    Serial(String),
}

/// Files written for one enrolment.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The bundle directory handed to the enrolled party.
    pub dir: PathBuf,
    /// The enrolments recorded.
    pub enrolments: Vec<Enrolment>,
    /// Issued for the keys of requests: the bundle holds no private key.
    pub by_request: bool,
}

/// An opened authority directory.
pub struct AuthorityDir {
    dir: PathBuf,
    registry: Registry,
    root_der: Vec<u8>,
    /// Loaded only by commands that issue certificates, so revoking and
    /// publishing work on a machine without the root key.
    root: Option<RootCa>,
    /// Loaded by the commands that issue everyday certificates.
    issuing_ca: Option<IssuingCa>,
}

impl std::fmt::Debug for AuthorityDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorityDir")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn check_name(name: &str) -> Result<String, AuthorityError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(AuthorityError::BadName(name.to_owned()));
    }
    Ok(name.to_owned())
}

fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-').to_owned();
    if s.is_empty() { "unnamed".into() } else { s }
}

/// Splits and checks `host:port`, returning the host.
pub fn endpoint_host(endpoint: &str) -> Result<String, AuthorityError> {
    let bad = || AuthorityError::BadEndpoint(endpoint.to_owned());
    let (host, port) = endpoint.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok(host.to_owned())
}

fn unused_dir(base: &Path) -> PathBuf {
    if !base.exists() {
        return base.to_path_buf();
    }
    (2..)
        .map(|n| PathBuf::from(format!("{}.{n}", base.display())))
        .find(|p| !p.exists())
        .unwrap_or_else(|| base.to_path_buf())
}

fn write_replacing(path: &Path, bytes: &[u8]) -> Result<(), AuthorityError> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    keys::write_new_file(&tmp, bytes, true)?;
    fs::rename(&tmp, path).map_err(|e| AuthorityError::io(path, e))
}

/// Everything an authority writes is private to its owner whatever the
/// umask: directories 0700, files 0600 (certificates and published lists
/// included: the directory is the authority's working copy, not a place to
/// publish from; issue 15).
fn create_dir(path: &Path) -> Result<(), AuthorityError> {
    Ok(crate::files::private_dir(path)?)
}

impl AuthorityDir {
    /// Creates a new authority in `dir` (created if missing, its parent must
    /// exist): root, trust-list signer and the authority's TLS client.
    pub fn init(dir: &Path, options: &InitOptions, now: i64) -> Result<Self, AuthorityError> {
        Self::init_with(dir, options, &Custody::files(), now)
    }

    /// Like [`Self::init`], with the root and trust-list signer keys kept
    /// as `custody` says (made in its token; `authority.toml` written).
    pub fn init_with(
        dir: &Path,
        options: &InitOptions,
        custody: &Custody,
        now: i64,
    ) -> Result<Self, AuthorityError> {
        let name = check_name(&options.name)?;
        if dir.is_dir() {
            journal::check(dir)?;
        }
        if [
            REGISTRY,
            "root",
            "issuing-ca",
            "trust-list-signer",
            "authority",
        ]
        .iter()
        .any(|p| dir.join(p).exists())
            || dir.join(CUSTODY_FILE).exists()
        {
            return Err(AuthorityError::AlreadyInitialised(
                dir.display().to_string(),
            ));
        }
        if let Some(parent) = dir.parent()
            && !parent.as_os_str().is_empty()
            && !parent.is_dir()
        {
            return Err(AuthorityError::MissingDirectory(
                parent.display().to_string(),
            ));
        }
        if options.sunset_at <= now + DAY {
            return Err(AuthorityError::BadOption(
                "the sunset date must be at least a day away".into(),
            ));
        }
        // The token opens and its labels are free before anything is made.
        custody.check_labels_free()?;
        create_dir(dir)?;
        let mut parts: Vec<PathBuf> = [
            "root",
            "issuing-ca",
            "trust-list-signer",
            "authority",
            REGISTRY,
        ]
        .iter()
        .map(|p| dir.join(p))
        .collect();
        parts.push(dir.join(CUSTODY_FILE));
        let journal = journal::Journal::new(dir, "init", now, &parts, vec![])?;
        journal.begin(dir)?;
        match Self::create(dir, name, options.sunset_at, custody, now) {
            Ok(this) => {
                journal.complete(dir)?;
                Ok(this)
            }
            Err(e) => {
                // Leave the directory as it was: remove whatever this attempt wrote.
                journal.abandon(dir)?;
                Err(e)
            }
        }
    }

    fn create(
        dir: &Path,
        name: String,
        sunset_at: i64,
        custody: &Custody,
        now: i64,
    ) -> Result<Self, AuthorityError> {
        if custody.token().is_some() {
            keys::write_new_file(&dir.join(CUSTODY_FILE), custody.to_toml().as_bytes(), true)?;
        }
        let root_key = custody.new_ca_key(CaRole::Root)?;
        let root_pem = root_key.file_pem()?;
        let root_req = CertRequest {
            identity: Identity::new(Role::Root, Scope::Nation)
                .map_err(|e| AuthorityError::BadOption(e.to_string()))?,
            common_name: format!("{name} national root"),
            hosts: vec![],
            not_before: now - BACKDATE_SECS,
            not_after: now + ROOT_VALIDITY_SECS,
            serial: None,
        };
        // Path length 1: the root issues the issuing CA, which issues leaves.
        let root = RootCa::create_with_path_len(&root_req, root_key, 1)?;
        create_dir(&dir.join("root"))?;
        keys::write_new_file(
            &dir.join("root/root.crt"),
            keys::cert_to_pem(root.der()).as_bytes(),
            true,
        )?;
        if let Some(pem) = root_pem {
            keys::write_new_file(&dir.join(CaRole::Root.key_file()), pem.as_bytes(), true)?;
        }
        let mut this = Self {
            dir: dir.to_path_buf(),
            root_der: root.der().to_vec(),
            registry: Registry {
                format: registry::REGISTRY_FORMAT,
                name: name.clone(),
                created_at: now,
                sunset_at,
                last_sequence: 0,
                enrolments: vec![],
            },
            root: Some(root),
            issuing_ca: None,
        };
        let national = |role| Identity::new(role, Scope::Nation);
        let signer = national(Role::TrustListSigner)
            .map_err(|e| AuthorityError::BadOption(e.to_string()))?;
        let admin =
            national(Role::Authority).map_err(|e| AuthorityError::BadOption(e.to_string()))?;
        let ica =
            national(Role::IssuingCa).map_err(|e| AuthorityError::BadOption(e.to_string()))?;
        let mut issued = vec![];
        let ica_source = match custody.new_ca_key(CaRole::IssuingCa)? {
            crate::ca_key::CaKey::File(_) => custody::KeySource::Generate,
            token => custody::KeySource::Token(SubjectKey::EcdsaP256(
                rcgen::PublicKeyData::der_bytes(&token).to_vec(),
            )),
        };
        issued.push(this.issue_with(
            &dir.join("issuing-ca"),
            "issuing-ca",
            ica,
            &format!("{name} issuing CA"),
            None,
            ica_source,
            now,
            ISSUING_CA_VALIDITY_SECS,
        )?);
        // The authority's own TLS client comes from the issuing CA.
        this.load_issuing_ca()?;
        issued.push(this.issue_with(
            &dir.join("trust-list-signer"),
            "signer",
            signer,
            &format!("{name} trust-list signer"),
            None,
            custody.new_list_signer()?,
            now,
            SIGNER_VALIDITY_SECS,
        )?);
        issued.push(this.issue_into(
            &dir.join("authority"),
            "authority",
            admin,
            &format!("{name} administration"),
            None,
            now,
            LEAF_VALIDITY_SECS,
        )?);
        this.registry.enrolments.extend(issued);
        this.registry.save(&dir.join(REGISTRY))?;
        Ok(this)
    }

    /// Opens an existing authority.
    pub fn open(dir: &Path) -> Result<Self, AuthorityError> {
        if !dir.is_dir() {
            return Err(AuthorityError::MissingDirectory(dir.display().to_string()));
        }
        journal::check(dir)?;
        let registry_path = dir.join(REGISTRY);
        if !registry_path.exists() {
            return Err(AuthorityError::NotInitialised(dir.display().to_string()));
        }
        let registry = Registry::load(&registry_path)?;
        // A root made before TLS keys moved to P-256 is refused here, with
        // what to do, before anything is issued from it.
        let root_der = keys::read_root(&dir.join("root/root.crt"))?.der().to_vec();
        Ok(Self {
            dir: dir.to_path_buf(),
            registry,
            root_der,
            root: None,
            issuing_ca: None,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The root certificate DER.
    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    fn load_root(&mut self) -> Result<&RootCa, AuthorityError> {
        if self.root.is_none() {
            let key = Custody::load(&self.dir)?.ca_key(&self.dir, CaRole::Root, &self.root_der)?;
            self.root = Some(RootCa::from_parts(key, self.root_der.clone()));
        }
        self.root
            .as_ref()
            .ok_or_else(|| AuthorityError::Registry("root key not loaded".into()))
    }

    /// Loads the issuing CA's key and certificate
    /// ([`ISSUING_CA_KEY`], [`ISSUING_CA_CERT`]).
    fn load_issuing_ca(&mut self) -> Result<&IssuingCa, AuthorityError> {
        if self.issuing_ca.is_none() {
            let der = keys::read_cert(&self.dir.join(ISSUING_CA_CERT))?;
            let key = Custody::load(&self.dir)?.ca_key(&self.dir, CaRole::IssuingCa, &der)?;
            self.issuing_ca = Some(IssuingCa::from_parts(key, der));
        }
        self.issuing_ca
            .as_ref()
            .ok_or_else(|| AuthorityError::Registry("issuing CA key not loaded".into()))
    }

    /// Whether the directory has an issuing CA (made since issuing CAs
    /// exist): then it issues everything but the root's own certificates.
    pub fn has_issuing_ca(&self) -> bool {
        self.dir.join(ISSUING_CA_CERT).exists()
    }

    /// Loads the key that issues certificates of `role`: the root's for
    /// the trust-list signer and the issuing CA, and for everything in a
    /// directory without an issuing CA; the issuing CA's otherwise.
    fn load_issuer_for(&mut self, role: Role) -> Result<(), AuthorityError> {
        if matches!(role, Role::TrustListSigner | Role::IssuingCa) || !self.has_issuing_ca() {
            self.load_root()?;
        } else {
            self.load_issuing_ca()?;
        }
        Ok(())
    }

    /// Issues a certificate for `subject` with the loaded key that issues
    /// its role (see [`Self::load_issuer_for`]); returns its DER and the
    /// text of its certificate file (it, then the issuing CA's, PEM).
    fn certify(
        &self,
        req: &CertRequest,
        subject: SubjectKey,
    ) -> Result<(Vec<u8>, String), AuthorityError> {
        let by_root = matches!(req.identity.role(), Role::TrustListSigner | Role::IssuingCa);
        match (&self.issuing_ca, by_root) {
            (Some(ca), false) => {
                let der = ca.issue(req, subject)?;
                let pem = keys::cert_to_pem(&der) + &keys::cert_to_pem(ca.der());
                Ok((der, pem))
            }
            _ => {
                let root = self
                    .root
                    .as_ref()
                    .ok_or_else(|| AuthorityError::Registry("root key not loaded".into()))?;
                let der = root.issue(req, subject)?;
                let pem = keys::cert_to_pem(&der);
                Ok((der, pem))
            }
        }
    }

    /// Every issuing CA this authority made (in force, retired or
    /// revoked), checked against its root: what a certificate it issued
    /// may chain through.
    pub fn issuing_cas(&self) -> Vec<tessera_core::cert::IssuingCa> {
        let Ok(root) = tessera_core::TrustAnchor::from_der(&self.root_der) else {
            return vec![];
        };
        self.registry
            .enrolments
            .iter()
            .filter(|e| e.identity.ends_with(":issuing-ca"))
            .filter_map(|e| keys::read_cert(&self.dir.join(&e.cert_file)).ok())
            .filter_map(|der| tessera_core::cert::IssuingCa::from_der(&der, &root).ok())
            .collect()
    }

    /// Path of the root certificate.
    pub fn root_cert_path(&self) -> PathBuf {
        self.dir.join("root/root.crt")
    }

    /// Writes `<dir>/<stem>.crt` and `<dir>/<stem>.key` for a new key of
    /// `identity` and returns the enrolment to record.
    #[allow(clippy::too_many_arguments)]
    fn issue_into(
        &self,
        dir: &Path,
        stem: &str,
        identity: Identity,
        common_name: &str,
        endpoint: Option<&str>,
        now: i64,
        validity: i64,
    ) -> Result<Enrolment, AuthorityError> {
        self.issue_for(
            dir,
            stem,
            identity,
            common_name,
            endpoint,
            None,
            now,
            validity,
        )
    }

    /// Like [`Self::issue_into`], but for the key of `request` when given:
    /// then the bundle gets `<stem>.crt` and the request as `<stem>.csr`,
    /// and no key (the authority never had it).
    #[allow(clippy::too_many_arguments)]
    fn issue_for(
        &self,
        dir: &Path,
        stem: &str,
        identity: Identity,
        common_name: &str,
        endpoint: Option<&str>,
        request: Option<&CheckedRequest>,
        now: i64,
        validity: i64,
    ) -> Result<Enrolment, AuthorityError> {
        let source = match request {
            Some(request) => custody::KeySource::Request(request),
            None => custody::KeySource::Generate,
        };
        self.issue_with(
            dir,
            stem,
            identity,
            common_name,
            endpoint,
            source,
            now,
            validity,
        )
    }

    /// Like [`Self::issue_for`], for a key from `source`: a key made in the
    /// authority's token gets `<stem>.crt` and no key file.
    #[allow(clippy::too_many_arguments)]
    fn issue_with(
        &self,
        dir: &Path,
        stem: &str,
        identity: Identity,
        common_name: &str,
        endpoint: Option<&str>,
        source: custody::KeySource<'_>,
        now: i64,
        validity: i64,
    ) -> Result<Enrolment, AuthorityError> {
        let request = match &source {
            custody::KeySource::Request(request) => Some(*request),
            _ => None,
        };
        let hosts = match endpoint {
            Some(ep) => vec![endpoint_host(ep)?],
            None => vec![],
        };
        let not_after = (now + validity).min(self.registry.sunset_at.max(now + DAY));
        let (key, subject) = match source {
            custody::KeySource::Request(request) => (None, request.key_for(identity.role())?),
            custody::KeySource::Token(subject) => (None, subject),
            custody::KeySource::Generate => {
                let key = keys::RoleKey::generate_for(identity.role());
                let subject = SubjectKey::from(&key);
                (Some(key), subject)
            }
        };
        let req = CertRequest {
            identity,
            common_name: common_name.to_owned(),
            hosts,
            not_before: now - BACKDATE_SECS,
            not_after,
            serial: None,
        };
        let (der, pem) = self.certify(&req, subject)?;
        let info = tessera_core::CertInfo::parse(&der)
            .map_err(|e| AuthorityError::BadOption(e.to_string()))?;
        create_dir(dir)?;
        let cert_path = dir.join(format!("{stem}.crt"));
        keys::write_new_file(&cert_path, pem.as_bytes(), true)?;
        match (&key, request) {
            (Some(key), _) => keys::write_new_file(
                &dir.join(format!("{stem}.key")),
                key.to_pem()?.as_bytes(),
                true,
            )?,
            (None, Some(request)) => keys::write_new_file(
                &dir.join(format!("{stem}.csr")),
                request.to_pem().as_bytes(),
                true,
            )?,
            (None, None) => {}
        }
        let root_copy = dir.join("root.crt");
        if !root_copy.exists() {
            keys::write_new_file(
                &root_copy,
                keys::cert_to_pem(&self.root_der).as_bytes(),
                true,
            )?;
        }
        let rel = cert_path
            .strip_prefix(&self.dir)
            .unwrap_or(&cert_path)
            .display()
            .to_string();
        Ok(Enrolment {
            identity: identity.to_uri(),
            name: common_name.to_owned(),
            endpoint: endpoint.map(str::to_owned),
            serial: info.serial().iter().map(|b| format!("{b:02x}")).collect(),
            cert_file: rel,
            not_before: info.not_before(),
            not_after: info.not_after(),
            revoked_at: None,
            retired_at: None,
            listed_at: None,
            pruned_at: None,
            install_over: None,
        })
    }

    /// Runs `work` (which writes files and then `registry.json`) under a
    /// journal (see [`journal`]): if it fails before the registry records
    /// the change, what it created is removed; once it has, the journal's
    /// steps are done. A crash in between leaves the journal, and the next
    /// command says how to finish or undo it.
    fn journaled<T>(
        &mut self,
        journal: &journal::Journal,
        work: impl FnOnce(&mut Self) -> Result<T, AuthorityError>,
    ) -> Result<T, AuthorityError> {
        journal.begin(&self.dir)?;
        match work(self) {
            Ok(value) => {
                journal.complete(&self.dir)?;
                Ok(value)
            }
            Err(e) => {
                if self.registry_unchanged(journal)? {
                    journal.abandon(&self.dir)?;
                }
                Err(e)
            }
        }
    }

    fn registry_unchanged(&self, journal: &journal::Journal) -> Result<bool, AuthorityError> {
        Ok(!journal.committed(&self.dir)?)
    }

    fn active(&self, identity: &str) -> impl Iterator<Item = &Enrolment> {
        self.registry
            .enrolments
            .iter()
            .filter(move |e| e.identity == identity && e.is_active())
    }

    fn commit(&mut self, issued: Vec<Enrolment>) -> Result<(), AuthorityError> {
        let mut next = self.registry.clone();
        next.enrolments.extend(issued);
        next.save(&self.dir.join(REGISTRY))?;
        self.registry = next;
        Ok(())
    }
}
