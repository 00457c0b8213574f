//! Which peers may connect: rustls configurations for mutual TLS.
//!
//! Both sides present a certificate issued by the national root, directly
//! or through an issuing CA, followed by the rest of its chain (the issuing
//! CA's certificate, from the same certificate file). rustls' WebPKI builds
//! the path to the pinned root from the intermediates presented. On top of
//! rustls' own chain, validity and name checks, every handshake also checks
//! the peer's tessera role (it must be a TLS role with the right extended key
//! usage, and on the client side the role the caller expects) and refuses a
//! certificate that the current trust list revokes, or whose issuing CA it
//! lists REVOKED or does not list, exactly as a revoked certificate. The
//! trust list is read afresh at every handshake, so a new list applies to
//! the next connection; before any list is installed, only the chain to the
//! root is checked.
//!
//! TLS 1.3 only, ALPN `h2`, ring as the crypto provider. Every TLS
//! certificate and the root carry ECDSA P-256 keys (see [`tessera_certs::keys`]),
//! so handshake signatures are `ecdsa_secp256r1_sha256`, the one scheme
//! BoringSSL (grpcio, grpc-java, Envoy, Chromium), OpenSSL, rustls, Go and
//! Java all offer by default; a peer offering only Ed25519 finds no scheme
//! in common. The verifiers below add tessera's checks to rustls' WebPKI
//! verifiers and leave their algorithm choice as it is.

use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, Error, OtherError,
    RootCertStore, ServerConfig, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use tessera_certs::keys::{self, TlsKey};
use tessera_core::trust::TrustListError;
use tessera_core::{CertInfo, CheckedTrustList, CityCode, Identity, Role, TrustAnchor};

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] Error),
    /// The verifier could not be built.
    #[error("TLS verifier: {0}")]
    Verifier(String),
    /// The identity's certificate is unreadable.
    #[error("TLS identity certificate: {0}")]
    Certificate(#[from] tessera_core::cert::CertError),
    /// The identity's role may not use TLS.
    #[error("a {0} certificate may not be used for TLS")]
    NotTlsRole(Role),
    /// The identity's key does not match its certificate.
    #[error("TLS private key does not match its certificate")]
    KeyMismatch,
    /// Key conversion failed.
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    /// A renewed certificate names another party.
    #[error("the new certificate is {offered}'s, not {held}'s")]
    IdentityChanged {
        /// Whose certificate is presented now.
        held: String,
        /// Whose the new one is.
        offered: String,
    },
}

/// The crypto provider every tessera TLS configuration uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Installs ring as the process-wide default provider. Harmless if one is
/// already installed. Call at start-up, before any TLS is built.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The root and the current trust list, shared by every connection.
pub struct TrustState {
    root: TrustAnchor,
    roots: Arc<RootCertStore>,
    list: ArcSwapOption<CheckedTrustList>,
}

impl std::fmt::Debug for TrustState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustState")
            .field("sequence", &self.current().map(|l| l.sequence()))
            .finish_non_exhaustive()
    }
}

impl TrustState {
    /// Trust rooted at `root`, with no trust list yet: until one is
    /// installed, only the chain to the root is checked.
    pub fn new(root: TrustAnchor) -> Result<Self, TlsError> {
        let mut store = RootCertStore::empty();
        store.add(CertificateDer::from(root.der().to_vec()))?;
        Ok(Self {
            root,
            roots: Arc::new(store),
            list: ArcSwapOption::empty(),
        })
    }

    /// The pinned root.
    pub fn root(&self) -> &TrustAnchor {
        &self.root
    }

    /// The list in force, if any.
    pub fn current(&self) -> Option<Arc<CheckedTrustList>> {
        self.list.load_full()
    }

    /// Verifies `bytes` as the successor of the current list (refusing
    /// rollback) and puts it in force. Returns the new list.
    pub fn update(&self, bytes: &[u8], now: i64) -> Result<Arc<CheckedTrustList>, TrustListError> {
        let next = match self.current() {
            Some(held) => held.verify_successor(bytes, &self.root, now)?,
            None => CheckedTrustList::verify(bytes, &self.root, now)?,
        };
        let next = Arc::new(next);
        self.list.store(Some(Arc::clone(&next)));
        Ok(next)
    }

    /// Puts an already verified list in force, refusing one older than the
    /// list held. For callers that verified `next` themselves (the gateway's
    /// registry, which also persists it).
    pub fn install(&self, next: Arc<CheckedTrustList>) -> Result<(), TrustListError> {
        if let Some(held) = self.current()
            && next.sequence() < held.sequence()
        {
            return Err(TrustListError::Rollback {
                held: held.sequence(),
                offered: next.sequence(),
            });
        }
        self.list.store(Some(next));
        Ok(())
    }

    /// Whether the current list revokes the certificate with this serial
    /// and key id (a caller admitted earlier, on a long-lived stream).
    pub fn revokes(&self, serial: &[u8], key_id: &tessera_core::KeyId) -> bool {
        self.current()
            .is_some_and(|list| list.revokes(serial, key_id))
    }

    /// Whether the current list revokes this certificate.
    pub fn is_revoked(&self, cert: &CertInfo) -> bool {
        self.current().is_some_and(|list| list.is_revoked(cert))
    }

    /// Whether the current list refuses `cert` or the issuing CA (among
    /// `chain`) that issued it: what a revoked certificate gets.
    fn refuses_chain(&self, cert: &CertInfo, leaf: &[u8], chain: &[CertificateDer<'_>]) -> bool {
        let Some(list) = self.current() else {
            return false;
        };
        if list.is_revoked(cert) {
            return true;
        }
        let refusal = CertInfo::issuing_ca_among(leaf, chain)
            .and_then(|ca| list.issuer_refusal(&ca.key_id(), ca.serial()));
        if let Some(refusal) = &refusal {
            tracing::info!(peer = %cert.identity(), %refusal, "peer certificate refused");
        }
        refusal.is_some()
    }
}

/// A certificate and its private key, for one side of a TLS connection.
///
/// Clones share one slot: [`TlsIdentity::replace`] (a renewed certificate,
/// see [`crate::reload`]) changes what every clone, and every server and
/// client configuration built from it, presents at its next handshake.
/// Connections already open keep the certificate they were made with.
#[derive(Clone)]
pub struct TlsIdentity {
    identity: Identity,
    current: Arc<ArcSwap<Presented>>,
}

/// What a [`TlsIdentity`] presents now.
#[derive(Debug)]
struct Presented {
    certified: Arc<CertifiedKey>,
    der: Vec<u8>,
    chain: Vec<Vec<u8>>,
    serial: Vec<u8>,
    not_after: i64,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("identity", &self.identity.to_uri())
            .field("serial", &self.serial_hex())
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Binds `key` to the first of `certs` (the certificate; the rest is its
/// chain, presented after it).
fn present(certs: Vec<Vec<u8>>, key: &TlsKey) -> Result<(Identity, Presented), TlsError> {
    let mut certs = certs.into_iter();
    let cert_der = certs
        .next()
        .ok_or_else(|| tessera_core::cert::CertError::Malformed("no certificate".into()))?;
    let chain: Vec<Vec<u8>> = certs.collect();
    let info = CertInfo::parse(&cert_der)?;
    let role = info.identity().role();
    if !role.uses_tls() {
        return Err(TlsError::NotTlsRole(role));
    }
    if info.p256_key() != Some(key.verifying_key()) {
        return Err(TlsError::KeyMismatch);
    }
    let key_der = key.to_pkcs8_der()?;
    let signing = provider()
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der)))?;
    let presented = std::iter::once(cert_der.clone())
        .chain(chain.iter().cloned())
        .map(CertificateDer::from)
        .collect();
    let certified = CertifiedKey::new(presented, signing);
    Ok((
        info.identity(),
        Presented {
            certified: Arc::new(certified),
            serial: info.serial().to_vec(),
            not_after: info.not_after(),
            der: cert_der,
            chain,
        },
    ))
}

impl TlsIdentity {
    /// Binds a key to its certificate, checking the role may use TLS and the
    /// key matches.
    pub fn new(cert_der: Vec<u8>, key: &TlsKey) -> Result<Self, TlsError> {
        Self::with_chain(vec![cert_der], key)
    }

    /// Binds a key to the first of `certs`, which the rest follow in every
    /// handshake (its chain: the issuing CA's certificate).
    pub fn with_chain(certs: Vec<Vec<u8>>, key: &TlsKey) -> Result<Self, TlsError> {
        let (identity, presented) = present(certs, key)?;
        Ok(Self {
            identity,
            current: Arc::new(ArcSwap::from_pointee(presented)),
        })
    }

    /// Loads a certificate PEM file (the certificate, then its chain) and a
    /// key PEM file.
    pub fn from_files(cert: &std::path::Path, key: &std::path::Path) -> Result<Self, TlsError> {
        let certs = keys::read_certs(cert)?;
        let key = keys::read_tls_key(key)?;
        Self::with_chain(certs, &key)
    }

    /// Presents `cert_der` and `key` from the next handshake on, in every
    /// clone. The certificate must be of the same role and scope (a renewal,
    /// not another party's certificate), and the key must match it. Returns
    /// whether anything changed (false: the same certificate).
    pub fn replace(&self, cert_der: Vec<u8>, key: &TlsKey) -> Result<bool, TlsError> {
        self.replace_chain(vec![cert_der], key)
    }

    /// [`TlsIdentity::replace`] with the certificate's chain after it.
    pub fn replace_chain(&self, certs: Vec<Vec<u8>>, key: &TlsKey) -> Result<bool, TlsError> {
        let unchanged = {
            let now = self.current.load();
            certs.first() == Some(&now.der) && certs.get(1..) == Some(now.chain.as_slice())
        };
        if unchanged {
            return Ok(false);
        }
        let (identity, presented) = present(certs, key)?;
        if identity != self.identity {
            return Err(TlsError::IdentityChanged {
                held: self.identity.to_uri(),
                offered: identity.to_uri(),
            });
        }
        self.current.store(Arc::new(presented));
        Ok(true)
    }

    /// The role and scope of this identity.
    pub fn identity(&self) -> Identity {
        self.identity
    }

    /// When the certificate presented now expires, Unix seconds.
    pub fn not_after(&self) -> i64 {
        self.current.load().not_after
    }

    /// The serial of the certificate presented now, in hex.
    pub fn serial_hex(&self) -> String {
        tessera_core::cert::hex_string(&self.current.load().serial)
    }

    /// The DER of the certificate presented now.
    pub fn certificate_der(&self) -> Vec<u8> {
        self.current.load().der.clone()
    }

    /// The chain presented after the certificate (the issuing CA's
    /// certificate; empty for a certificate the root issued).
    pub fn chain_der(&self) -> Vec<Vec<u8>> {
        self.current.load().chain.clone()
    }

    fn resolver(&self) -> Arc<Resolver> {
        Arc::new(Resolver(Arc::clone(&self.current)))
    }
}

/// Hands rustls whatever certificate its [`TlsIdentity`] presents now, on
/// the server side and, for client authentication, on the client side.
#[derive(Debug)]
struct Resolver(Arc<ArcSwap<Presented>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0.load().certified))
    }
}

impl ResolvesClientCert for Resolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0.load().certified))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

fn other(msg: &str) -> Error {
    Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(
        std::io::Error::other(msg.to_owned()),
    ))))
}

/// Checks what rustls does not know about: the tessera role and revocation.
fn check_peer(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    trust: &TrustState,
    client: bool,
    expected: Option<Role>,
) -> Result<(), Error> {
    let info = CertInfo::parse(end_entity)
        .map_err(|e| other(&format!("not a tessera certificate: {e}")))?;
    let role = info.identity().role();
    let usage = if client {
        info.client_auth()
    } else {
        info.server_auth()
    };
    if !role.uses_tls() || !usage {
        return Err(Error::InvalidCertificate(CertificateError::InvalidPurpose));
    }
    if let Some(expected) = expected
        && expected != role
    {
        return Err(other(&format!("peer is a {role}, expected a {expected}")));
    }
    if trust.refuses_chain(&info, end_entity, intermediates) {
        return Err(Error::InvalidCertificate(CertificateError::Revoked));
    }
    Ok(())
}

#[derive(Debug)]
struct ClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    trust: Arc<TrustState>,
}

impl ClientCertVerifier for ClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        check_peer(end_entity, intermediates, &self.trust, true, None)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[derive(Debug)]
struct ServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    trust: Arc<TrustState>,
    expected: Role,
    city: Option<CityCode>,
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        check_peer(
            end_entity,
            intermediates,
            &self.trust,
            false,
            Some(self.expected),
        )?;
        if let Some(city) = self.city {
            let info = CertInfo::parse(end_entity).map_err(|e| other(&e.to_string()))?;
            if info.identity().city() != Some(city) {
                return Err(other(&format!(
                    "peer is {}, expected the node of {city}",
                    info.identity()
                )));
            }
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A server configuration that requires a client certificate chaining to the
/// root, of a TLS role, not revoked by the current trust list.
pub fn server_config(
    identity: &TlsIdentity,
    trust: Arc<TrustState>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::clone(&trust.roots), provider())
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let verifier = Arc::new(ClientVerifier { inner, trust });
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(identity.resolver());
    config.alpn_protocols = vec![b"h2".to_vec()];
    // Every connection is a full handshake with the client's current
    // certificate: no resumed session keeps an identity since renewed.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// A server configuration for the public, read-only face of a gateway
/// (docs/OPERATIONS.md, "The public copy"): the same certificate as
/// `identity` presents now (renewals included), **no client certificate
/// asked for**, HTTP/1.1 only. Never use it for an endpoint that reads the
/// caller's role: there is no caller certificate to read.
pub fn public_server_config(identity: &TlsIdentity) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(identity.resolver());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration that presents `identity` and accepts only a server
/// of role `expected` chaining to the root and not revoked.
pub fn client_config(
    identity: &TlsIdentity,
    trust: Arc<TrustState>,
    expected: Role,
) -> Result<Arc<ClientConfig>, TlsError> {
    build_client_config(identity, trust, expected, None)
}

/// A client configuration that accepts only the city node of `city`.
pub fn client_config_for_city(
    identity: &TlsIdentity,
    trust: Arc<TrustState>,
    city: CityCode,
) -> Result<Arc<ClientConfig>, TlsError> {
    build_client_config(identity, trust, Role::CityNode, Some(city))
}

fn build_client_config(
    identity: &TlsIdentity,
    trust: Arc<TrustState>,
    expected: Role,
    city: Option<CityCode>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::clone(&trust.roots), provider())
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let verifier = Arc::new(ServerVerifier {
        inner,
        trust,
        expected,
        city,
    });
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(identity.resolver());
    config.alpn_protocols = vec![b"h2".to_vec()];
    // No session resumption: a resumed session carries the certificate of
    // the session it resumes, so a client whose certificate was renewed
    // (and the old one revoked) would go on presenting the old one.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
