//! Certificate profiles: what each role's certificate says and allows.
//!
//! | role | CA | key usage | extended key usage | SAN |
//! | --- | --- | --- | --- | --- |
//! | root | yes, path length 1 (0 in roots made before issuing CAs) | certSign, cRLSign, digitalSignature | none | identity URI |
//! | issuing CA | yes, path length 0 | certSign, cRLSign | none | identity URI |
//! | trust-list signer, badge signer | no | digitalSignature | none (never TLS) | identity URI |
//! | gateway, city node | no | digitalSignature | serverAuth, clientAuth | identity URI, endpoint host |
//! | authority, operator, verifier | no | digitalSignature | clientAuth | identity URI |
//!
//! | role | key |
//! | --- | --- |
//! | root, issuing CA and every TLS role | ECDSA P-256 ([`TlsKey`]) |
//! | trust-list signer, badge signer | Ed25519 ([`SigningKey`]) |
//!
//! The root ([`RootCa`]) issues the issuing CA and the trust-list signer;
//! the issuing CA ([`IssuingCa`]) issues every other certificate. Every
//! certificate is signed ecdsa-with-SHA256, deterministically (RFC 6979)
//! when the signing key is a file's: the same request, serial and keys give
//! the same bytes. A CA key in a PKCS#11 token ([`CaKey::Token`]) picks its
//! own nonce.

use std::net::IpAddr;

use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose, SanType, SerialNumber,
};
use tessera_core::cert::KeyAlgorithm;
use tessera_core::{Identity, Role};
use time::OffsetDateTime;

use crate::ca_key::CaKey;
use crate::keys::{KeyError, SigningKey, TlsKey};

/// Organisation written in every subject.
pub const ORGANISATION: &str = "tessera";

/// Why a certificate could not be issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// rcgen refused the parameters.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// The CA key in a token did not sign (what the token answered).
    #[error("the CA key did not sign the certificate: {0}")]
    Signing(String),
    /// Key conversion failed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A time outside the range X.509 can carry.
    #[error("validity time {0} is out of range")]
    Time(i64),
    /// not_after is not after not_before.
    #[error("validity window is empty")]
    EmptyValidity,
    /// A host name that cannot go in a certificate.
    #[error("{0:?} is not a valid DNS name or IP address")]
    BadHost(String),
    /// A root profile for a non-root identity, or the reverse.
    #[error("role {0} cannot be issued by this call")]
    WrongRole(Role),
    /// The subject key is not the type the role carries.
    #[error("a {role} certificate carries an {expected} key, not an {found} key")]
    KeyType {
        /// The role asked for.
        role: Role,
        /// The key type given.
        found: KeyAlgorithm,
        /// The key type the role carries.
        expected: KeyAlgorithm,
    },
}

/// The public key a certificate is issued for: P-256 for a TLS role,
/// Ed25519 for a signer.
#[derive(Debug, Clone)]
pub enum SubjectKey {
    /// A TLS role's key, as an uncompressed SEC1 point.
    EcdsaP256(Vec<u8>),
    /// A signer's key.
    Ed25519([u8; 32]),
}

impl SubjectKey {
    /// The key's type.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            SubjectKey::EcdsaP256(_) => KeyAlgorithm::EcdsaP256,
            SubjectKey::Ed25519(_) => KeyAlgorithm::Ed25519,
        }
    }
}

impl From<&TlsKey> for SubjectKey {
    fn from(key: &TlsKey) -> Self {
        SubjectKey::EcdsaP256(rcgen::PublicKeyData::der_bytes(key).to_vec())
    }
}

impl From<&SigningKey> for SubjectKey {
    fn from(key: &SigningKey) -> Self {
        SubjectKey::Ed25519(key.verifying_key().to_bytes())
    }
}

impl From<&crate::keys::RoleKey> for SubjectKey {
    fn from(key: &crate::keys::RoleKey) -> Self {
        match key {
            crate::keys::RoleKey::Tls(key) => key.into(),
            crate::keys::RoleKey::Signer(key) => key.into(),
        }
    }
}

impl rcgen::PublicKeyData for SubjectKey {
    fn der_bytes(&self) -> &[u8] {
        match self {
            SubjectKey::EcdsaP256(point) => point,
            SubjectKey::Ed25519(key) => key,
        }
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            SubjectKey::EcdsaP256(_) => &rcgen::PKCS_ECDSA_P256_SHA256,
            SubjectKey::Ed25519(_) => &rcgen::PKCS_ED25519,
        }
    }
}

/// What to put in a certificate.
#[derive(Debug, Clone)]
pub struct CertRequest {
    /// Role and scope (written as the SAN URI).
    pub identity: Identity,
    /// Subject common name, e.g. "Hangzhou city node".
    pub common_name: String,
    /// Host names or IP addresses a TLS server answers on.
    pub hosts: Vec<String>,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// Serial number bytes; random when `None`.
    pub serial: Option<Vec<u8>>,
}

/// A random positive serial of 16 bytes with no leading zero byte.
pub fn random_serial() -> Vec<u8> {
    let mut serial = vec![0u8; 16];
    rand::thread_rng().fill_bytes(&mut serial);
    serial[0] = 0x40 | (serial[0] & 0x3f);
    serial
}

fn to_time(secs: i64) -> Result<OffsetDateTime, IssueError> {
    OffsetDateTime::from_unix_timestamp(secs).map_err(|_| IssueError::Time(secs))
}

fn params(req: &CertRequest) -> Result<CertificateParams, IssueError> {
    if req.not_after <= req.not_before {
        return Err(IssueError::EmptyValidity);
    }
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANISATION);
    dn.push(DnType::CommonName, req.common_name.clone());
    params.distinguished_name = dn;
    params.not_before = to_time(req.not_before)?;
    params.not_after = to_time(req.not_after)?;
    params.serial_number = Some(SerialNumber::from_slice(
        &req.serial.clone().unwrap_or_else(random_serial),
    ));
    let uri = req.identity.to_uri();
    params.subject_alt_names = vec![SanType::URI(uri.as_str().try_into()?)];
    let role = req.identity.role();
    if matches!(role, Role::Gateway | Role::CityNode) {
        for host in &req.hosts {
            let san = match host.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    host.as_str()
                        .try_into()
                        .map_err(|_| IssueError::BadHost(host.clone()))?,
                ),
            };
            params.subject_alt_names.push(san);
        }
    }
    params.use_authority_key_identifier_extension = role != Role::Root;
    match role {
        Role::Root => {
            // Path length 0 here; RootCa::create_with_path_len sets 1 for
            // a root that issues an issuing CA.
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
        }
        Role::IssuingCa => {
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        }
        Role::TrustListSigner | Role::BadgeSigner => {
            params.is_ca = IsCa::ExplicitNoCa;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        }
        Role::Gateway | Role::CityNode => {
            params.is_ca = IsCa::ExplicitNoCa;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
        }
        Role::Authority | Role::Operator | Role::Verifier => {
            params.is_ca = IsCa::ExplicitNoCa;
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
    }
    Ok(params)
}

/// The national root: its key (a file's or a token's, [`CaKey`]) and
/// certificate, able to issue every other certificate.
pub struct RootCa {
    key: CaKey,
    der: Vec<u8>,
}

impl std::fmt::Debug for RootCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootCa")
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl RootCa {
    /// Creates a self-signed root for `req` (whose identity must be the
    /// root's) with path length 0: it can issue leaves only, as roots did
    /// before issuing CAs (the fixed test vectors are made this way). The
    /// authority makes its roots with [`RootCa::create_with_path_len`] 1.
    pub fn create(req: &CertRequest, key: impl Into<CaKey>) -> Result<Self, IssueError> {
        Self::create_with_path_len(req, key, 0)
    }

    /// Creates a self-signed root with this pathLenConstraint: 1 for a
    /// root that issues an issuing CA.
    pub fn create_with_path_len(
        req: &CertRequest,
        key: impl Into<CaKey>,
        path_len: u8,
    ) -> Result<Self, IssueError> {
        if req.identity.role() != Role::Root {
            return Err(IssueError::WrongRole(req.identity.role()));
        }
        let key = key.into();
        let mut params = params(req)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
        let cert = params.self_signed(&key).map_err(|e| key.explain(e))?;
        Ok(Self {
            key,
            der: cert.der().to_vec(),
        })
    }

    /// Loads a root from its key and certificate.
    pub fn from_parts(key: impl Into<CaKey>, der: Vec<u8>) -> Self {
        Self {
            key: key.into(),
            der,
        }
    }

    /// The root certificate DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The root's private key.
    pub fn key(&self) -> &CaKey {
        &self.key
    }

    /// Issues a leaf certificate for `subject_key`: a [`TlsKey`] for a TLS
    /// role, a signer's [`SigningKey`] for a badge or trust-list signer.
    pub fn issue(
        &self,
        req: &CertRequest,
        subject_key: impl Into<SubjectKey>,
    ) -> Result<Vec<u8>, IssueError> {
        let role = req.identity.role();
        if role == Role::Root {
            return Err(IssueError::WrongRole(Role::Root));
        }
        let subject = subject_key.into();
        let expected = KeyAlgorithm::for_role(role);
        if subject.algorithm() != expected {
            return Err(IssueError::KeyType {
                role,
                found: subject.algorithm(),
                expected,
            });
        }
        let issuer = Issuer::from_ca_cert_der(&self.der.as_slice().into(), &self.key)?;
        let cert = params(req)?
            .signed_by(&subject, &issuer)
            .map_err(|e| self.key.explain(e))?;
        Ok(cert.der().to_vec())
    }
}

/// The online issuing CA: its key and certificate, able to issue every
/// certificate but the root's, an issuing CA's and the trust-list signer's
/// (those come from the root).
pub struct IssuingCa {
    key: CaKey,
    der: Vec<u8>,
}

impl std::fmt::Debug for IssuingCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuingCa")
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl IssuingCa {
    /// Loads an issuing CA from its key and certificate.
    pub fn from_parts(key: impl Into<CaKey>, der: Vec<u8>) -> Self {
        Self {
            key: key.into(),
            der,
        }
    }

    /// The issuing CA's certificate DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Issues a leaf certificate for `subject_key`, as [`RootCa::issue`]
    /// does, for any role but the root, an issuing CA and the trust-list
    /// signer.
    pub fn issue(
        &self,
        req: &CertRequest,
        subject_key: impl Into<SubjectKey>,
    ) -> Result<Vec<u8>, IssueError> {
        let role = req.identity.role();
        if matches!(role, Role::Root | Role::IssuingCa | Role::TrustListSigner) {
            return Err(IssueError::WrongRole(role));
        }
        let subject = subject_key.into();
        let expected = KeyAlgorithm::for_role(role);
        if subject.algorithm() != expected {
            return Err(IssueError::KeyType {
                role,
                found: subject.algorithm(),
                expected,
            });
        }
        let issuer = Issuer::from_ca_cert_der(&self.der.as_slice().into(), &self.key)?;
        let cert = params(req)?
            .signed_by(&subject, &issuer)
            .map_err(|e| self.key.explain(e))?;
        Ok(cert.der().to_vec())
    }
}
