//! Picking up renewed certificates and keys without a restart.
//!
//! A server names its certificate and key files in its configuration; the
//! authority's `renew` and `rotate-signer` (or an operator's `mv`) replace
//! those files. [`run`] looks at them every `every` and at once on SIGHUP,
//! and when their contents change, reads both, checks them and hands them to
//! the part that uses them: a [`TlsIdentity`], whose next handshakes present
//! the new certificate while connections already open go on with the old
//! one, or the node's badge signer.
//!
//! A pair that does not check out (the key not matching the certificate,
//! as between the two renames of a renewal; a certificate not issued by the
//! root, expired, revoked, or of another party) is never used: the server
//! keeps what it has, says why, and tries again when the files change.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::path::Path;

use tessera_certs::keys::{self, KeyError, SigningKey, TlsKey};
use tessera_core::CertInfo;

use crate::clock::unix_now;
use crate::tls::{TlsError, TlsIdentity, TrustState};

/// How often a server looks at its certificate and key files unless
/// configured (`reload_secs`).
pub const DEFAULT_RELOAD_SECS: u64 = 30;

/// What applying a new certificate and key came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// In use from now on; the message says what changed.
    Applied(String),
    /// The same certificate as in use.
    Unchanged,
    /// Good, but not to be used yet (a badge signer not yet in the trust
    /// list): asked again at every look until it is applied or the files
    /// change.
    Wait(String),
    /// Not usable: kept out until the files change.
    Refused(String),
}

/// Applies a new certificate and key, or says why not: the certificates
/// of the certificate file (DER), the certificate first, then its chain
/// (the issuing CA's certificate, if it issued it).
pub type Apply<K> = Box<dyn Fn(Vec<Vec<u8>>, K) -> Outcome + Send + Sync>;

/// A key type a watched pair holds, read from its PEM file.
pub trait KeyFile: Sized + 'static {
    /// Reads the key from the PEM text of the file at `path` (named in
    /// errors only), refusing a key of another type.
    fn from_pem(bytes: &[u8], path: &Path) -> Result<Self, KeyError>;
}

impl KeyFile for TlsKey {
    fn from_pem(bytes: &[u8], path: &Path) -> Result<Self, KeyError> {
        keys::tls_key_from_pem(bytes, path)
    }
}

impl KeyFile for SigningKey {
    fn from_pem(bytes: &[u8], path: &Path) -> Result<Self, KeyError> {
        keys::signer_key_from_pem(bytes, path)
    }
}

/// Reads a pair and applies it, whatever the key type.
type ReadApply = Box<dyn Fn(&[u8], &Path, &[u8], &Path) -> Outcome + Send + Sync>;

/// One certificate file and key file, and what to do with a new pair.
pub struct Watched {
    name: &'static str,
    cert: PathBuf,
    key: PathBuf,
    apply: ReadApply,
    /// The file contents last acted upon.
    seen: Option<(Vec<u8>, Vec<u8>)>,
    /// Why the last pair is waiting, if it is.
    waiting: Option<String>,
}

impl std::fmt::Debug for Watched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched")
            .field("name", &self.name)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Watched {
    /// Watches `cert` and `key` (PEM files), calling the pair `name` in logs,
    /// and hands each new pair to `apply`.
    pub fn new<K: KeyFile>(
        name: &'static str,
        cert: PathBuf,
        key: PathBuf,
        apply: Apply<K>,
    ) -> Self {
        let apply: ReadApply = Box::new(move |cert, cert_path, key, key_path| {
            let parsed = keys::certs_from_pem(cert, cert_path)
                .and_then(|certs| Ok((certs, K::from_pem(key, key_path)?)));
            match parsed {
                Ok((certs, key)) => apply(certs, key),
                Err(e) => Outcome::Refused(e.to_string()),
            }
        });
        Self {
            name,
            cert,
            key,
            apply,
            seen: None,
            waiting: None,
        }
    }

    /// The TLS certificate and key of `identity`: a new pair must chain to
    /// the root of `trust`, be valid now, not be revoked by the list in
    /// force, name the same party, and name every host the certificate in
    /// use names (the configured endpoint); then the next handshakes
    /// present it.
    pub fn tls(identity: TlsIdentity, trust: Arc<TrustState>, cert: PathBuf, key: PathBuf) -> Self {
        let apply = Box::new(move |certs: Vec<Vec<u8>>, key: TlsKey| {
            let (der, chain) = match certs.split_first() {
                Some((der, chain)) => (der.clone(), chain.to_vec()),
                None => return Outcome::Refused("no certificate in the file".into()),
            };
            if der == identity.certificate_der() && chain == identity.chain_der() {
                return Outcome::Unchanged;
            }
            let info = match CertInfo::parse_with_chain(&der, &chain, trust.root()) {
                Ok(info) => info,
                Err(e) => {
                    return Outcome::Refused(format!(
                        "not issued by the root or the issuing CA after it: {e}"
                    ));
                }
            };
            if !info.valid_at(unix_now()) {
                return Outcome::Refused("the certificate is not valid now".into());
            }
            if trust.is_revoked(&info) {
                return Outcome::Refused("the trust list in force revokes it".into());
            }
            if let Some(list) = trust.current()
                && let Some(ca) = CertInfo::issuing_ca_among(&der, &chain)
            {
                match list.issuer_refusal(&ca.key_id(), ca.serial()) {
                    Some(refusal @ tessera_core::trust::ChainRefusal::IssuerRevoked(_)) => {
                        return Outcome::Refused(format!(
                            "the trust list in force refuses it: {refusal}"
                        ));
                    }
                    // A new issuing CA (rotate-issuing-ca) reaches the
                    // files before the list that carries it: asked again
                    // at every look until that list is in force.
                    Some(refusal) => {
                        return Outcome::Wait(format!(
                            "{refusal}: waiting for a trust list that carries it"
                        ));
                    }
                    None => {}
                }
            }
            // The names of the certificate in use are the endpoint this
            // server was enrolled for, the one its peers dial.
            if let Ok(in_use) = CertInfo::parse(&identity.certificate_der())
                && let Some(missing) = in_use.hosts().iter().find(|h| !info.hosts().contains(h))
            {
                return Outcome::Refused(format!(
                    "it does not name host {missing}, which the certificate in use names \
                     (the endpoint peers dial; it names {}): is it another server's bundle?",
                    if info.hosts().is_empty() {
                        "no host".to_owned()
                    } else {
                        info.hosts().join(", ")
                    }
                ));
            }
            let old = identity.serial_hex();
            match identity.replace_chain(certs, &key) {
                Ok(true) => Outcome::Applied(format!(
                    "serial {old} -> {}, valid until {}",
                    identity.serial_hex(),
                    identity.not_after()
                )),
                Ok(false) => Outcome::Unchanged,
                Err(TlsError::KeyMismatch) => {
                    Outcome::Refused("the key does not match the certificate (yet)".into())
                }
                Err(e) => Outcome::Refused(e.to_string()),
            }
        });
        Self::new("tls", cert, key, apply)
    }

    /// Looks at the files once and acts on a change.
    pub fn poll(&mut self) {
        let read = std::fs::read(&self.cert).and_then(|c| Ok((c, std::fs::read(&self.key)?)));
        let contents = match read {
            Ok(contents) => contents,
            Err(e) => {
                tracing::warn!(certificate = self.name, error = %e, "cannot read the certificate or key file: keeping the one in use");
                return;
            }
        };
        if self.seen.as_ref() == Some(&contents) && self.waiting.is_none() {
            return;
        }
        let outcome = (self.apply)(&contents.0, &self.cert, &contents.1, &self.key);
        match outcome {
            Outcome::Applied(what) => {
                tracing::info!(certificate = self.name, change = %what, "renewed certificate in use");
                self.waiting = None;
            }
            Outcome::Unchanged => self.waiting = None,
            Outcome::Wait(why) => {
                if self.waiting.as_ref() != Some(&why) {
                    tracing::info!(certificate = self.name, reason = %why, "new certificate not used yet");
                }
                self.waiting = Some(why);
            }
            Outcome::Refused(why) => {
                tracing::warn!(certificate = self.name, reason = %why, file = %self.cert.display(), "new certificate and key not used: keeping the ones in use");
                self.waiting = None;
            }
        }
        self.seen = Some(contents);
    }
}

/// Looks at every watched pair now, then every `every` and on each SIGHUP,
/// for as long as the server runs.
pub async fn run(mut watched: Vec<Watched>, every: Duration) -> Infallible {
    #[cfg(unix)]
    let mut hangup =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).map_err(|e| {
            tracing::warn!(error = %e, "no SIGHUP handler: certificates are looked at on the timer only");
        }).ok();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        #[cfg(unix)]
        {
            let hup = async {
                match hangup.as_mut() {
                    Some(h) => {
                        h.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tick.tick() => {}
                () = hup => tracing::info!("SIGHUP: looking at certificate and key files"),
            }
        }
        #[cfg(not(unix))]
        tick.tick().await;
        for w in &mut watched {
            w.poll();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::path::Path;

    use rustls_pki_types::ServerName;
    use tessera_core::{ProvinceCode, Role, TrustAnchor};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    use super::*;
    use crate::tls;
    use tessera_certs::authority::{AuthorityDir, InitOptions, RenewTarget};

    const DAY: i64 = 86_400;

    fn serial_of(der: &[u8]) -> String {
        tessera_core::cert::hex_string(CertInfo::parse(der).unwrap().serial())
    }

    fn watched(
        identity: &TlsIdentity,
        trust: &Arc<TrustState>,
        bundle: &Path,
        stem: &str,
    ) -> Watched {
        Watched::tls(
            identity.clone(),
            Arc::clone(trust),
            bundle.join(format!("{stem}.crt")),
            bundle.join(format!("{stem}.key")),
        )
    }

    /// Connects, and returns the stream with the serials each side saw.
    async fn connect(
        addr: std::net::SocketAddr,
        client: &TlsIdentity,
        trust: &Arc<TrustState>,
        seen_by_server: &tokio::sync::Mutex<tokio::sync::mpsc::Receiver<String>>,
    ) -> (tokio_rustls::client::TlsStream<TcpStream>, String, String) {
        // A fresh configuration each time: no session to resume.
        let config = tls::client_config(client, Arc::clone(trust), Role::Gateway).unwrap();
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut stream = TlsConnector::from(config)
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap();
        let server_serial = serial_of(stream.get_ref().1.peer_certificates().unwrap()[0].as_ref());
        stream.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf).await.unwrap();
        let client_serial = seen_by_server.lock().await.recv().await.unwrap();
        (stream, server_serial, client_serial)
    }

    #[tokio::test]
    async fn renewed_files_are_presented_on_new_connections_by_server_and_client_alike() {
        tls::install_default_provider();
        let dir = tempfile::tempdir().unwrap();
        let now = unix_now();
        let options = InitOptions {
            name: "Reload test".into(),
            sunset_at: now + 700 * DAY,
        };
        let mut authority = AuthorityDir::init(&dir.path().join("ca"), &options, now).unwrap();
        let gw = authority.enrol_gateway("gw", "127.0.0.1:1", now).unwrap();
        let cp = authority
            .enrol_verifier(ProvinceCode::new(330_000).unwrap(), "checkpoint", now)
            .unwrap();
        let trust = Arc::new(
            TrustState::new(TrustAnchor::from_der(authority.root_der()).unwrap()).unwrap(),
        );
        let server =
            TlsIdentity::from_files(&gw.dir.join("gateway.crt"), &gw.dir.join("gateway.key"))
                .unwrap();
        let client =
            TlsIdentity::from_files(&cp.dir.join("verifier.crt"), &cp.dir.join("verifier.key"))
                .unwrap();
        let mut server_files = watched(&server, &trust, &gw.dir, "gateway");
        let mut client_files = watched(&client, &trust, &cp.dir, "verifier");
        let (old_server, old_client) = (server.serial_hex(), client.serial_hex());

        // An echo server that reports each client's certificate serial.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(tls::server_config(&server, Arc::clone(&trust)).unwrap());
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let seen = tokio::sync::Mutex::new(rx);
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut tls = acceptor.accept(tcp).await.unwrap();
                    let serial =
                        serial_of(tls.get_ref().1.peer_certificates().unwrap()[0].as_ref());
                    let _ = tx.send(serial).await;
                    let mut buf = [0u8; 4];
                    while tls.read_exact(&mut buf).await.is_ok() {
                        if tls.write_all(&buf).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });

        let (mut before, s, c) = connect(addr, &client, &trust, &seen).await;
        assert_eq!(
            (s.as_str(), c.as_str()),
            (old_server.as_str(), old_client.as_str())
        );
        server_files.poll();
        client_files.poll();
        assert_eq!(server.serial_hex(), old_server, "nothing changed yet");

        let g = authority
            .renew(&RenewTarget::Gateway("gw".into()), now)
            .unwrap();
        let v = authority
            .renew(&RenewTarget::Serial(old_client.clone()), now)
            .unwrap();
        server_files.poll();
        client_files.poll();
        assert_eq!(server.serial_hex(), g.new.serial);
        assert_eq!(client.serial_hex(), v.new.serial);
        assert!(server.not_after() >= now + 364 * DAY);

        let (_after, s, c) = connect(addr, &client, &trust, &seen).await;
        assert_eq!((s, c), (g.new.serial.clone(), v.new.serial.clone()));
        // The connection made before goes on with the old certificates.
        before.write_all(b"more").await.unwrap();
        let mut buf = [0u8; 4];
        before.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"more");
        assert_eq!(
            serial_of(before.get_ref().1.peer_certificates().unwrap()[0].as_ref()),
            old_server
        );

        // A key that does not match (half a renewal), or another party's
        // certificate, is not used; the good pair stays in use.
        std::fs::copy(cp.dir.join("verifier.key"), gw.dir.join("gateway.key")).unwrap();
        server_files.poll();
        assert_eq!(server.serial_hex(), g.new.serial);
        std::fs::copy(cp.dir.join("verifier.crt"), gw.dir.join("gateway.crt")).unwrap();
        server_files.poll();
        assert_eq!(server.serial_hex(), g.new.serial);
        assert_eq!(server.identity().role(), Role::Gateway);
        let (_, s, _) = connect(addr, &client, &trust, &seen).await;
        assert_eq!(s, g.new.serial);
    }

    #[test]
    fn a_renewed_pair_that_does_not_name_the_endpoint_is_refused_and_says_which_name() {
        tls::install_default_provider();
        let dir = tempfile::tempdir().unwrap();
        let now = unix_now();
        let options = InitOptions {
            name: "Reload test".into(),
            sunset_at: now + 700 * DAY,
        };
        let mut authority = AuthorityDir::init(&dir.path().join("ca"), &options, now).unwrap();
        let gw = authority
            .enrol_gateway("gw", "gw.example.org:7000", now)
            .unwrap();
        let other = authority
            .enrol_gateway("other", "10.1.2.3:7000", now)
            .unwrap();
        let trust = Arc::new(
            TrustState::new(TrustAnchor::from_der(authority.root_der()).unwrap()).unwrap(),
        );
        let server =
            TlsIdentity::from_files(&gw.dir.join("gateway.crt"), &gw.dir.join("gateway.key"))
                .unwrap();
        let in_use = server.serial_hex();
        let files = watched(&server, &trust, &gw.dir, "gateway");

        // Another gateway's bundle: same role and scope, another host.
        let (cert, key) = (other.dir.join("gateway.crt"), other.dir.join("gateway.key"));
        let outcome = (files.apply)(
            &std::fs::read(&cert).unwrap(),
            &cert,
            &std::fs::read(&key).unwrap(),
            &key,
        );
        match outcome {
            Outcome::Refused(why) => {
                assert!(why.contains("host gw.example.org"), "{why}");
                assert!(why.contains("10.1.2.3"), "{why}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(server.serial_hex(), in_use);

        // A renewal of this gateway names the same host: used.
        let r = authority
            .renew(&RenewTarget::Gateway("gw".into()), now)
            .unwrap();
        let (cert, key) = r.issued;
        let outcome = (files.apply)(
            &std::fs::read(&cert).unwrap(),
            &cert,
            &std::fs::read(&key).unwrap(),
            &key,
        );
        assert!(matches!(outcome, Outcome::Applied(_)), "{outcome:?}");
        assert_eq!(server.serial_hex(), r.new.serial);
    }

    #[test]
    fn a_certificate_from_a_new_issuing_ca_waits_for_the_list_that_carries_it() {
        tls::install_default_provider();
        let dir = tempfile::tempdir().unwrap();
        let now = unix_now();
        let options = InitOptions {
            name: "Reload test".into(),
            sunset_at: now + 700 * DAY,
        };
        let mut authority = AuthorityDir::init(&dir.path().join("ca"), &options, now).unwrap();
        let gw = authority
            .enrol_gateway("gw", "gw.example.org:7000", now)
            .unwrap();
        let root = TrustAnchor::from_der(authority.root_der()).unwrap();
        let trust = Arc::new(TrustState::new(root.clone()).unwrap());
        let (_, list) = authority.publish(now, DAY).unwrap();
        trust.update(&list, now).unwrap();
        let (cert, key) = (gw.dir.join("gateway.crt"), gw.dir.join("gateway.key"));
        let server = TlsIdentity::from_files(&cert, &key).unwrap();
        assert_eq!(server.chain_der().len(), 1, "presents the issuing CA");
        let files = watched(&server, &trust, &gw.dir, "gateway");
        let apply = |files: &Watched| {
            (files.apply)(
                &std::fs::read(&cert).unwrap(),
                &cert,
                &std::fs::read(&key).unwrap(),
                &key,
            )
        };

        // Certified again by a new issuing CA that the list in force does
        // not carry yet: kept waiting, asked again at every look.
        authority.rotate_issuing_ca(true, now).unwrap();
        match apply(&files) {
            Outcome::Wait(why) => assert!(why.contains("does not list"), "{why}"),
            other => panic!("expected to wait, got {other:?}"),
        }
        // The list that carries it (and revokes the old one): used.
        let (_, list) = authority.publish(now + 1, DAY).unwrap();
        trust.update(&list, now + 1).unwrap();
        assert!(matches!(apply(&files), Outcome::Applied(_)));
        // It presents the new certificate and the new issuing CA after it.
        assert_eq!(server.certificate_der(), keys::read_cert(&cert).unwrap());
        assert_eq!(
            server.chain_der(),
            keys::read_certs(&cert).unwrap()[1..].to_vec()
        );
    }
}
