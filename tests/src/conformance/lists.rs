//! The trust lists badge vectors are checked against, and the trust-list
//! acceptance vectors (rules L, E, R and F of PROTOCOL.md).

use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::SigningKey;
use prost::Message;
use tessera_core::Role;
use tessera_core::signing::BADGE_CONTEXT;
use tessera_core::trust::{TRUST_LIST_VERSION, sign_trust_list};
use tessera_proto::v1 as pb;

use super::craft;
use super::dercraft::{self, Tlv};
use super::pki::{self, Pki, RawKeyCert};
use super::{DAY, ListExpected, ListVector, NOW, ROOT_FILE, SuiteFile};
use crate::Issued;

/// The main list badge vectors use.
pub const MAIN: &str = "lists/main.tsl";
/// The main list with an early sunset (NOW + 10 days).
pub const SHORT: &str = "lists/short-sunset.tsl";
/// A list of badge signers with hostile public keys.
pub const KEYS: &str = "lists/hostile-keys.tsl";
/// Main list's `next_update`.
pub const MAIN_NEXT_UPDATE: i64 = NOW + 7 * DAY;
/// Main list's `sunset_at`.
pub const MAIN_SUNSET: i64 = NOW + 400 * DAY;
/// Short list's `sunset_at`.
pub const SHORT_SUNSET: i64 = NOW + 10 * DAY;

/// A badge signer with a hostile public key.
pub struct HostileKey {
    /// Short name used in vector ids.
    pub name: &'static str,
    /// The certificate.
    pub cert: RawKeyCert,
    /// The secret scalar, for keys someone holds.
    pub scalar: Option<Scalar>,
}

/// The lists badge vectors hold, with the hostile keys of [`KEYS`].
pub struct HeldLists {
    /// [`MAIN`].
    pub main: Vec<u8>,
    /// [`SHORT`].
    pub short: Vec<u8>,
    /// [`KEYS`].
    pub keys: Vec<u8>,
    /// The signers of [`KEYS`].
    pub hostile: Vec<HostileKey>,
}

impl HeldLists {
    /// The files to write.
    pub fn files(&self) -> Vec<(String, Vec<u8>)> {
        vec![
            (MAIN.into(), self.main.clone()),
            (SHORT.into(), self.short.clone()),
            (KEYS.into(), self.keys.clone()),
        ]
    }
}

fn entry(issued: &Issued, role: Role, code: u32, name: &str, endpoint: &str) -> pb::TrustEntry {
    crate::entry(issued, role, code, name, endpoint).expect("conformance entry")
}

fn raw_entry(cert: &RawKeyCert, name: &str) -> pb::TrustEntry {
    pb::TrustEntry {
        code: 330_100,
        name: name.into(),
        role: Role::BadgeSigner.to_proto() as i32,
        certificate_der: cert.der.clone(),
        endpoint: String::new(),
        status: pb::EntryStatus::Active as i32,
        not_before: super::CERT_NOT_BEFORE,
        not_after: super::CERT_NOT_AFTER,
        revoked_at: 0,
    }
}

pub(super) fn revoked(mut e: pb::TrustEntry) -> pb::TrustEntry {
    e.status = pb::EntryStatus::Revoked as i32;
    e.revoked_at = NOW - 2 * DAY;
    e
}

/// The entries of the main list: signer, gateway, Hangzhou's node and
/// signer, Wuhan's signer, Guangzhou's signer (revoked).
fn main_entries(pki: &Pki) -> Vec<pb::TrustEntry> {
    vec![
        entry(
            &pki.list_signer,
            Role::TrustListSigner,
            0,
            "Conformance signer",
            "",
        ),
        entry(
            &pki.gateway,
            Role::Gateway,
            0,
            "Gateway",
            "conformance.example:7443",
        ),
        entry(
            &pki.node_hz,
            Role::CityNode,
            330_100,
            "Hangzhou",
            "conformance.example:7001",
        ),
        entry(&pki.signer_hz, Role::BadgeSigner, 330_100, "Hangzhou", ""),
        entry(&pki.signer_wh, Role::BadgeSigner, 420_100, "Wuhan", ""),
        revoked(entry(
            &pki.signer_gz,
            Role::BadgeSigner,
            440_100,
            "Guangzhou",
            "",
        )),
    ]
}

pub(super) fn list(sequence: u64, entries: Vec<pb::TrustEntry>) -> pb::TrustList {
    pb::TrustList {
        version: TRUST_LIST_VERSION,
        sequence,
        issued_at: NOW - DAY,
        next_update: MAIN_NEXT_UPDATE,
        sunset_at: MAIN_SUNSET,
        entries,
        revoked_serials: vec![vec![0x40, 0x99]],
    }
}

pub(super) fn sign(list: &pb::TrustList, by: &Issued) -> Vec<u8> {
    sign_trust_list(list, &by.key, &by.der).expect("conformance trust list")
}

fn hostile_keys(pki: &Pki) -> Vec<HostileKey> {
    let small = craft::small_order_points();
    let mixed = craft::scalar("mixed-order key");
    let raw = |serial: u8, name: &'static str, key: [u8; 32], scalar: Option<Scalar>| HostileKey {
        name,
        cert: pki::issue_raw_badge_signer(&pki.root, serial, key),
        scalar,
    };
    vec![
        raw(1, "identity", small[0], None),
        raw(2, "order-2", small[4], None),
        raw(3, "order-4", small[2], None),
        raw(4, "order-8", small[1], None),
        raw(
            5,
            "identity-non-canonical",
            craft::IDENTITY_NON_CANONICAL,
            None,
        ),
        raw(6, "identity-sign-bit", craft::IDENTITY_SIGN_BIT, None),
        raw(
            7,
            "non-canonical-large-order",
            craft::non_canonical_large_order_key(),
            None,
        ),
        raw(
            8,
            "mixed-order",
            craft::public_point(&mixed, &craft::torsion(1)),
            Some(mixed),
        ),
    ]
}

/// The lists badge vectors hold.
pub fn badge_lists(pki: &Pki) -> HeldLists {
    let main = sign(&list(7, main_entries(pki)), &pki.list_signer);
    let mut short_list = list(7, main_entries(pki));
    short_list.next_update = NOW + 5 * DAY;
    short_list.sunset_at = SHORT_SUNSET;
    let short = sign(&short_list, &pki.list_signer);
    let hostile = hostile_keys(pki);
    let mut entries = vec![entry(
        &pki.list_signer,
        Role::TrustListSigner,
        0,
        "Conformance signer",
        "",
    )];
    entries.extend(hostile.iter().map(|k| raw_entry(&k.cert, k.name)));
    let keys = sign(&list(7, entries), &pki.list_signer);
    HeldLists {
        main,
        short,
        keys,
        hostile,
    }
}

struct Gen<'a> {
    pki: &'a Pki,
    vectors: Vec<ListVector>,
    files: Vec<SuiteFile>,
}

pub(super) fn accepted(sequence: u64, freshness: &'static str) -> ListExpected {
    ListExpected {
        accepted: true,
        reason: "accepted",
        sequence: Some(sequence),
        freshness: Some(freshness),
    }
}

pub(super) fn refused(reason: &'static str) -> ListExpected {
    ListExpected {
        accepted: false,
        reason,
        sequence: None,
        freshness: None,
    }
}

impl Gen<'_> {
    /// Adds a vector whose candidate is `bytes`, written as a new file.
    #[allow(clippy::too_many_arguments)] // one argument per field of the vector
    fn add(
        &mut self,
        slug: &str,
        rule: &'static str,
        description: &str,
        held: Option<&str>,
        bytes: Vec<u8>,
        now: i64,
        expected: ListExpected,
    ) {
        let n = self.vectors.len() + 1;
        let id = format!("list-{n:03}-{slug}");
        let name = format!("lists/{id}.tsl");
        self.files.push(SuiteFile {
            name: name.clone(),
            bytes,
        });
        self.vectors.push(ListVector {
            id,
            rule,
            description: description.into(),
            root: ROOT_FILE,
            held: held.map(str::to_owned),
            candidate: name,
            now,
            expected,
        });
    }

    /// Adds a vector whose candidate is an existing file.
    #[allow(clippy::too_many_arguments)] // one argument per field of the vector
    fn add_existing(
        &mut self,
        slug: &str,
        rule: &'static str,
        description: &str,
        held: Option<&str>,
        candidate: &str,
        now: i64,
        expected: ListExpected,
    ) {
        let n = self.vectors.len() + 1;
        self.vectors.push(ListVector {
            id: format!("list-{n:03}-{slug}"),
            rule,
            description: description.into(),
            root: ROOT_FILE,
            held: held.map(str::to_owned),
            candidate: candidate.into(),
            now,
            expected,
        });
    }

    fn main(&self) -> pb::TrustList {
        list(7, main_entries(self.pki))
    }

    fn signed(&self, list: &pb::TrustList) -> Vec<u8> {
        sign(list, &self.pki.list_signer)
    }

    /// A SignedTrustList with any payload and signature.
    fn envelope(payload: Vec<u8>, signature: Vec<u8>, signer: &[u8]) -> Vec<u8> {
        pb::SignedTrustList {
            payload,
            signature,
            signer_certificate: signer.to_vec(),
        }
        .encode_to_vec()
    }

    fn with_signer(&self, list: &pb::TrustList, key: &SigningKey, cert: &[u8]) -> Vec<u8> {
        sign_trust_list(list, key, cert).expect("conformance trust list")
    }
}

/// The trust-list vectors and the candidate files they name.
pub fn vectors(pki: &Pki) -> (Vec<ListVector>, Vec<SuiteFile>) {
    let mut g = Gen {
        pki,
        vectors: vec![],
        files: vec![],
    };
    acceptance(&mut g);
    signer_rules(&mut g);
    payload_rules(&mut g);
    entry_rules(&mut g);
    successor_rules(&mut g);
    certificate_rules(&mut g);
    (g.vectors, g.files)
}

fn acceptance(g: &mut Gen<'_>) {
    let fresh = |s| accepted(7, s);
    g.add_existing(
        "main",
        "L1-L15",
        "the main list, checked at NOW",
        None,
        MAIN,
        NOW,
        fresh("fresh"),
    );
    g.add_existing(
        "at-next-update",
        "F1",
        "now = next_update: still fresh",
        None,
        MAIN,
        MAIN_NEXT_UPDATE,
        fresh("fresh"),
    );
    g.add_existing(
        "past-next-update",
        "F2",
        "now = next_update + 1: stale, still accepted",
        None,
        MAIN,
        MAIN_NEXT_UPDATE + 1,
        fresh("stale"),
    );
    g.add_existing(
        "at-sunset",
        "L12",
        "now = sunset_at: accepted (stale)",
        None,
        SHORT,
        SHORT_SUNSET,
        fresh("stale"),
    );
    g.add_existing(
        "past-sunset",
        "L12",
        "now = sunset_at + 1: refused",
        None,
        SHORT,
        SHORT_SUNSET + 1,
        refused("sunset"),
    );
    g.add_existing("signer-expired-before-sunset", "L5", "the main list after its signer's certificate ended (and past its sunset): the signer's validity is checked first", None, MAIN, MAIN_SUNSET + 1, refused("signer_expired"));
    g.add_existing(
        "short-sunset-list",
        "L1-L15",
        "the short-sunset list at NOW",
        None,
        SHORT,
        NOW,
        fresh("fresh"),
    );
    g.add_existing(
        "hostile-keys-list",
        "L1-L15",
        "the list of hostile badge-signer keys is itself acceptable",
        None,
        KEYS,
        NOW,
        fresh("fresh"),
    );
    let mut future = g.main();
    future.issued_at = NOW + 300;
    future.next_update = NOW + 7 * DAY;
    let bytes = g.signed(&future);
    g.add(
        "issued-at-now-plus-300",
        "L11",
        "issued_at = now + 300 (clock skew): accepted",
        None,
        bytes,
        NOW,
        fresh("fresh"),
    );
    future.issued_at = NOW + 301;
    let bytes = g.signed(&future);
    g.add(
        "issued-at-now-plus-301",
        "L11",
        "issued_at = now + 301: refused",
        None,
        bytes,
        NOW,
        refused("issued_in_future"),
    );
    let mut tight = g.main();
    (tight.issued_at, tight.next_update, tight.sunset_at) = (NOW, NOW, NOW);
    let bytes = g.signed(&tight);
    g.add(
        "all-dates-equal",
        "L9-L10",
        "issued_at = next_update = sunset_at = now: accepted, fresh",
        None,
        bytes,
        NOW,
        fresh("fresh"),
    );
    let mut empty = g.main();
    empty.entries.clear();
    empty.revoked_serials.clear();
    let bytes = g.signed(&empty);
    g.add(
        "no-entries",
        "L13",
        "a list with no entries at all",
        None,
        bytes,
        NOW,
        fresh("fresh"),
    );
    let mut big = g.main();
    big.sequence = u64::MAX;
    let bytes = g.signed(&big);
    g.add(
        "sequence-max",
        "R1",
        "sequence 2^64 - 1",
        None,
        bytes,
        NOW,
        accepted(u64::MAX, "fresh"),
    );
}

fn signer_rules(g: &mut Gen<'_>) {
    let main = g.main();
    let good = g.signed(&main);
    let mut truncated = good.clone();
    truncated.truncate(good.len() - 10);
    g.add(
        "truncated",
        "L2",
        "the signed list cut short by 10 bytes",
        None,
        truncated,
        NOW,
        refused("list_malformed"),
    );
    g.add(
        "garbage",
        "L2",
        "bytes that are not a SignedTrustList",
        None,
        b"\xff\xff\xff\xff not a list".to_vec(),
        NOW,
        refused("list_malformed"),
    );
    g.add(
        "empty-file",
        "L3",
        "zero bytes: decodes to an empty message, whose signer certificate is empty",
        None,
        vec![],
        NOW,
        refused("signer_untrusted"),
    );
    let foreign = g.with_signer(
        &main,
        &g.pki.list_signer_foreign.key,
        &g.pki.list_signer_foreign.der,
    );
    g.add(
        "signer-foreign-root",
        "L3",
        "signed by a trust-list signer of another root",
        None,
        foreign,
        NOW,
        refused("signer_untrusted"),
    );
    let by_badge_signer = g.with_signer(&main, &g.pki.signer_hz.key, &g.pki.signer_hz.der);
    g.add(
        "signer-is-badge-signer",
        "L4",
        "signed by a badge-signer certificate",
        None,
        by_badge_signer,
        NOW,
        refused("signer_role"),
    );
    let by_gateway = g.with_signer(&main, &g.pki.gateway.key, &g.pki.gateway.der);
    g.add(
        "signer-is-gateway",
        "L4",
        "signed by the gateway's certificate",
        None,
        by_gateway,
        NOW,
        refused("signer_role"),
    );
    let expired = g.with_signer(
        &main,
        &g.pki.list_signer_expired.key,
        &g.pki.list_signer_expired.der,
    );
    g.add(
        "signer-expired",
        "L5",
        "signer certificate expired a day before now",
        None,
        expired,
        NOW,
        refused("signer_expired"),
    );
    let payload = main.encode_to_vec();
    let signature = tessera_core::signing::sign(
        tessera_core::signing::TRUST_LIST_CONTEXT,
        &payload,
        &g.pki.list_signer.key,
    )
    .expect("sign")
    .to_bytes();
    let mut flipped = signature;
    flipped[63] ^= 0x01;
    let bytes = Gen::envelope(payload.clone(), flipped.to_vec(), &g.pki.list_signer.der);
    g.add(
        "signature-flipped",
        "L6",
        "one bit of S flipped",
        None,
        bytes,
        NOW,
        refused("bad_signature"),
    );
    let mut edited = payload.clone();
    let last = edited.len() - 1;
    edited[last] ^= 0x01;
    let bytes = Gen::envelope(edited, signature.to_vec(), &g.pki.list_signer.der);
    g.add(
        "payload-flipped",
        "L6",
        "one bit of the payload flipped after signing",
        None,
        bytes,
        NOW,
        refused("bad_signature"),
    );
    let bytes = Gen::envelope(
        payload.clone(),
        signature[..63].to_vec(),
        &g.pki.list_signer.der,
    );
    g.add(
        "signature-63-bytes",
        "L6",
        "a 63-byte signature",
        None,
        bytes,
        NOW,
        refused("bad_signature"),
    );
    let badge_ctx = tessera_core::signing::sign(BADGE_CONTEXT, &payload, &g.pki.list_signer.key)
        .expect("sign")
        .to_bytes();
    let bytes = Gen::envelope(payload.clone(), badge_ctx.to_vec(), &g.pki.list_signer.der);
    g.add(
        "signature-badge-context",
        "L6",
        "signed under the badge context instead of the trust-list context",
        None,
        bytes,
        NOW,
        refused("bad_signature"),
    );
    let mut own = g.main();
    own.entries[0] = revoked(own.entries[0].clone());
    let bytes = g.signed(&own);
    g.add(
        "revokes-own-signer-entry",
        "L15",
        "the list's own entry for its signer is REVOKED",
        None,
        bytes,
        NOW,
        refused("signer_revoked"),
    );
    let mut own = g.main();
    own.revoked_serials.push(vec![0x40, 0x02]);
    let bytes = g.signed(&own);
    g.add(
        "revokes-own-signer-serial",
        "L15",
        "revoked_serials holds the signer's serial",
        None,
        bytes,
        NOW,
        refused("signer_revoked"),
    );
}

fn payload_rules(g: &mut Gen<'_>) {
    let sign_payload = |g: &Gen<'_>, payload: Vec<u8>| {
        let sig = tessera_core::signing::sign(
            tessera_core::signing::TRUST_LIST_CONTEXT,
            &payload,
            &g.pki.list_signer.key,
        )
        .expect("sign")
        .to_bytes();
        Gen::envelope(payload, sig.to_vec(), &g.pki.list_signer.der)
    };
    let bytes = sign_payload(g, b"\xff\xff not a TrustList".to_vec());
    g.add(
        "payload-garbage",
        "L7",
        "a signed payload that is not a TrustList",
        None,
        bytes,
        NOW,
        refused("list_malformed"),
    );
    for (slug, version) in [("version-2", 2), ("version-0", 0)] {
        let mut l = g.main();
        l.version = version;
        let bytes = g.signed(&l);
        g.add(
            slug,
            "L8",
            "a version other than 1",
            None,
            bytes,
            NOW,
            refused("unsupported_version"),
        );
    }
    let mut l = g.main();
    l.next_update = l.issued_at - 1;
    let bytes = g.signed(&l);
    g.add(
        "next-update-before-issued",
        "L9",
        "next_update = issued_at - 1",
        None,
        bytes,
        NOW,
        refused("dates_inconsistent"),
    );
    let mut l = g.main();
    l.sunset_at = l.next_update - 1;
    let bytes = g.signed(&l);
    g.add(
        "sunset-before-next-update",
        "L10",
        "sunset_at = next_update - 1",
        None,
        bytes,
        NOW,
        refused("dates_inconsistent"),
    );
    let mut l = g.main();
    l.issued_at = NOW + 400;
    l.next_update = NOW + 300;
    let bytes = g.signed(&l);
    g.add(
        "dates-before-future",
        "L9",
        "dates out of order and issued in the future: the dates rule comes first",
        None,
        bytes,
        NOW,
        refused("dates_inconsistent"),
    );
}

/// (slug, rule, description, edit of the main list, reason).
type EntryCase<'a> = (
    &'static str,
    &'static str,
    &'static str,
    Box<dyn Fn(&mut pb::TrustList) + 'a>,
    &'static str,
);

fn entry_rules(g: &mut Gen<'_>) {
    let pki = g.pki;
    let edit = |g: &Gen<'_>, f: &dyn Fn(&mut pb::TrustList)| {
        let mut l = g.main();
        f(&mut l);
        g.signed(&l)
    };
    let cases: Vec<EntryCase<'_>> = vec![
        (
            "entry-foreign-root",
            "E1",
            "an entry whose certificate another root issued",
            Box::new(|l: &mut pb::TrustList| {
                l.entries.push(entry(
                    &pki.signer_foreign,
                    Role::BadgeSigner,
                    330_100,
                    "Foreign",
                    "",
                ));
            }),
            "entry_certificate",
        ),
        (
            "entry-garbage-certificate",
            "E1",
            "an entry whose certificate is not DER",
            Box::new(|l: &mut pb::TrustList| {
                l.entries[3].certificate_der = b"not a certificate".to_vec();
            }),
            "entry_certificate",
        ),
        (
            "entry-role-mismatch",
            "E2",
            "Hangzhou's badge signer listed with role CITY_NODE",
            Box::new(|l: &mut pb::TrustList| {
                l.entries[3].role = Role::CityNode.to_proto() as i32;
                l.entries[3].endpoint = "conformance.example:7001".into();
            }),
            "entry_role_mismatch",
        ),
        (
            "entry-role-unspecified",
            "E2",
            "an entry with role UNSPECIFIED",
            Box::new(|l: &mut pb::TrustList| {
                l.entries[3].role = 0;
            }),
            "entry_role_mismatch",
        ),
        (
            "entry-unlisted-role",
            "E3",
            "a verifier certificate listed (verifiers are revoked by serial only)",
            Box::new(|l: &mut pb::TrustList| {
                l.entries.push(entry(
                    &pki.verifier_wh,
                    Role::Verifier,
                    420_000,
                    "Wuhan checkpoint",
                    "",
                ));
            }),
            "entry_unlisted_role",
        ),
        (
            "entry-node-without-endpoint",
            "E4",
            "Hangzhou's node entry with an empty endpoint",
            Box::new(|l: &mut pb::TrustList| {
                l.entries[2].endpoint.clear();
            }),
            "entry_missing_endpoint",
        ),
        (
            "entry-gateway-without-endpoint",
            "E4",
            "the gateway entry with an empty endpoint",
            Box::new(|l: &mut pb::TrustList| {
                l.entries[1].endpoint.clear();
            }),
            "entry_missing_endpoint",
        ),
        (
            "entry-code-mismatch",
            "E5",
            "Hangzhou's signer listed under code 420100",
            Box::new(|l: &mut pb::TrustList| {
                l.entries[3].code = 420_100;
            }),
            "entry_code_mismatch",
        ),
        (
            "entry-validity-mismatch",
            "E6",
            "Hangzhou's signer with not_after one second later than its certificate",
            Box::new(|l: &mut pb::TrustList| {
                l.entries[3].not_after += 1;
            }),
            "entry_validity_mismatch",
        ),
        (
            "entry-status-unspecified",
            "E7",
            "an entry with status UNSPECIFIED",
            Box::new(|l: &mut pb::TrustList| {
                l.entries[3].status = 0;
            }),
            "entry_status",
        ),
        (
            "entry-status-unknown",
            "E7",
            "an entry with status 3 (unknown)",
            Box::new(|l: &mut pb::TrustList| {
                l.entries[3].status = 3;
            }),
            "entry_status",
        ),
        (
            "entry-duplicate",
            "L14",
            "Hangzhou's badge signer listed twice",
            Box::new(|l: &mut pb::TrustList| {
                let again = l.entries[3].clone();
                l.entries.push(again);
            }),
            "duplicate_key",
        ),
    ];
    for (slug, rule, description, f, reason) in cases {
        let bytes = edit(g, &*f);
        g.add(slug, rule, description, None, bytes, NOW, refused(reason));
    }
}

fn successor_rules(g: &mut Gen<'_>) {
    let next = |g: &Gen<'_>, sequence: u64| {
        let mut l = g.main();
        l.sequence = sequence;
        g.signed(&l)
    };
    let bytes = next(g, 8);
    g.add(
        "successor-8",
        "R1",
        "held 7, offered 8",
        Some(MAIN),
        bytes,
        NOW,
        accepted(8, "fresh"),
    );
    let bytes = next(g, 6);
    g.add(
        "rollback-6",
        "R1",
        "held 7, offered 6",
        Some(MAIN),
        bytes,
        NOW,
        refused("rollback"),
    );
    let bytes = next(g, 0);
    g.add(
        "rollback-0",
        "R1",
        "held 7, offered 0",
        Some(MAIN),
        bytes,
        NOW,
        refused("rollback"),
    );
    g.add_existing(
        "same-list-again",
        "R2",
        "held 7, offered the very same list",
        Some(MAIN),
        MAIN,
        NOW,
        accepted(7, "fresh"),
    );
    let mut other = g.main();
    other.next_update += 1;
    let bytes = g.signed(&other);
    g.add(
        "sequence-reused",
        "R2",
        "held 7, offered another list numbered 7",
        Some(MAIN),
        bytes,
        NOW,
        refused("sequence_reused"),
    );
    let mut bad = g.main();
    bad.sequence = 6;
    let payload = bad.encode_to_vec();
    let sig = tessera_core::signing::sign(
        tessera_core::signing::TRUST_LIST_CONTEXT,
        &payload,
        &g.pki.list_signer.key,
    )
    .expect("sign")
    .to_bytes();
    let mut edited = payload;
    let last = edited.len() - 1;
    edited[last] ^= 0x01;
    let bytes = Gen::envelope(edited, sig.to_vec(), &g.pki.list_signer.der);
    g.add(
        "rollback-with-bad-signature",
        "R1",
        "held 7, offered 6 with a flipped payload bit: acceptance comes before the successor rules",
        Some(MAIN),
        bytes,
        NOW,
        refused("bad_signature"),
    );
    let stale_now = MAIN_NEXT_UPDATE + DAY;
    let bytes = next(g, 9);
    g.add(
        "successor-while-stale",
        "R1",
        "held 7 (stale), offered 9",
        Some(MAIN),
        bytes,
        stale_now,
        accepted(9, "stale"),
    );

    // Rotation: list 8 by signer 2 revokes signer 1.
    let pki = g.pki;
    let mut rotated = g.main();
    rotated.sequence = 8;
    rotated.entries[0] = revoked(rotated.entries[0].clone());
    rotated.entries.insert(
        0,
        entry(
            &pki.list_signer_2,
            Role::TrustListSigner,
            0,
            "Conformance signer 2",
            "",
        ),
    );
    let rotated_bytes = g.with_signer(&rotated, &pki.list_signer_2.key, &pki.list_signer_2.der);
    g.add(
        "rotation",
        "L15",
        "list 8 signed by a new signer, listing the old one REVOKED",
        Some(MAIN),
        rotated_bytes,
        NOW,
        accepted(8, "fresh"),
    );
    let rotated_name = g
        .vectors
        .last()
        .map(|v| v.candidate.clone())
        .unwrap_or_default();
    let by_old = next(g, 9);
    g.add(
        "old-signer-after-rotation",
        "R3",
        "held list 8 revokes signer 1; signer 1 offers list 9 (listing itself active)",
        Some(&rotated_name),
        by_old,
        NOW,
        refused("signer_revoked"),
    );
    let mut by_new = rotated.clone();
    by_new.sequence = 9;
    let bytes = g.with_signer(&by_new, &pki.list_signer_2.key, &pki.list_signer_2.der);
    g.add(
        "new-signer-after-rotation",
        "R1",
        "held list 8 from signer 2; signer 2 offers list 9",
        Some(&rotated_name),
        bytes,
        NOW,
        accepted(9, "fresh"),
    );
}

/// K1, K3 and K4 where implementations once differed: each certificate is
/// signed by the national root, so only the rule under test refuses it.
/// Listed as Hangzhou's badge signer (or, for the P-256 keys, as the
/// gateway), so E1 refuses the whole list.
fn certificate_rules(g: &mut Gen<'_>) {
    let pki = g.pki;
    let root = &pki.root;
    let signer = pki.signer_hz.der.as_slice();
    let with_field = |index: usize, f: &dyn Fn(&Tlv) -> Vec<u8>| {
        dercraft::reissue(root, signer, &|i, t| {
            if i == index { f(t) } else { t.encode() }
        })
    };
    let not_a_point = pki::issue_raw_badge_signer(root, 9, craft::not_a_point()).der;
    let version_2 = with_field(0, &|_| vec![0xa0, 0x03, 0x02, 0x01, 0x01]);
    let long_length = with_field(5, &|t| t.encode_long_length());
    let indefinite = with_field(4, &|t| t.encode_indefinite());
    let tbs_sha384 = with_field(2, &|_| dercraft::ECDSA_SHA384.to_vec());
    let critical_false = dercraft::reissue_extensions(root, signer, &|exts| {
        for ext in exts.iter_mut() {
            if dercraft::extension_oid(ext) == dercraft::OID_SAN {
                let mut parts: Vec<Vec<u8>> = dercraft::children(&dercraft::children(ext)[0].body)
                    .iter()
                    .map(Tlv::encode)
                    .collect();
                parts.insert(1, vec![0x01, 0x01, 0x00]);
                *ext = Tlv::constructed(0x30, &parts).encode();
            }
        }
    });
    let ca_false = dercraft::reissue_extensions(root, signer, &|exts| {
        for ext in exts.iter_mut() {
            if dercraft::extension_oid(ext) == dercraft::OID_BASIC_CONSTRAINTS {
                let mut parts: Vec<Vec<u8>> = dercraft::children(&dercraft::children(ext)[0].body)
                    .iter()
                    .map(Tlv::encode)
                    .collect();
                let value = Tlv {
                    tag: 0x04,
                    body: vec![0x30, 0x03, 0x01, 0x01, 0x00],
                };
                *parts.last_mut().expect("extnValue") = value.encode();
                *ext = Tlv::constructed(0x30, &parts).encode();
            }
        }
    });
    let duplicate = dercraft::reissue_extensions(root, signer, &|exts| {
        let other = exts
            .iter()
            .find(|e| dercraft::extension_oid(e) != dercraft::OID_SAN)
            .expect("an extension other than the SAN")
            .clone();
        exts.push(other);
    });
    let gateway = pki.gateway.der.as_slice();
    let with_p256_point = |edit: &dyn Fn(&[u8]) -> Vec<u8>| {
        dercraft::reissue(root, gateway, &|i, t| {
            if i != 6 {
                return t.encode();
            }
            let parts = dercraft::children(&t.body);
            let point = &parts[1].body[1..];
            let mut bits = vec![0u8];
            bits.extend_from_slice(&edit(point));
            Tlv::constructed(
                0x30,
                &[
                    parts[0].encode(),
                    Tlv {
                        tag: 0x03,
                        body: bits,
                    }
                    .encode(),
                ],
            )
            .encode()
        })
    };
    let off_curve = with_p256_point(&|point| {
        let mut p = point.to_vec();
        p[64] ^= 1;
        p
    });
    let compressed = with_p256_point(&|point| {
        let mut p = vec![0x02 | (point[64] & 1)];
        p.extend_from_slice(&point[1..33]);
        p
    });
    let cases: [(&str, &'static str, &str, usize, Vec<u8>); 10] = [
        (
            "ed25519-key-not-a-point",
            "K4",
            "Hangzhou's badge signer with 32 key bytes that decode to no curve point",
            3,
            not_a_point,
        ),
        (
            "p256-key-off-curve",
            "K4",
            "the gateway with a P-256 key (65 bytes, 04 || x || y) not on the curve",
            1,
            off_curve,
        ),
        (
            "p256-key-compressed",
            "K4",
            "the gateway with its P-256 key as a compressed point",
            1,
            compressed,
        ),
        (
            "tbs-algorithm-sha384",
            "K3",
            "Hangzhou's badge signer whose signed part names ecdsa-with-SHA384 (the outer algorithm and signature are ecdsa-with-SHA256)",
            3,
            tbs_sha384,
        ),
        (
            "version-2",
            "K1",
            "Hangzhou's badge signer as an X.509 v2 certificate (version 1)",
            3,
            version_2,
        ),
        (
            "tbs-long-length",
            "K1",
            "Hangzhou's badge signer whose subject length takes one octet more than DER allows",
            3,
            long_length,
        ),
        (
            "tbs-indefinite-length",
            "K1",
            "Hangzhou's badge signer whose validity has an indefinite length",
            3,
            indefinite,
        ),
        (
            "critical-false",
            "K1",
            "Hangzhou's badge signer whose subjectAltName encodes critical FALSE (DER omits a default)",
            3,
            critical_false,
        ),
        (
            "ca-false",
            "K1",
            "Hangzhou's badge signer whose basicConstraints encodes cA FALSE (DER omits a default)",
            3,
            ca_false,
        ),
        (
            "extension-twice",
            "K1",
            "Hangzhou's badge signer with one extension twice",
            3,
            duplicate,
        ),
    ];
    for (slug, rule, description, index, der) in cases {
        let mut l = g.main();
        l.entries[index].certificate_der = der;
        let bytes = g.signed(&l);
        g.add(
            slug,
            rule,
            description,
            None,
            bytes,
            NOW,
            refused("entry_certificate"),
        );
    }
}
