//! Keys and their files: the P-256 keys of the root and the TLS roles
//! ([`TlsKey`]), the Ed25519 keys of the badge and trust-list signers
//! ([`SigningKey`]), PEM files of both, and certificate files.
//!
//! | key | type | why |
//! | --- | --- | --- |
//! | root, gateway, city node, authority, operator, verifier | ECDSA P-256 ([`TlsKey`]) | the one TLS signature scheme BoringSSL, OpenSSL, rustls, Go and Java all offer |
//! | badge signer, trust-list signer | Ed25519 ([`SigningKey`]) | 64-byte signatures keep a badge small enough for a QR code |
//!
//! Key files are PKCS#8 PEM (`PRIVATE KEY`), mode 0600, the form OpenSSL
//! 3.0, Python's `cryptography` and grpcio, and Node.js read. Reading a key
//! of the wrong type for its role is a [`KeyError::WrongKeyType`] naming the
//! file, the type found and the type expected.
//!
//! Certificates are signed with the root's key through [`TlsKey`]'s
//! implementation of rcgen's `SigningKey`: ECDSA P-256 with SHA-256 and an
//! RFC 6979 nonce, so the same request and key give the same certificate
//! bytes (the golden vectors rely on it). TLS handshakes sign through
//! rustls' ring provider, which loads the same PKCS#8 key.

use std::fs;
use std::io::Write;
use std::path::Path;

pub use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use p256::ecdsa::signature::Signer as _;
use rand::rngs::OsRng;
use tessera_core::cert::{CertError, KeyAlgorithm};
use tessera_core::{Role, TrustAnchor};

/// What an operator holding files made before TLS keys moved to P-256 must
/// do: there is no migration (docs/PKI.md says why).
pub const LEGACY_HINT: &str = "it was made before tessera's TLS keys moved from Ed25519 to ECDSA P-256, \
     and such files cannot be migrated: create a new authority with `tessera authority init` in a \
     new directory and re-enrol every city, gateway, operator and verifier from it (docs/PKI.md)";

/// Why a key or certificate file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file holds no usable PEM item of the expected kind.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: String,
        /// What was wrong.
        what: String,
    },
    /// A PKCS#8 key of the expected type whose contents do not decode.
    #[error("{path}: not a valid {expected} PKCS#8 private key")]
    BadKey {
        /// The file.
        path: String,
        /// The key type expected (and named by the file).
        expected: KeyAlgorithm,
    },
    /// A key of another type than its role uses.
    #[error("{path}: holds an {found} key, but an {expected} key is needed here{}", legacy(.found, .expected))]
    WrongKeyType {
        /// The file.
        path: String,
        /// The type found in the file.
        found: KeyAlgorithm,
        /// The type the role uses.
        expected: KeyAlgorithm,
    },
    /// A root certificate that is not a tessera root.
    #[error("{path}: not a tessera national root: {reason}{}", legacy_root(.reason))]
    Root {
        /// The file.
        path: String,
        /// Why (not a `source`: the message already says it).
        reason: CertError,
    },
    /// The file exists and would be overwritten.
    #[error("{0} already exists: refusing to overwrite it")]
    Exists(String),
}

fn legacy(found: &KeyAlgorithm, expected: &KeyAlgorithm) -> String {
    if *found == KeyAlgorithm::Ed25519 && *expected == KeyAlgorithm::EcdsaP256 {
        format!(": {LEGACY_HINT}")
    } else {
        String::new()
    }
}

fn legacy_root(source: &CertError) -> String {
    let ed25519 = match source {
        CertError::SignatureAlgorithm(name) => name == "Ed25519",
        CertError::KeyType { found, .. } => *found == KeyAlgorithm::Ed25519,
        _ => false,
    };
    if ed25519 {
        format!("; {LEGACY_HINT}")
    } else {
        String::new()
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The P-256 key of the root or of a TLS role (gateway, city node,
/// authority, operator, verifier).
#[derive(Clone)]
pub struct TlsKey {
    key: p256::ecdsa::SigningKey,
    /// The public key as an uncompressed SEC1 point, as certificates carry
    /// it.
    public: Vec<u8>,
}

impl std::fmt::Debug for TlsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsKey")
            .field("public", &tessera_core::cert::hex_string(&self.public))
            .finish_non_exhaustive()
    }
}

impl From<p256::ecdsa::SigningKey> for TlsKey {
    fn from(key: p256::ecdsa::SigningKey) -> Self {
        let public = key
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        Self { key, public }
    }
}

impl TlsKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        p256::ecdsa::SigningKey::random(&mut OsRng).into()
    }

    /// The key with this secret scalar (big-endian), for fixtures that must
    /// be reproducible (the golden and conformance vectors); refuses zero
    /// and values not below the group order.
    pub fn from_bytes(secret: &[u8; 32]) -> Result<Self, KeyError> {
        p256::ecdsa::SigningKey::from_bytes(secret.into())
            .map(Self::from)
            .map_err(|_| KeyError::BadKey {
                path: "<memory>".into(),
                expected: KeyAlgorithm::EcdsaP256,
            })
    }

    /// The public key.
    pub fn verifying_key(&self) -> &p256::ecdsa::VerifyingKey {
        self.key.verifying_key()
    }

    /// The ECDSA key, for signing what is not a certificate (a deletion
    /// attestation).
    pub fn ecdsa(&self) -> &p256::ecdsa::SigningKey {
        &self.key
    }

    /// The key as PKCS#8 DER (RFC 5915 `ECPrivateKey` with its public key),
    /// the form rustls' ring provider loads.
    pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, KeyError> {
        use p256::pkcs8::EncodePrivateKey as _;
        self.key
            .to_pkcs8_der()
            .map(|doc| doc.as_bytes().to_vec())
            .map_err(|_| KeyError::BadKey {
                path: "<memory>".into(),
                expected: KeyAlgorithm::EcdsaP256,
            })
    }

    /// PEM text of the key (PKCS#8 `PRIVATE KEY`).
    pub fn to_pem(&self) -> Result<String, KeyError> {
        Ok(pem_encode("PRIVATE KEY", &self.to_pkcs8_der()?))
    }
}

impl rcgen::PublicKeyData for TlsKey {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for TlsKey {
    /// ECDSA P-256 with SHA-256, RFC 6979 nonce, as a DER ECDSA-Sig-Value.
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let signature: p256::ecdsa::Signature = self.key.sign(msg);
        Ok(signature.to_der().as_bytes().to_vec())
    }
}

/// A fresh key of the type a role's certificate carries.
#[derive(Debug, Clone)]
pub enum RoleKey {
    /// The root's or a TLS role's key.
    Tls(TlsKey),
    /// A badge or trust-list signer's key.
    Signer(SigningKey),
}

impl RoleKey {
    /// A fresh random key of the type `role` carries.
    pub fn generate_for(role: Role) -> Self {
        if uses_tls_key(role) {
            RoleKey::Tls(TlsKey::generate())
        } else {
            RoleKey::Signer(generate_signer_key())
        }
    }

    /// PEM text of the key (PKCS#8 `PRIVATE KEY`).
    pub fn to_pem(&self) -> Result<String, KeyError> {
        match self {
            RoleKey::Tls(key) => key.to_pem(),
            RoleKey::Signer(key) => key_to_pem(key),
        }
    }
}

/// A fresh random Ed25519 key, for a badge or trust-list signer.
pub fn generate_signer_key() -> SigningKey {
    SigningKey::generate(&mut OsRng)
}

/// The key as PKCS#8 v2 DER (seed and public key).
pub fn key_to_pkcs8_der(key: &SigningKey) -> Result<Vec<u8>, KeyError> {
    key.to_pkcs8_der()
        .map(|doc| doc.as_bytes().to_vec())
        .map_err(|_| KeyError::BadKey {
            path: "<memory>".into(),
            expected: KeyAlgorithm::Ed25519,
        })
}

/// PEM text of a signer's private key, as PKCS#8 v1 (RFC 8410: the seed
/// alone), the form OpenSSL 3.0 (Debian 12's `openssl`, Python's `ssl`)
/// reads; it refuses the v2 form with the public key attached.
/// [`read_signer_key`] reads both.
pub fn key_to_pem(key: &SigningKey) -> Result<String, KeyError> {
    let der = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    }
    .to_pkcs8_der()
    .map_err(|_| KeyError::BadKey {
        path: "<memory>".into(),
        expected: KeyAlgorithm::Ed25519,
    })?;
    Ok(pem_encode("PRIVATE KEY", der.as_bytes()))
}

/// PEM text of a certificate.
pub fn cert_to_pem(der: &[u8]) -> String {
    pem_encode("CERTIFICATE", der)
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// The PKCS#8 DER in the first `PRIVATE KEY` block of a PEM text.
fn pkcs8_from_pem(bytes: &[u8], path: &Path) -> Result<Vec<u8>, KeyError> {
    let pem_err = |what: String| KeyError::Pem {
        path: path.display().to_string(),
        what,
    };
    let item = rustls_pemfile::private_key(&mut &bytes[..])
        .map_err(|e| pem_err(e.to_string()))?
        .ok_or_else(|| pem_err("no PRIVATE KEY block".into()))?;
    match item {
        rustls_pki_types::PrivateKeyDer::Pkcs8(der) => Ok(der.secret_pkcs8_der().to_vec()),
        rustls_pki_types::PrivateKeyDer::Sec1(_) => Err(pem_err(
            "an \"EC PRIVATE KEY\" (SEC1) block: convert it to PKCS#8 (\"PRIVATE KEY\")".into(),
        )),
        _ => Err(pem_err(
            "not a PKCS#8 \"PRIVATE KEY\" block (an RSA key?)".into(),
        )),
    }
}

/// The key type a PKCS#8 DER names.
fn pkcs8_algorithm(der: &[u8], path: &Path) -> Result<KeyAlgorithm, KeyError> {
    const ED25519: &str = "1.3.101.112";
    const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
    const P256: &str = "1.2.840.10045.3.1.7";
    let info = p256::pkcs8::PrivateKeyInfo::try_from(der).map_err(|e| KeyError::Pem {
        path: path.display().to_string(),
        what: format!("not a PKCS#8 private key: {e}"),
    })?;
    let oid = info.algorithm.oid.to_string();
    let curve = info
        .algorithm
        .parameters_oid()
        .ok()
        .map(|oid| oid.to_string());
    Ok(match (oid.as_str(), curve.as_deref()) {
        (ED25519, _) => KeyAlgorithm::Ed25519,
        (EC_PUBLIC_KEY, Some(P256)) => KeyAlgorithm::EcdsaP256,
        (oid, Some(curve)) => KeyAlgorithm::Other(format!("{oid} on curve {curve}")),
        (oid, None) => KeyAlgorithm::Other(oid.into()),
    })
}

fn expect_type(der: &[u8], path: &Path, expected: KeyAlgorithm) -> Result<(), KeyError> {
    let found = pkcs8_algorithm(der, path)?;
    if found != expected {
        return Err(KeyError::WrongKeyType {
            path: path.display().to_string(),
            found,
            expected,
        });
    }
    Ok(())
}

/// Reads a signer's Ed25519 private key from a PEM file.
pub fn read_signer_key(path: &Path) -> Result<SigningKey, KeyError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    signer_key_from_pem(&bytes, path)
}

/// Reads a signer's Ed25519 private key from the PEM text of the file at
/// `path` (named in errors only).
pub fn signer_key_from_pem(bytes: &[u8], path: &Path) -> Result<SigningKey, KeyError> {
    let der = pkcs8_from_pem(bytes, path)?;
    expect_type(&der, path, KeyAlgorithm::Ed25519)?;
    SigningKey::from_pkcs8_der(&der).map_err(|_| KeyError::BadKey {
        path: path.display().to_string(),
        expected: KeyAlgorithm::Ed25519,
    })
}

/// Reads the root's or a TLS role's P-256 private key from a PEM file.
pub fn read_tls_key(path: &Path) -> Result<TlsKey, KeyError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    tls_key_from_pem(&bytes, path)
}

/// Reads a P-256 private key from the PEM text of the file at `path` (named
/// in errors only).
pub fn tls_key_from_pem(bytes: &[u8], path: &Path) -> Result<TlsKey, KeyError> {
    use p256::pkcs8::DecodePrivateKey as _;
    let der = pkcs8_from_pem(bytes, path)?;
    expect_type(&der, path, KeyAlgorithm::EcdsaP256)?;
    p256::ecdsa::SigningKey::from_pkcs8_der(&der)
        .map(TlsKey::from)
        .map_err(|_| KeyError::BadKey {
            path: path.display().to_string(),
            expected: KeyAlgorithm::EcdsaP256,
        })
}

/// Reads the national root certificate from a PEM file and checks it is a
/// tessera root; one made before TLS keys moved to P-256 is refused with
/// what to do.
pub fn read_root(path: &Path) -> Result<TrustAnchor, KeyError> {
    let der = read_cert(path)?;
    TrustAnchor::from_der(&der).map_err(|reason| KeyError::Root {
        path: path.display().to_string(),
        reason,
    })
}

/// Whether a certificate's role is one whose key is a [`TlsKey`].
pub fn uses_tls_key(role: Role) -> bool {
    KeyAlgorithm::for_role(role) == KeyAlgorithm::EcdsaP256
}

/// Reads every certificate from a PEM file, leaf first.
pub fn read_certs(path: &Path) -> Result<Vec<Vec<u8>>, KeyError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    certs_from_pem(&bytes, path)
}

/// Reads every certificate from the PEM text of the file at `path` (named
/// in errors only), leaf first.
pub fn certs_from_pem(bytes: &[u8], path: &Path) -> Result<Vec<Vec<u8>>, KeyError> {
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut &bytes[..]).collect();
    let certs = certs.map_err(|e| KeyError::Pem {
        path: path.display().to_string(),
        what: e.to_string(),
    })?;
    if certs.is_empty() {
        return Err(KeyError::Pem {
            path: path.display().to_string(),
            what: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs.into_iter().map(|c| c.to_vec()).collect())
}

/// Reads the first certificate from a PEM file.
pub fn read_cert(path: &Path) -> Result<Vec<u8>, KeyError> {
    let mut certs = read_certs(path)?;
    Ok(certs.swap_remove(0))
}

/// Writes a new file durably, refusing to overwrite one; `private` files get
/// mode 0600 from their creation on. A file that cannot be written whole is
/// removed.
pub fn write_new_file(path: &Path, contents: &[u8], private: bool) -> Result<(), KeyError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists(path.display().to_string())
        } else {
            io_err(path)(e)
        }
    })?;
    if let Err(e) = file.write_all(contents).and_then(|()| file.sync_all()) {
        // The file is ours (created just now): a partial one (a full disk
        // leaves it empty) would be read as a damaged key at the next start.
        drop(file);
        let _ = fs::remove_file(path);
        return Err(io_err(path)(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_pem_files_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate_signer_key();
        let path = dir.path().join("k.key");
        write_new_file(&path, key_to_pem(&key).unwrap().as_bytes(), true).unwrap();
        assert_eq!(read_signer_key(&path).unwrap().to_bytes(), key.to_bytes());
        let tls = TlsKey::generate();
        let tls_path = dir.path().join("tls.key");
        write_new_file(&tls_path, tls.to_pem().unwrap().as_bytes(), true).unwrap();
        assert_eq!(
            read_tls_key(&tls_path).unwrap().verifying_key(),
            tls.verifying_key()
        );
        #[cfg(unix)]
        for path in [&path, &tls_path] {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            write_new_file(&path, b"x", true),
            Err(KeyError::Exists(_))
        ));
        assert_eq!(read_signer_key(&path).unwrap().to_bytes(), key.to_bytes());
    }

    #[test]
    fn signer_key_files_are_pkcs8_v1_and_v2_files_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate_signer_key();
        let pem = key_to_pem(&key).unwrap();
        let der = pem::parse(&pem).unwrap().into_contents();
        // SEQUENCE { INTEGER 0 (v1), AlgorithmIdentifier, OCTET STRING }:
        // 48 bytes, no public key attached.
        assert_eq!(der.len(), 48);
        assert_eq!(&der[..5], &[0x30, 0x2e, 0x02, 0x01, 0x00]);
        // A key file written by an earlier version (v2) still reads.
        let path = dir.path().join("v2.key");
        let v2 = pem_encode("PRIVATE KEY", &key_to_pkcs8_der(&key).unwrap());
        fs::write(&path, v2).unwrap();
        assert_eq!(read_signer_key(&path).unwrap().to_bytes(), key.to_bytes());
    }

    #[test]
    fn a_key_of_the_wrong_type_names_the_file_and_both_types() {
        let dir = tempfile::tempdir().unwrap();
        let signer = dir.path().join("badge-signer.key");
        fs::write(&signer, key_to_pem(&generate_signer_key()).unwrap()).unwrap();
        let tls = dir.path().join("node.key");
        fs::write(&tls, TlsKey::generate().to_pem().unwrap()).unwrap();

        let err = read_tls_key(&signer).unwrap_err();
        assert!(
            matches!(&err, KeyError::WrongKeyType { path, found: KeyAlgorithm::Ed25519, expected: KeyAlgorithm::EcdsaP256 } if path.ends_with("badge-signer.key")),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains(
                "badge-signer.key: holds an Ed25519 key, but an ECDSA P-256 key is needed here"
            ),
            "{text}"
        );
        assert!(text.contains("tessera authority init"), "{text}");

        let err = read_signer_key(&tls).unwrap_err();
        assert!(
            matches!(
                &err,
                KeyError::WrongKeyType {
                    found: KeyAlgorithm::EcdsaP256,
                    expected: KeyAlgorithm::Ed25519,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!err.to_string().contains("authority init"), "{err}");
    }

    #[test]
    fn tls_keys_sign_certificates_deterministically_and_load_into_rustls() {
        let key = TlsKey::generate();
        let a = rcgen::SigningKey::sign(&key, b"tbs").unwrap();
        let b = rcgen::SigningKey::sign(&key, b"tbs").unwrap();
        assert_eq!(a, b, "RFC 6979");
        let der = key.to_pkcs8_der().unwrap();
        let provider = rustls::crypto::ring::default_provider();
        let signing = provider
            .key_provider
            .load_private_key(rustls_pki_types::PrivateKeyDer::Pkcs8(der.into()))
            .unwrap();
        assert_eq!(signing.algorithm(), rustls::SignatureAlgorithm::ECDSA);
    }

    #[test]
    fn garbage_key_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.key");
        fs::write(
            &path,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        assert!(read_signer_key(&path).is_err());
        assert!(read_tls_key(&path).is_err());
        fs::write(&path, "hello").unwrap();
        assert!(matches!(read_signer_key(&path), Err(KeyError::Pem { .. })));
    }
}
