//! Which certificates cert.rs refuses, built at run time with rcgen: every
//! combination of key and signature the key table in the module docs rules
//! out.

use super::*;
use crate::identity::{Scope, ScopeKind};
use crate::ids::{CityCode, ProvinceCode};
use crate::test_pki::{DAY, NOW, TestPki};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    PKCS_ECDSA_P384_SHA384, PKCS_ED25519, SanType, SerialNumber,
};

const CITY: u32 = 330_100;

fn identity(role: Role) -> Identity {
    let scope = match role.scope_kind() {
        ScopeKind::Nation => Scope::Nation,
        ScopeKind::City => Scope::City(CityCode::new(CITY).unwrap()),
        ScopeKind::Province => Scope::Province(ProvinceCode::new(330_000).unwrap()),
    };
    Identity::new(role, scope).unwrap()
}

fn params(role: Role) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "tessera");
    dn.push(DnType::CommonName, format!("{role}"));
    params.distinguished_name = dn;
    params.not_before = time::OffsetDateTime::from_unix_timestamp(NOW - DAY).unwrap();
    params.not_after = time::OffsetDateTime::from_unix_timestamp(NOW + DAY).unwrap();
    params.serial_number = Some(SerialNumber::from_slice(&[0x42, 1, 2, 3]));
    let uri = identity(role).to_uri();
    params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
    params.is_ca = if role == Role::Root {
        IsCa::Ca(BasicConstraints::Constrained(0))
    } else {
        IsCa::ExplicitNoCa
    };
    params
}

fn p256_pair() -> KeyPair {
    use p256::pkcs8::EncodePrivateKey as _;
    let key = crate::test_pki::tls_key();
    KeyPair::try_from(key.to_pkcs8_der().unwrap().as_bytes()).unwrap()
}

fn ed25519_pair() -> KeyPair {
    KeyPair::generate_for(&PKCS_ED25519).unwrap()
}

/// A root signed by `root_key` and a leaf of `role` carrying `leaf_key`.
fn issue(root_key: KeyPair, role: Role, leaf_key: &KeyPair) -> (Vec<u8>, Vec<u8>) {
    let root_params = params(Role::Root);
    let root = root_params.self_signed(&root_key).unwrap().der().to_vec();
    let issuer = Issuer::new(root_params, root_key);
    let leaf = params(role)
        .signed_by(leaf_key, &issuer)
        .unwrap()
        .der()
        .to_vec();
    (root, leaf)
}

#[test]
fn the_key_table_is_what_is_accepted() {
    let (root, node) = issue(p256_pair(), Role::CityNode, &p256_pair());
    let anchor = TrustAnchor::from_der(&root).unwrap();
    assert!(anchor.info().p256_key().is_some());
    assert!(anchor.info().ed25519_key().is_none());
    let node = CertInfo::parse_issued_by(&node, &anchor).unwrap();
    assert_eq!(node.public_key().algorithm(), KeyAlgorithm::EcdsaP256);
    let (_, signer) = issue(p256_pair(), Role::BadgeSigner, &ed25519_pair());
    let signer = CertInfo::parse(&signer).unwrap();
    assert!(signer.ed25519_key().is_some() && signer.p256_key().is_none());
}

#[test]
fn an_ed25519_key_on_every_tls_role_is_refused() {
    for role in [
        Role::Gateway,
        Role::CityNode,
        Role::Authority,
        Role::Operator,
        Role::Verifier,
    ] {
        let (_, leaf) = issue(p256_pair(), role, &ed25519_pair());
        assert_eq!(
            CertInfo::parse(&leaf).unwrap_err(),
            CertError::KeyType {
                role,
                found: KeyAlgorithm::Ed25519,
                expected: KeyAlgorithm::EcdsaP256
            }
        );
    }
}

#[test]
fn a_p256_key_on_a_signer_is_refused() {
    for role in [Role::BadgeSigner, Role::TrustListSigner] {
        let (_, leaf) = issue(p256_pair(), role, &p256_pair());
        let err = CertInfo::parse(&leaf).unwrap_err();
        assert_eq!(
            err,
            CertError::KeyType {
                role,
                found: KeyAlgorithm::EcdsaP256,
                expected: KeyAlgorithm::Ed25519
            }
        );
        assert!(
            err.to_string().contains("must carry an Ed25519 key"),
            "{err}"
        );
    }
}

#[test]
fn an_ed25519_root_is_refused_however_it_is_signed() {
    // Self-signed, as every root made before TLS keys moved to P-256.
    let root = params(Role::Root).self_signed(&ed25519_pair()).unwrap();
    let err = TrustAnchor::from_der(root.der()).unwrap_err();
    assert_eq!(err, CertError::SignatureAlgorithm("Ed25519".into()));
    assert!(err.to_string().contains("signed with Ed25519"), "{err}");
    // Or an Ed25519 key in a root signed ecdsa-with-SHA256 by another key.
    let other = Issuer::new(params(Role::Root), p256_pair());
    let root = params(Role::Root)
        .signed_by(&ed25519_pair(), &other)
        .unwrap();
    assert_eq!(
        TrustAnchor::from_der(root.der()).unwrap_err(),
        CertError::KeyType {
            role: Role::Root,
            found: KeyAlgorithm::Ed25519,
            expected: KeyAlgorithm::EcdsaP256
        }
    );
}

#[test]
fn other_key_types_and_signature_algorithms_are_refused() {
    // A P-384 key on a TLS role: an unsupported key type, named by OID.
    let p384 = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
    let (_, leaf) = issue(p256_pair(), Role::Operator, &p384);
    let err = CertInfo::parse(&leaf).unwrap_err();
    assert!(
        matches!(&err, CertError::KeyType { role: Role::Operator, found: KeyAlgorithm::Other(oid), expected: KeyAlgorithm::EcdsaP256 } if oid.contains("1.3.132.0.34")),
        "{err:?}"
    );
    // A root signing ecdsa-with-SHA384.
    let p384 = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
    let (root, leaf) = issue(p384, Role::CityNode, &p256_pair());
    let want = CertError::SignatureAlgorithm("ecdsa-with-SHA384".into());
    assert_eq!(TrustAnchor::from_der(&root).unwrap_err(), want);
    assert_eq!(CertInfo::parse(&leaf).unwrap_err(), want);
}

/// The parts of a DER certificate: TBS, algorithm identifier, signature
/// (the BIT STRING's content after its unused-bits byte).
fn split(der: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    let tbs = cert.tbs_certificate.as_ref().to_vec();
    let signature = cert.signature_value.data.to_vec();
    let tail = &der[der.len() - signature.len() - 1 - 2..];
    assert_eq!(tail[0], 0x03, "short BIT STRING header expected");
    let algorithm = der[..der.len() - tail.len()][4 + tbs.len()..].to_vec();
    (tbs, algorithm, signature)
}

fn assemble(tbs: &[u8], algorithm: &[u8], signature: &[u8]) -> Vec<u8> {
    let mut bit_string = vec![0x03, (signature.len() + 1) as u8, 0x00];
    bit_string.extend_from_slice(signature);
    let body = [tbs, algorithm, &bit_string].concat();
    let mut out = Vec::new();
    der_header(0x30, body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

#[test]
fn an_rsa_signature_algorithm_is_refused() {
    let (_, leaf) = issue(p256_pair(), Role::Verifier, &p256_pair());
    let (tbs, algorithm, signature) = split(&leaf);
    assert_eq!(assemble(&tbs, &algorithm, &signature), leaf);
    // sha256WithRSAEncryption, NULL parameters.
    let rsa = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
    ];
    assert_eq!(
        CertInfo::parse(&assemble(&tbs, &rsa, &signature)).unwrap_err(),
        CertError::SignatureAlgorithm("sha256WithRSAEncryption".into())
    );
}

#[test]
fn a_non_canonical_ecdsa_signature_is_refused() {
    let pki = TestPki::new();
    let leaf = pki.badge_signer(CITY);
    assert!(CertInfo::parse_issued_by(&leaf.der, pki.anchor()).is_ok());
    let (tbs, algorithm, signature) = split(&leaf.der);
    // SEQUENCE { INTEGER r, INTEGER s }: pad r with a redundant 0x00, which
    // BER allows and DER does not. Same r, same s, other bytes.
    assert_eq!(signature[0], 0x30);
    assert_eq!(signature[2], 0x02);
    let r_len = signature[3] as usize;
    let mut padded = vec![0x30, signature[1] + 1, 0x02, (r_len + 1) as u8, 0x00];
    padded.extend_from_slice(&signature[4..]);
    let err = CertInfo::parse(&assemble(&tbs, &algorithm, &padded)).unwrap_err();
    assert!(matches!(err, CertError::Malformed(_)), "{err:?}");
    // A long-form length where the short form fits.
    let mut long = vec![0x30, 0x81, signature[1]];
    long.extend_from_slice(&signature[2..]);
    let err = CertInfo::parse(&assemble(&tbs, &algorithm, &long)).unwrap_err();
    assert!(matches!(err, CertError::Malformed(_)), "{err:?}");
    // Trailing bytes after the ECDSA-Sig-Value.
    let trailing = [signature.as_slice(), &[0x00]].concat();
    let err = CertInfo::parse(&assemble(&tbs, &algorithm, &trailing)).unwrap_err();
    assert!(matches!(err, CertError::Malformed(_)), "{err:?}");
}

#[test]
fn a_leaf_signed_by_another_p256_root_is_not_issued_by_the_root() {
    let pki = TestPki::new();
    let (_, stranger) = issue(p256_pair(), Role::CityNode, &p256_pair());
    assert_eq!(
        CertInfo::parse_issued_by(&stranger, pki.anchor()).unwrap_err(),
        CertError::NotIssuedByRoot
    );
}

/// A TBSCertificate reduced to what `strict_tbs` reads: a version and an
/// extensions `[3]` holding the given Extension encodings.
fn tbs_with(extensions: &[&[u8]]) -> Vec<u8> {
    let list: Vec<u8> = extensions.concat();
    let mut seq = vec![0x30, list.len() as u8];
    seq.extend_from_slice(&list);
    let mut wrapped = vec![0xa3, seq.len() as u8];
    wrapped.extend_from_slice(&seq);
    let mut body = vec![0xa0, 0x03, 0x02, 0x01, 0x02];
    body.extend_from_slice(&wrapped);
    let mut tbs = vec![0x30, body.len() as u8];
    tbs.extend_from_slice(&body);
    tbs
}

// Key usage (2.5.29.15) critical, digitalSignature; basic constraints
// (2.5.29.19) `SEQUENCE {}` and `SEQUENCE { cA FALSE }`.
const KEY_USAGE: &[u8] = &[
    0x30, 0x0e, 0x06, 0x03, 0x55, 0x1d, 0x0f, 0x01, 0x01, 0xff, 0x04, 0x04, 0x03, 0x02, 0x07, 0x80,
];
const KEY_USAGE_CRITICAL_FALSE: &[u8] = &[
    0x30, 0x0e, 0x06, 0x03, 0x55, 0x1d, 0x0f, 0x01, 0x01, 0x00, 0x04, 0x04, 0x03, 0x02, 0x07, 0x80,
];
const BASIC_EMPTY: &[u8] = &[
    0x30, 0x09, 0x06, 0x03, 0x55, 0x1d, 0x13, 0x04, 0x02, 0x30, 0x00,
];
const BASIC_CA_FALSE: &[u8] = &[
    0x30, 0x0c, 0x06, 0x03, 0x55, 0x1d, 0x13, 0x04, 0x05, 0x30, 0x03, 0x01, 0x01, 0x00,
];

#[test]
fn the_signed_part_must_be_strict_der() {
    assert_eq!(strict_tbs(&tbs_with(&[KEY_USAGE, BASIC_EMPTY])), Ok(()));
    for (what, tbs) in [
        ("critical FALSE", tbs_with(&[KEY_USAGE_CRITICAL_FALSE])),
        ("cA FALSE", tbs_with(&[BASIC_CA_FALSE])),
        ("an extension twice", tbs_with(&[KEY_USAGE, KEY_USAGE])),
    ] {
        assert!(strict_tbs(&tbs).is_err(), "{what} was accepted");
    }
    // The version's INTEGER with its length in two octets (81 01).
    let mut long = tbs_with(&[KEY_USAGE]);
    let at = long
        .windows(3)
        .position(|w| w == [0x02, 0x01, 0x02])
        .unwrap();
    long.splice(at + 1..at + 2, [0x81, 0x01]);
    long[1] += 1;
    long[3] += 1;
    assert!(strict_tbs(&long).unwrap_err().contains("more octets"));
    // An indefinite length, and a BOOLEAN that is neither 00 nor FF.
    assert!(
        strict_tbs(&[0x30, 0x80, 0x00, 0x00])
            .unwrap_err()
            .contains("indefinite")
    );
    let mut boolean = tbs_with(&[KEY_USAGE]);
    let at = boolean
        .windows(3)
        .position(|w| w == [0x01, 0x01, 0xff])
        .unwrap();
    boolean[at + 2] = 0x01;
    assert!(strict_tbs(&boolean).unwrap_err().contains("BOOLEAN"));
}
