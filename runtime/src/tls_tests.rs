//! In-memory handshakes against tessera's TLS configurations: a client
//! that offers only ECDSA P-256 (what BoringSSL-based stacks share with
//! tessera) connects, and one that offers only Ed25519 finds no signature
//! scheme in common; tessera's client verifier (in the server
//! configuration) refuses a revoked, expired or foreign client, and its
//! server verifier (in the client configurations) a server of the wrong
//! role or city, revoked, expired or foreign.

use super::*;
use tessera_certs::keys::TlsKey;
use tessera_certs::profile::{CertRequest, RootCa};
use tessera_core::Scope;

const NOW: i64 = 1_750_000_000;

struct Pki {
    root: RootCa,
    trust: Arc<TrustState>,
}

fn pki() -> Pki {
    install_default_provider();
    let req = CertRequest {
        identity: Identity::new(Role::Root, Scope::Nation).unwrap(),
        common_name: "test root".into(),
        hosts: vec![],
        not_before: NOW - 86_400,
        not_after: NOW + 3650 * 86_400,
        serial: None,
    };
    let root = RootCa::create(&req, TlsKey::generate()).unwrap();
    let anchor = TrustAnchor::from_der(root.der()).unwrap();
    let trust = Arc::new(TrustState::new(anchor).unwrap());
    Pki { root, trust }
}

fn leaf(pki: &Pki, role: Role, hosts: &[&str]) -> (Vec<u8>, TlsKey) {
    let now = UnixTime::now().as_secs() as i64;
    let req = CertRequest {
        identity: Identity::new(role, Scope::Nation).unwrap(),
        common_name: format!("test {role}"),
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        not_before: now - 86_400,
        not_after: now + 86_400,
        serial: None,
    };
    let key = TlsKey::generate();
    let der = pki.root.issue(&req, &key).unwrap();
    (der, key)
}

/// A stock client's server verifier (WebPKI) that offers only `schemes`.
#[derive(Debug)]
struct Offering {
    inner: Arc<WebPkiServerVerifier>,
    schemes: Vec<SignatureScheme>,
}

impl ServerCertVerifier for Offering {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
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
        self.schemes.clone()
    }
}

/// A plain rustls client (not tessera's configuration) with an operator
/// certificate, offering only `schemes`.
fn stock_client(pki: &Pki, schemes: Vec<SignatureScheme>) -> rustls::ClientConnection {
    let (der, key) = leaf(pki, Role::Authority, &[]);
    let inner =
        WebPkiServerVerifier::builder_with_provider(Arc::clone(&pki.trust.roots), provider())
            .build()
            .unwrap();
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Offering { inner, schemes }))
        .with_client_auth_cert(
            vec![CertificateDer::from(der)],
            PrivateKeyDer::Pkcs8(key.to_pkcs8_der().unwrap().into()),
        )
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let name = ServerName::try_from("gateway.test").unwrap();
    rustls::ClientConnection::new(Arc::new(config), name).unwrap()
}

fn tessera_server(pki: &Pki) -> rustls::ServerConnection {
    let (der, key) = leaf(pki, Role::Gateway, &["gateway.test"]);
    let identity = TlsIdentity::new(der, &key).unwrap();
    let config = server_config(&identity, Arc::clone(&pki.trust)).unwrap();
    rustls::ServerConnection::new(config).unwrap()
}

/// Moves records both ways until both sides finish or one fails.
fn handshake(
    client: &mut rustls::ClientConnection,
    server: &mut rustls::ServerConnection,
) -> Result<(), Error> {
    for _ in 0..20 {
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            server.read_tls(&mut buf.as_slice()).unwrap();
            server.process_new_packets()?;
        }
        let mut buf = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            client.read_tls(&mut buf.as_slice()).unwrap();
            client.process_new_packets()?;
        }
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
    }
    Err(Error::General("handshake did not finish".into()))
}

#[test]
fn a_client_offering_only_ecdsa_p256_connects() {
    let pki = pki();
    let mut client = stock_client(&pki, vec![SignatureScheme::ECDSA_NISTP256_SHA256]);
    let mut server = tessera_server(&pki);
    handshake(&mut client, &mut server).unwrap();
    assert_eq!(
        client.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(server.alpn_protocol(), Some(&b"h2"[..]));
    let peer = server.peer_certificates().unwrap();
    let info = CertInfo::parse(&peer[0]).unwrap();
    assert_eq!(info.identity().role(), Role::Authority);
}

#[test]
fn a_client_offering_only_ed25519_finds_no_scheme_in_common() {
    let pki = pki();
    let mut client = stock_client(&pki, vec![SignatureScheme::ED25519]);
    let mut server = tessera_server(&pki);
    let err = handshake(&mut client, &mut server).unwrap_err();
    assert!(
        matches!(
            err,
            Error::PeerIncompatible(rustls::PeerIncompatible::NoSignatureSchemesInCommon)
        ),
        "{err:?}"
    );
}

#[test]
fn tessera_identities_sign_ecdsa_p256_and_refuse_a_key_not_theirs() {
    let pki = pki();
    let (der, key) = leaf(&pki, Role::Gateway, &["gateway.test"]);
    let identity = TlsIdentity::new(der.clone(), &key).unwrap();
    let chosen = identity
        .current
        .load()
        .certified
        .key
        .choose_scheme(&[
            SignatureScheme::ED25519,
            SignatureScheme::ECDSA_NISTP256_SHA256,
        ])
        .unwrap()
        .scheme();
    assert_eq!(chosen, SignatureScheme::ECDSA_NISTP256_SHA256);
    assert!(matches!(
        TlsIdentity::new(der, &TlsKey::generate()),
        Err(TlsError::KeyMismatch)
    ));
}

// Tessera's own verifiers, each side in turn: what the client verifier
// refuses at the server, what the server verifier refuses at the client.

/// A leaf for `identity`, valid from `not_before` to `not_after`, issued by
/// `root`.
fn leaf_window(
    root: &RootCa,
    identity: Identity,
    hosts: &[&str],
    not_before: i64,
    not_after: i64,
) -> TlsIdentity {
    let req = CertRequest {
        identity,
        common_name: format!("test {}", identity.role()),
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        not_before,
        not_after,
        serial: None,
    };
    let key = TlsKey::generate();
    let der = root.issue(&req, &key).unwrap();
    TlsIdentity::new(der, &key).unwrap()
}

fn clock() -> i64 {
    UnixTime::now().as_secs() as i64
}

/// A leaf of `identity` valid a day either side of now.
fn current(root: &RootCa, identity: Identity, hosts: &[&str]) -> TlsIdentity {
    let now = clock();
    leaf_window(root, identity, hosts, now - 86_400, now + 86_400)
}

fn nation(role: Role) -> Identity {
    Identity::new(role, Scope::Nation).unwrap()
}

fn city_node(code: u32) -> Identity {
    Identity::new(Role::CityNode, Scope::City(CityCode::new(code).unwrap())).unwrap()
}

/// Puts in force a list, signed by a trust-list signer of `pki`, that
/// revokes these certificates by serial.
fn revoke(pki: &Pki, revoked: &[&TlsIdentity]) {
    use tessera_core::trust::{TRUST_LIST_VERSION, sign_trust_list};
    use tessera_proto::v1 as pb;
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
    let der = pki.root.issue(&req, &key).unwrap();
    let list = pb::TrustList {
        version: TRUST_LIST_VERSION,
        sequence: 1,
        issued_at: now - 60,
        next_update: now + 3600,
        sunset_at: now + 86_400,
        entries: vec![],
        revoked_serials: revoked
            .iter()
            .map(|id| {
                CertInfo::parse(&id.certificate_der())
                    .unwrap()
                    .serial()
                    .to_vec()
            })
            .collect(),
    };
    let bytes = sign_trust_list(&list, &key, &der).unwrap();
    pki.trust.update(&bytes, now).unwrap();
}

/// A tessera client presenting `client` that expects `expected`, and a
/// tessera server presenting `server`, both trusting `pki`.
fn connect(
    pki: &Pki,
    client: &TlsIdentity,
    expected: Role,
    server: &TlsIdentity,
) -> (rustls::ClientConnection, rustls::ServerConnection) {
    let config = client_config(client, Arc::clone(&pki.trust), expected).unwrap();
    let name = ServerName::try_from("peer.test").unwrap();
    let c = rustls::ClientConnection::new(config, name).unwrap();
    let s = rustls::ServerConnection::new(server_config(server, Arc::clone(&pki.trust)).unwrap())
        .unwrap();
    (c, s)
}

/// The error of a handshake between a tessera client presenting `client`
/// and expecting `expected`, and a tessera server presenting `server`.
fn refused(pki: &Pki, client: &TlsIdentity, expected: Role, server: &TlsIdentity) -> Error {
    let (mut c, mut s) = connect(pki, client, expected, server);
    handshake(&mut c, &mut s).unwrap_err()
}

fn is_expired(err: &Error) -> bool {
    matches!(
        err,
        Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. }
        )
    )
}

#[test]
fn tessera_client_and_server_verifiers_admit_each_other() {
    let pki = pki();
    let client = current(&pki.root, nation(Role::Authority), &[]);
    let server = current(&pki.root, nation(Role::Gateway), &["peer.test"]);
    revoke(&pki, &[]); // a list in force that revokes neither
    let (mut c, mut s) = connect(&pki, &client, Role::Gateway, &server);
    handshake(&mut c, &mut s).unwrap();
    let peer = s.peer_certificates().unwrap();
    assert_eq!(peer[0].as_ref(), client.certificate_der().as_slice());
    let peer = c.peer_certificates().unwrap();
    assert_eq!(peer[0].as_ref(), server.certificate_der().as_slice());
}

#[test]
fn the_client_verifier_refuses_a_revoked_client() {
    let pki = pki();
    let client = current(&pki.root, nation(Role::Authority), &[]);
    let server = current(&pki.root, nation(Role::Gateway), &["peer.test"]);
    revoke(&pki, &[&client]);
    let err = refused(&pki, &client, Role::Gateway, &server);
    assert_eq!(err, Error::InvalidCertificate(CertificateError::Revoked));
}

#[test]
fn the_client_verifier_refuses_an_expired_client() {
    let pki = pki();
    let now = clock();
    let client = leaf_window(
        &pki.root,
        nation(Role::Authority),
        &[],
        now - 2 * 86_400,
        now - 86_400,
    );
    let server = current(&pki.root, nation(Role::Gateway), &["peer.test"]);
    let err = refused(&pki, &client, Role::Gateway, &server);
    assert!(is_expired(&err), "{err:?}");
}

#[test]
fn the_client_verifier_refuses_a_client_of_a_foreign_root() {
    let (pki, foreign) = (pki(), pki());
    let client = current(&foreign.root, nation(Role::Authority), &[]);
    let server = current(&pki.root, nation(Role::Gateway), &["peer.test"]);
    // Both sides trust the server's root only. The foreign root has the same
    // name ("test root"), so the chain is tried and its signature fails.
    let (mut c, mut s) = connect(&pki, &client, Role::Gateway, &server);
    let err = handshake(&mut c, &mut s).unwrap_err();
    assert_eq!(
        err,
        Error::InvalidCertificate(CertificateError::BadSignature)
    );
}

#[test]
fn the_server_verifier_refuses_a_server_of_another_role() {
    let pki = pki();
    let client = current(&pki.root, nation(Role::Authority), &[]);
    let server = current(&pki.root, nation(Role::Gateway), &["peer.test"]);
    let err = refused(&pki, &client, Role::CityNode, &server);
    assert!(
        err.to_string()
            .contains("peer is a gateway, expected a node"),
        "{err}"
    );
}

#[test]
fn the_server_verifier_for_a_city_refuses_the_node_of_another_city() {
    let pki = pki();
    let client = current(&pki.root, nation(Role::Gateway), &["client.test"]);
    let server = current(&pki.root, city_node(420_100), &["peer.test"]);
    let for_city = |code: u32| {
        let city = CityCode::new(code).unwrap();
        let config = client_config_for_city(&client, Arc::clone(&pki.trust), city).unwrap();
        let c = rustls::ClientConnection::new(config, ServerName::try_from("peer.test").unwrap())
            .unwrap();
        let s =
            rustls::ServerConnection::new(server_config(&server, Arc::clone(&pki.trust)).unwrap())
                .unwrap();
        (c, s)
    };
    let (mut c, mut s) = for_city(420_100);
    handshake(&mut c, &mut s).unwrap();
    let (mut c, mut s) = for_city(330_100);
    let err = handshake(&mut c, &mut s).unwrap_err();
    assert!(
        err.to_string().contains("expected the node of 330100"),
        "{err}"
    );
}

#[test]
fn the_server_verifier_refuses_a_revoked_server() {
    let pki = pki();
    let client = current(&pki.root, nation(Role::Authority), &[]);
    let server = current(&pki.root, nation(Role::Gateway), &["peer.test"]);
    revoke(&pki, &[&server]);
    let err = refused(&pki, &client, Role::Gateway, &server);
    assert_eq!(err, Error::InvalidCertificate(CertificateError::Revoked));
}

#[test]
fn the_server_verifier_refuses_an_expired_server() {
    let pki = pki();
    let now = clock();
    let client = current(&pki.root, nation(Role::Authority), &[]);
    let server = leaf_window(
        &pki.root,
        nation(Role::Gateway),
        &["peer.test"],
        now - 2 * 86_400,
        now - 86_400,
    );
    let err = refused(&pki, &client, Role::Gateway, &server);
    assert!(is_expired(&err), "{err:?}");
}

#[test]
fn the_server_verifier_refuses_a_server_of_a_foreign_root() {
    let (pki, foreign) = (pki(), pki());
    let client = current(&pki.root, nation(Role::Authority), &[]);
    let server = current(&foreign.root, nation(Role::Gateway), &["peer.test"]);
    // Both sides trust the client's root only. The foreign root has the same
    // name ("test root"), so the chain is tried and its signature fails.
    let (mut c, mut s) = connect(&pki, &client, Role::Gateway, &server);
    let err = handshake(&mut c, &mut s).unwrap_err();
    assert_eq!(
        err,
        Error::InvalidCertificate(CertificateError::BadSignature)
    );
}

#[path = "tls_chain_tests.rs"]
mod chain;
