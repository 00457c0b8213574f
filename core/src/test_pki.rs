//! A throw-away PKI for core's unit tests and benches: a national root, a
//! trust-list signer, issuing CAs and badge signers issued with rcgen at run
//! time, and signed trust lists verified into [`CheckedTrustList`]s.
//!
//! core may not depend on tessera-certs (which depends on core), so this
//! builds the certificate profiles itself, as certs does: a P-256 root,
//! P-256 keys for the TLS roles and Ed25519 keys for the signers, one
//! `tessera:` SAN URI, leaves issued directly by the root or by an issuing
//! CA ([`TestPki::issuing_ca`]; ECDSA with SHA-256; rcgen's ring signer, so
//! not deterministic, which no test here needs). It uses only
//! tessera_core's public API, so the benches include the same file with
//! `#[path]`; the unit tests see it through `extern crate self as
//! tessera_core`.
#![allow(dead_code)] // each includer uses a different part

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use rand::RngCore;
use rand::rngs::OsRng;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use tessera_core::trust::{TRUST_LIST_VERSION, sign_trust_list};
use tessera_core::{
    BadgeClaims, BadgeId, BadgeSigner, CertInfo, CheckedTrustList, CityCode, Colour, HolderHint,
    Identity, Role, Scope, TrustAnchor,
};
use tessera_proto::v1 as pb;

/// The moment every fixture is built around (2025-06-15T15:06:40Z).
pub const NOW: i64 = 1_750_000_000;
/// One day in seconds.
pub const DAY: i64 = 86_400;

/// A fresh random Ed25519 key (the signers' type).
pub fn key() -> SigningKey {
    SigningKey::generate(&mut OsRng)
}

/// A fresh random P-256 key (the root's and the TLS roles' type).
pub fn tls_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::random(&mut OsRng)
}

fn rcgen_key(key: &SigningKey) -> KeyPair {
    let der = key.to_pkcs8_der().unwrap();
    KeyPair::try_from(der.as_bytes()).unwrap()
}

fn rcgen_p256(key: &p256::ecdsa::SigningKey) -> KeyPair {
    use p256::pkcs8::EncodePrivateKey as _;
    let der = key.to_pkcs8_der().unwrap();
    KeyPair::try_from(der.as_bytes()).unwrap()
}

fn params(identity: Identity, not_before: i64, not_after: i64) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "tessera");
    dn.push(DnType::CommonName, identity.to_uri());
    params.distinguished_name = dn;
    params.not_before = time::OffsetDateTime::from_unix_timestamp(not_before).unwrap();
    params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).unwrap();
    let mut serial = [0u8; 16];
    OsRng.fill_bytes(&mut serial);
    serial[0] = 0x40 | (serial[0] & 0x3f);
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.subject_alt_names = vec![SanType::URI(identity.to_uri().try_into().unwrap())];
    if identity.role() == Role::Root {
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    } else if identity.role() == Role::IssuingCa {
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.use_authority_key_identifier_extension = true;
    } else {
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
    }
    params
}

/// A leaf's keys, certificate and trust-list entry. Its certificate
/// certifies `key` for a signer role and `tls_key` for any other; the other
/// key is a fresh one the certificate does not name (for tests of a
/// mismatched key).
pub struct Leaf {
    /// The Ed25519 key (certified for a signer role).
    pub key: SigningKey,
    /// The P-256 key (certified for a TLS role).
    pub tls_key: p256::ecdsa::SigningKey,
    /// The certificate DER.
    pub der: Vec<u8>,
    /// Its entry, active, named after its code.
    pub entry: pb::TrustEntry,
}

impl Leaf {
    /// The badge signer for this leaf (badge-signer leaves only).
    pub fn badge_signer(&self) -> BadgeSigner {
        BadgeSigner::new(self.key.clone(), &self.der).unwrap()
    }

    /// The key id of its certificate.
    pub fn key_id(&self) -> tessera_core::KeyId {
        tessera_core::KeyId::of_certificate(&self.der)
    }
}

/// An issuing CA: its certificate and entry, and the key that issues.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    /// Its certificate and entry (its key is `tls_key`).
    pub leaf: Leaf,
}

impl TestCa {
    /// Issues a leaf for `identity` under this issuing CA.
    pub fn issue(&self, identity: Identity, not_before: i64, not_after: i64) -> Leaf {
        issue(&self.issuer, identity, not_before, not_after)
    }

    /// Issues a badge signer for city `code`, valid from a day before
    /// [`NOW`] for a year.
    pub fn badge_signer(&self, code: u32) -> Leaf {
        let city = CityCode::new(code).unwrap();
        let identity = Identity::new(Role::BadgeSigner, Scope::City(city)).unwrap();
        self.issue(identity, NOW - DAY, NOW + 365 * DAY)
    }
}

/// The national root (path length 1) and the trust-list signer.
pub struct TestPki {
    issuer: Issuer<'static, KeyPair>,
    anchor: TrustAnchor,
    list_signer: Leaf,
}

impl TestPki {
    /// A new root and trust-list signer, valid around [`NOW`].
    pub fn new() -> Self {
        let root = Identity::new(Role::Root, Scope::Nation).unwrap();
        let root_params = params(root, NOW - 365 * DAY, NOW + 10 * 365 * DAY);
        let root_key = rcgen_p256(&tls_key());
        let root_der = root_params.self_signed(&root_key).unwrap().der().to_vec();
        let anchor = TrustAnchor::from_der(&root_der).unwrap();
        let issuer = Issuer::new(root_params, root_key);
        let signer = Identity::new(Role::TrustListSigner, Scope::Nation).unwrap();
        let list_signer = issue(&issuer, signer, NOW - DAY, NOW + 365 * DAY);
        Self {
            issuer,
            anchor,
            list_signer,
        }
    }

    /// The root, as a verifier pins it.
    pub fn anchor(&self) -> &TrustAnchor {
        &self.anchor
    }

    /// Issues a leaf for `identity`, valid from `not_before` to `not_after`.
    pub fn issue(&self, identity: Identity, not_before: i64, not_after: i64) -> Leaf {
        issue(&self.issuer, identity, not_before, not_after)
    }

    /// Issues a badge signer for city `code`, valid from a day before
    /// [`NOW`] for a year.
    pub fn badge_signer(&self, code: u32) -> Leaf {
        let city = CityCode::new(code).unwrap();
        let identity = Identity::new(Role::BadgeSigner, Scope::City(city)).unwrap();
        self.issue(identity, NOW - DAY, NOW + 365 * DAY)
    }

    /// A new issuing CA issued by the root, valid from `not_before` to
    /// `not_after`.
    pub fn issuing_ca_between(&self, not_before: i64, not_after: i64) -> TestCa {
        let identity = Identity::new(Role::IssuingCa, Scope::Nation).unwrap();
        let leaf = issue(&self.issuer, identity, not_before, not_after);
        let params = params(identity, not_before, not_after);
        TestCa {
            issuer: Issuer::new(params, rcgen_p256(&leaf.tls_key)),
            leaf,
        }
    }

    /// A new issuing CA issued by the root, valid from a year before
    /// [`NOW`] for five years.
    pub fn issuing_ca(&self) -> TestCa {
        self.issuing_ca_between(NOW - 365 * DAY, NOW + 4 * 365 * DAY)
    }

    /// The trust-list signer.
    pub fn list_signer(&self) -> &Leaf {
        &self.list_signer
    }

    /// The list [`TestPki::trust_list`] signs: sequence 1, issued a day
    /// before [`NOW`], next update a week after, sunset a year after, these
    /// entries after the trust-list signer's, no revoked serials.
    pub fn list(&self, entries: impl IntoIterator<Item = pb::TrustEntry>) -> pb::TrustList {
        pb::TrustList {
            version: TRUST_LIST_VERSION,
            sequence: 1,
            issued_at: NOW - DAY,
            next_update: NOW + 7 * DAY,
            sunset_at: NOW + 365 * DAY,
            entries: std::iter::once(self.list_signer.entry.clone())
                .chain(entries)
                .collect(),
            revoked_serials: vec![],
        }
    }

    /// Signs `list` with the trust-list signer: the encoded SignedTrustList.
    pub fn sign(&self, list: &pb::TrustList) -> Vec<u8> {
        sign_trust_list(list, &self.list_signer.key, &self.list_signer.der).unwrap()
    }

    /// Signs a list of these entries (plus the trust-list signer's) and
    /// verifies it at [`NOW`].
    pub fn trust_list(
        &self,
        entries: impl IntoIterator<Item = pb::TrustEntry>,
    ) -> CheckedTrustList {
        let signed = self.sign(&self.list(entries));
        CheckedTrustList::verify(&signed, &self.anchor, NOW).unwrap()
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

fn issue(
    issuer: &Issuer<'_, KeyPair>,
    identity: Identity,
    not_before: i64,
    not_after: i64,
) -> Leaf {
    let (key, tls_key) = (key(), tls_key());
    let subject = match identity.role() {
        Role::BadgeSigner | Role::TrustListSigner => rcgen_key(&key),
        _ => rcgen_p256(&tls_key),
    };
    let der = params(identity, not_before, not_after)
        .signed_by(&subject, issuer)
        .unwrap()
        .der()
        .to_vec();
    let info = CertInfo::parse(&der).unwrap();
    let code = identity.scope().code();
    let entry = pb::TrustEntry {
        code,
        name: format!("City {code:06}"),
        role: identity.role().to_proto() as i32,
        certificate_der: der.clone(),
        endpoint: match identity.role() {
            Role::CityNode | Role::Gateway => "127.0.0.1:1".into(),
            _ => String::new(),
        },
        status: pb::EntryStatus::Active as i32,
        not_before: info.not_before(),
        not_after: info.not_after(),
        revoked_at: 0,
    };
    Leaf {
        key,
        tls_key,
        der,
        entry,
    }
}

/// Typical claims of city `code`: green, issued at [`NOW`], valid a day,
/// badge id `n` (so badges built from distinct `n` differ).
pub fn claims(code: u32, n: u64) -> BadgeClaims {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&n.to_be_bytes());
    BadgeClaims {
        issuer_city: CityCode::new(code).unwrap(),
        badge_id: BadgeId::from_bytes(id),
        colour: Colour::Green,
        issued_at: NOW,
        valid_until: NOW + DAY,
        policy_version: 3,
        holder_hint: HolderHint::mask("张三丰", "33010619900101123X"),
    }
}
