//! The golden vectors: a small, fully deterministic federation (fixed keys,
//! serials and times) whose root, trust list and badges are checked in under
//! `tests/golden/`. A test regenerates them and compares byte for byte, so the
//! wire format cannot drift silently.
//!
//! Regenerate after an intended format change with
//! `cargo run -p tessera-tests --bin regen-golden`, and say why in the commit.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use tessera_certs::keys::TlsKey;
use tessera_certs::profile::{CertRequest, RootCa, SubjectKey};
use tessera_core::badge::{BadgeClaims, BadgeSigner, Colour, HolderHint};
use tessera_core::text;
use tessera_core::trust::{TRUST_LIST_VERSION, sign_trust_list};
use tessera_core::{BadgeId, CityCode, Identity, Role, Scope};
use tessera_proto::v1 as pb;

use crate::{DAY, Issued, entry};

/// The moment the golden set describes: 2026-01-01T00:00:00Z.
pub const GOLDEN_NOW: i64 = 1_767_225_600;

/// One golden file: its name under `tests/golden/` and its bytes.
pub struct GoldenFile {
    /// File name.
    pub name: &'static str,
    /// Contents.
    pub bytes: Vec<u8>,
}

/// The directory the golden files live in.
pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden")
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// A fixed P-256 key: the scalar `seed` repeated, far below the group order.
fn tls_key(seed: u8) -> TlsKey {
    TlsKey::from_bytes(&[seed; 32]).expect("golden P-256 key")
}

fn issue(root: &RootCa, seed: u8, role: Role, scope: Scope, hosts: &[&str]) -> Issued {
    let identity = Identity::new(role, scope).expect("golden identity");
    let (key, tls_key) = (key(seed), tls_key(seed));
    let subject: SubjectKey = if role.uses_tls() {
        (&tls_key).into()
    } else {
        (&key).into()
    };
    let der = root
        .issue(
            &CertRequest {
                identity,
                common_name: identity.to_uri(),
                hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
                not_before: GOLDEN_NOW - 30 * DAY,
                not_after: GOLDEN_NOW + 365 * DAY,
                serial: Some(vec![0x40, seed]),
            },
            subject,
        )
        .expect("golden certificate");
    Issued { key, tls_key, der }
}

/// The golden badges: (file stem, claims).
pub fn golden_claims() -> Vec<(&'static str, BadgeClaims)> {
    let hangzhou = CityCode::new(330_100).expect("code");
    let base = BadgeClaims {
        issuer_city: hangzhou,
        badge_id: BadgeId::from_bytes(*b"tessera-golden-1"),
        colour: Colour::Green,
        issued_at: GOLDEN_NOW - 3600,
        valid_until: GOLDEN_NOW + DAY,
        policy_version: 1,
        holder_hint: HolderHint::mask("张三丰", "33010619900101123X"),
    };
    let yellow = BadgeClaims {
        badge_id: BadgeId::from_bytes(*b"tessera-golden-2"),
        colour: Colour::Yellow,
        holder_hint: HolderHint::mask("Wang Fang", "420106198512310042"),
        ..base.clone()
    };
    let red = BadgeClaims {
        badge_id: BadgeId::from_bytes(*b"tessera-golden-3"),
        colour: Colour::Red,
        valid_until: GOLDEN_NOW + 7 * DAY,
        policy_version: 2,
        ..base.clone()
    };
    vec![("green", base), ("yellow", yellow), ("red", red)]
}

/// Builds every golden file from fixed inputs.
pub fn build() -> Vec<GoldenFile> {
    let root_id = Identity::new(Role::Root, Scope::Nation).expect("root identity");
    let root = RootCa::create(
        &CertRequest {
            identity: root_id,
            common_name: "Golden national root".into(),
            hosts: vec![],
            not_before: GOLDEN_NOW - 365 * DAY,
            not_after: GOLDEN_NOW + 3650 * DAY,
            serial: Some(vec![0x40, 0x01]),
        },
        tls_key(1),
    )
    .expect("golden root");
    let hangzhou = CityCode::new(330_100).expect("code");
    let list_signer = issue(&root, 2, Role::TrustListSigner, Scope::Nation, &[]);
    let gateway = issue(&root, 3, Role::Gateway, Scope::Nation, &["gateway.example"]);
    let node = issue(
        &root,
        4,
        Role::CityNode,
        Scope::City(hangzhou),
        &["hz.example"],
    );
    let signer = issue(&root, 5, Role::BadgeSigner, Scope::City(hangzhou), &[]);
    let list = pb::TrustList {
        version: TRUST_LIST_VERSION,
        sequence: 7,
        issued_at: GOLDEN_NOW - DAY,
        next_update: GOLDEN_NOW + DAY,
        sunset_at: GOLDEN_NOW + 365 * DAY,
        entries: vec![
            entry(&list_signer, Role::TrustListSigner, 0, "Golden signer", "").expect("entry"),
            entry(
                &gateway,
                Role::Gateway,
                0,
                "Gateway",
                "gateway.example:7443",
            )
            .expect("entry"),
            entry(
                &node,
                Role::CityNode,
                330_100,
                "Hangzhou",
                "hz.example:7443",
            )
            .expect("entry"),
            entry(&signer, Role::BadgeSigner, 330_100, "Hangzhou", "").expect("entry"),
        ],
        revoked_serials: vec![vec![0x40, 0x99]],
    };
    let trust_list =
        sign_trust_list(&list, &list_signer.key, &list_signer.der).expect("golden trust list");
    let badge_signer = BadgeSigner::new(signer.key.clone(), &signer.der).expect("golden signer");
    let mut files = vec![
        GoldenFile {
            name: "root.der",
            bytes: root.der().to_vec(),
        },
        GoldenFile {
            name: "trust-list.tsl",
            bytes: trust_list,
        },
    ];
    let mut texts = String::new();
    for (stem, claims) in golden_claims() {
        let envelope = badge_signer.sign(&claims).expect("golden badge");
        texts.push_str(&format!("{stem} {}\n", text::to_text(&envelope)));
        files.push(GoldenFile {
            name: match stem {
                "green" => "badge-green.bin",
                "yellow" => "badge-yellow.bin",
                _ => "badge-red.bin",
            },
            bytes: envelope,
        });
    }
    files.push(GoldenFile {
        name: "badges.txt",
        bytes: texts.into_bytes(),
    });
    files
}
