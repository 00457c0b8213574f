//! Shared fixtures for tessera's end-to-end tests: a national PKI generated at
//! test time through `tessera-certs`, and the deterministic golden vectors.
//!
//! Nothing here is used outside tests; nothing depends on this crate, so
//! fixture bugs may panic.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

pub mod conformance;
pub mod forge;
pub mod golden;
pub mod harness;
pub mod scan;
pub mod wait;
#[cfg(test)]
mod wait_tests;

use ed25519_dalek::SigningKey;
use rand::RngCore;
use tessera_certs::keys::{self, TlsKey};
use tessera_certs::profile::{CertRequest, RootCa};
use tessera_core::badge::{BadgeClaims, BadgeSigner, Colour, HolderHint};
use tessera_core::trust::{TRUST_LIST_VERSION, sign_trust_list};
use tessera_core::{BadgeId, CityCode, Identity, ProvinceCode, Role, Scope, TrustAnchor};
use tessera_proto::v1 as pb;

/// One day in seconds.
pub const DAY: i64 = 86_400;
/// A fixed "now" for tests: 2026-11-01T00:00:00Z.
pub const NOW: i64 = 1_793_491_200;

/// A certificate with its key: `key` for a signer role, `tls_key` for the
/// root and the TLS roles. The other one is a fresh key the certificate
/// does not certify (what a test of a mismatched key uses).
#[derive(Clone)]
pub struct Issued {
    /// The Ed25519 key (certified for a badge or trust-list signer).
    pub key: SigningKey,
    /// The P-256 key (certified for a TLS role).
    pub tls_key: TlsKey,
    /// The certificate DER.
    pub der: Vec<u8>,
}

impl Issued {
    /// PEM of the key the certificate certifies, as a key file holds it.
    pub fn key_pem(&self) -> anyhow::Result<String> {
        let role = tessera_core::CertInfo::parse(&self.der)?.identity().role();
        Ok(if keys::uses_tls_key(role) {
            self.tls_key.to_pem()?
        } else {
            keys::key_to_pem(&self.key)?
        })
    }
}

/// A city as enrolled in the test PKI.
#[derive(Clone)]
pub struct TestCity {
    /// The code.
    pub code: CityCode,
    /// Display name.
    pub name: String,
    /// Node endpoint.
    pub endpoint: String,
    /// Node TLS certificate.
    pub node: Issued,
    /// Badge signer certificate.
    pub signer: Issued,
}

/// A national PKI for tests.
pub struct TestPki {
    /// The root CA.
    pub root: RootCa,
    /// The trust-list signer.
    pub list_signer: Issued,
    /// The gateway (TLS at 127.0.0.1).
    pub gateway: Issued,
    /// Enrolled cities.
    pub cities: Vec<TestCity>,
    /// The time certificates start from.
    pub now: i64,
}

fn identity(role: Role, scope: Scope) -> Identity {
    Identity::new(role, scope).expect("fixture identity")
}

impl TestPki {
    /// A root, a trust-list signer and a gateway, valid around `now`.
    pub fn new(now: i64) -> anyhow::Result<Self> {
        let root = RootCa::create(
            &CertRequest {
                identity: identity(Role::Root, Scope::Nation),
                common_name: "Test national root".into(),
                hosts: vec![],
                not_before: now - 10 * DAY,
                not_after: now + 3650 * DAY,
                serial: None,
            },
            TlsKey::generate(),
        )?;
        let placeholder = Issued {
            key: keys::generate_signer_key(),
            tls_key: TlsKey::generate(),
            der: vec![],
        };
        let mut pki = Self {
            root,
            list_signer: placeholder.clone(),
            gateway: placeholder,
            cities: vec![],
            now,
        };
        pki.list_signer = pki.issue(identity(Role::TrustListSigner, Scope::Nation), &[])?;
        pki.gateway = pki.issue(identity(Role::Gateway, Scope::Nation), &["127.0.0.1"])?;
        Ok(pki)
    }

    /// The root as a verifier pins it.
    pub fn anchor(&self) -> anyhow::Result<TrustAnchor> {
        Ok(TrustAnchor::from_der(self.root.der())?)
    }

    /// Issues a certificate valid from 10 days before to a year after `now`.
    pub fn issue(&self, identity: Identity, hosts: &[&str]) -> anyhow::Result<Issued> {
        self.issue_window(identity, hosts, self.now - 10 * DAY, self.now + 365 * DAY)
    }

    /// Issues a certificate with an explicit validity window.
    pub fn issue_window(
        &self,
        identity: Identity,
        hosts: &[&str],
        not_before: i64,
        not_after: i64,
    ) -> anyhow::Result<Issued> {
        let (key, tls_key) = (keys::generate_signer_key(), TlsKey::generate());
        let subject: keys::RoleKey = if keys::uses_tls_key(identity.role()) {
            keys::RoleKey::Tls(tls_key.clone())
        } else {
            keys::RoleKey::Signer(key.clone())
        };
        let der = self.root.issue(
            &CertRequest {
                identity,
                common_name: identity.to_uri(),
                hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
                not_before,
                not_after,
                serial: None,
            },
            &subject,
        )?;
        Ok(Issued { key, tls_key, der })
    }

    /// Enrols a city with a node at `endpoint`.
    pub fn add_city(&mut self, code: u32, name: &str, endpoint: &str) -> anyhow::Result<CityCode> {
        let code = CityCode::new(code)?;
        let host = endpoint.rsplit_once(':').map_or(endpoint, |(h, _)| h);
        let node = self.issue(identity(Role::CityNode, Scope::City(code)), &[host])?;
        let signer = self.issue(identity(Role::BadgeSigner, Scope::City(code)), &[])?;
        self.cities.push(TestCity {
            code,
            name: name.into(),
            endpoint: endpoint.into(),
            node,
            signer,
        });
        Ok(code)
    }

    /// An operator certificate for a city.
    pub fn operator(&self, city: CityCode) -> anyhow::Result<Issued> {
        self.issue(identity(Role::Operator, Scope::City(city)), &[])
    }

    /// A verifier certificate for a province.
    pub fn verifier(&self, province: u32) -> anyhow::Result<Issued> {
        let province = ProvinceCode::new(province)?;
        self.issue(identity(Role::Verifier, Scope::Province(province)), &[])
    }

    /// The city enrolled with `code`.
    pub fn city(&self, code: CityCode) -> anyhow::Result<&TestCity> {
        self.cities
            .iter()
            .find(|c| c.code == code)
            .ok_or_else(|| anyhow::anyhow!("city {code} not enrolled"))
    }

    /// The badge signer of a city.
    pub fn badge_signer(&self, code: CityCode) -> anyhow::Result<BadgeSigner> {
        let city = self.city(code)?;
        Ok(BadgeSigner::new(city.signer.key.clone(), &city.signer.der)?)
    }

    /// The unsigned list of every enrolment, all active.
    pub fn trust_list_message(&self, sequence: u64) -> anyhow::Result<pb::TrustList> {
        let mut entries = vec![entry(
            &self.list_signer,
            Role::TrustListSigner,
            0,
            "Signer",
            "",
        )?];
        entries.push(entry(
            &self.gateway,
            Role::Gateway,
            0,
            "Gateway",
            "127.0.0.1:1",
        )?);
        for c in &self.cities {
            entries.push(entry(
                &c.node,
                Role::CityNode,
                c.code.get(),
                &c.name,
                &c.endpoint,
            )?);
            entries.push(entry(
                &c.signer,
                Role::BadgeSigner,
                c.code.get(),
                &c.name,
                "",
            )?);
        }
        Ok(pb::TrustList {
            version: TRUST_LIST_VERSION,
            sequence,
            issued_at: self.now,
            next_update: self.now + DAY,
            sunset_at: self.now + 365 * DAY,
            entries,
            revoked_serials: vec![],
        })
    }

    /// Signs a list with the trust-list signer.
    pub fn sign(&self, list: &pb::TrustList) -> anyhow::Result<Vec<u8>> {
        Ok(sign_trust_list(
            list,
            &self.list_signer.key,
            &self.list_signer.der,
        )?)
    }

    /// The signed list of every enrolment, all active.
    pub fn trust_list(&self, sequence: u64) -> anyhow::Result<Vec<u8>> {
        self.sign(&self.trust_list_message(sequence)?)
    }
}

/// A trust-list entry for an issued certificate.
pub fn entry(
    issued: &Issued,
    role: Role,
    code: u32,
    name: &str,
    endpoint: &str,
) -> anyhow::Result<pb::TrustEntry> {
    let info = tessera_core::CertInfo::parse(&issued.der)?;
    Ok(pb::TrustEntry {
        code,
        name: name.into(),
        role: role.to_proto() as i32,
        certificate_der: issued.der.clone(),
        endpoint: endpoint.into(),
        status: pb::EntryStatus::Active as i32,
        not_before: info.not_before(),
        not_after: info.not_after(),
        revoked_at: 0,
    })
}

/// Typical claims: a green badge issued at `now`, valid for a day, with a
/// Chinese masked name and an 18-character ID number.
pub fn claims(city: CityCode, now: i64) -> BadgeClaims {
    let mut id = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut id);
    BadgeClaims {
        issuer_city: city,
        badge_id: BadgeId::from_bytes(id),
        colour: Colour::Green,
        issued_at: now,
        valid_until: now + DAY,
        policy_version: 3,
        holder_hint: HolderHint::mask("张三丰", "33010619900101123X"),
    }
}

/// A valid 18-character national ID number (checksum included) for test
/// resident `n` of a city.
pub fn national_id(city: CityCode, n: u32) -> String {
    let first17 = format!(
        "{:06}{:08}{:03}",
        city.get() + 6,
        19_900_101 + (n / 1000) % 100,
        n % 1000
    );
    let check = tessera_node::pseudonym::check_character(first17.as_bytes()).expect("17 digits");
    format!("{first17}{check}")
}

/// A test-result record.
pub fn test_record(id: &str, national_id: &str, positive: bool, sampled_at: i64) -> pb::Record {
    pb::Record {
        record_id: id.into(),
        national_id: national_id.into(),
        kind: Some(pb::record::Kind::Test(pb::TestResult {
            kind: pb::TestKind::Pcr as i32,
            positive,
            sampled_at,
            lab: "HZ-LAB-01".into(),
        })),
    }
}

/// An exposure-notice record.
pub fn exposure_record(id: &str, national_id: &str, close: bool, exposed_at: i64) -> pb::Record {
    pb::Record {
        record_id: id.into(),
        national_id: national_id.into(),
        kind: Some(pb::record::Kind::Exposure(pb::ExposureNotice {
            level: if close {
                pb::ContactLevel::Close
            } else {
                pb::ContactLevel::Secondary
            } as i32,
            exposed_at,
            source: "HZ-CDC".into(),
        })),
    }
}

/// The current time in Unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
