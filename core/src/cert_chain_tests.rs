//! K3 with issuing CAs, built at run time with rcgen: what an issuing CA
//! must be, and which issuer each certificate may have.

use super::*;
use crate::identity::{Identity, Scope};
use crate::ids::CityCode;
use crate::test_pki::{DAY, NOW, TestPki, tls_key};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

fn pair() -> KeyPair {
    use p256::pkcs8::EncodePrivateKey as _;
    KeyPair::try_from(tls_key().to_pkcs8_der().unwrap().as_bytes()).unwrap()
}

/// Parameters of a certificate of `role` (nation or city 330100) with
/// these basic constraints and key usages.
fn params(role: Role, is_ca: IsCa, usages: Vec<KeyUsagePurpose>) -> CertificateParams {
    let scope = match role {
        Role::CityNode | Role::BadgeSigner | Role::Operator => {
            Scope::City(CityCode::new(330_100).unwrap())
        }
        _ => Scope::Nation,
    };
    let identity = Identity::new(role, scope).unwrap();
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "tessera");
    dn.push(DnType::CommonName, identity.to_uri());
    params.distinguished_name = dn;
    params.not_before = time::OffsetDateTime::from_unix_timestamp(NOW - DAY).unwrap();
    params.not_after = time::OffsetDateTime::from_unix_timestamp(NOW + DAY).unwrap();
    params.subject_alt_names = vec![SanType::URI(identity.to_uri().try_into().unwrap())];
    params.is_ca = is_ca;
    params.key_usages = usages;
    params
}

fn ca_usages() -> Vec<KeyUsagePurpose> {
    vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign]
}

fn leaf_params(role: Role) -> CertificateParams {
    params(
        role,
        IsCa::ExplicitNoCa,
        vec![KeyUsagePurpose::DigitalSignature],
    )
}

/// A root of this path length: its anchor and issuer.
fn root(path_len: u8) -> (TrustAnchor, Issuer<'static, KeyPair>) {
    let p = params(
        Role::Root,
        IsCa::Ca(BasicConstraints::Constrained(path_len)),
        ca_usages(),
    );
    let key = pair();
    let der = p.self_signed(&key).unwrap().der().to_vec();
    (TrustAnchor::from_der(&der).unwrap(), Issuer::new(p, key))
}

/// An issuing-CA certificate made from `p` under `issuer`, and its issuer.
fn ca(p: CertificateParams, issuer: &Issuer<'_, KeyPair>) -> (Vec<u8>, Issuer<'static, KeyPair>) {
    let key = pair();
    let der = p.signed_by(&key, issuer).unwrap().der().to_vec();
    (der, Issuer::new(p, key))
}

fn good_ca_params() -> CertificateParams {
    params(
        Role::IssuingCa,
        IsCa::Ca(BasicConstraints::Constrained(0)),
        ca_usages(),
    )
}

fn node_under(issuer: &Issuer<'_, KeyPair>) -> Vec<u8> {
    leaf_params(Role::CityNode)
        .signed_by(&pair(), issuer)
        .unwrap()
        .der()
        .to_vec()
}

#[test]
fn k3_a_leaf_through_a_good_issuing_ca_is_accepted_and_named() {
    let (anchor, root_issuer) = root(1);
    let (ca_der, ca_issuer) = ca(good_ca_params(), &root_issuer);
    let ca = IssuingCa::from_der(&ca_der, &anchor).unwrap();
    assert_eq!(ca.info().path_len(), Some(0));
    let node = node_under(&ca_issuer);
    let (info, by) =
        CertInfo::parse_issued_within(&node, &anchor, std::slice::from_ref(&ca)).unwrap();
    assert_eq!(by, IssuedBy::IssuingCa(0));
    assert_eq!(info.identity().role(), Role::CityNode);
    // Without the issuing CA it does not chain; root-only parsing refuses it.
    assert_eq!(
        CertInfo::parse_issued_within(&node, &anchor, &[]).unwrap_err(),
        CertError::NotIssuedByRoot
    );
    assert_eq!(
        CertInfo::parse_issued_by(&node, &anchor).unwrap_err(),
        CertError::NotIssuedByRoot
    );
    assert!(CertInfo::parse_with_chain(&node, std::slice::from_ref(&ca_der), &anchor).is_ok());
    // Found among a peer's intermediates by name and signature.
    let found = CertInfo::issuing_ca_among(&node, &[node.clone(), ca_der.clone()]).unwrap();
    assert_eq!(found.key_id(), ca.info().key_id());
    let (other, _) = self::ca(good_ca_params(), &root_issuer);
    assert!(CertInfo::issuing_ca_among(&node, &[other]).is_none());
    // A root-issued leaf is still accepted, as before issuing CAs.
    let direct = node_under(&root_issuer);
    let (_, by) = CertInfo::parse_issued_within(&direct, &anchor, &[ca]).unwrap();
    assert_eq!(by, IssuedBy::Root);
    // The issuing CA itself passes as root-issued.
    let (_, by) = CertInfo::parse_issued_within(&ca_der, &anchor, &[]).unwrap();
    assert_eq!(by, IssuedBy::Root);
}

#[test]
fn k3_an_issuing_ca_breaking_its_profile_is_refused() {
    let (anchor, root_issuer) = root(1);
    let (path_one, _) = ca(
        params(
            Role::IssuingCa,
            IsCa::Ca(BasicConstraints::Constrained(1)),
            ca_usages(),
        ),
        &root_issuer,
    );
    let (unconstrained, _) = ca(
        params(
            Role::IssuingCa,
            IsCa::Ca(BasicConstraints::Unconstrained),
            ca_usages(),
        ),
        &root_issuer,
    );
    let (no_cert_sign, _) = ca(
        params(
            Role::IssuingCa,
            IsCa::Ca(BasicConstraints::Constrained(0)),
            vec![KeyUsagePurpose::CrlSign],
        ),
        &root_issuer,
    );
    for (what, der) in [
        ("path length 1", path_one),
        ("no path length", unconstrained),
        ("no keyCertSign", no_cert_sign),
    ] {
        let err = IssuingCa::from_der(&der, &anchor).unwrap_err();
        assert!(
            matches!(err, CertError::IssuingCaProfile(_)),
            "{what}: {err:?}"
        );
        assert!(
            CertInfo::parse_issued_within(&der, &anchor, &[]).is_err(),
            "{what}"
        );
    }
    // Not a CA at all: the CA flag does not fit the role.
    let not_ca = leaf_params(Role::IssuingCa)
        .signed_by(&pair(), &root_issuer)
        .unwrap()
        .der()
        .to_vec();
    assert!(matches!(
        IssuingCa::from_der(&not_ca, &anchor).unwrap_err(),
        CertError::WrongCaFlag { .. }
    ));
}

#[test]
fn k3_a_root_of_path_length_0_cannot_issue_an_issuing_ca_but_its_leaves_stay_valid() {
    let (anchor, root_issuer) = root(0);
    let (ca_der, _) = ca(good_ca_params(), &root_issuer);
    assert_eq!(
        IssuingCa::from_der(&ca_der, &anchor).unwrap_err(),
        CertError::RootPathLen
    );
    let direct = node_under(&root_issuer);
    assert!(CertInfo::parse_issued_by(&direct, &anchor).is_ok());
}

#[test]
fn k3_an_issuing_ca_under_an_issuing_ca_or_another_root_is_refused() {
    let (anchor, root_issuer) = root(1);
    let (_, ca_issuer) = ca(good_ca_params(), &root_issuer);
    let (nested, nested_issuer) = ca(good_ca_params(), &ca_issuer);
    assert_eq!(
        IssuingCa::from_der(&nested, &anchor).unwrap_err(),
        CertError::NotIssuedByRoot
    );
    let (other_anchor, other_root) = root(1);
    let (stranger, stranger_issuer) = ca(good_ca_params(), &other_root);
    assert!(IssuingCa::from_der(&stranger, &other_anchor).is_ok());
    assert_eq!(
        IssuingCa::from_der(&stranger, &anchor).unwrap_err(),
        CertError::NotIssuedByRoot
    );
    // Same subject name as a real issuing CA, other key: the signature decides.
    let good = IssuingCa::from_der(&ca(good_ca_params(), &root_issuer).0, &anchor).unwrap();
    for issuer in [&nested_issuer, &stranger_issuer] {
        assert_eq!(
            CertInfo::parse_issued_within(
                &node_under(issuer),
                &anchor,
                std::slice::from_ref(&good)
            )
            .unwrap_err(),
            CertError::NotIssuedByRoot
        );
    }
    // A chain file whose extra certificate is not an issuing CA is refused.
    let pki = TestPki::new();
    let signer = pki.badge_signer(330_100);
    assert!(
        CertInfo::parse_with_chain(&signer.der, std::slice::from_ref(&signer.der), pki.anchor())
            .is_err()
    );
}

#[test]
fn k3_a_leaf_may_not_be_a_ca_even_under_an_issuing_ca() {
    let (anchor, root_issuer) = root(1);
    let (ca_der, ca_issuer) = ca(good_ca_params(), &root_issuer);
    let ca = IssuingCa::from_der(&ca_der, &anchor).unwrap();
    let ca_node = params(
        Role::CityNode,
        IsCa::Ca(BasicConstraints::Constrained(0)),
        ca_usages(),
    )
    .signed_by(&pair(), &ca_issuer)
    .unwrap()
    .der()
    .to_vec();
    assert!(matches!(
        CertInfo::parse_issued_within(&ca_node, &anchor, &[ca]).unwrap_err(),
        CertError::WrongCaFlag { .. }
    ));
}
