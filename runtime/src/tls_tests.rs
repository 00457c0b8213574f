//! In-memory handshakes against tessera's server configuration: a client
//! that offers only ECDSA P-256 (what BoringSSL-based stacks share with
//! tessera) connects, and one that offers only Ed25519 finds no signature
//! scheme in common.

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
