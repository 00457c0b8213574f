//! Reading tessera certificates: the one place X.509 is parsed.
//!
//! Every tessera certificate is issued by the national root (itself
//! self-signed) or by an issuing CA that the root issued (PROTOCOL.md K3,
//! [`IssuingCa`]), and names its role and scope in exactly one `tessera:`
//! SAN URI. Which key it may carry depends on its role:
//!
//! | certificate | subject key | signed by |
//! | --- | --- | --- |
//! | root (self-signed, CA) | ECDSA P-256 | itself, ecdsa-with-SHA256 |
//! | issuing CA (CA, path length 0) | ECDSA P-256 | the root, ecdsa-with-SHA256 |
//! | gateway, city node, authority, operator, verifier (the TLS roles) | ECDSA P-256 | the root or an issuing CA, ecdsa-with-SHA256 |
//! | badge signer (never TLS) | Ed25519 | the root or an issuing CA, ecdsa-with-SHA256 |
//! | trust-list signer (never TLS) | Ed25519 | the root, ecdsa-with-SHA256 |
//!
//! TLS keys are P-256 because it is the one signature scheme every
//! mainstream TLS stack offers (BoringSSL offers no Ed25519); badges, trust
//! lists and policies stay Ed25519 for their size. A certificate with any
//! other combination is refused with [`CertError::KeyType`] or
//! [`CertError::SignatureAlgorithm`]. The certificate must be the one DER
//! encoding of what was signed, including the ECDSA-Sig-Value inside the
//! signature BIT STRING, so that one certificate has one key id.
//!
//! This module reads those facts out of DER and checks a certificate's
//! signature against the root or an issuing CA, with no I/O.

use ed25519_dalek::VerifyingKey;
use p256::ecdsa::signature::Verifier;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ED25519,
    OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_EXTENDED_KEY_USAGE, OID_X509_EXT_KEY_USAGE,
    OID_X509_EXT_SUBJECT_ALT_NAME,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;
use x509_parser::x509::X509Version;

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
#[non_exhaustive]
pub enum CertError {
    /// Larger than [`MAX_CERTIFICATE_LEN`].
    #[error("certificate of {0} bytes exceeds the limit of {MAX_CERTIFICATE_LEN}")]
    TooLarge(usize),
    /// Not DER X.509, or bytes trail it.
    #[error("not a DER X.509 certificate: {0}")]
    Malformed(String),
    /// The subject key is not the type the certificate's role must carry
    /// (see the table in the module docs).
    #[error("a {role} certificate must carry an {expected} key, not an {found} key")]
    KeyType {
        /// The certificate's role.
        role: Role,
        /// The key type found.
        found: KeyAlgorithm,
        /// The key type the role must carry.
        expected: KeyAlgorithm,
    },
    /// The subject key is of the right type but its bytes are not a valid
    /// key (e.g. a point not on the curve, or a compressed point).
    #[error("certificate subject key is not a valid {0} key")]
    BadKey(KeyAlgorithm),
    /// The certificate is not signed ecdsa-with-SHA256 (every tessera
    /// certificate is, by the root's P-256 key).
    #[error("certificate is signed with {0}; tessera certificates are signed ecdsa-with-SHA256")]
    SignatureAlgorithm(String),
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
    /// CA flag set on a leaf, or missing on the root or an issuing CA.
    #[error("certificate of role {role} has the wrong CA flag (is_ca = {is_ca})")]
    WrongCaFlag {
        /// The certificate's role.
        role: Role,
        /// Its CA flag.
        is_ca: bool,
    },
    /// Not issued by the given root, nor by one of the given issuing CAs
    /// (issuer name or signature).
    #[error(
        "certificate was not issued by the national root (directly or through a known issuing CA)"
    )]
    NotIssuedByRoot,
    /// An issuing-CA certificate that breaks its profile (K3): not a CA
    /// with path length 0, or without keyCertSign.
    #[error("issuing-CA certificate refused: {0}")]
    IssuingCaProfile(&'static str),
    /// The root has path length 0, so it cannot issue an issuing CA.
    #[error("the national root has path length 0 and cannot issue an issuing CA")]
    RootPathLen,
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

/// A key type tessera knows, as named in errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// Ed25519 (badge and trust-list signers).
    Ed25519,
    /// ECDSA on NIST P-256 (the root and every TLS role).
    EcdsaP256,
    /// Anything else, by its algorithm OID (and curve OID, if any).
    Other(String),
}

impl std::fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyAlgorithm::Ed25519 => f.write_str("Ed25519"),
            KeyAlgorithm::EcdsaP256 => f.write_str("ECDSA P-256"),
            KeyAlgorithm::Other(oid) => write!(f, "unsupported ({oid})"),
        }
    }
}

impl KeyAlgorithm {
    /// The key type a certificate of `role` must carry.
    pub fn for_role(role: Role) -> Self {
        match role {
            Role::TrustListSigner | Role::BadgeSigner => KeyAlgorithm::Ed25519,
            _ => KeyAlgorithm::EcdsaP256,
        }
    }
}

/// A certificate's subject key: Ed25519 for the signer roles, P-256 for
/// the root and the TLS roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// A badge or trust-list signer's key.
    Ed25519(VerifyingKey),
    /// The root's or a TLS role's key.
    EcdsaP256(p256::ecdsa::VerifyingKey),
}

impl PublicKey {
    /// The key's type.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            PublicKey::Ed25519(_) => KeyAlgorithm::Ed25519,
            PublicKey::EcdsaP256(_) => KeyAlgorithm::EcdsaP256,
        }
    }
}

/// The facts tessera reads from a certificate.
#[derive(Clone, PartialEq, Eq)]
pub struct CertInfo {
    identity: Identity,
    serial: Vec<u8>,
    not_before: i64,
    not_after: i64,
    public_key: PublicKey,
    key_id: KeyId,
    is_ca: bool,
    path_len: Option<u32>,
    key_cert_sign: bool,
    server_auth: bool,
    client_auth: bool,
    subject: Vec<u8>,
    issuer: Vec<u8>,
    hosts: Vec<String>,
    common_name: String,
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

    /// Reads a certificate that is not a CA and checks that `root` issued
    /// it directly (the trust-list signer must be; L3). For a certificate
    /// that may come through an issuing CA use
    /// [`CertInfo::parse_issued_within`] or [`CertInfo::parse_with_chain`].
    pub fn parse_issued_by(der: &[u8], root: &TrustAnchor) -> Result<Self, CertError> {
        let (info, tbs, signature) = parse_inner(der)?;
        if info.issuer != root.cert.subject || info.is_ca || !root.signed(&tbs, &signature) {
            return Err(CertError::NotIssuedByRoot);
        }
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
    /// The subject's common name (the display name given at enrolment,
    /// e.g. "Wuhan railway station"); empty when it has none. For people to
    /// read only: never decide anything on it.
    pub fn common_name(&self) -> &str {
        &self.common_name
    }
    /// The host names (DNS names, lower case) and IP addresses the
    /// certificate names in its subjectAltName, in order.
    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }
    /// Whether `now` lies in the validity window.
    pub fn valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
    }
    /// The subject key, typed.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }
    /// The Ed25519 key of a badge or trust-list signer; `None` for the
    /// root and the TLS roles, whose keys are P-256.
    pub fn ed25519_key(&self) -> Option<&VerifyingKey> {
        match &self.public_key {
            PublicKey::Ed25519(key) => Some(key),
            PublicKey::EcdsaP256(_) => None,
        }
    }
    /// The P-256 key of the root or a TLS role; `None` for the signers.
    pub fn p256_key(&self) -> Option<&p256::ecdsa::VerifyingKey> {
        match &self.public_key {
            PublicKey::EcdsaP256(key) => Some(key),
            PublicKey::Ed25519(_) => None,
        }
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
    /// Whether the certificate is a CA (the root or an issuing CA).
    pub fn is_ca(&self) -> bool {
        self.is_ca
    }
    /// The basic constraints' pathLenConstraint, if present.
    pub fn path_len(&self) -> Option<u32> {
        self.path_len
    }
    /// The issuer name, DER.
    pub fn issuer_name(&self) -> &[u8] {
        &self.issuer
    }
    /// The subject name, DER.
    pub fn subject_name(&self) -> &[u8] {
        &self.subject
    }
}

pub(crate) type Parsed = (CertInfo, Vec<u8>, p256::ecdsa::Signature);

/// The subject key, whatever its type; which type the role allows is
/// checked once the role is known.
fn read_key(spki: &SubjectPublicKeyInfo<'_>) -> Result<PublicKey, CertError> {
    let bytes = spki.subject_public_key.data.as_ref();
    let algorithm = &spki.algorithm;
    if algorithm.algorithm == OID_SIG_ED25519 && algorithm.parameters.is_none() {
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CertError::BadKey(KeyAlgorithm::Ed25519))?;
        return VerifyingKey::from_bytes(&key)
            .map(PublicKey::Ed25519)
            .map_err(|_| CertError::BadKey(KeyAlgorithm::Ed25519));
    }
    let curve = algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
    if algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY && curve.as_ref() == Some(&OID_EC_P256) {
        // Uncompressed points only, as WebPKI reads them.
        if bytes.len() != 65 || bytes[0] != 0x04 {
            return Err(CertError::BadKey(KeyAlgorithm::EcdsaP256));
        }
        return p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
            .map(PublicKey::EcdsaP256)
            .map_err(|_| CertError::BadKey(KeyAlgorithm::EcdsaP256));
    }
    let mut name = algorithm.algorithm.to_id_string();
    if let Some(curve) = curve {
        name = format!("{name} on curve {}", curve.to_id_string());
    }
    Err(CertError::KeyType {
        role: Role::Root,
        found: KeyAlgorithm::Other(name),
        expected: KeyAlgorithm::EcdsaP256,
    })
}

/// A signature algorithm's common name where it is a likely one, else its
/// OID.
fn algorithm_name(oid: &x509_parser::der_parser::oid::Oid<'_>) -> String {
    let name = match oid.to_id_string().as_str() {
        "1.3.101.112" => "Ed25519",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256 with parameters",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "RSASSA-PSS",
        other => return format!("algorithm {other}"),
    };
    name.into()
}

pub(crate) fn parse_inner(der: &[u8]) -> Result<Parsed, CertError> {
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
    for algorithm in [&cert.signature_algorithm, &cert.tbs_certificate.signature] {
        if algorithm.algorithm != OID_SIG_ECDSA_WITH_SHA256 || algorithm.parameters.is_some() {
            return Err(CertError::SignatureAlgorithm(algorithm_name(
                &algorithm.algorithm,
            )));
        }
    }
    if cert.version() != X509Version::V3 {
        return Err(CertError::Malformed("not an X.509 v3 certificate".into()));
    }
    strict_tbs(cert.tbs_certificate.as_ref()).map_err(CertError::Malformed)?;
    let signature_der = cert.signature_value.data.as_ref();
    let signature = p256::ecdsa::Signature::from_der(signature_der)
        .map_err(|_| CertError::Malformed("signature is not an ECDSA-Sig-Value".into()))?;
    if signature.to_der().as_bytes() != signature_der {
        // The signature is outside the signed part too: one encoding only.
        return Err(CertError::Malformed(
            "non-canonical DER in the ECDSA signature".into(),
        ));
    }
    let key = read_key(cert.public_key());

    let mut identity = None;
    let mut hosts = vec![];
    let (mut server_auth, mut client_auth) = (false, false);
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(dns) => hosts.push(dns.to_ascii_lowercase()),
                        GeneralName::IPAddress(ip) => {
                            if let Ok(v4) = <[u8; 4]>::try_from(*ip) {
                                hosts.push(std::net::Ipv4Addr::from(v4).to_string());
                            } else if let Ok(v6) = <[u8; 16]>::try_from(*ip) {
                                hosts.push(std::net::Ipv6Addr::from(v6).to_string());
                            }
                        }
                        _ => {}
                    }
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
    let role = identity.role();
    let expected = KeyAlgorithm::for_role(role);
    let public_key = match key {
        Ok(key) if key.algorithm() == expected => key,
        Ok(key) => {
            return Err(CertError::KeyType {
                role,
                found: key.algorithm(),
                expected,
            });
        }
        Err(CertError::KeyType { found, .. }) => {
            return Err(CertError::KeyType {
                role,
                found,
                expected,
            });
        }
        Err(other) => return Err(other),
    };
    let tbs = cert.tbs_certificate.as_ref();
    if der != canonical_der(tbs, &signature).as_slice() {
        // Only the TBS part is signed: the bytes around it must be exactly
        // the one DER encoding, or one certificate would have many key ids.
        return Err(CertError::Malformed(
            "non-canonical encoding outside the signed part".into(),
        ));
    }
    let is_ca = cert.is_ca();
    if is_ca != matches!(identity.role(), Role::Root | Role::IssuingCa) {
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
    let path_len = match cert.basic_constraints() {
        Ok(Some(constraints)) => constraints.value.path_len_constraint,
        _ => None,
    };
    let key_cert_sign = matches!(cert.key_usage(), Ok(Some(usage)) if usage.value.key_cert_sign());
    let info = CertInfo {
        identity,
        serial: cert.raw_serial().to_vec(),
        not_before,
        not_after,
        public_key,
        key_id: KeyId::of_certificate(der),
        is_ca,
        path_len,
        key_cert_sign,
        server_auth,
        client_auth,
        subject: cert.subject().as_raw().to_vec(),
        issuer: cert.issuer().as_raw().to_vec(),
        hosts,
        common_name: cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_owned(),
    };
    Ok((info, cert.tbs_certificate.as_ref().to_vec(), signature))
}

/// One DER value: identifier octet and contents, read strictly (K1).
struct Tlv<'a> {
    tag: u8,
    body: &'a [u8],
}

/// Reads the DER values that fill `bytes`: low tag numbers, definite
/// lengths in the fewest octets, each value inside its parent.
fn der_values(mut bytes: &[u8]) -> Result<Vec<Tlv<'_>>, String> {
    let mut out = vec![];
    while let [tag, first, rest @ ..] = bytes {
        if tag & 0x1f == 0x1f {
            return Err("a high tag number".into());
        }
        let (len, rest) = match *first {
            n if n < 0x80 => (usize::from(n), rest),
            0x80 => return Err("an indefinite length".into()),
            n => {
                let k = usize::from(n & 0x7f);
                if k > 4 || rest.len() < k {
                    return Err("a truncated or oversized length".into());
                }
                let len = rest[..k]
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
                if rest[0] == 0 || len < 0x80 {
                    return Err("a length in more octets than DER allows".into());
                }
                (len, &rest[k..])
            }
        };
        if rest.len() < len {
            return Err("a value longer than its parent".into());
        }
        out.push(Tlv {
            tag: *tag,
            body: &rest[..len],
        });
        bytes = &rest[len..];
    }
    if !bytes.is_empty() {
        return Err("a truncated header".into());
    }
    Ok(out)
}

/// Every constructed value beneath these, read strictly; a BOOLEAN is one
/// octet, 00 or FF.
fn der_tree(values: &[Tlv<'_>], depth: usize) -> Result<(), String> {
    if depth > 32 {
        return Err("values nested too deeply".into());
    }
    for value in values {
        if value.tag & 0x20 != 0 {
            der_tree(&der_values(value.body)?, depth + 1)?;
        } else if value.tag == 0x01 && !matches!(value.body, [0x00] | [0xff]) {
            return Err("a BOOLEAN that is not 00 or FF".into());
        }
    }
    Ok(())
}

/// K1 inside the signed part, where x509-parser is lenient: the whole
/// TBSCertificate, and the values of its basic constraints and subject
/// alternative name, are DER; no extension encodes `critical FALSE` or
/// basic constraints `cA FALSE` (DER omits a DEFAULT); no extension
/// appears twice.
fn strict_tbs(tbs: &[u8]) -> Result<(), String> {
    let outer = der_values(tbs)?;
    der_tree(&outer, 0)?;
    let [Tlv { body: fields, .. }] = outer.as_slice() else {
        return Err("bytes trail the TBSCertificate".into());
    };
    let Some(wrapped) = der_values(fields)?.into_iter().find(|f| f.tag == 0xa3) else {
        return Ok(());
    };
    let mut seen: Vec<&[u8]> = vec![];
    for list in der_values(wrapped.body)? {
        for extension in der_values(list.body)? {
            let parts = der_values(extension.body)?;
            let (Some(id), Some(value)) = (parts.first(), parts.last()) else {
                return Err("an empty extension".into());
            };
            if seen.contains(&id.body) {
                return Err("an extension appears twice".into());
            }
            seen.push(id.body);
            if parts.len() == 3 && parts[1].tag == 0x01 && parts[1].body == [0x00] {
                return Err("an extension encodes critical FALSE, a DEFAULT DER omits".into());
            }
            // basicConstraints 2.5.29.19, subjectAltName 2.5.29.17.
            if id.body == [0x55, 0x1d, 0x13] || id.body == [0x55, 0x1d, 0x11] {
                let inner = der_values(value.body)?;
                der_tree(&inner, 0)?;
                if id.body == [0x55, 0x1d, 0x13]
                    && let Some(constraints) = inner.first()
                    && let Some(first) = der_values(constraints.body)?.first()
                    && first.tag == 0x01
                    && first.body == [0x00]
                {
                    return Err("basic constraints encode cA FALSE, a DEFAULT DER omits".into());
                }
            }
        }
    }
    Ok(())
}

/// `AlgorithmIdentifier { ecdsa-with-SHA256 }` (parameters absent), DER.
const ECDSA_SHA256_ALGORITHM: [u8; 12] = [
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];

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

/// The one DER encoding of a certificate with this TBS and ECDSA
/// signature (itself in its one DER encoding).
fn canonical_der(tbs: &[u8], signature: &p256::ecdsa::Signature) -> Vec<u8> {
    let signature = signature.to_der();
    let signature = signature.as_bytes();
    let mut bit_string = Vec::with_capacity(signature.len() + 4);
    der_header(0x03, signature.len() + 1, &mut bit_string);
    bit_string.push(0x00);
    bit_string.extend_from_slice(signature);
    let body_len = tbs.len() + ECDSA_SHA256_ALGORITHM.len() + bit_string.len();
    let mut out = Vec::with_capacity(body_len + 6);
    der_header(0x30, body_len, &mut out);
    out.extend_from_slice(tbs);
    out.extend_from_slice(&ECDSA_SHA256_ALGORITHM);
    out.extend_from_slice(&bit_string);
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
        let anchor = Self {
            cert,
            der: der.to_vec(),
        };
        if anchor.cert.subject != anchor.cert.issuer || !anchor.signed(&tbs, &signature) {
            return Err(CertError::NotIssuedByRoot);
        }
        Ok(anchor)
    }

    /// Whether the root's key signed `tbs` (ECDSA P-256 with SHA-256).
    fn signed(&self, tbs: &[u8], signature: &p256::ecdsa::Signature) -> bool {
        signed_by(&self.cert, tbs, signature)
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

/// Whether `issuer`'s P-256 key signed `tbs` (ECDSA with SHA-256).
fn signed_by(issuer: &CertInfo, tbs: &[u8], signature: &p256::ecdsa::Signature) -> bool {
    issuer
        .p256_key()
        .is_some_and(|key| key.verify(tbs, signature).is_ok())
}

#[path = "cert_chain.rs"]
mod chain;
pub use chain::{IssuedBy, IssuingCa};

#[cfg(test)]
#[path = "cert_tests.rs"]
mod tests;
