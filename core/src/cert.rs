//! Reading tessera certificates: the one place X.509 is parsed.
//!
//! Every tessera certificate carries an Ed25519 key, is issued directly by the
//! national root (itself self-signed), and names its role and scope in exactly
//! one `tessera:` SAN URI. This module reads those facts out of DER and checks
//! a certificate's signature against the root, with no I/O.

use ed25519_dalek::{Signature, VerifyingKey};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_SIG_ED25519, OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_EXTENDED_KEY_USAGE,
    OID_X509_EXT_KEY_USAGE, OID_X509_EXT_SUBJECT_ALT_NAME,
};
use x509_parser::prelude::FromDer;

use crate::identity::{Identity, IdentityError, Role, URI_PREFIX};
use crate::ids::KeyId;

/// Largest certificate accepted, in bytes of DER.
pub const MAX_CERTIFICATE_LEN: usize = 16 * 1024;

/// Longest validity accepted for the national root: 30 years. The authority
/// issues roots for 20.
pub const MAX_ROOT_VALIDITY_SECS: i64 = 30 * 366 * 86_400;

/// Longest validity accepted for any other certificate: 5 years. The
/// authority issues signers for 2 years and everything else for 1; a
/// certificate valid for longer is a broken or hostile issuer's.
pub const MAX_LEAF_VALIDITY_SECS: i64 = 5 * 366 * 86_400;

/// Why a certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// Larger than [`MAX_CERTIFICATE_LEN`].
    #[error("certificate of {0} bytes exceeds the limit of {MAX_CERTIFICATE_LEN}")]
    TooLarge(usize),
    /// Not DER X.509, or bytes trail it.
    #[error("not a DER X.509 certificate: {0}")]
    Malformed(String),
    /// The key or signature is not Ed25519.
    #[error("certificate key or signature is not Ed25519")]
    NotEd25519,
    /// No `tessera:` SAN URI.
    #[error("certificate names no tessera identity (SAN URI tessera:<scope>:<code>:<role>)")]
    NoIdentity,
    /// More than one `tessera:` SAN URI.
    #[error("certificate names more than one tessera identity")]
    SeveralIdentities,
    /// The `tessera:` SAN URI does not parse.
    #[error("certificate identity is invalid: {0}")]
    Identity(#[from] IdentityError),
    /// A critical extension this verifier does not understand.
    #[error("certificate has an unknown critical extension {0}")]
    UnknownCriticalExtension(String),
    /// CA flag set on a leaf, or missing on the root.
    #[error("certificate of role {role} has the wrong CA flag (is_ca = {is_ca})")]
    WrongCaFlag {
        /// The certificate's role.
        role: Role,
        /// Its CA flag.
        is_ca: bool,
    },
    /// Not issued by the given root (issuer name or signature).
    #[error("certificate was not issued by the national root")]
    NotIssuedByRoot,
    /// not_after is before not_before.
    #[error("certificate validity is empty (not_after before not_before)")]
    EmptyValidity,
    /// Valid for longer than its role allows.
    #[error("certificate of role {role} is valid for {days} days; at most {max_days} are accepted")]
    AbsurdValidity {
        /// The certificate's role.
        role: Role,
        /// Its validity in days.
        days: i64,
        /// The most accepted for the role.
        max_days: i64,
    },
}

/// The facts tessera reads from a certificate.
#[derive(Clone, PartialEq, Eq)]
pub struct CertInfo {
    identity: Identity,
    serial: Vec<u8>,
    not_before: i64,
    not_after: i64,
    public_key: VerifyingKey,
    key_id: KeyId,
    is_ca: bool,
    server_auth: bool,
    client_auth: bool,
    subject: Vec<u8>,
    issuer: Vec<u8>,
}

impl std::fmt::Debug for CertInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertInfo")
            .field("identity", &self.identity.to_uri())
            .field("serial", &hex_string(&self.serial))
            .field("key_id", &self.key_id)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish()
    }
}

/// Lower-case hex of some bytes.
pub fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl CertInfo {
    /// Reads a certificate without checking who issued it. Use this only for
    /// a peer certificate that TLS has already chained to the root; otherwise
    /// use [`CertInfo::parse_issued_by`].
    pub fn parse(der: &[u8]) -> Result<Self, CertError> {
        Ok(parse_inner(der)?.0)
    }

    /// Reads a certificate and checks that `root` issued it.
    pub fn parse_issued_by(der: &[u8], root: &TrustAnchor) -> Result<Self, CertError> {
        let (info, tbs, signature) = parse_inner(der)?;
        if info.issuer != root.cert.subject || info.is_ca {
            return Err(CertError::NotIssuedByRoot);
        }
        root.cert
            .public_key
            .verify_strict(&tbs, &signature)
            .map_err(|_| CertError::NotIssuedByRoot)?;
        Ok(info)
    }

    /// The role and scope.
    pub fn identity(&self) -> Identity {
        self.identity
    }
    /// The serial number's DER integer content bytes.
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }
    /// Start of validity, Unix seconds.
    pub fn not_before(&self) -> i64 {
        self.not_before
    }
    /// End of validity, Unix seconds.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }
    /// Whether `now` lies in the validity window.
    pub fn valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
    }
    /// The Ed25519 public key.
    pub fn public_key(&self) -> &VerifyingKey {
        &self.public_key
    }
    /// The key id (SHA-256 prefix of the DER).
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }
    /// Whether the certificate allows TLS server authentication.
    pub fn server_auth(&self) -> bool {
        self.server_auth
    }
    /// Whether the certificate allows TLS client authentication.
    pub fn client_auth(&self) -> bool {
        self.client_auth
    }
}

type Parsed = (CertInfo, Vec<u8>, Signature);

fn parse_inner(der: &[u8]) -> Result<Parsed, CertError> {
    if der.len() > MAX_CERTIFICATE_LEN {
        return Err(CertError::TooLarge(der.len()));
    }
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| CertError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CertError::Malformed(format!(
            "{} bytes trail the certificate",
            rest.len()
        )));
    }
    if cert.signature_algorithm.algorithm != OID_SIG_ED25519
        || cert.public_key().algorithm.algorithm != OID_SIG_ED25519
    {
        return Err(CertError::NotEd25519);
    }
    let key_bytes: [u8; 32] = cert
        .public_key()
        .subject_public_key
        .data
        .as_ref()
        .try_into()
        .map_err(|_| CertError::NotEd25519)?;
    let public_key = VerifyingKey::from_bytes(&key_bytes).map_err(|_| CertError::NotEd25519)?;
    let signature = Signature::from_slice(cert.signature_value.data.as_ref())
        .map_err(|_| CertError::NotEd25519)?;

    let mut identity = None;
    let (mut server_auth, mut client_auth) = (false, false);
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    if let GeneralName::URI(uri) = name
                        && uri.starts_with(URI_PREFIX)
                    {
                        if identity.is_some() {
                            return Err(CertError::SeveralIdentities);
                        }
                        identity = Some(uri.parse::<Identity>()?);
                    }
                }
            }
            ParsedExtension::ExtendedKeyUsage(eku) => {
                server_auth = eku.server_auth;
                client_auth = eku.client_auth;
            }
            _ => {}
        }
        let known = [
            OID_X509_EXT_BASIC_CONSTRAINTS,
            OID_X509_EXT_KEY_USAGE,
            OID_X509_EXT_SUBJECT_ALT_NAME,
            OID_X509_EXT_EXTENDED_KEY_USAGE,
        ];
        if ext.critical && !known.contains(&ext.oid) {
            return Err(CertError::UnknownCriticalExtension(ext.oid.to_id_string()));
        }
    }
    let identity = identity.ok_or(CertError::NoIdentity)?;
    let tbs = cert.tbs_certificate.as_ref();
    if der != canonical_der(tbs, &signature).as_slice() {
        // Only the TBS part is signed: the bytes around it must be exactly
        // the one DER encoding, or one certificate would have many key ids.
        return Err(CertError::Malformed(
            "non-canonical encoding outside the signed part".into(),
        ));
    }
    let is_ca = cert.is_ca();
    if is_ca != (identity.role() == Role::Root) {
        return Err(CertError::WrongCaFlag {
            role: identity.role(),
            is_ca,
        });
    }
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    if not_after < not_before {
        return Err(CertError::EmptyValidity);
    }
    let max = if identity.role() == Role::Root {
        MAX_ROOT_VALIDITY_SECS
    } else {
        MAX_LEAF_VALIDITY_SECS
    };
    if not_after.saturating_sub(not_before) > max {
        return Err(CertError::AbsurdValidity {
            role: identity.role(),
            days: not_after.saturating_sub(not_before) / 86_400,
            max_days: max / 86_400,
        });
    }
    let info = CertInfo {
        identity,
        serial: cert.raw_serial().to_vec(),
        not_before,
        not_after,
        public_key,
        key_id: KeyId::of_certificate(der),
        is_ca,
        server_auth,
        client_auth,
        subject: cert.subject().as_raw().to_vec(),
        issuer: cert.issuer().as_raw().to_vec(),
    };
    Ok((info, cert.tbs_certificate.as_ref().to_vec(), signature))
}

/// `AlgorithmIdentifier { id-Ed25519 }`, DER.
const ED25519_ALGORITHM: [u8; 7] = [0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];

fn der_header(tag: u8, len: usize, out: &mut Vec<u8>) {
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// The one DER encoding of a certificate with this TBS and Ed25519
/// signature.
fn canonical_der(tbs: &[u8], signature: &Signature) -> Vec<u8> {
    let body_len = tbs.len() + ED25519_ALGORITHM.len() + 3 + 64;
    let mut out = Vec::with_capacity(body_len + 6);
    der_header(0x30, body_len, &mut out);
    out.extend_from_slice(tbs);
    out.extend_from_slice(&ED25519_ALGORITHM);
    out.extend_from_slice(&[0x03, 0x41, 0x00]);
    out.extend_from_slice(&signature.to_bytes());
    out
}

/// The national root: the one certificate a verifier pins out of band.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustAnchor {
    cert: CertInfo,
    der: Vec<u8>,
}

impl TrustAnchor {
    /// Reads the root certificate and checks it is a self-signed tessera root.
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let (cert, tbs, signature) = parse_inner(der)?;
        if cert.identity.role() != Role::Root {
            return Err(CertError::WrongCaFlag {
                role: cert.identity.role(),
                is_ca: cert.is_ca,
            });
        }
        if cert.subject != cert.issuer || cert.public_key.verify_strict(&tbs, &signature).is_err() {
            return Err(CertError::NotIssuedByRoot);
        }
        Ok(Self {
            cert,
            der: der.to_vec(),
        })
    }

    /// The root's facts.
    pub fn info(&self) -> &CertInfo {
        &self.cert
    }

    /// The root's DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }
}
