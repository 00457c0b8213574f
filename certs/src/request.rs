//! Certificate signing requests (PKCS#10): how a party that holds its own
//! key asks the authority for a certificate.
//!
//! The party makes a request with [`make_request`] (`tessera keygen`): its
//! public key, signed with its private key. The authority reads it with
//! [`CheckedRequest::parse`], which keeps exactly two things from it:
//!
//! - the public key, which must be ECDSA P-256 or Ed25519, and
//! - the proof that the requester holds the private key: the request's
//!   self-signature, checked here with that public key (ecdsa-with-SHA256
//!   for P-256, Ed25519 for Ed25519; no other signature algorithm).
//!
//! Everything else the request says (subject, requested extensions,
//! attributes) is ignored: the authority's profile ([`crate::profile`]) and
//! its enrolment arguments decide what the certificate says. Whether the
//! key's type fits the role is checked by [`CheckedRequest::key_for`].

use std::path::Path;

use ed25519_dalek::pkcs8::DecodePublicKey as _;
use p256::pkcs8::EncodePublicKey as _;
use rcgen::{CertificateParams, DistinguishedName, DnType};
use sha2::{Digest, Sha256};
use tessera_core::Role;
use tessera_core::cert::KeyAlgorithm;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

use crate::keys::{KeyError, RoleKey};
use crate::profile::{ORGANISATION, SubjectKey};

/// The largest request file read: a P-256 request is about 400 bytes.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

const ED25519: &str = "1.3.101.112";
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const P256: &str = "1.2.840.10045.3.1.7";
const ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";
/// The only DER encodings of the signature algorithm accepted: the
/// parser is lenient about the OID's tag, and a request has one encoding.
const ECDSA_WITH_SHA256_DER: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];
const ED25519_DER: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];

/// Why a certificate signing request was refused. Nothing was issued.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The file could not be read.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: String,
        /// The cause (in the message, so not a `source`).
        cause: std::io::Error,
    },
    /// Not a PKCS#10 request at all.
    #[error("{path}: not a certificate signing request (PKCS#10, PEM or DER): {what}")]
    Malformed {
        /// The file.
        path: String,
        /// What was wrong.
        what: String,
    },
    /// The request's key is of a type tessera never certifies.
    #[error(
        "{path}: the request carries an {found} key; tessera certifies only ECDSA P-256 and Ed25519 keys"
    )]
    UnsupportedKey {
        /// The file.
        path: String,
        /// The type found.
        found: KeyAlgorithm,
    },
    /// The request's key is of the other type than the role's certificate carries.
    #[error(
        "{path}: the request carries an {found} key, but {role} certificates carry {expected} keys"
    )]
    WrongKeyType {
        /// The file.
        path: String,
        /// The role being enrolled.
        role: Role,
        /// The type found.
        found: KeyAlgorithm,
        /// The type the role carries.
        expected: KeyAlgorithm,
    },
    /// The request is signed with another algorithm than its key's.
    #[error(
        "{path}: the request is signed with algorithm {found}, but an {key} key signs with {expected}"
    )]
    SignatureAlgorithm {
        /// The file.
        path: String,
        /// The key type.
        key: KeyAlgorithm,
        /// The algorithm OID found.
        found: String,
        /// The algorithm OID expected.
        expected: &'static str,
    },
    /// The self-signature does not verify: the request was altered, or its
    /// maker does not hold the private key.
    #[error(
        "{path}: the request's signature does not verify with its own key: it was altered, or its maker does not hold the private key"
    )]
    BadSignature {
        /// The file.
        path: String,
    },
}

/// A request whose self-signature verified: its public key, proven held.
#[derive(Debug, Clone)]
pub struct CheckedRequest {
    key: SubjectKey,
    der: Vec<u8>,
    /// The request's SubjectPublicKeyInfo, DER.
    spki: Vec<u8>,
    path: String,
}

impl CheckedRequest {
    /// Reads and checks the request in the file at `path`, refusing a file
    /// over [`MAX_REQUEST_BYTES`] before reading it.
    pub fn read(path: &Path) -> Result<Self, RequestError> {
        let io = |cause| RequestError::Io {
            path: path.display().to_string(),
            cause,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_REQUEST_BYTES as u64 {
            return Err(RequestError::Malformed {
                path: path.display().to_string(),
                what: format!("{size} bytes, more than a request's {MAX_REQUEST_BYTES}"),
            });
        }
        let bytes = std::fs::read(path).map_err(io)?;
        Self::parse(&bytes, path)
    }

    /// Checks a request given as PEM (`CERTIFICATE REQUEST`) or DER; `path`
    /// is named in errors only.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, RequestError> {
        let name = path.display().to_string();
        let malformed = |what: String| RequestError::Malformed {
            path: name.clone(),
            what,
        };
        let text = bytes.trim_ascii_start();
        let der = if text.starts_with(b"-----BEGIN") {
            let pem = pem::parse(text).map_err(|e| malformed(e.to_string()))?;
            if !matches!(pem.tag(), "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST") {
                return Err(malformed(format!(
                    "a {:?} PEM block, not a CERTIFICATE REQUEST",
                    pem.tag()
                )));
            }
            pem.into_contents()
        } else {
            bytes.to_vec()
        };
        let (rest, csr) =
            X509CertificationRequest::from_der(&der).map_err(|e| malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(malformed(format!("{} bytes after the request", rest.len())));
        }
        let info = &csr.certification_request_info;
        let spki = info.subject_pki.raw;
        let algorithm = spki_algorithm(spki).map_err(malformed)?;
        let signed = info.raw;
        if csr.signature_value.unused_bits != 0 {
            return Err(malformed(
                "the signature is not a whole number of bytes".into(),
            ));
        }
        let signature = &csr.signature_value.data;
        let sig_oid = csr.signature_algorithm.algorithm.to_id_string();
        // The encoded signature algorithm follows the signed part.
        let after_info = (signed.as_ptr() as usize)
            .checked_sub(der.as_ptr() as usize)
            .map(|offset| offset + signed.len())
            .and_then(|start| der.get(start..))
            .unwrap_or_default();
        let bad_signature = || RequestError::BadSignature { path: name.clone() };
        let key = match algorithm {
            KeyAlgorithm::EcdsaP256 => {
                expect_sig(&sig_oid, ECDSA_WITH_SHA256, &algorithm, &name)?;
                if !after_info.starts_with(ECDSA_WITH_SHA256_DER) {
                    return Err(malformed(
                        "the signature algorithm is not DER-encoded".into(),
                    ));
                }
                let key = p256::ecdsa::VerifyingKey::from_public_key_der(spki)
                    .map_err(|e| malformed(format!("bad P-256 public key: {e}")))?;
                let sig =
                    p256::ecdsa::Signature::from_der(signature).map_err(|_| bad_signature())?;
                p256::ecdsa::signature::Verifier::verify(&key, signed, &sig)
                    .map_err(|_| bad_signature())?;
                SubjectKey::EcdsaP256(key.to_encoded_point(false).as_bytes().to_vec())
            }
            KeyAlgorithm::Ed25519 => {
                expect_sig(&sig_oid, ED25519, &algorithm, &name)?;
                if !after_info.starts_with(ED25519_DER) {
                    return Err(malformed(
                        "the signature algorithm is not DER-encoded".into(),
                    ));
                }
                let key = ed25519_dalek::VerifyingKey::from_public_key_der(spki)
                    .map_err(|e| malformed(format!("bad Ed25519 public key: {e}")))?;
                let sig =
                    ed25519_dalek::Signature::from_slice(signature).map_err(|_| bad_signature())?;
                key.verify_strict(signed, &sig)
                    .map_err(|_| bad_signature())?;
                SubjectKey::Ed25519(key.to_bytes())
            }
            found @ KeyAlgorithm::Other(_) => {
                return Err(RequestError::UnsupportedKey { path: name, found });
            }
        };
        let spki = spki.to_vec();
        Ok(Self {
            key,
            der,
            spki,
            path: name,
        })
    }

    /// The key's type.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.key.algorithm()
    }

    /// The request as DER, to keep on file.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The request as PEM (`CERTIFICATE REQUEST`), to keep on file.
    pub fn to_pem(&self) -> String {
        pem::encode_config(
            &pem::Pem::new("CERTIFICATE REQUEST", self.der.clone()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    }

    /// The SHA-256 fingerprint of the public key (of its DER
    /// SubjectPublicKeyInfo), for the requester and the authority to
    /// compare out of band.
    pub fn fingerprint(&self) -> String {
        spki_fingerprint(&self.spki)
    }

    /// The public key, if its type is the one `role`'s certificate carries.
    pub fn key_for(&self, role: Role) -> Result<SubjectKey, RequestError> {
        let expected = KeyAlgorithm::for_role(role);
        if self.key.algorithm() != expected {
            return Err(RequestError::WrongKeyType {
                path: self.path.clone(),
                role,
                found: self.key.algorithm(),
                expected,
            });
        }
        Ok(self.key.clone())
    }
}

fn expect_sig(
    found: &str,
    expected: &'static str,
    key: &KeyAlgorithm,
    path: &str,
) -> Result<(), RequestError> {
    if found != expected {
        return Err(RequestError::SignatureAlgorithm {
            path: path.to_owned(),
            key: key.clone(),
            found: found.to_owned(),
            expected,
        });
    }
    Ok(())
}

/// The key type a DER SubjectPublicKeyInfo names.
fn spki_algorithm(spki: &[u8]) -> Result<KeyAlgorithm, String> {
    let info = p256::pkcs8::spki::SubjectPublicKeyInfoRef::try_from(spki)
        .map_err(|e| format!("bad public key info: {e}"))?;
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

/// SHA-256 of a DER SubjectPublicKeyInfo, as colon-separated hex: what
/// `openssl pkey -pubin -outform DER | sha256sum` gives.
pub fn spki_fingerprint(spki: &[u8]) -> String {
    Sha256::digest(spki)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The fingerprint [`CheckedRequest::fingerprint`] gives for a request made
/// for `key`, for its maker to pass on.
pub fn key_fingerprint(key: &RoleKey) -> Result<String, KeyError> {
    let spki = match key {
        RoleKey::Tls(key) => key
            .verifying_key()
            .to_public_key_der()
            .map(|doc| doc.as_bytes().to_vec()),
        RoleKey::Signer(key) => {
            use ed25519_dalek::pkcs8::EncodePublicKey as _;
            key.verifying_key()
                .to_public_key_der()
                .map(|doc| doc.as_bytes().to_vec())
        }
    }
    .map_err(|e| KeyError::Pem {
        path: "<memory>".into(),
        what: format!("encoding the public key failed: {e}"),
    })?;
    Ok(spki_fingerprint(&spki))
}

/// A PEM certificate signing request for `key`, signed with it. The
/// subject (`common_name`) is for people reading the request; the authority
/// ignores it.
pub fn make_request(key: &RoleKey, common_name: &str) -> Result<String, KeyError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANISATION);
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    let failed = |e: rcgen::Error| KeyError::Pem {
        path: "<request>".into(),
        what: format!("making the request failed: {e}"),
    };
    let csr = match key {
        RoleKey::Tls(key) => params.serialize_request(key),
        RoleKey::Signer(key) => params.serialize_request(&Ed25519Signer(key)),
    }
    .map_err(failed)?;
    csr.pem().map_err(failed)
}

/// A PEM certificate signing request for a badge signer's key held
/// anywhere ([`BadgeKey`]: a PKCS#11 token, for instance), signed by that
/// key, so the authority sees proof of possession as for a key file.
pub fn make_held_key_request(
    key: &dyn tessera_core::badge::BadgeKey,
    common_name: &str,
) -> Result<String, KeyError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANISATION);
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    let failed = |e: rcgen::Error| KeyError::Pem {
        path: "<request>".into(),
        what: format!("making the request failed: {e}"),
    };
    let held = HeldSigner {
        key,
        public: key.public_key().to_bytes(),
    };
    let csr = params.serialize_request(&held).map_err(failed)?;
    csr.pem().map_err(failed)
}

/// The fingerprint a request for a held key carries (see [`spki_fingerprint`]).
pub fn held_key_fingerprint(key: &dyn tessera_core::badge::BadgeKey) -> Result<String, KeyError> {
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    let spki = key
        .public_key()
        .to_public_key_der()
        .map_err(|e| KeyError::Pem {
            path: "<memory>".into(),
            what: format!("encoding the public key failed: {e}"),
        })?;
    Ok(spki_fingerprint(spki.as_bytes()))
}

/// A held Ed25519 key as rcgen signs with it.
struct HeldSigner<'a> {
    key: &'a dyn tessera_core::badge::BadgeKey,
    public: [u8; 32],
}

impl rcgen::PublicKeyData for HeldSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ED25519
    }
}

impl rcgen::SigningKey for HeldSigner<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        match self.key.sign(msg) {
            Ok(signature) => Ok(signature.to_vec()),
            Err(e) => {
                tracing::error!(error = %e, "the held key could not sign the request");
                Err(rcgen::Error::RemoteKeyError)
            }
        }
    }
}

/// An Ed25519 key as rcgen signs with it.
struct Ed25519Signer<'a>(&'a ed25519_dalek::SigningKey);

impl rcgen::PublicKeyData for Ed25519Signer<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0.as_ref().as_bytes()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ED25519
    }
}

impl rcgen::SigningKey for Ed25519Signer<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        use ed25519_dalek::Signer as _;
        Ok(self.0.sign(msg).to_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{TlsKey, generate_signer_key};

    fn parse(pem: &str) -> Result<CheckedRequest, RequestError> {
        CheckedRequest::parse(pem.as_bytes(), Path::new("x.csr"))
    }

    #[test]
    fn requests_of_both_key_types_verify_and_carry_the_key() {
        let tls = TlsKey::generate();
        let req = parse(&make_request(&RoleKey::Tls(tls.clone()), "n").unwrap()).unwrap();
        assert_eq!(req.algorithm(), KeyAlgorithm::EcdsaP256);
        let SubjectKey::EcdsaP256(point) = req.key_for(Role::CityNode).unwrap() else {
            panic!("not P-256")
        };
        assert_eq!(point, rcgen::PublicKeyData::der_bytes(&tls));
        assert_eq!(
            req.fingerprint(),
            key_fingerprint(&RoleKey::Tls(tls.clone())).unwrap()
        );

        let signer = generate_signer_key();
        let req = parse(&make_request(&RoleKey::Signer(signer.clone()), "s").unwrap()).unwrap();
        let SubjectKey::Ed25519(bytes) = req.key_for(Role::BadgeSigner).unwrap() else {
            panic!("not Ed25519")
        };
        assert_eq!(bytes, signer.verifying_key().to_bytes());
        assert_eq!(
            req.fingerprint(),
            key_fingerprint(&RoleKey::Signer(signer.clone())).unwrap()
        );
        // DER is read as well as PEM.
        assert!(CheckedRequest::parse(req.der(), Path::new("x.der")).is_ok());
    }

    #[test]
    fn a_key_of_the_other_type_is_refused_naming_role_and_types() {
        let req =
            parse(&make_request(&RoleKey::Signer(generate_signer_key()), "s").unwrap()).unwrap();
        let err = req.key_for(Role::CityNode).unwrap_err();
        assert_eq!(
            err.to_string(),
            "x.csr: the request carries an Ed25519 key, but node certificates carry ECDSA P-256 keys"
        );
    }

    #[test]
    fn a_key_tessera_never_certifies_is_refused_by_name() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let pem = CertificateParams::default()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let err = parse(&pem).unwrap_err();
        assert_eq!(
            err.to_string(),
            "x.csr: the request carries an unsupported (1.2.840.10045.2.1 on curve 1.3.132.0.34) key; tessera certifies only ECDSA P-256 and Ed25519 keys"
        );
    }

    #[test]
    fn every_flipped_byte_fails() {
        for key in [
            RoleKey::Tls(TlsKey::generate()),
            RoleKey::Signer(generate_signer_key()),
        ] {
            let pem = make_request(&key, "n").unwrap();
            let der = pem::parse(&pem).unwrap().into_contents();
            for i in 0..der.len() {
                let mut bad = der.clone();
                bad[i] ^= 0x01;
                assert!(
                    CheckedRequest::parse(&bad, Path::new("x.csr")).is_err(),
                    "flipping byte {i} of {} was accepted",
                    der.len()
                );
            }
        }
    }

    #[test]
    fn a_tampered_subject_is_a_bad_signature_and_garbage_is_malformed() {
        let pem = make_request(&RoleKey::Tls(TlsKey::generate()), "Hangzhou").unwrap();
        let mut der = pem::parse(&pem).unwrap().into_contents();
        let at = der.windows(8).position(|w| w == b"Hangzhou").unwrap();
        der[at] = b'X';
        assert!(matches!(
            CheckedRequest::parse(&der, Path::new("x.csr")),
            Err(RequestError::BadSignature { .. })
        ));
        for garbage in [
            &b"hello"[..],
            b"",
            b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        ] {
            assert!(matches!(
                CheckedRequest::parse(garbage, Path::new("x.csr")),
                Err(RequestError::Malformed { .. })
            ));
        }
        let pem = make_request(&RoleKey::Tls(TlsKey::generate()), "n").unwrap();
        assert!(parse(&format!("\n  {pem}")).is_ok(), "leading blank lines");
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.csr");
        std::fs::write(&big, vec![b'A'; MAX_REQUEST_BYTES + 1]).unwrap();
        let err = CheckedRequest::read(&big).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("65537 bytes, more than a request's 65536"),
            "{err}"
        );
        let cert = crate::keys::cert_to_pem(b"\x30\x00");
        let err = parse(&cert).unwrap_err();
        assert!(
            err.to_string().contains("not a CERTIFICATE REQUEST"),
            "{err}"
        );
    }
}
