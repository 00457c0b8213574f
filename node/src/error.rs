//! Why a node could not start, or stopped with an error: one type for
//! loading, serving and the lifecycle around them.

use tessera_certs::keys::KeyError;
use tessera_core::badge::SignError;
use tessera_runtime::follow::FollowError;
use tessera_runtime::tls::TlsError;

use tessera_core::policy::PolicyError;

use crate::policy_set::PolicySetError;
use crate::store::StoreError;

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
    /// The badge-signer key's token (`[badges] pkcs11`).
    #[error("badge-signer key in a PKCS#11 token: {0}")]
    Token(#[from] tessera_certs::pkcs11::TokenError),
    /// The token's key is not the one the badge-signer certificate names.
    #[error(
        "the key {key:?} in token {token:?} is not the key of the badge-signer certificate {certificate}: the token holds public key {in_token}, the certificate names {in_certificate}"
    )]
    TokenKeyMismatch {
        /// The token's label.
        token: String,
        /// The key's label.
        key: String,
        /// The certificate file.
        certificate: String,
        /// The token's public key, hex.
        in_token: String,
        /// The certificate's public key, hex (or what it holds instead).
        in_certificate: String,
    },
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
    Standard(#[from] tessera_runtime::standard::StandardError),
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

impl From<tessera_runtime::serve::ServeError> for StartError {
    fn from(e: tessera_runtime::serve::ServeError) -> Self {
        use tessera_runtime::serve::ServeError;
        match e {
            ServeError::Tls(e) => Self::Tls(e),
            ServeError::Io { what, source } => Self::Io { what, source },
            ServeError::Transport(e) => Self::Transport(e),
            ServeError::Standard(e) => Self::Standard(e),
        }
    }
}

/// A [`StartError::Io`] saying what was being done.
pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartError {
    let what = what.into();
    move |source| StartError::Io { what, source }
}
