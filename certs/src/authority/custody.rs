//! Where the authority's signing keys are kept: key files in the authority
//! directory (the default), or keys in a PKCS#11 token, as
//! `D/authority.toml` says.
//!
//! ```toml
//! [pkcs11]
//! module = "/usr/lib/softhsm/libsofthsm2.so"   # the token's PKCS#11 module
//! token = "tessera-authority"                  # the token's label
//! pin_file = "/etc/tessera/authority.pin"      # 0600; its first line is the user PIN
//!
//! [keys]                                       # each key's label in the token
//! root = "tessera-root"
//! trust_list_signer = "tessera-trust-list-signer"
//! # issuing_ca = "tessera-issuing-ca"
//! ```
//!
//! A key named in `[keys]` is in the token and has no key file; a key not
//! named is the file it always was (`root/root.key`,
//! `trust-list-signer/signer.key`, `issuing-ca/issuing-ca.key`). Without
//! the file every key is a file. A relative `pin_file` is taken from the
//! authority directory. At load the token key's public half must be the
//! one its certificate carries ([`CustodyError::Mismatch`]); a wrong PIN,
//! a missing label and a token not present each have their own
//! [`TokenError`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::AuthorityError;
use crate::ca_key::{CaKey, ListSignError, ListSignerKey};
use crate::keys::{self, TlsKey};
use crate::pkcs11::ec::{TokenCaKey, generate_p256};
use crate::pkcs11::{self, TokenError, TokenKey, TokenKeyRef};
use crate::profile::SubjectKey;
use crate::request::CheckedRequest;

/// The configuration file's name in the authority directory.
pub const CUSTODY_FILE: &str = "authority.toml";
/// The root key's label `authority init --pkcs11-module` gives by default.
pub const DEFAULT_ROOT_LABEL: &str = "tessera-root";
/// The trust-list signer key's label `authority init --pkcs11-module`
/// gives by default.
pub const DEFAULT_SIGNER_LABEL: &str = "tessera-trust-list-signer";
/// The issuing CA key's label `authority init --pkcs11-module` gives by
/// default.
pub const DEFAULT_ISSUING_CA_LABEL: &str = "tessera-issuing-ca";

/// Why the authority's keys could not be found or used where the
/// configuration says they are.
#[derive(Debug, thiserror::Error)]
pub enum CustodyError {
    /// `authority.toml` is unreadable or wrong.
    #[error("{path}: {detail}")]
    Config {
        /// The file.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The token did not give the key.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The token's key is not the certificate's.
    #[error(
        "the key {key:?} in token {token:?} is not the key of {certificate}: fix the label in {CUSTODY_FILE} or restore the certificate"
    )]
    Mismatch {
        /// The key's label.
        key: String,
        /// The token's label.
        token: String,
        /// The certificate file or role.
        certificate: String,
    },
    /// The certificate could not be read.
    #[error("{0}: not a certificate with a readable public key")]
    Certificate(String),
    /// The key did not sign.
    #[error("{0}")]
    Sign(String),
    /// What is asked is not possible with a key in a token.
    #[error("{0}")]
    Unsupported(String),
}

/// The token: module, label, PIN file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    /// The PKCS#11 module (a shared library).
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// A file (mode 0600) whose first line is the user PIN.
    pub pin_file: PathBuf,
}

/// The label of each key kept in the token; `None`: a key file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyLabels {
    /// The root's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    /// The trust-list signer's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_list_signer: Option<String>,
    /// The issuing CA's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuing_ca: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CustodyFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pkcs11: Option<TokenSettings>,
    /// The token holding the root key, when it is not the `[pkcs11]` one:
    /// an offline token, attached only for the root's ceremonies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    root_pkcs11: Option<TokenSettings>,
    #[serde(default)]
    keys: KeyLabels,
}

/// Which certificate authority's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaRole {
    /// The national root (`root/root.key`).
    Root,
    /// The online issuing CA (`issuing-ca/issuing-ca.key`).
    IssuingCa,
}

impl CaRole {
    /// The key file, relative to the authority directory.
    pub fn key_file(self) -> &'static str {
        match self {
            CaRole::Root => "root/root.key",
            CaRole::IssuingCa => "issuing-ca/issuing-ca.key",
        }
    }

    fn label(self, labels: &KeyLabels) -> Option<&String> {
        match self {
            CaRole::Root => labels.root.as_ref(),
            CaRole::IssuingCa => labels.issuing_ca.as_ref(),
        }
    }

    fn what(self) -> &'static str {
        match self {
            CaRole::Root => "the root certificate",
            CaRole::IssuingCa => "the issuing-CA certificate",
        }
    }
}

/// Where the authority's keys are kept, checked once when read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Custody {
    token: Option<TokenSettings>,
    root_token: Option<TokenSettings>,
    labels: KeyLabels,
}

/// The key a certificate is issued for, and where it came from.
pub(super) enum KeySource<'a> {
    /// Made here; the key file is written into the bundle.
    Generate,
    /// A party's own key, from its request.
    Request(&'a CheckedRequest),
    /// A key made in the authority's token: no file is written.
    Token(SubjectKey),
}

impl Custody {
    /// Every key a file (no `authority.toml`).
    pub fn files() -> Self {
        Self::default()
    }

    /// The root, issuing-CA and trust-list signer keys in `token` under
    /// these labels; the root's in `root_token` instead when given (an
    /// offline token, attached only for the root's ceremonies).
    pub fn in_token(
        token: TokenSettings,
        root_token: Option<TokenSettings>,
        root: &str,
        issuing_ca: &str,
        trust_list_signer: &str,
    ) -> Result<Self, CustodyError> {
        Self::checked(
            CustodyFile {
                pkcs11: Some(token),
                root_pkcs11: root_token,
                keys: KeyLabels {
                    root: Some(root.to_owned()),
                    trust_list_signer: Some(trust_list_signer.to_owned()),
                    issuing_ca: Some(issuing_ca.to_owned()),
                },
            },
            "the options",
        )
    }

    fn checked(file: CustodyFile, path: &str) -> Result<Self, CustodyError> {
        let bad = |detail: String| CustodyError::Config {
            path: path.to_owned(),
            detail,
        };
        let labels: Vec<&String> = [
            &file.keys.root,
            &file.keys.trust_list_signer,
            &file.keys.issuing_ca,
        ]
        .into_iter()
        .flatten()
        .collect();
        if !labels.is_empty() && file.pkcs11.is_none() {
            return Err(bad(
                "[keys] names labels in a token, but there is no [pkcs11] section saying which token"
                    .into(),
            ));
        }
        if file.root_pkcs11.is_some() && file.keys.root.is_none() {
            return Err(bad(
                "[root_pkcs11] names a token for the root key, but [keys] gives the root no label"
                    .into(),
            ));
        }
        for token in file.pkcs11.iter().chain(&file.root_pkcs11) {
            if token.token.trim().is_empty() {
                return Err(bad("[pkcs11] token: the token's label is empty".into()));
            }
            if token.module.as_os_str().is_empty() || token.pin_file.as_os_str().is_empty() {
                return Err(bad("[pkcs11] module and pin_file must be paths".into()));
            }
        }
        for (i, label) in labels.iter().enumerate() {
            if label.trim().is_empty() || label.len() > 64 || label.chars().any(char::is_control) {
                return Err(bad(format!(
                    "[keys] label {label:?} is empty, too long or has control characters"
                )));
            }
            if labels[..i].contains(label) {
                return Err(bad(format!(
                    "[keys] label {label:?} is given to two keys: each key needs its own"
                )));
            }
        }
        Ok(Self {
            token: file.pkcs11,
            root_token: file.root_pkcs11,
            labels: file.keys,
        })
    }

    /// Reads `D/authority.toml`; every key is a file when there is none.
    pub fn load(dir: &Path) -> Result<Self, CustodyError> {
        let path = dir.join(CUSTODY_FILE);
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::files()),
            Err(e) => {
                return Err(CustodyError::Config {
                    path: shown,
                    detail: e.to_string(),
                });
            }
        };
        let mut file: CustodyFile = toml::from_str(&text).map_err(|e| CustodyError::Config {
            path: shown.clone(),
            detail: e.message().to_owned(),
        })?;
        for token in file.pkcs11.iter_mut().chain(&mut file.root_pkcs11) {
            if token.pin_file.is_relative() {
                token.pin_file = dir.join(&token.pin_file);
            }
        }
        Self::checked(file, &shown)
    }

    /// The text of `authority.toml` for this custody.
    pub fn to_toml(&self) -> String {
        let file = CustodyFile {
            pkcs11: self.token.clone(),
            root_pkcs11: self.root_token.clone(),
            keys: self.labels.clone(),
        };
        let body = toml::to_string(&file).unwrap_or_default();
        format!(
            "# Where the authority's signing keys are kept (docs/CONFIG.md, authority.toml).\n\
             # A key named in [keys] is in the PKCS#11 token of [pkcs11] (the root's in that of\n\
             # [root_pkcs11] when there is one) and has no key file.\n\n{body}"
        )
    }

    /// The token, when any key is kept in one.
    pub fn token(&self) -> Option<&TokenSettings> {
        self.token.as_ref()
    }

    /// The token holding the root key, when it is a token of its own.
    pub fn root_token(&self) -> Option<&TokenSettings> {
        self.root_token.as_ref()
    }

    /// The labels of the keys kept in the token.
    pub fn labels(&self) -> &KeyLabels {
        &self.labels
    }

    /// Where the key labelled `label` is.
    fn key_ref(&self, label: Option<&String>) -> Option<TokenKeyRef> {
        Self::key_ref_in(self.token.as_ref(), label)
    }

    /// Where the key of the certificate authority `role` is, if in a token.
    fn ca_key_ref(&self, role: CaRole) -> Option<TokenKeyRef> {
        let token = match role {
            CaRole::Root => self.root_token.as_ref().or(self.token.as_ref()),
            CaRole::IssuingCa => self.token.as_ref(),
        };
        Self::key_ref_in(token, role.label(&self.labels))
    }

    fn key_ref_in(token: Option<&TokenSettings>, label: Option<&String>) -> Option<TokenKeyRef> {
        let token = token?;
        Some(TokenKeyRef {
            module: token.module.clone(),
            token: token.token.clone(),
            key: label?.clone(),
            pin_file: token.pin_file.clone(),
        })
    }

    /// Whether the trust-list signer's key is in the token.
    pub fn list_signer_in_token(&self) -> bool {
        self.key_ref(self.labels.trust_list_signer.as_ref())
            .is_some()
    }

    /// Checks, before anything is made, that the token opens with the PIN
    /// and that no key already carries a label this custody will give.
    pub fn check_labels_free(&self) -> Result<(), CustodyError> {
        let refs = [
            self.ca_key_ref(CaRole::Root),
            self.ca_key_ref(CaRole::IssuingCa),
            self.key_ref(self.labels.trust_list_signer.as_ref()),
        ];
        for r in refs.into_iter().flatten() {
            if pkcs11::label_in_use(&r)? {
                return Err(TokenError::Exists {
                    token: r.token,
                    key: r.key,
                }
                .into());
            }
        }
        Ok(())
    }

    /// The key of the certificate authority `role`, whose certificate is
    /// `cert_der`: the token's key if its label is configured (checked to
    /// be the certificate's), else the key file in `dir`.
    pub fn ca_key(
        &self,
        dir: &Path,
        role: CaRole,
        cert_der: &[u8],
    ) -> Result<CaKey, AuthorityError> {
        match self.ca_key_ref(role) {
            None => Ok(CaKey::File(keys::read_tls_key(&dir.join(role.key_file()))?)),
            Some(r) => {
                let key = TokenCaKey::open(&r).map_err(CustodyError::from)?;
                check_same(&r, key.point(), cert_der, role.what())?;
                Ok(CaKey::Token(key))
            }
        }
    }

    /// A new key for the certificate authority `role`: made in the token
    /// under its label if one is configured, else in memory (the caller
    /// writes [`CaKey::file_pem`] to the key file).
    pub fn new_ca_key(&self, role: CaRole) -> Result<CaKey, CustodyError> {
        match self.ca_key_ref(role) {
            None => Ok(CaKey::File(TlsKey::generate())),
            Some(r) => {
                generate_p256(&r)?;
                Ok(CaKey::Token(TokenCaKey::open(&r)?))
            }
        }
    }

    /// The trust-list signer's key, whose certificate is `cert_der`: the
    /// token's if its label is configured (checked to be the
    /// certificate's), else the key file `key_file`.
    pub fn list_signer_key(
        &self,
        key_file: &Path,
        cert_der: &[u8],
    ) -> Result<ListSignerKey, AuthorityError> {
        match self.key_ref(self.labels.trust_list_signer.as_ref()) {
            None => Ok(ListSignerKey::File(keys::read_signer_key(key_file)?)),
            Some(r) => {
                let key = TokenKey::open(&r).map_err(CustodyError::from)?;
                let public = tessera_core::badge::BadgeKey::public_key(&key).to_bytes();
                check_same(&r, &public, cert_der, "the trust-list signer certificate")?;
                Ok(ListSignerKey::Token(key))
            }
        }
    }

    /// Where a new trust-list signer's key comes from: made in the token
    /// under its label if one is configured, else a fresh key file.
    pub(super) fn new_list_signer(&self) -> Result<KeySource<'static>, CustodyError> {
        match self.key_ref(self.labels.trust_list_signer.as_ref()) {
            None => Ok(KeySource::Generate),
            Some(r) => Ok(KeySource::Token(SubjectKey::Ed25519(
                pkcs11::generate(&r)?.to_bytes(),
            ))),
        }
    }

    /// A label for the next trust-list signer key in the token, unused
    /// there: the current label without a `.<n>` suffix, then `.<n>` for
    /// the first `n >= from` free (a key left by an interrupted rotation
    /// keeps its label, and the next attempt takes another). `None` when
    /// the signer's key is a file.
    pub fn next_list_signer_label(&self, from: u32) -> Result<Option<String>, CustodyError> {
        let Some(current) = &self.labels.trust_list_signer else {
            return Ok(None);
        };
        let base = match current.rsplit_once('.') {
            Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
            _ => current.as_str(),
        };
        for n in from..from.saturating_add(1000) {
            let label = format!("{base}.{n}");
            if let Some(r) = self.key_ref(Some(&label))
                && !pkcs11::label_in_use(&r)?
            {
                return Ok(Some(label));
            }
        }
        Err(CustodyError::Unsupported(format!(
            "no free label {base}.<n> for a new trust-list signer key in the token"
        )))
    }

    /// This custody with the trust-list signer's key under `label`.
    pub fn with_list_signer_label(&self, label: &str) -> Self {
        let mut next = self.clone();
        next.labels.trust_list_signer = Some(label.to_owned());
        next
    }
}

/// A trust-list signer's next key in the token: the configuration that
/// will name it, written to `file` and installed over `authority.toml`
/// with the new certificate.
pub(super) struct NextInToken {
    /// The new configuration's file (`authority.<n>.toml`).
    pub file: PathBuf,
    custody: Custody,
}

impl NextInToken {
    /// Makes the key in the token and writes the configuration naming it;
    /// returns the key to certify.
    pub fn make_key(&self) -> Result<KeySource<'static>, AuthorityError> {
        let source = self.custody.new_list_signer()?;
        keys::write_new_file(&self.file, self.custody.to_toml().as_bytes(), true)?;
        Ok(source)
    }
}

/// When the trust-list signer's key is in a token, what its rotation to
/// certificate number `n` makes: a key under a fresh label and the
/// configuration naming it. `None` when the key is a file.
pub(super) fn next_in_token(dir: &Path, n: u32) -> Result<Option<NextInToken>, AuthorityError> {
    let custody = Custody::load(dir)?;
    let Some(label) = custody.next_list_signer_label(n)? else {
        return Ok(None);
    };
    Ok(Some(NextInToken {
        file: dir.join(format!("authority.{n}.toml")),
        custody: custody.with_list_signer_label(&label),
    }))
}

/// The certificate's public key: the SEC1 point of a P-256 key, the 32
/// bytes of an Ed25519 key.
fn certificate_key(cert_der: &[u8], what: &str) -> Result<Vec<u8>, CustodyError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|_| CustodyError::Certificate(what.to_owned()))?;
    Ok(cert
        .tbs_certificate
        .subject_pki
        .subject_public_key
        .data
        .to_vec())
}

fn check_same(
    r: &TokenKeyRef,
    public: &[u8],
    cert_der: &[u8],
    what: &str,
) -> Result<(), CustodyError> {
    if certificate_key(cert_der, what)? != public {
        return Err(CustodyError::Mismatch {
            key: r.key.clone(),
            token: r.token.clone(),
            certificate: what.to_owned(),
        });
    }
    Ok(())
}

impl From<ListSignError> for AuthorityError {
    fn from(e: ListSignError) -> Self {
        match e {
            ListSignError::List(e) => AuthorityError::TrustList(e),
            key @ ListSignError::Key(_) => {
                AuthorityError::Custody(CustodyError::Sign(key.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn load(text: &str) -> Result<Custody, CustodyError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CUSTODY_FILE), text).unwrap();
        Custody::load(dir.path())
    }

    #[test]
    fn no_file_means_every_key_is_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let custody = Custody::load(dir.path()).unwrap();
        assert_eq!(custody, Custody::files());
        assert!(!custody.list_signer_in_token());
        assert_eq!(custody.next_list_signer_label(2).unwrap(), None);
    }

    #[test]
    fn the_written_file_reads_back_the_same() {
        let custody = Custody::in_token(
            TokenSettings {
                module: "/usr/lib/softhsm/libsofthsm2.so".into(),
                token: "tessera-authority".into(),
                pin_file: "/etc/tessera/authority.pin".into(),
            },
            Some(TokenSettings {
                module: "/usr/lib/softhsm/libsofthsm2.so".into(),
                token: "tessera-root".into(),
                pin_file: "/etc/tessera/root.pin".into(),
            }),
            "root",
            "issuing-ca",
            "signer",
        )
        .unwrap();
        let text = custody.to_toml();
        assert!(text.contains("[root_pkcs11]"), "{text}");
        assert_eq!(load(&text).unwrap(), custody);
        assert_eq!(custody.root_token().unwrap().token, "tessera-root");
        assert!(custody.list_signer_in_token());
        let next = custody.with_list_signer_label("signer.2");
        assert_eq!(next.labels().trust_list_signer.as_deref(), Some("signer.2"));
        assert_eq!(next.labels().root.as_deref(), Some("root"));
    }

    #[test]
    fn the_sample_in_docs_reads() {
        let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/authority.toml");
        let custody = load(&std::fs::read_to_string(sample).unwrap()).unwrap();
        let token = custody.token().unwrap();
        assert_eq!(token.token, "tessera-authority");
        assert_eq!(custody.labels().root.as_deref(), Some(DEFAULT_ROOT_LABEL));
        assert_eq!(
            custody.labels().trust_list_signer.as_deref(),
            Some(DEFAULT_SIGNER_LABEL)
        );
        assert_eq!(
            custody.labels().issuing_ca.as_deref(),
            Some(DEFAULT_ISSUING_CA_LABEL)
        );
        assert_eq!(custody.root_token().unwrap().token, "tessera-root");
    }

    #[test]
    fn a_root_token_without_a_root_label_is_refused() {
        let why = load(
            "[pkcs11]\nmodule = \"/m.so\"\ntoken = \"t\"\npin_file = \"/p\"\n\
             [root_pkcs11]\nmodule = \"/m.so\"\ntoken = \"r\"\npin_file = \"/p\"\n\
             [keys]\nissuing_ca = \"i\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(why.contains("gives the root no label"), "{why}");
    }

    #[test]
    fn a_relative_pin_file_is_in_the_authority_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CUSTODY_FILE),
            "[pkcs11]\nmodule = \"/m.so\"\ntoken = \"t\"\npin_file = \"pin\"\n[keys]\nroot = \"r\"\n",
        )
        .unwrap();
        let custody = Custody::load(dir.path()).unwrap();
        assert_eq!(custody.token().unwrap().pin_file, dir.path().join("pin"));
        assert_eq!(custody.labels().root.as_deref(), Some("r"));
        assert_eq!(custody.labels().trust_list_signer, None);
    }

    #[test]
    fn a_wrong_file_is_refused_with_why() {
        for (text, why) in [
            ("[keys]\nroot = \"r\"\n", "no [pkcs11] section"),
            (
                "[pkcs11]\nmodule = \"/m.so\"\ntoken = \"t\"\npin_file = \"/p\"\npin = \"1234\"\n",
                "unknown field `pin`",
            ),
            (
                "[pkcs11]\nmodule = \"/m.so\"\ntoken = \"t\"\npin_file = \"/p\"\n[keys]\nroot = \"a\"\ntrust_list_signer = \"a\"\n",
                "given to two keys",
            ),
            (
                "[pkcs11]\nmodule = \"/m.so\"\ntoken = \"\"\npin_file = \"/p\"\n",
                "label is empty",
            ),
            (
                "[pkcs11]\nmodule = \"/m.so\"\ntoken = \"t\"\npin_file = \"/p\"\n[keys]\nroot = \" \"\n",
                "is empty, too long",
            ),
            (
                "[keys]\nintermediate = \"x\"\n",
                "unknown field `intermediate`",
            ),
        ] {
            let err = load(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.contains(CUSTODY_FILE), "{err}");
        }
    }
}
