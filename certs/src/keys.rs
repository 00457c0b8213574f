//! Ed25519 keys: generation, PEM files, and the conversions between the
//! ed25519-dalek key used for signing and the rcgen key used for issuing.

use std::fs;
use std::io::Write;
use std::path::Path;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rand::rngs::OsRng;

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
    /// The key is not an Ed25519 PKCS#8 key.
    #[error("{path}: not an Ed25519 PKCS#8 private key")]
    NotEd25519 {
        /// The file.
        path: String,
    },
    /// The file exists and would be overwritten.
    #[error("{0} already exists: refusing to overwrite it")]
    Exists(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A fresh random Ed25519 key.
pub fn generate_key() -> SigningKey {
    SigningKey::generate(&mut OsRng)
}

/// The key as PKCS#8 v2 DER (seed and public key), the form ring and
/// rustls load.
pub fn key_to_pkcs8_der(key: &SigningKey) -> Result<Vec<u8>, KeyError> {
    key.to_pkcs8_der()
        .map(|doc| doc.as_bytes().to_vec())
        .map_err(|_| KeyError::NotEd25519 {
            path: "<memory>".into(),
        })
}

/// The key in rcgen's form, for issuing certificates.
pub fn key_to_rcgen(key: &SigningKey) -> Result<rcgen::KeyPair, KeyError> {
    let der = key_to_pkcs8_der(key)?;
    rcgen::KeyPair::try_from(der.as_slice()).map_err(|_| KeyError::NotEd25519 {
        path: "<memory>".into(),
    })
}

/// PEM text of a private key, as PKCS#8 v1 (RFC 8410: the seed alone),
/// the form OpenSSL 3.0 (Debian 12's `openssl`, Python's `ssl`) reads;
/// it refuses the v2 form with the public key attached. [`read_key`] reads
/// both.
pub fn key_to_pem(key: &SigningKey) -> Result<String, KeyError> {
    let der = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    }
    .to_pkcs8_der()
    .map_err(|_| KeyError::NotEd25519 {
        path: "<memory>".into(),
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

/// Reads an Ed25519 private key from a PEM file.
pub fn read_key(path: &Path) -> Result<SigningKey, KeyError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    key_from_pem(&bytes, path)
}

/// Reads an Ed25519 private key from the PEM text of the file at `path`
/// (named in errors only).
pub fn key_from_pem(bytes: &[u8], path: &Path) -> Result<SigningKey, KeyError> {
    let item = rustls_pemfile::private_key(&mut &bytes[..])
        .map_err(|e| KeyError::Pem {
            path: path.display().to_string(),
            what: e.to_string(),
        })?
        .ok_or_else(|| KeyError::Pem {
            path: path.display().to_string(),
            what: "no PRIVATE KEY block".into(),
        })?;
    match item {
        rustls_pki_types::PrivateKeyDer::Pkcs8(der) => {
            SigningKey::from_pkcs8_der(der.secret_pkcs8_der()).map_err(|_| KeyError::NotEd25519 {
                path: path.display().to_string(),
            })
        }
        _ => Err(KeyError::NotEd25519 {
            path: path.display().to_string(),
        }),
    }
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
/// mode 0600 from their creation on.
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
    file.write_all(contents).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_pem_files_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate_key();
        let path = dir.path().join("k.key");
        write_new_file(&path, key_to_pem(&key).unwrap().as_bytes(), true).unwrap();
        assert_eq!(read_key(&path).unwrap().to_bytes(), key.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            write_new_file(&path, b"x", true),
            Err(KeyError::Exists(_))
        ));
        assert_eq!(read_key(&path).unwrap().to_bytes(), key.to_bytes());
    }

    #[test]
    fn key_files_are_pkcs8_v1_and_v2_files_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate_key();
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
        assert_eq!(read_key(&path).unwrap().to_bytes(), key.to_bytes());
    }

    #[test]
    fn rcgen_accepts_our_keys() {
        let key = generate_key();
        let kp = key_to_rcgen(&key).unwrap();
        assert_eq!(kp.public_key_raw(), key.verifying_key().as_bytes());
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
        assert!(read_key(&path).is_err());
        fs::write(&path, "hello").unwrap();
        assert!(matches!(read_key(&path), Err(KeyError::Pem { .. })));
    }
}
