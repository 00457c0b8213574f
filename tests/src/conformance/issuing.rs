//! Vectors of the issuing CA (PROTOCOL.md K3a, K3b, L3, E1, V10a and V13):
//! a second national root of path length 1 (`root-issuing.der`) that issues
//! issuing CAs, the lists that name them and the badges their signers make.
//!
//! Kept apart from the older vectors so that those stay byte for byte what
//! they were: every file here is new, every id follows the last older one.

use rcgen::{BasicConstraints, IsCa, KeyUsagePurpose};
use tessera_certs::profile::RootCa;
use tessera_core::text::to_text;
use tessera_core::{Role, Scope};
use tessera_proto::v1 as pb;

use super::badges::{bad_signature, claims, fail, key_id, signed, valid};
use super::craft::{envelope, sign};
use super::lists::{accepted, list, refused, revoked, sign as sign_list};
use super::pki::{self, CaShape, Pki, city, identity, issue_named, tls_key};
use super::{
    BadgeExpected, BadgeVector, CERT_NOT_AFTER, CERT_NOT_BEFORE, DAY, ListExpected, ListVector,
    NOW, ROOT_FILE, SuiteFile,
};
use crate::Issued;

/// The root of path length 1 the issuing-CA vectors pin.
pub const ROOT_ISSUING: &str = "root-issuing.der";
/// The list most issuing-CA badge vectors hold.
pub const ISSUING: &str = "lists/issuing.tsl";
/// A list of two issuing CAs of one name: the old one REVOKED.
pub const ROTATED: &str = "lists/issuing-rotated.tsl";
/// The end of the short-lived issuing CA's validity.
const SHORT_CA_END: i64 = NOW + 10 * DAY;
/// The expired issuing CA's validity.
const EXPIRED_CA: (i64, i64) = (NOW - 400 * DAY, NOW - DAY);
/// The ordinary validity.
const WINDOW: (i64, i64) = (CERT_NOT_BEFORE, CERT_NOT_AFTER);
/// The name of the ordinary issuing CA (and of the impostor).
const ICA_NAME: &str = "Conformance issuing CA";
/// The name both issuing CAs of [`ROTATED`] carry.
const ROTATED_NAME: &str = "Conformance issuing CA 2026";

/// An issuing CA: its certificate, window, and the means to issue.
struct Ica {
    ca: RootCa,
    window: (i64, i64),
}

impl Ica {
    fn der(&self) -> &[u8] {
        self.ca.der()
    }
}

/// A well-formed issuing CA from `root`, key and serial of `seed`.
fn ica(root: &RootCa, seed: u8, name: &str, window: (i64, i64)) -> Ica {
    odd_ica(root, seed, name, window, CaShape::issuing_ca())
}

/// An issuing-CA certificate of any shape from `issuer`.
fn odd_ica(issuer: &RootCa, seed: u8, name: &str, window: (i64, i64), shape: CaShape) -> Ica {
    let der = pki::ca_cert(Some(issuer), seed, Role::IssuingCa, name, window, shape);
    Ica {
        ca: RootCa::from_parts(tls_key(seed), der),
        window,
    }
}

fn signer(by: &RootCa, seed: u8, code: u32) -> Issued {
    let id = identity(Role::BadgeSigner, Scope::City(city(code)));
    issue_named(by, seed, id, &id.to_uri(), WINDOW)
}

/// Every certificate of the issuing-CA vectors.
struct IcaPki {
    root: RootCa,
    list_signer: Issued,
    ica: Ica,
    gateway: Issued,
    node_hz: Issued,
    signer_hz: Issued,
    signer_wh: Issued,
    ica_revoked: Ica,
    signer_gz: Issued,
    signer_sz: Issued,
    ica_short: Ica,
    signer_nj: Issued,
    ica_expired: Ica,
    signer_cd: Issued,
    ica_old: Ica,
    ica_new: Ica,
    signer_old: Issued,
    signer_new: Issued,
}

fn build_pki() -> IcaPki {
    let root = pki::root_with_path_len(21, "Conformance national root (issuing CA)", 1);
    let nation = Scope::Nation;
    let hz = Scope::City(city(330_100));
    let list_id = identity(Role::TrustListSigner, nation);
    let ca = ica(&root, 23, ICA_NAME, WINDOW);
    let ica_revoked = ica(&root, 28, "Conformance issuing CA (compromised)", WINDOW);
    let ica_short = ica(
        &root,
        31,
        "Conformance issuing CA (short)",
        (CERT_NOT_BEFORE, SHORT_CA_END),
    );
    let ica_expired = ica(&root, 33, "Conformance issuing CA (expired)", EXPIRED_CA);
    let ica_old = ica(&root, 35, ROTATED_NAME, WINDOW);
    let ica_new = ica(&root, 36, ROTATED_NAME, WINDOW);
    let gateway_id = identity(Role::Gateway, nation);
    let node_id = identity(Role::CityNode, hz);
    IcaPki {
        list_signer: issue_named(&root, 22, list_id, &list_id.to_uri(), WINDOW),
        gateway: issue_named(&ca.ca, 24, gateway_id, &gateway_id.to_uri(), WINDOW),
        node_hz: issue_named(&ca.ca, 25, node_id, &node_id.to_uri(), WINDOW),
        signer_hz: signer(&ca.ca, 26, 330_100),
        signer_wh: signer(&root, 27, 420_100),
        signer_gz: signer(&ica_revoked.ca, 29, 440_100),
        signer_sz: signer(&ica_revoked.ca, 30, 440_300),
        signer_nj: signer(&ica_short.ca, 32, 320_100),
        signer_cd: signer(&ica_expired.ca, 34, 510_100),
        signer_old: signer(&ica_old.ca, 37, 420_100),
        signer_new: signer(&ica_new.ca, 38, 330_100),
        root,
        ica: ca,
        ica_revoked,
        ica_short,
        ica_expired,
        ica_old,
        ica_new,
    }
}

/// A trust-list entry for `der`, whose validity is `window`.
fn entry_of(der: &[u8], role: Role, code: u32, window: (i64, i64)) -> pb::TrustEntry {
    let endpoint = match role {
        Role::Gateway => "conformance.example:7443",
        Role::CityNode => "conformance.example:7001",
        _ => "",
    };
    pb::TrustEntry {
        code,
        name: format!("{role} {code:06}"),
        role: role.to_proto() as i32,
        certificate_der: der.to_vec(),
        endpoint: endpoint.into(),
        status: pb::EntryStatus::Active as i32,
        not_before: window.0,
        not_after: window.1,
        revoked_at: 0,
    }
}

fn leaf(issued: &Issued, role: Role, code: u32) -> pb::TrustEntry {
    entry_of(&issued.der, role, code, WINDOW)
}

fn ca_entry(ica: &Ica) -> pb::TrustEntry {
    entry_of(ica.der(), Role::IssuingCa, 0, ica.window)
}

/// The entries of [`ISSUING`].
fn issuing_entries(p: &IcaPki) -> Vec<pb::TrustEntry> {
    vec![
        leaf(&p.list_signer, Role::TrustListSigner, 0),
        ca_entry(&p.ica),
        leaf(&p.gateway, Role::Gateway, 0),
        leaf(&p.node_hz, Role::CityNode, 330_100),
        leaf(&p.signer_hz, Role::BadgeSigner, 330_100),
        leaf(&p.signer_wh, Role::BadgeSigner, 420_100),
        revoked(ca_entry(&p.ica_revoked)),
        leaf(&p.signer_gz, Role::BadgeSigner, 440_100),
        revoked(leaf(&p.signer_sz, Role::BadgeSigner, 440_300)),
        ca_entry(&p.ica_short),
        leaf(&p.signer_nj, Role::BadgeSigner, 320_100),
        ca_entry(&p.ica_expired),
        leaf(&p.signer_cd, Role::BadgeSigner, 510_100),
    ]
}

/// The entries of [`ROTATED`]: the old issuing CA (REVOKED) before the new
/// one of the same name, then a signer of each.
fn rotated_entries(p: &IcaPki) -> Vec<pb::TrustEntry> {
    vec![
        leaf(&p.list_signer, Role::TrustListSigner, 0),
        revoked(ca_entry(&p.ica_old)),
        ca_entry(&p.ica_new),
        leaf(&p.signer_old, Role::BadgeSigner, 420_100),
        leaf(&p.signer_new, Role::BadgeSigner, 330_100),
    ]
}

/// The issuing-CA vectors, numbered after `badges` badge vectors and
/// `lists` list vectors, and their files.
pub fn vectors(
    older: &Pki,
    badges: usize,
    lists: usize,
) -> (Vec<BadgeVector>, Vec<ListVector>, Vec<SuiteFile>) {
    let p = build_pki();
    let issuing = sign_list(&list(7, issuing_entries(&p)), &p.list_signer);
    let rotated = sign_list(&list(7, rotated_entries(&p)), &p.list_signer);
    let mut files = vec![
        SuiteFile {
            name: ROOT_ISSUING.into(),
            bytes: p.root.der().to_vec(),
        },
        SuiteFile {
            name: ISSUING.into(),
            bytes: issuing,
        },
        SuiteFile {
            name: ROTATED.into(),
            bytes: rotated,
        },
    ];
    let mut b = Badges {
        first: badges,
        out: vec![],
    };
    badge_vectors(&p, &mut b);
    let mut l = Lists {
        first: lists,
        vectors: vec![],
        files: vec![],
    };
    list_vectors(&p, older, &mut l);
    files.extend(l.files);
    (b.out, l.vectors, files)
}

struct Badges {
    first: usize,
    out: Vec<BadgeVector>,
}

impl Badges {
    fn add(
        &mut self,
        slug: &str,
        rule: &'static str,
        description: &str,
        list: &'static str,
        text: String,
        expected: BadgeExpected,
    ) {
        let n = self.first + self.out.len() + 1;
        self.out.push(BadgeVector {
            id: format!("badge-{n:03}-{slug}"),
            rule,
            description: description.into(),
            root: ROOT_ISSUING,
            trust_list: list,
            trust_list_accepted_at: NOW,
            now: NOW,
            text: Some(text),
            envelope_hex: None,
            expected,
        });
    }
}

fn city_claims(n: u16, code: u32) -> pb::BadgeClaims {
    pb::BadgeClaims {
        issuer_city: code,
        ..claims(n)
    }
}

fn badge_vectors(p: &IcaPki, b: &mut Badges) {
    let c = city_claims(201, 330_100);
    b.add(
        "issuing-ca-signer",
        "K3b",
        "Hangzhou's badge signer, issued by the listed issuing CA",
        ISSUING,
        to_text(&signed(&p.signer_hz, &c)),
        valid(&c),
    );
    let c = city_claims(202, 420_100);
    b.add(
        "root-issued-signer-beside-issuing-ca",
        "K3b",
        "Wuhan's badge signer, issued by the root itself in a list that has an issuing CA (a directory made before issuing CAs)",
        ISSUING,
        to_text(&signed(&p.signer_wh, &c)),
        valid(&c),
    );
    let gz = city_claims(203, 440_100);
    b.add(
        "issuing-ca-revoked",
        "V10a",
        "Guangzhou's badge signer is ACTIVE, but the issuing CA that issued it is listed REVOKED",
        ISSUING,
        to_text(&signed(&p.signer_gz, &gz)),
        fail("SIGNER_REVOKED", "issuer_revoked"),
    );
    let payload = prost::Message::encode_to_vec(&gz);
    let forged = envelope(
        &payload,
        &key_id(&p.signer_gz.der),
        &sign(&p.signer_hz.key, &payload),
    );
    b.add(
        "issuing-ca-revoked-forged-signature",
        "V9",
        "Guangzhou's key id (its issuing CA REVOKED) with a signature by another key: the signature is checked first",
        ISSUING,
        to_text(&forged),
        bad_signature(),
    );
    let bad_version = pb::BadgeClaims {
        version: 2,
        ..city_claims(204, 440_100)
    };
    b.add(
        "issuing-ca-revoked-before-claims",
        "V10a",
        "Guangzhou's signer (its issuing CA REVOKED) signs claims of version 2: V10a comes before the claims are read (V11)",
        ISSUING,
        to_text(&signed(&p.signer_gz, &bad_version)),
        fail("SIGNER_REVOKED", "issuer_revoked"),
    );
    let c = city_claims(205, 440_300);
    b.add(
        "signer-and-issuing-ca-revoked",
        "V10",
        "Shenzhen's badge signer is listed REVOKED and so is its issuing CA: V10 decides before V10a",
        ISSUING,
        to_text(&signed(&p.signer_sz, &c)),
        fail("SIGNER_REVOKED", "signer_revoked"),
    );
    short_ca_badges(p, b);
    let c = city_claims(209, 510_100);
    b.add(
        "issuing-ca-expired-before-issue",
        "V13",
        "Chengdu's badge signer is valid, but its issuing CA's certificate ended (NOW - 1 day) before the badge was issued",
        ISSUING,
        to_text(&signed(&p.signer_cd, &c)),
        fail("BAD_SIGNATURE", "signer_not_valid_at_issue"),
    );
    let c = pb::BadgeClaims {
        issued_at: EXPIRED_CA.1 - DAY,
        valid_until: EXPIRED_CA.1,
        ..city_claims(210, 510_100)
    };
    b.add(
        "issuing-ca-expired-after-issue",
        "V13",
        "Chengdu's badge issued and ending while its issuing CA was valid (valid_until = the CA's not_after), checked after the CA expired: V13 looks at issued_at, so the badge is only EXPIRED",
        ISSUING,
        to_text(&signed(&p.signer_cd, &c)),
        fail("EXPIRED", "expired"),
    );
    let c = city_claims(211, 330_100);
    b.add(
        "rotated-issuing-ca-signer",
        "K3b",
        "a signer of the new issuing CA, listed after a REVOKED one of the same name: it is issued by the one whose key verifies its signature",
        ROTATED,
        to_text(&signed(&p.signer_new, &c)),
        valid(&c),
    );
    let c = city_claims(212, 420_100);
    b.add(
        "rotated-out-issuing-ca-signer",
        "V10a",
        "a signer of the old issuing CA, REVOKED, whose name the new one shares",
        ROTATED,
        to_text(&signed(&p.signer_old, &c)),
        fail("SIGNER_REVOKED", "issuer_revoked"),
    );
}

/// V13 at the short-lived issuing CA's `not_after` (NOW + 10 days).
fn short_ca_badges(p: &IcaPki, b: &mut Badges) {
    let c = city_claims(206, 320_100);
    b.add(
        "short-issuing-ca-signer",
        "V13",
        "Nanjing's badge signer, issued by an issuing CA that ends at NOW + 10 days, for a badge that ends before",
        ISSUING,
        to_text(&signed(&p.signer_nj, &c)),
        valid(&c),
    );
    let c = pb::BadgeClaims {
        valid_until: SHORT_CA_END,
        ..city_claims(207, 320_100)
    };
    b.add(
        "valid-until-at-issuing-ca-end",
        "V13",
        "valid_until = the issuing CA's not_after (the signer's own ends later): accepted",
        ISSUING,
        to_text(&signed(&p.signer_nj, &c)),
        valid(&c),
    );
    let c = pb::BadgeClaims {
        valid_until: SHORT_CA_END + 1,
        ..city_claims(208, 320_100)
    };
    b.add(
        "valid-until-past-issuing-ca-end",
        "V13",
        "valid_until = the issuing CA's not_after + 1, within the signer's own validity: the badge would outlive its signer's CA",
        ISSUING,
        to_text(&signed(&p.signer_nj, &c)),
        fail("BAD_SIGNATURE", "signer_not_valid_at_issue"),
    );
}

struct Lists {
    first: usize,
    vectors: Vec<ListVector>,
    files: Vec<SuiteFile>,
}

impl Lists {
    /// A vector against `root`; `bytes` is written as a new file, or the
    /// candidate is the existing file `existing`.
    #[allow(clippy::too_many_arguments)] // one argument per field of the vector
    fn add(
        &mut self,
        slug: &str,
        rule: &'static str,
        description: &str,
        root: &'static str,
        candidate: Result<Vec<u8>, &str>,
        expected: ListExpected,
    ) {
        let n = self.first + self.vectors.len() + 1;
        let id = format!("list-{n:03}-{slug}");
        let name = match candidate {
            Ok(bytes) => {
                let name = format!("lists/{id}.tsl");
                self.files.push(SuiteFile {
                    name: name.clone(),
                    bytes,
                });
                name
            }
            Err(existing) => existing.to_owned(),
        };
        self.vectors.push(ListVector {
            id,
            rule,
            description: description.into(),
            root,
            held: None,
            candidate: name,
            now: NOW,
            expected,
        });
    }
}

fn list_vectors(p: &IcaPki, older: &Pki, l: &mut Lists) {
    l.add(
        "issuing-ca-list",
        "E1",
        "an issuing CA, a gateway, a node and a badge signer it issued, a badge signer issued by the root itself, a REVOKED issuing CA with the signers it issued, a short-lived and an expired issuing CA with theirs",
        ROOT_ISSUING,
        Err(ISSUING),
        accepted(7, "fresh"),
    );
    l.add(
        "same-name-issuing-cas",
        "K3b",
        "two issuing CAs of one name, the first REVOKED, each with a signer: each signer is issued by the one whose key verifies it",
        ROOT_ISSUING,
        Err(ROTATED),
        accepted(7, "fresh"),
    );
    let only_revoked = vec![
        leaf(&p.list_signer, Role::TrustListSigner, 0),
        leaf(&p.signer_gz, Role::BadgeSigner, 440_100),
        revoked(ca_entry(&p.ica_revoked)),
    ];
    l.add(
        "revoked-issuing-ca-listed-last",
        "E1",
        "the only issuing CA is REVOKED and listed after the signer it issued: the list is valid",
        ROOT_ISSUING,
        Ok(sign_list(&list(7, only_revoked), &p.list_signer)),
        accepted(7, "fresh"),
    );
    let with = |extra: Vec<pb::TrustEntry>| {
        let mut entries = issuing_entries(p);
        entries.extend(extra);
        sign_list(&list(7, entries), &p.list_signer)
    };
    let unlisted = ica(&p.root, 41, "Conformance issuing CA (unlisted)", WINDOW);
    let bytes = with(vec![leaf(
        &signer(&unlisted.ca, 42, 330_100),
        Role::BadgeSigner,
        330_100,
    )]);
    l.add(
        "issuer-not-listed",
        "E1",
        "a Hangzhou badge signer issued by a well-formed issuing CA of the root that the list does not name",
        ROOT_ISSUING,
        Ok(bytes),
        refused("entry_certificate"),
    );
    let impostor = ica(&p.root, 39, ICA_NAME, WINDOW);
    let bytes = with(vec![leaf(
        &signer(&impostor.ca, 40, 330_100),
        Role::BadgeSigner,
        330_100,
    )]);
    l.add(
        "issuer-name-of-listed-ca-other-key",
        "K3b",
        "a Hangzhou badge signer whose issuer name is the listed issuing CA's, signed by an unlisted CA of that name",
        ROOT_ISSUING,
        Ok(bytes),
        refused("entry_certificate"),
    );
    odd_issuing_cas(p, older, l, &with);
    let signer_id = identity(Role::TrustListSigner, Scope::Nation);
    let ica_signer = issue_named(&p.ica.ca, 49, signer_id, &signer_id.to_uri(), WINDOW);
    let mut entries = issuing_entries(p);
    entries.push(leaf(&ica_signer, Role::TrustListSigner, 0));
    l.add(
        "list-signer-issued-by-issuing-ca",
        "L3",
        "the list is signed by a trust-list signer that the listed issuing CA issued (a signer must be issued by the root itself)",
        ROOT_ISSUING,
        Ok(sign_list(&list(7, entries), &ica_signer)),
        refused("signer_untrusted"),
    );
}

/// Issuing-CA certificates that fail K3a or K7, each appended to the
/// entries of [`ISSUING`].
fn odd_issuing_cas(
    p: &IcaPki,
    older: &Pki,
    l: &mut Lists,
    with: &dyn Fn(Vec<pb::TrustEntry>) -> Vec<u8>,
) {
    let sub = odd_ica(
        &p.ica.ca,
        43,
        "Conformance sub-CA",
        WINDOW,
        CaShape::issuing_ca(),
    );
    let shaped = |seed, is_ca, key_usages| {
        let shape = CaShape { is_ca, key_usages };
        odd_ica(&p.root, seed, "Conformance odd issuing CA", WINDOW, shape)
    };
    let sign_usages = || vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cases = [
        (
            "issuing-ca-issued-by-issuing-ca",
            "an issuing CA issued by the listed issuing CA (an issuing CA must be issued by the root)",
            sub,
        ),
        (
            "issuing-ca-path-len-absent",
            "an issuing CA whose basic constraints have no pathLenConstraint",
            shaped(44, IsCa::Ca(BasicConstraints::Unconstrained), sign_usages()),
        ),
        (
            "issuing-ca-path-len-1",
            "an issuing CA of pathLenConstraint 1",
            shaped(
                45,
                IsCa::Ca(BasicConstraints::Constrained(1)),
                sign_usages(),
            ),
        ),
        (
            "issuing-ca-not-a-ca",
            "a certificate of role issuing-ca that is not a CA (keyCertSign and cRLSign set)",
            shaped(46, IsCa::ExplicitNoCa, sign_usages()),
        ),
        (
            "issuing-ca-without-key-cert-sign",
            "an issuing CA (path length 0) whose key usage has cRLSign and digitalSignature but not keyCertSign",
            shaped(
                47,
                IsCa::Ca(BasicConstraints::Constrained(0)),
                vec![KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature],
            ),
        ),
    ];
    for (slug, description, ca) in cases {
        let bytes = with(vec![ca_entry(&ca)]);
        l.add(
            slug,
            "K3a",
            description,
            ROOT_ISSUING,
            Ok(bytes),
            refused("entry_certificate"),
        );
    }
    let long = ica(
        &p.root,
        50,
        "Conformance issuing CA (six years)",
        (CERT_NOT_BEFORE, CERT_NOT_BEFORE + 6 * 366 * DAY),
    );
    l.add(
        "issuing-ca-six-years",
        "K7",
        "an issuing CA valid for six years (at most five, as every certificate but the root)",
        ROOT_ISSUING,
        Ok(with(vec![ca_entry(&long)])),
        refused("entry_certificate"),
    );
    let under_old_root = ica(&older.root, 48, ICA_NAME, WINDOW);
    let signer_under = signer(&under_old_root.ca, 51, 330_100);
    let entries = vec![
        leaf(&older.list_signer, Role::TrustListSigner, 0),
        ca_entry(&under_old_root),
        leaf(&signer_under, Role::BadgeSigner, 330_100),
    ];
    l.add(
        "issuing-ca-under-path-len-0-root",
        "K3a",
        "root.der (pathLenConstraint 0) issued an issuing CA, listed with a badge signer it issued: a root of path length 0 may issue no CA",
        ROOT_FILE,
        Ok(sign_list(&list(7, entries), &older.list_signer)),
        refused("entry_certificate"),
    );
}
