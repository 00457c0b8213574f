//! Keys in a PKCS#11 token: a city's badge-signer key and the authority's
//! trust-list signer key (Ed25519), and the authority's root and issuing-CA
//! keys (ECDSA P-256, [`ec`]), each generated inside a token (sensitive,
//! never extractable) and used to sign through the token, so the private
//! half never enters the process's memory.
//!
//! Ed25519 keys use `CKM_EC_EDWARDS_KEY_PAIR_GEN` and `CKM_EDDSA`, which
//! SoftHSM2 2.6 and later offer; P-256 keys use `CKM_EC_KEY_PAIR_GEN` and
//! `CKM_ECDSA` over a digest computed here. The PIN is read from a file
//! (mode 0600 or tighter, like every secret file), never from the
//! configuration.

pub mod ec;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use ed25519_dalek::VerifyingKey;
use tessera_core::badge::{BadgeKey, SignError};

/// DER of the Ed25519 curve's object identifier (1.3.101.112), the
/// `CKA_EC_PARAMS` of an Ed25519 key.
const ED25519_PARAMS: [u8; 5] = [0x06, 0x03, 0x2b, 0x65, 0x70];

/// Where a key lives in a token: the module, the token's label, the key's
/// label, and the file holding the user PIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenKeyRef {
    /// The PKCS#11 module (a shared library).
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// The key's label (`CKA_LABEL` of its private and public objects).
    pub key: String,
    /// A file whose first line is the user PIN.
    pub pin_file: PathBuf,
}

/// Why a token key could not be found, made or used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The module could not be loaded or initialised.
    #[error("PKCS#11 module {module}: {detail}")]
    Module {
        /// The module's path.
        module: String,
        /// What went wrong.
        detail: String,
    },
    /// No token has the configured label.
    #[error("no PKCS#11 token labelled {token:?} in {module} (tokens present: {present})")]
    NoToken {
        /// The label looked for.
        token: String,
        /// The module's path.
        module: String,
        /// The labels present.
        present: String,
    },
    /// The PIN file could not be read or is not private.
    #[error("PIN file {path}: {detail}")]
    PinFile {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// The token refused the PIN.
    #[error("token {token:?} refused the PIN from {pin_file}: {detail}")]
    Login {
        /// The token's label.
        token: String,
        /// The PIN file.
        pin_file: String,
        /// The token's answer.
        detail: String,
    },
    /// No key of the expected type with the label, or more than one.
    #[error("token {token:?} holds {found} {algorithm} {what} key(s) labelled {key:?}, not one")]
    Key {
        /// The token's label.
        token: String,
        /// The key's label.
        key: String,
        /// `Ed25519` or `ECDSA P-256`.
        algorithm: &'static str,
        /// `private` or `public`.
        what: &'static str,
        /// How many were found.
        found: usize,
    },
    /// A key with the label exists already (key generation).
    #[error("token {token:?} already holds a key labelled {key:?}: choose another label")]
    Exists {
        /// The token's label.
        token: String,
        /// The key's label.
        key: String,
    },
    /// The token's public key is not a point of the expected curve.
    #[error("token {token:?}: the public key {key:?} is not an {algorithm} point")]
    BadPoint {
        /// The token's label.
        token: String,
        /// The key's label.
        key: String,
        /// `Ed25519` or `ECDSA P-256`.
        algorithm: &'static str,
    },
    /// Any other answer of the token.
    #[error("token {token:?}: {action}: {detail}")]
    Token {
        /// The token's label.
        token: String,
        /// What was being done.
        action: &'static str,
        /// The token's answer.
        detail: String,
    },
}

fn module_err(r: &TokenKeyRef) -> impl Fn(cryptoki::error::Error) -> TokenError + '_ {
    move |e| TokenError::Module {
        module: r.module.display().to_string(),
        detail: e.to_string(),
    }
}

fn token_err<'a>(
    r: &'a TokenKeyRef,
    action: &'static str,
) -> impl Fn(cryptoki::error::Error) -> TokenError + 'a {
    move |e| TokenError::Token {
        token: r.token.clone(),
        action,
        detail: e.to_string(),
    }
}

/// Reads the PIN: the file's first line, the file private to its owner.
fn read_pin(path: &Path) -> Result<AuthPin, TokenError> {
    let err = |detail: String| TokenError::PinFile {
        path: path.display().to_string(),
        detail,
    };
    crate::files::check_secret(path).map_err(|e| err(e.to_string()))?;
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let pin = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if pin.is_empty() {
        return Err(err("empty".into()));
    }
    Ok(AuthPin::from(pin.to_owned()))
}

/// Loads the module, finds the token and logs in as its user.
fn open(r: &TokenKeyRef) -> Result<(Pkcs11, Slot, Session), TokenError> {
    let pkcs11 = Pkcs11::new(&r.module).map_err(module_err(r))?;
    match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(
            cryptoki::error::RvError::CryptokiAlreadyInitialized,
            _,
        )) => {}
        Err(e) => return Err(module_err(r)(e)),
    }
    let mut present = Vec::new();
    let mut found = None;
    for slot in pkcs11
        .get_slots_with_initialized_token()
        .map_err(module_err(r))?
    {
        let info = pkcs11.get_token_info(slot).map_err(module_err(r))?;
        let label = info.label().trim_end().to_owned();
        if label == r.token {
            found = Some(slot);
            break;
        }
        present.push(format!("{label:?}"));
    }
    let Some(slot) = found else {
        return Err(TokenError::NoToken {
            token: r.token.clone(),
            module: r.module.display().to_string(),
            present: if present.is_empty() {
                "none".into()
            } else {
                present.join(", ")
            },
        });
    };
    let pin = read_pin(&r.pin_file)?;
    let session = pkcs11
        .open_rw_session(slot)
        .map_err(token_err(r, "opening a session"))?;
    match session.login(UserType::User, Some(&pin)) {
        Ok(()) => {}
        Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => {
            return Err(TokenError::Login {
                token: r.token.clone(),
                pin_file: r.pin_file.display().to_string(),
                detail: e.to_string(),
            });
        }
    }
    Ok((pkcs11, slot, session))
}

/// The one object of `class` and `key_type` labelled `r.key`.
fn find_one(
    r: &TokenKeyRef,
    session: &Session,
    class: ObjectClass,
    key_type: KeyType,
    what: &'static str,
) -> Result<ObjectHandle, TokenError> {
    let found = session
        .find_objects(&[
            Attribute::Class(class),
            Attribute::KeyType(key_type),
            Attribute::Label(r.key.as_bytes().to_vec()),
        ])
        .map_err(token_err(r, "looking for the key"))?;
    let algorithm = if key_type == KeyType::EC_EDWARDS {
        "Ed25519"
    } else {
        "ECDSA P-256"
    };
    match found.as_slice() {
        [one] => Ok(*one),
        _ => Err(TokenError::Key {
            token: r.token.clone(),
            key: r.key.clone(),
            algorithm,
            what,
            found: found.len(),
        }),
    }
}

/// Whether any object of the token carries the label `r.key`.
pub fn label_in_use(r: &TokenKeyRef) -> Result<bool, TokenError> {
    let (_pkcs11, _slot, session) = open(r)?;
    let existing = session
        .find_objects(&[Attribute::Label(r.key.as_bytes().to_vec())])
        .map_err(token_err(r, "looking for the label"))?;
    Ok(!existing.is_empty())
}

/// Refuses a label already in use (key generation).
fn check_label_free(r: &TokenKeyRef, session: &Session) -> Result<(), TokenError> {
    let existing = session
        .find_objects(&[Attribute::Label(r.key.as_bytes().to_vec())])
        .map_err(token_err(r, "looking for the label"))?;
    if existing.is_empty() {
        Ok(())
    } else {
        Err(TokenError::Exists {
            token: r.token.clone(),
            key: r.key.clone(),
        })
    }
}

/// Whether the token refuses to reveal the value of the private key
/// `private` (`C_GetAttributeValue` of `CKA_VALUE` answers that it is
/// sensitive) and the key says it is sensitive and not extractable.
fn value_hidden(
    r: &TokenKeyRef,
    session: &Session,
    private: ObjectHandle,
) -> Result<bool, TokenError> {
    use cryptoki::object::AttributeInfo;
    let value = session
        .get_attribute_info(private, &[AttributeType::Value])
        .map_err(token_err(r, "asking for the key's value"))?;
    let flags = session
        .get_attributes(
            private,
            &[AttributeType::Sensitive, AttributeType::Extractable],
        )
        .map_err(token_err(r, "reading the key's attributes"))?;
    let sensitive = flags
        .iter()
        .any(|a| matches!(a, Attribute::Sensitive(true)));
    let extractable = flags
        .iter()
        .any(|a| matches!(a, Attribute::Extractable(true)));
    Ok(matches!(value.as_slice(), [AttributeInfo::Sensitive]) && sensitive && !extractable)
}

/// The Ed25519 public key of a public-key object: `CKA_EC_POINT` is the
/// 32 bytes, bare or as a DER OCTET STRING.
fn public_of(
    r: &TokenKeyRef,
    session: &Session,
    object: ObjectHandle,
) -> Result<VerifyingKey, TokenError> {
    let attrs = session
        .get_attributes(object, &[AttributeType::EcPoint])
        .map_err(token_err(r, "reading the public key"))?;
    let bad = || TokenError::BadPoint {
        token: r.token.clone(),
        key: r.key.clone(),
        algorithm: "Ed25519",
    };
    let point = attrs
        .into_iter()
        .find_map(|a| match a {
            Attribute::EcPoint(p) => Some(p),
            _ => None,
        })
        .ok_or_else(bad)?;
    let raw: &[u8] = match point.as_slice() {
        [0x04, 0x20, rest @ ..] if rest.len() == 32 => rest,
        bare if bare.len() == 32 => bare,
        _ => return Err(bad()),
    };
    let bytes: [u8; 32] = raw.try_into().map_err(|_| bad())?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| bad())
}

/// Generates an Ed25519 key pair inside the token, labelled `r.key`: the
/// private half sensitive and not extractable, both halves kept in the
/// token. Refuses a label already in use. Returns the public key.
pub fn generate(r: &TokenKeyRef) -> Result<VerifyingKey, TokenError> {
    let (_pkcs11, _slot, session) = open(r)?;
    check_label_free(r, &session)?;
    let label = r.key.as_bytes().to_vec();
    let public = [
        Attribute::Token(true),
        Attribute::Verify(true),
        Attribute::EcParams(ED25519_PARAMS.to_vec()),
        Attribute::Label(label.clone()),
    ];
    let private = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Label(label),
    ];
    let (public_handle, _) = session
        .generate_key_pair(&Mechanism::EccEdwardsKeyPairGen, &public, &private)
        .map_err(token_err(r, "generating an Ed25519 key pair"))?;
    public_of(r, &session, public_handle)
}

/// A badge-signer key held in a token: signs with `CKM_EDDSA` through a
/// small pool of sessions, one per signing thread at a time.
pub struct TokenKey {
    r: TokenKeyRef,
    pkcs11: Pkcs11,
    slot: Slot,
    private: ObjectHandle,
    public: VerifyingKey,
    sessions: Mutex<Vec<Session>>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey")
            .field("token", &self.r.token)
            .field("key", &self.r.key)
            .finish_non_exhaustive()
    }
}

impl TokenKey {
    /// Opens the token, logs in with the PIN file and finds the key pair
    /// by label; signs once to check the private key answers.
    pub fn open(r: &TokenKeyRef) -> Result<Self, TokenError> {
        let (pkcs11, slot, session) = open(r)?;
        let private = find_one(
            r,
            &session,
            ObjectClass::PRIVATE_KEY,
            KeyType::EC_EDWARDS,
            "private",
        )?;
        let public_handle = find_one(
            r,
            &session,
            ObjectClass::PUBLIC_KEY,
            KeyType::EC_EDWARDS,
            "public",
        )?;
        let public = public_of(r, &session, public_handle)?;
        let key = Self {
            r: r.clone(),
            pkcs11,
            slot,
            private,
            public,
            sessions: Mutex::new(vec![session]),
        };
        let probe = b"tessera token probe";
        let signature = key.sign_with_token(probe)?;
        if public
            .verify_strict(probe, &ed25519_dalek::Signature::from_bytes(&signature))
            .is_err()
        {
            return Err(TokenError::Token {
                token: r.token.clone(),
                action: "checking a probe signature",
                detail: format!(
                    "the private key labelled {:?} does not sign for the public key of that label",
                    r.key
                ),
            });
        }
        Ok(key)
    }

    /// Whether the token refuses to reveal the private key's value
    /// (`C_GetAttributeValue` of `CKA_VALUE` answers that it is sensitive),
    /// as a sensitive, non-extractable key must; also checks the key says
    /// it is sensitive and not extractable.
    pub fn value_is_hidden(&self) -> Result<bool, TokenError> {
        let session = self.session()?;
        let hidden = value_hidden(&self.r, &session, self.private);
        self.give_back(session);
        hidden
    }

    /// Where the key lives.
    pub fn key_ref(&self) -> &TokenKeyRef {
        &self.r
    }

    fn session(&self) -> Result<Session, TokenError> {
        let pooled = self.sessions.lock().ok().and_then(|mut pool| pool.pop());
        match pooled {
            Some(session) => Ok(session),
            // Login is per token and application, so a new session is
            // already logged in.
            None => self
                .pkcs11
                .open_ro_session(self.slot)
                .map_err(token_err(&self.r, "opening a session")),
        }
    }

    fn give_back(&self, session: Session) {
        if let Ok(mut pool) = self.sessions.lock() {
            pool.push(session);
        }
    }

    fn sign_with_token(&self, message: &[u8]) -> Result<[u8; 64], TokenError> {
        let session = self.session()?;
        let mechanism = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
        let answer = session.sign(&mechanism, self.private, message);
        // A session that failed is dropped (closed), not pooled.
        let signature = answer.map_err(token_err(&self.r, "signing"))?;
        self.give_back(session);
        signature
            .as_slice()
            .try_into()
            .map_err(|_| TokenError::Token {
                token: self.r.token.clone(),
                action: "signing",
                detail: format!("a signature of {} bytes, not 64", signature.len()),
            })
    }
}

impl BadgeKey for TokenKey {
    fn public_key(&self) -> VerifyingKey {
        self.public
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], SignError> {
        self.sign_with_token(message)
            .map_err(|e| SignError::Key(e.to_string()))
    }
}
