//! Handshakes with chains through an issuing CA: each side presents its
//! certificate and the issuing CA's; WebPKI builds the path to the root, and
//! once a list is in force an issuing CA it lists REVOKED, or does not list,
//! is refused like a revoked certificate, at the handshake and per call.

use super::*;
use tessera_certs::profile::IssuingCa;
use tessera_proto::v1 as pb;

/// A root of path length 1 and an issuing CA it issued.
fn chain_pki() -> (Pki, IssuingCa, Vec<u8>) {
    install_default_provider();
    let now = clock();
    let req = |identity, name: &str| CertRequest {
        identity,
        common_name: name.into(),
        hosts: vec![],
        not_before: now - 86_400,
        not_after: now + 3 * 365 * 86_400,
        serial: None,
    };
    let root =
        RootCa::create_with_path_len(&req(nation(Role::Root), "test root"), TlsKey::generate(), 1)
            .unwrap();
    let ca_key = TlsKey::generate();
    let ca_der = root
        .issue(&req(nation(Role::IssuingCa), "test issuing CA"), &ca_key)
        .unwrap();
    let anchor = TrustAnchor::from_der(root.der()).unwrap();
    let trust = Arc::new(TrustState::new(anchor).unwrap());
    let ca = IssuingCa::from_parts(ca_key, ca_der.clone());
    (Pki { root, trust }, ca, ca_der)
}

/// A certificate of `identity` issued by `ca`, presented with its chain.
fn chained(ca: &IssuingCa, identity: Identity, hosts: &[&str]) -> TlsIdentity {
    let now = clock();
    let req = CertRequest {
        identity,
        common_name: format!("test {}", identity.role()),
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        not_before: now - 86_400,
        not_after: now + 86_400,
        serial: None,
    };
    let key = TlsKey::generate();
    let der = ca.issue(&req, &key).unwrap();
    TlsIdentity::with_chain(vec![der, ca.der().to_vec()], &key).unwrap()
}

/// Puts in force list `sequence`, listing the issuing CA `ca_der` with
/// `status`, or not at all.
fn install(pki: &Pki, sequence: u64, ca_der: Option<(&[u8], pb::EntryStatus)>) {
    install_many(pki, sequence, ca_der.as_slice());
}

/// Puts in force list `sequence`, listing these issuing CAs.
fn install_many(pki: &Pki, sequence: u64, cas: &[(&[u8], pb::EntryStatus)]) {
    use tessera_core::trust::{TRUST_LIST_VERSION, sign_trust_list};
    let now = clock();
    let key = tessera_certs::keys::generate_signer_key();
    let req = CertRequest {
        identity: nation(Role::TrustListSigner),
        common_name: "test list signer".into(),
        hosts: vec![],
        not_before: now - 86_400,
        not_after: now + 86_400,
        serial: None,
    };
    let signer = pki.root.issue(&req, &key).unwrap();
    let entries = cas
        .iter()
        .map(|&(der, status)| {
            let info = CertInfo::parse(der).unwrap();
            pb::TrustEntry {
                code: 0,
                name: "issuing CA".into(),
                role: pb::Role::IssuingCa as i32,
                certificate_der: der.to_vec(),
                endpoint: String::new(),
                status: status as i32,
                not_before: info.not_before(),
                not_after: info.not_after(),
                revoked_at: if status == pb::EntryStatus::Revoked {
                    now - 10
                } else {
                    0
                },
            }
        })
        .collect();
    let list = pb::TrustList {
        version: TRUST_LIST_VERSION,
        sequence,
        issued_at: now - 60,
        next_update: now + 3600,
        sunset_at: now + 86_400,
        entries,
        revoked_serials: vec![],
    };
    let bytes = sign_trust_list(&list, &key, &signer).unwrap();
    pki.trust.update(&bytes, now).unwrap();
}

#[test]
fn chains_through_a_listed_issuing_ca_are_admitted_both_ways() {
    let (pki, ca, ca_der) = chain_pki();
    let client = chained(&ca, nation(Role::Authority), &[]);
    let server = chained(&ca, nation(Role::Gateway), &["peer.test"]);
    // Before any list: the chain to the root is all that is checked.
    let (mut c, mut s) = connect(&pki, &client, Role::Gateway, &server);
    handshake(&mut c, &mut s).unwrap();
    let presented = s.peer_certificates().unwrap();
    assert_eq!(presented.len(), 2, "the client presents its chain");
    assert_eq!(presented[1].as_ref(), ca_der.as_slice());
    assert_eq!(c.peer_certificates().unwrap().len(), 2);

    install(&pki, 1, Some((&ca_der, pb::EntryStatus::Active)));
    let (mut c, mut s) = connect(&pki, &client, Role::Gateway, &server);
    handshake(&mut c, &mut s).unwrap();
    // A root-issued leaf is still admitted beside them.
    let direct = current(&pki.root, nation(Role::Authority), &[]);
    let (mut c, mut s) = connect(&pki, &direct, Role::Gateway, &server);
    handshake(&mut c, &mut s).unwrap();
    // The peer read from the connection names its issuing CA, which the
    // list in force accepts per call.
    let info = crate::connection::PeerConnectInfo::read(None, s.peer_certificates());
    let mut extensions = http::Extensions::new();
    extensions.insert(info);
    let peer = crate::authz::peer_from_extensions(&extensions, &pki.trust).unwrap();
    assert!(peer.issuer.is_none(), "the root issued this one directly");
}

#[test]
fn a_revoked_issuing_ca_is_refused_like_a_revoked_certificate() {
    let (pki, ca, ca_der) = chain_pki();
    let client = chained(&ca, nation(Role::Authority), &[]);
    let server = chained(&ca, nation(Role::Gateway), &["peer.test"]);
    let direct_server = current(&pki.root, nation(Role::Gateway), &["peer.test"]);
    let direct_client = current(&pki.root, nation(Role::Authority), &[]);
    install(&pki, 1, Some((&ca_der, pb::EntryStatus::Active)));
    // A connection made while the CA was in force, for the per-call check.
    let (mut c, mut s) = connect(&pki, &client, Role::Gateway, &direct_server);
    handshake(&mut c, &mut s).unwrap();
    let info = crate::connection::PeerConnectInfo::read(None, s.peer_certificates());
    let mut extensions = http::Extensions::new();
    extensions.insert(info);
    let peer = crate::authz::peer_from_extensions(&extensions, &pki.trust).unwrap();
    let issuer = peer.issuer.clone().unwrap();
    assert_eq!(issuer.key_id, tessera_core::KeyId::of_certificate(&ca_der));

    install(&pki, 2, Some((&ca_der, pb::EntryStatus::Revoked)));
    // The server refuses the client, the client refuses the server.
    let err = refused(&pki, &client, Role::Gateway, &direct_server);
    assert_eq!(err, Error::InvalidCertificate(CertificateError::Revoked));
    let err = refused(&pki, &direct_client, Role::Gateway, &server);
    assert_eq!(err, Error::InvalidCertificate(CertificateError::Revoked));
    // And the open connection's next call.
    let status = crate::authz::peer_from_extensions(&extensions, &pki.trust).unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    let serial = CertInfo::parse(&ca_der).unwrap().serial().to_vec();
    assert_eq!(
        status.message(),
        format!(
            "client certificate issued by revoked issuing CA {}",
            tessera_core::cert::hex_string(&serial)
        )
    );
    // Root-issued parties are unaffected.
    let (mut c, mut s) = connect(&pki, &direct_client, Role::Gateway, &direct_server);
    handshake(&mut c, &mut s).unwrap();
}

#[test]
fn an_issuing_ca_the_list_does_not_carry_is_refused_once_a_list_is_in_force() {
    let (pki, ca, _) = chain_pki();
    let client = chained(&ca, nation(Role::Authority), &[]);
    let server = current(&pki.root, nation(Role::Gateway), &["peer.test"]);
    install(&pki, 1, None);
    let err = refused(&pki, &client, Role::Gateway, &server);
    assert_eq!(err, Error::InvalidCertificate(CertificateError::Revoked));
}

#[test]
fn a_chain_presenting_another_issuing_ca_of_the_same_name_does_not_pass() {
    let (pki, ca, ca_der) = chain_pki();
    // A second issuing CA of the same name, in force, while the one that
    // issued the client's certificate is revoked: the client presents both.
    let now = clock();
    let other_der = pki
        .root
        .issue(
            &CertRequest {
                identity: nation(Role::IssuingCa),
                common_name: "test issuing CA".into(),
                hosts: vec![],
                not_before: now - 86_400,
                not_after: now + 86_400,
                serial: None,
            },
            &TlsKey::generate(),
        )
        .unwrap();
    let key = TlsKey::generate();
    let leaf = ca
        .issue(
            &CertRequest {
                identity: nation(Role::Authority),
                common_name: "test authority".into(),
                hosts: vec![],
                not_before: now - 86_400,
                not_after: now + 86_400,
                serial: None,
            },
            &key,
        )
        .unwrap();
    let client =
        TlsIdentity::with_chain(vec![leaf, other_der.clone(), ca_der.clone()], &key).unwrap();
    let server = current(&pki.root, nation(Role::Gateway), &["peer.test"]);
    install_many(
        &pki,
        1,
        &[
            (&other_der, pb::EntryStatus::Active),
            (&ca_der, pb::EntryStatus::Revoked),
        ],
    );
    let err = refused(&pki, &client, Role::Gateway, &server);
    assert_eq!(err, Error::InvalidCertificate(CertificateError::Revoked));
}
