//! The station's own HTTPS certificate, which the devices' browsers check
//! (a browser grants the camera only to a secure context).
//!
//! It is not a tessera certificate: browsers know nothing of the national
//! root. Either the operator gives one (`--tls-cert`/`--tls-key`, PEM: from
//! the city's internal CA installed on its devices, or a public certificate
//! for a DNS name), or the station makes a self-signed one once, kept in
//! the data directory, and prints its SHA-256 fingerprint so that whoever
//! accepts it on a device can compare. docs/OPERATIONS.md says which to use.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::files::{self, DataError};

/// Why the station's certificate could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum StationTlsError {
    /// A PEM file holds no certificate or no key.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// Making the self-signed certificate.
    #[error("making the station certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate and key.
    #[error("the station certificate and key: {0}")]
    Rustls(#[from] rustls::Error),
    /// The data directory.
    #[error(transparent)]
    Data(#[from] DataError),
}

/// The station's certificate chain and key.
#[derive(Debug)]
pub struct StationCert {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// Whether the station made it itself.
    pub self_signed: bool,
}

impl StationCert {
    /// Reads the PEM files `cert` (a chain, leaf first) and `key`.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, StationTlsError> {
        let pem_err = |path: &Path, what: String| StationTlsError::Pem {
            path: path.display().to_string(),
            what,
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| pem_err(cert, e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_err(cert, e.to_string()))?;
        if chain.is_empty() {
            return Err(pem_err(cert, "holds no CERTIFICATE block".into()));
        }
        tessera_certs::files::check_secret(key).map_err(|e| pem_err(key, e.to_string()))?;
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_err(key, e.to_string()))?;
        Ok(Self {
            chain,
            key: key_der,
            self_signed: false,
        })
    }

    /// The self-signed certificate kept in `data`, made on first use for
    /// `names` (DNS names and IP addresses the devices dial).
    pub fn self_signed(data: &Path, names: &[String]) -> Result<Self, StationTlsError> {
        let (cert, key) = (
            data.join(files::STATION_CERT),
            data.join(files::STATION_KEY),
        );
        if !cert.exists() || !key.exists() {
            let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            let mut params = rcgen::CertificateParams::new(names.to_vec())?;
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "tessera checkpoint station");
            let now = rcgen::date_time_ymd(2024, 1, 1);
            params.not_before = now;
            params.not_after = rcgen::date_time_ymd(2034, 1, 1);
            let certificate = params.self_signed(&key_pair)?;
            files::write_durable(&key, key_pair.serialize_pem().as_bytes())?;
            files::write_durable(&cert, certificate.pem().as_bytes())?;
        }
        Ok(Self {
            self_signed: true,
            ..Self::from_files(&cert, &key)?
        })
    }

    /// The SHA-256 fingerprint of the leaf certificate, as browsers show it
    /// (colon-separated upper-case hex).
    pub fn fingerprint(&self) -> String {
        let digest = self
            .chain
            .first()
            .map(|c| Sha256::digest(c.as_ref()))
            .unwrap_or_default();
        digest
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    /// A rustls server configuration presenting it: TLS 1.3 and 1.2 (some
    /// tablets' browsers), HTTP/1.1, no client certificate.
    pub fn server_config(self) -> Result<Arc<ServerConfig>, StationTlsError> {
        let mut config = ServerConfig::builder_with_provider(tessera_runtime::tls::provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(self.chain, self.key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_self_signed_certificate_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        files::prepare(dir.path()).unwrap();
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let first = StationCert::self_signed(dir.path(), &names).unwrap();
        let again = StationCert::self_signed(dir.path(), &names).unwrap();
        assert_eq!(first.fingerprint(), again.fingerprint());
        assert_eq!(first.fingerprint().len(), 32 * 3 - 1);
        first.server_config().unwrap();
    }
}
