//! What the fuzz targets share: the golden federation of `tests/golden/`
//! (see `tests/src/golden.rs`), loaded once per process.
//!
//! The golden set is built from fixed keys (the scalar or seed `[seed; 32]`:
//! the P-256 root 1, the Ed25519 trust-list signer 2 and badge signer 5,
//! see `tests/src/golden.rs`), so a target can also
//! sign what the fuzzer made up. Without that, every mutated payload would
//! stop at the signature check and the code after it (claims, dates,
//! entries) would never be reached.

use std::sync::OnceLock;

use ed25519_dalek::SigningKey;
use p256::ecdsa::signature::Signer as _;
use prost::Message;
use tessera_core::badge::Envelope;
use tessera_core::signing::{self, BADGE_CONTEXT, TRUST_LIST_CONTEXT};
use tessera_core::trust::CheckedTrustList;
use tessera_core::{KeyId, Role, TrustAnchor};
use tessera_proto::v1 as pb;

/// The moment the golden set describes: 2026-01-01T00:00:00Z
/// (`tessera_tests::golden::GOLDEN_NOW`).
pub const GOLDEN_NOW: i64 = 1_767_225_600;

/// The golden root certificate.
pub const ROOT_DER: &[u8] = include_bytes!("../../tests/golden/root.der");
/// The golden signed trust list.
pub const TRUST_LIST: &[u8] = include_bytes!("../../tests/golden/trust-list.tsl");
/// The golden badges, as envelope bytes.
pub const BADGES: [&[u8]; 3] = [
    include_bytes!("../../tests/golden/badge-green.bin"),
    include_bytes!("../../tests/golden/badge-yellow.bin"),
    include_bytes!("../../tests/golden/badge-red.bin"),
];
/// The golden badges' QR text, one `<colour> <text>` per line.
pub const BADGE_TEXTS: &str = include_str!("../../tests/golden/badges.txt");

/// The golden federation, verified.
pub struct Golden {
    /// The pinned root.
    pub root: TrustAnchor,
    /// The root's P-256 key (scalar `[1; 32]`).
    pub root_key: p256::ecdsa::SigningKey,
    /// The golden trust list, checked at [`GOLDEN_NOW`].
    pub list: CheckedTrustList,
    /// The trust-list signer's key (seed 2) and certificate.
    pub list_signer: (SigningKey, Vec<u8>),
    /// Hangzhou's badge signer's key (seed 5) and key id.
    pub badge_signer: (SigningKey, KeyId),
}

/// The golden federation. Panics if the golden files no longer match the
/// fixed keys: then the fuzz targets would test nothing.
#[allow(clippy::expect_used)]
pub fn golden() -> &'static Golden {
    static GOLDEN: OnceLock<Golden> = OnceLock::new();
    GOLDEN.get_or_init(|| {
        let root = TrustAnchor::from_der(ROOT_DER).expect("golden root");
        let list = CheckedTrustList::verify(TRUST_LIST, &root, GOLDEN_NOW).expect("golden list");
        let key = |seed: u8| SigningKey::from_bytes(&[seed; 32]);
        let root_key =
            p256::ecdsa::SigningKey::from_bytes(&[1u8; 32].into()).expect("golden root key");
        assert_eq!(root.info().p256_key(), Some(root_key.verifying_key()));
        let list_key = key(2);
        assert_eq!(
            list.signer_certificate().ed25519_key(),
            Some(&list_key.verifying_key())
        );
        let list_signer_der = pb::SignedTrustList::decode(TRUST_LIST)
            .expect("golden list decodes")
            .signer_certificate;
        let badge_key = key(5);
        let badge_entry = list
            .entries()
            .iter()
            .find(|e| e.cert().identity().role() == Role::BadgeSigner)
            .expect("golden badge signer entry");
        assert_eq!(
            badge_entry.cert().ed25519_key(),
            Some(&badge_key.verifying_key())
        );
        let badge_key_id = badge_entry.cert().key_id();
        Golden {
            root,
            root_key,
            list,
            list_signer: (list_key, list_signer_der),
            badge_signer: (badge_key, badge_key_id),
        }
    })
}

impl Golden {
    /// An envelope around `payload`, signed by the golden badge signer, or
    /// `None` if the payload is too long to sign.
    pub fn sign_badge(&self, payload: &[u8]) -> Option<Vec<u8>> {
        let (key, key_id) = &self.badge_signer;
        let signature = signing::sign(BADGE_CONTEXT, payload, key)?;
        Some(
            Envelope {
                payload: payload.to_vec(),
                key_id: *key_id,
                signature,
            }
            .encode(),
        )
    }

    /// A SignedTrustList around `payload`, signed by the golden trust-list
    /// signer, or `None` if the payload is too long to sign.
    pub fn sign_list(&self, payload: &[u8]) -> Option<Vec<u8>> {
        let (key, der) = &self.list_signer;
        let signature = signing::sign(TRUST_LIST_CONTEXT, payload, key)?;
        Some(
            pb::SignedTrustList {
                payload: payload.to_vec(),
                signature: signature.to_bytes().to_vec(),
                signer_certificate: der.clone(),
            }
            .encode_to_vec(),
        )
    }

    /// A certificate whose to-be-signed part is `tbs`, signed by the golden
    /// root, in the one DER encoding tessera accepts.
    pub fn sign_certificate(&self, tbs: &[u8]) -> Vec<u8> {
        let signature: p256::ecdsa::Signature = self.root_key.sign(tbs);
        let signature = signature.to_der();
        let signature = signature.as_bytes();
        // AlgorithmIdentifier { ecdsa-with-SHA256 }, then a BIT STRING of
        // the DER ECDSA-Sig-Value (at most 72 bytes: short-form length).
        let mut tail = vec![
            0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02, 0x03,
        ];
        tail.push(signature.len() as u8 + 1);
        tail.push(0x00);
        let body_len = tbs.len() + tail.len() + signature.len();
        let mut out = vec![0x30];
        if body_len < 0x80 {
            out.push(body_len as u8);
        } else {
            let bytes = body_len.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
        out.extend_from_slice(tbs);
        out.extend_from_slice(&tail);
        out.extend_from_slice(signature);
        out
    }
}
