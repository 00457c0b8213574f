//! The conformance suite's PKI: every certificate the vectors use, from
//! fixed keys, serials and times, built in this one place.
//!
//! Kept small on purpose: when the certificate profiles change (for example
//! the root and TLS roles moving to ECDSA P-256), only this file follows.

use ed25519_dalek::SigningKey;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyUsagePurpose,
    PublicKeyData, SanType, SerialNumber,
};
use tessera_certs::keys::TlsKey;
use tessera_certs::profile::{CertRequest, RootCa, SubjectKey};
use tessera_core::cert::KeyAlgorithm;
use tessera_core::{CityCode, Identity, ProvinceCode, Role, Scope};

use super::{CERT_NOT_AFTER, CERT_NOT_BEFORE, DAY, NOW};
use crate::Issued;

/// A certificate whose subject key is given as raw bytes (a key no one holds
/// or a hostile encoding), with the scalar that signs for it when known.
pub struct RawKeyCert {
    /// The 32 bytes in the certificate's SubjectPublicKeyInfo.
    pub public_key: [u8; 32],
    /// The certificate DER.
    pub der: Vec<u8>,
}

/// Every certificate of the suite.
pub struct Pki {
    /// The national root.
    pub root: RootCa,
    /// A root of another federation.
    pub foreign_root: RootCa,
    /// The trust-list signer of every accepted list.
    pub list_signer: Issued,
    /// A second trust-list signer (rotation).
    pub list_signer_2: Issued,
    /// A trust-list signer whose certificate expired before `NOW`.
    pub list_signer_expired: Issued,
    /// A trust-list signer issued by the foreign root.
    pub list_signer_foreign: Issued,
    /// The gateway.
    pub gateway: Issued,
    /// Hangzhou's node.
    pub node_hz: Issued,
    /// Hangzhou's badge signer.
    pub signer_hz: Issued,
    /// Wuhan's badge signer.
    pub signer_wh: Issued,
    /// Guangzhou's badge signer, listed REVOKED.
    pub signer_gz: Issued,
    /// A Hangzhou badge signer that no list names.
    pub signer_unlisted: Issued,
    /// A Wuhan verifier (a role never listed).
    pub verifier_wh: Issued,
    /// A Hangzhou badge signer issued by the foreign root.
    pub signer_foreign: Issued,
}

/// The fixed Ed25519 key of seed `seed`.
pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// The fixed P-256 key of seed `seed` (the scalar `seed` repeated, far
/// below the group order).
pub fn tls_key(seed: u8) -> TlsKey {
    TlsKey::from_bytes(&[seed; 32]).expect("conformance P-256 key")
}

/// The identity of `role` in `scope`.
pub fn identity(role: Role, scope: Scope) -> Identity {
    Identity::new(role, scope).expect("conformance identity")
}

/// Hangzhou, Wuhan and Guangzhou.
pub fn city(code: u32) -> CityCode {
    CityCode::new(code).expect("conformance city code")
}

/// How a CA certificate built here reads: its basic constraints and key
/// usages (the issuing-CA vectors need some that no profile makes).
pub struct CaShape {
    /// Basic constraints.
    pub is_ca: IsCa,
    /// Key usages.
    pub key_usages: Vec<KeyUsagePurpose>,
}

impl CaShape {
    /// The root's: a CA of path length `path_len`, certSign, cRLSign and
    /// digitalSignature.
    pub fn root(path_len: u8) -> Self {
        Self {
            is_ca: IsCa::Ca(BasicConstraints::Constrained(path_len)),
            key_usages: vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ],
        }
    }

    /// An issuing CA's, as PROTOCOL.md K3a wants it: path length 0,
    /// certSign and cRLSign.
    pub fn issuing_ca() -> Self {
        Self {
            is_ca: IsCa::Ca(BasicConstraints::Constrained(0)),
            key_usages: vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
        }
    }
}

/// A P-256 CA certificate for the key of `seed` (serial `0x40 seed`),
/// self-signed when `issuer` is `None`, built here rather than by the
/// authority's profile so that the suite's bytes stay fixed whatever roots
/// the profile makes next.
pub fn ca_cert(
    issuer: Option<&RootCa>,
    seed: u8,
    role: Role,
    name: &str,
    window: (i64, i64),
    shape: CaShape,
) -> Vec<u8> {
    let identity = identity(role, Scope::Nation);
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "tessera");
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.not_before = time::OffsetDateTime::from_unix_timestamp(window.0).expect("time");
    params.not_after = time::OffsetDateTime::from_unix_timestamp(window.1).expect("time");
    params.serial_number = Some(SerialNumber::from_slice(&[0x40, seed]));
    params.subject_alt_names = vec![SanType::URI(
        identity.to_uri().as_str().try_into().expect("uri"),
    )];
    params.is_ca = shape.is_ca;
    params.key_usages = shape.key_usages;
    let key = tls_key(seed);
    let cert = match issuer {
        None => params.self_signed(&key),
        Some(issuer) => {
            params.use_authority_key_identifier_extension = true;
            let issuer = Issuer::from_ca_cert_der(&issuer.der().into(), issuer.key())
                .expect("conformance issuer");
            params.signed_by(&key, &issuer)
        }
    };
    cert.expect("conformance CA certificate").der().to_vec()
}

/// A national root of path length `path_len` for the key of `seed`.
pub fn root_with_path_len(seed: u8, name: &str, path_len: u8) -> RootCa {
    let window = (NOW - 365 * DAY, NOW + 3650 * DAY);
    let der = ca_cert(
        None,
        seed,
        Role::Root,
        name,
        window,
        CaShape::root(path_len),
    );
    RootCa::from_parts(tls_key(seed), der)
}

fn root(seed: u8, name: &str) -> RootCa {
    root_with_path_len(seed, name, 0)
}

/// A certificate from `root` for the key of `seed` (P-256 for a TLS role,
/// Ed25519 for a signer), serial `0x40 seed`.
pub fn issue(root: &RootCa, seed: u8, identity: Identity, window: (i64, i64)) -> Issued {
    issue_named(root, seed, identity, &identity.to_uri(), window)
}

/// As [`issue`], with the subject's common name given: `root` may be an
/// issuing CA (its key and certificate wrapped as a [`RootCa`]).
pub fn issue_named(
    root: &RootCa,
    seed: u8,
    identity: Identity,
    common_name: &str,
    window: (i64, i64),
) -> Issued {
    let (key, tls_key) = (key(seed), tls_key(seed));
    let subject: SubjectKey = if KeyAlgorithm::for_role(identity.role()) == KeyAlgorithm::Ed25519 {
        (&key).into()
    } else {
        (&tls_key).into()
    };
    let hosts = match identity.role() {
        Role::Gateway | Role::CityNode => vec!["conformance.example".to_owned()],
        _ => vec![],
    };
    let der = root
        .issue(
            &CertRequest {
                identity,
                common_name: common_name.to_owned(),
                hosts,
                not_before: window.0,
                not_after: window.1,
                serial: Some(vec![0x40, seed]),
            },
            subject,
        )
        .expect("conformance certificate");
    Issued { key, tls_key, der }
}

struct RawEd25519([u8; 32]);

impl PublicKeyData for RawEd25519 {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ED25519
    }
}

/// A Hangzhou badge-signer certificate from the national root for a raw
/// Ed25519 public key (serial `0x41 serial`): the hostile-key vectors.
pub fn issue_raw_badge_signer(root: &RootCa, serial: u8, public_key: [u8; 32]) -> RawKeyCert {
    let identity = identity(Role::BadgeSigner, Scope::City(city(330_100)));
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "tessera");
    dn.push(DnType::CommonName, identity.to_uri());
    params.distinguished_name = dn;
    params.not_before =
        time::OffsetDateTime::from_unix_timestamp(CERT_NOT_BEFORE).expect("conformance time");
    params.not_after =
        time::OffsetDateTime::from_unix_timestamp(CERT_NOT_AFTER).expect("conformance time");
    params.serial_number = Some(SerialNumber::from_slice(&[0x41, serial]));
    params.subject_alt_names = vec![SanType::URI(
        identity.to_uri().as_str().try_into().expect("uri"),
    )];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    let issuer = Issuer::from_ca_cert_der(&root.der().into(), root.key()).expect("root issuer");
    let cert = params
        .signed_by(&RawEd25519(public_key), &issuer)
        .expect("raw-key certificate");
    RawKeyCert {
        public_key,
        der: cert.der().to_vec(),
    }
}

/// Builds the suite's PKI.
pub fn build() -> Pki {
    let root = root(1, "Conformance national root");
    let foreign_root = root_foreign();
    let window = (CERT_NOT_BEFORE, CERT_NOT_AFTER);
    let nation = Scope::Nation;
    let hz = Scope::City(city(330_100));
    Pki {
        list_signer: issue(&root, 2, identity(Role::TrustListSigner, nation), window),
        list_signer_2: issue(&root, 12, identity(Role::TrustListSigner, nation), window),
        list_signer_expired: issue(
            &root,
            13,
            identity(Role::TrustListSigner, nation),
            (NOW - 400 * DAY, NOW - DAY),
        ),
        list_signer_foreign: issue(
            &foreign_root,
            14,
            identity(Role::TrustListSigner, nation),
            window,
        ),
        gateway: issue(&root, 3, identity(Role::Gateway, nation), window),
        node_hz: issue(&root, 4, identity(Role::CityNode, hz), window),
        signer_hz: issue(&root, 5, identity(Role::BadgeSigner, hz), window),
        signer_wh: issue(
            &root,
            6,
            identity(Role::BadgeSigner, Scope::City(city(420_100))),
            window,
        ),
        signer_gz: issue(
            &root,
            7,
            identity(Role::BadgeSigner, Scope::City(city(440_100))),
            window,
        ),
        signer_unlisted: issue(&root, 9, identity(Role::BadgeSigner, hz), window),
        verifier_wh: issue(
            &root,
            10,
            identity(
                Role::Verifier,
                Scope::Province(ProvinceCode::new(420_000).expect("province")),
            ),
            window,
        ),
        signer_foreign: issue(&foreign_root, 15, identity(Role::BadgeSigner, hz), window),
        root,
        foreign_root,
    }
}

fn root_foreign() -> RootCa {
    root(11, "Another federation's root")
}
