//! The badge vectors: every step of badge verification (rules T, Q, V, C and
//! S of PROTOCOL.md), each limit at its boundary and one past it, and the
//! hostile forms. Expected outcomes are written from the rules, by hand.

use prost::Message;
use tessera_core::KeyId;
use tessera_core::signing::{self, TRUST_LIST_CONTEXT};
use tessera_core::text::to_text;
use tessera_proto::v1 as pb;

use super::craft::{self, envelope, sign};
use super::lists::{HeldLists, KEYS, MAIN, MAIN_NEXT_UPDATE, SHORT, SHORT_SUNSET};
use super::pki::Pki;
use super::{BadgeExpected, BadgeVector, CERT_NOT_AFTER, CERT_NOT_BEFORE, DAY, NOW, ROOT_FILE};
use crate::Issued;

/// How a badge is handed to the verifier.
enum Form {
    Text(String),
    Envelope(Vec<u8>),
}

struct Gen<'a> {
    pki: &'a Pki,
    lists: &'a HeldLists,
    out: Vec<BadgeVector>,
}

pub(super) fn valid(c: &pb::BadgeClaims) -> BadgeExpected {
    BadgeExpected {
        outcome: "VALID",
        reason: "valid",
        colour: Some(match c.colour {
            1 => "GREEN",
            2 => "YELLOW",
            _ => "RED",
        }),
        valid_until: Some(c.valid_until),
        issuer_city: Some(c.issuer_city),
    }
}

pub(super) fn fail(outcome: &'static str, reason: &'static str) -> BadgeExpected {
    BadgeExpected {
        outcome,
        reason,
        colour: None,
        valid_until: None,
        issuer_city: None,
    }
}

fn malformed(reason: &'static str) -> BadgeExpected {
    fail("MALFORMED", reason)
}

pub(super) fn bad_signature() -> BadgeExpected {
    fail("BAD_SIGNATURE", "bad_signature")
}

/// Hangzhou's typical claims, badge number `n`.
pub(super) fn claims(n: u16) -> pb::BadgeClaims {
    let mut badge_id = *b"conformance-\0\0\0\0";
    badge_id[14..].copy_from_slice(&n.to_be_bytes());
    pb::BadgeClaims {
        version: 1,
        issuer_city: 330_100,
        badge_id: badge_id.to_vec(),
        colour: pb::Colour::Green as i32,
        issued_at: NOW - 3600,
        valid_until: NOW + DAY,
        policy_version: 1,
        holder_hint: Some(pb::HolderHint {
            masked_name: "张**".into(),
            id_tail: "123X".into(),
        }),
    }
}

pub(super) fn key_id(issued_der: &[u8]) -> [u8; 8] {
    *KeyId::of_certificate(issued_der).as_bytes()
}

/// Envelope bytes of `payload` signed by `signer`, naming its key id.
fn signed_payload(signer: &Issued, payload: &[u8]) -> Vec<u8> {
    envelope(payload, &key_id(&signer.der), &sign(&signer.key, payload))
}

pub(super) fn signed(signer: &Issued, c: &pb::BadgeClaims) -> Vec<u8> {
    signed_payload(signer, &c.encode_to_vec())
}

/// Claims followed by an unknown field 15 of `pad` bytes.
fn padded_payload(c: &pb::BadgeClaims, pad: usize) -> Vec<u8> {
    let mut payload = c.encode_to_vec();
    payload.push(0x7a); // field 15, length-delimited
    prost::encoding::encode_varint(pad as u64, &mut payload);
    payload.extend(std::iter::repeat_n(b'p', pad));
    payload
}

/// A validly signed Hangzhou envelope of exactly `len` bytes, padded with
/// an unknown claims field.
fn envelope_of_len(signer: &Issued, c: &pb::BadgeClaims, len: usize) -> Vec<u8> {
    let pad = (0..len)
        .find(|&pad| envelope(&padded_payload(c, pad), &[0; 8], &[0; 64]).len() == len)
        .expect("a padding reaches the length");
    signed_payload(signer, &padded_payload(c, pad))
}

impl Gen<'_> {
    #[allow(clippy::too_many_arguments)] // one argument per field of the vector
    fn add(
        &mut self,
        slug: &str,
        rule: &'static str,
        description: &str,
        list: &'static str,
        now: i64,
        form: Form,
        expected: BadgeExpected,
    ) {
        let n = self.out.len() + 1;
        let (text, envelope_hex) = match form {
            Form::Text(t) => (Some(t), None),
            Form::Envelope(e) => (None, Some(hex::encode(e))),
        };
        self.out.push(BadgeVector {
            id: format!("badge-{n:03}-{slug}"),
            rule,
            description: description.into(),
            root: ROOT_FILE,
            trust_list: list,
            trust_list_accepted_at: NOW,
            now,
            text,
            envelope_hex,
            expected,
        });
    }

    /// A text vector against the main list at NOW.
    fn text(
        &mut self,
        slug: &str,
        rule: &'static str,
        description: &str,
        text: String,
        expected: BadgeExpected,
    ) {
        self.add(
            slug,
            rule,
            description,
            MAIN,
            NOW,
            Form::Text(text),
            expected,
        );
    }

    /// An envelope vector against the main list at NOW.
    fn env(
        &mut self,
        slug: &str,
        rule: &'static str,
        description: &str,
        bytes: Vec<u8>,
        expected: BadgeExpected,
    ) {
        self.add(
            slug,
            rule,
            description,
            MAIN,
            NOW,
            Form::Envelope(bytes),
            expected,
        );
    }

    /// Hangzhou signs `c`; text vector at NOW.
    fn claims(
        &mut self,
        slug: &str,
        rule: &'static str,
        description: &str,
        c: &pb::BadgeClaims,
        expected: BadgeExpected,
    ) {
        let text = to_text(&signed(&self.pki.signer_hz, c));
        self.text(slug, rule, description, text, expected);
    }
}

/// Every badge vector.
pub fn vectors(pki: &Pki, lists: &HeldLists) -> Vec<BadgeVector> {
    let mut g = Gen {
        pki,
        lists,
        out: vec![],
    };
    valid_badges(&mut g);
    text_rules(&mut g);
    length_rules(&mut g);
    envelope_rules(&mut g);
    signer_rules(&mut g);
    signature_rules(&mut g);
    hostile_signatures(&mut g);
    hostile_keys(&mut g);
    claims_rules(&mut g);
    hint_rules(&mut g);
    window_rules(&mut g);
    g.out
}

fn valid_badges(g: &mut Gen<'_>) {
    for (slug, colour, n) in [("green", 1, 1), ("yellow", 2, 2), ("red", 3, 3)] {
        let c = pb::BadgeClaims {
            colour,
            ..claims(n)
        };
        g.claims(
            &format!("valid-{slug}"),
            "V16",
            "a valid badge",
            &c,
            valid(&c),
        );
    }
    let c = claims(4);
    let bytes = signed(&g.pki.signer_hz, &c);
    g.env(
        "valid-envelope",
        "V16",
        "a valid badge given as envelope bytes",
        bytes,
        valid(&c),
    );
    let c = pb::BadgeClaims {
        issuer_city: 420_100,
        ..claims(5)
    };
    let text = to_text(&signed(&g.pki.signer_wh, &c));
    g.text(
        "valid-wuhan",
        "V16",
        "a valid badge of another city",
        text,
        valid(&c),
    );
    let c = pb::BadgeClaims {
        issuer_city: 420_100,
        ..claims(6)
    };
    let bytes = signed(&g.pki.signer_wh, &c);
    let text = to_text(&bytes);
    let stale_now = MAIN_NEXT_UPDATE + 1;
    let c_stale = pb::BadgeClaims {
        issued_at: stale_now - 3600,
        valid_until: stale_now + DAY,
        ..c
    };
    let text_stale = to_text(&signed(&g.pki.signer_wh, &c_stale));
    g.add(
        "stale-list",
        "V16",
        "checked with a list past its next_update: a stale list does not change the verdict",
        MAIN,
        stale_now,
        Form::Text(text_stale),
        valid(&c_stale),
    );
    let _ = text;
}

fn text_rules(g: &mut Gen<'_>) {
    let c = claims(10);
    let good = to_text(&signed(&g.pki.signer_hz, &c));
    let body = good.strip_prefix("TB1:").expect("prefix").to_owned();
    for (slug, before, after) in [
        ("trailing-lf", "", "\n"),
        ("trailing-crlf", "", "\r\n"),
        ("space-and-tab", " ", "\t"),
        ("leading-crlf", "\r\n", ""),
        ("many-trimmed", " \t\r\n \t", "\n\n\r\t  "),
    ] {
        g.text(
            slug,
            "T1",
            "TAB, LF, CR and SPACE around the text are trimmed",
            format!("{before}{good}{after}"),
            valid(&c),
        );
    }
    for (slug, before, after, reason) in [
        (
            "trailing-ideographic-space",
            "",
            "\u{3000}",
            "text_invalid_character",
        ),
        (
            "leading-ideographic-space",
            "\u{3000}",
            "",
            "text_missing_prefix",
        ),
        ("leading-bom", "\u{feff}", "", "text_missing_prefix"),
        ("trailing-bom", "", "\u{feff}", "text_invalid_character"),
        ("trailing-nbsp", "", "\u{a0}", "text_invalid_character"),
        (
            "trailing-vertical-tab",
            "",
            "\u{0b}",
            "text_invalid_character",
        ),
        ("trailing-form-feed", "", "\u{0c}", "text_invalid_character"),
        (
            "trailing-unit-separator",
            "",
            "\u{1f}",
            "text_invalid_character",
        ),
        ("trailing-nul", "", "\u{0}", "text_invalid_character"),
        ("trailing-next-line", "", "\u{85}", "text_invalid_character"),
        (
            "leading-line-separator",
            "\u{2028}",
            "",
            "text_missing_prefix",
        ),
    ] {
        g.text(
            slug,
            "T1",
            "only TAB, LF, CR and SPACE are trimmed: anything else stays and is refused",
            format!("{before}{good}{after}"),
            malformed(reason),
        );
    }
    let (head, tail) = body.split_at(30);
    g.text(
        "interior-newline",
        "T4",
        "a newline inside the base45 text",
        format!("TB1:{head}\n{tail}"),
        malformed("text_invalid_character"),
    );
    g.text(
        "lower-case-prefix",
        "T3",
        "tb1: in lower case",
        format!("tb1:{body}"),
        malformed("text_missing_prefix"),
    );
    g.text(
        "prefix-tb2",
        "T3",
        "another text version",
        format!("TB2:{body}"),
        malformed("text_unsupported_version"),
    );
    g.text(
        "prefix-tb10",
        "T3",
        "TB10: is another version too",
        format!("TB10:{body}"),
        malformed("text_unsupported_version"),
    );
    g.text(
        "prefix-tb-six-characters",
        "T3",
        "TB and four non-ASCII letters before the colon: 6 characters (10 bytes), another version",
        format!("TB\u{e9}\u{e9}\u{e9}\u{e9}:{body}"),
        malformed("text_unsupported_version"),
    );
    g.text(
        "prefix-tb-seven-characters",
        "T3",
        "TB12345: has 7 characters before the colon: not a version, no prefix",
        format!("TB12345:{body}"),
        malformed("text_missing_prefix"),
    );
    g.text(
        "prefix-hc1",
        "T3",
        "an EU DCC prefix",
        format!("HC1:{body}"),
        malformed("text_missing_prefix"),
    );
    g.text(
        "no-prefix",
        "T3",
        "base45 without a prefix",
        body.clone(),
        malformed("text_missing_prefix"),
    );
    g.text(
        "empty-text",
        "T3",
        "the empty string",
        String::new(),
        malformed("text_missing_prefix"),
    );
    g.text(
        "only-whitespace",
        "T3",
        "only trimmed characters",
        " \r\n".into(),
        malformed("text_missing_prefix"),
    );
    g.text(
        "prefix-only",
        "V4",
        "TB1: and nothing else: zero envelope bytes, no key id",
        "TB1:".into(),
        malformed("key_id_length"),
    );
    g.text(
        "lower-case-body",
        "T4",
        "base45 in lower case",
        format!("TB1:{}", body.to_lowercase()),
        malformed("text_invalid_character"),
    );
    let dangling = if body.len().is_multiple_of(3) {
        "0"
    } else {
        "00"
    };
    g.text(
        "dangling-character",
        "T5",
        "a base45 length of 1 modulo 3",
        format!("TB1:{body}{dangling}"),
        malformed("text_dangling_character"),
    );
    g.text(
        "group-over-65535",
        "T6",
        "GGW encodes 65536",
        "TB1:GGW".into(),
        malformed("text_value_out_of_range"),
    );
    g.text(
        "pair-over-255",
        "T6",
        "a final 2-character group encoding 1610",
        "TB1:BB8ZZ".into(),
        malformed("text_value_out_of_range"),
    );
    g.text(
        "two-bytes-not-an-envelope",
        "V3",
        "TB1:BB8 decodes to the bytes AB, not an envelope",
        "TB1:BB8".into(),
        malformed("envelope_decode"),
    );
}

fn length_rules(g: &mut Gen<'_>) {
    let c = claims(20);
    let max = envelope_of_len(&g.pki.signer_hz, &c, 512);
    let text = to_text(&max);
    g.text(
        "text-772-characters",
        "T2",
        "the longest text: a 512-byte envelope, 772 characters",
        text.clone(),
        valid(&c),
    );
    g.text(
        "text-772-plus-crlf",
        "T2",
        "772 characters plus a trimmed CRLF: the limit counts after trimming",
        format!("{text}\r\n"),
        valid(&c),
    );
    g.text(
        "text-773-characters",
        "T2",
        "773 characters",
        format!("{text}0"),
        malformed("text_too_long"),
    );
    g.text(
        "text-772-plus-ideographic-space",
        "T2",
        "772 characters and a U+3000, which is not trimmed: the length is checked first",
        format!("{text}\u{3000}"),
        malformed("text_too_long"),
    );
    g.text(
        "text-772-characters-773-bytes",
        "T2",
        "772 characters of which one is 2 bytes in UTF-8: characters are counted, not bytes",
        format!("TB1:{}\u{e9}", "0".repeat(767)),
        malformed("text_invalid_character"),
    );
    let over = envelope_of_len(&g.pki.signer_hz, &c, 513);
    g.text(
        "text-of-513-byte-envelope",
        "T2",
        "a 513-byte envelope as text: 774 characters",
        to_text(&over),
        malformed("text_too_long"),
    );
    g.env(
        "envelope-512-bytes",
        "V2",
        "a validly signed 512-byte envelope",
        max,
        valid(&c),
    );
    g.env(
        "envelope-513-bytes",
        "V2",
        "a validly signed 513-byte envelope",
        over,
        malformed("envelope_too_large"),
    );
}

fn envelope_rules(g: &mut Gen<'_>) {
    let c = claims(30);
    let payload = c.encode_to_vec();
    let sig = sign(&g.pki.signer_hz.key, &payload);
    let kid = key_id(&g.pki.signer_hz.der);
    let good = envelope(&payload, &kid, &sig);
    let mut truncated = good.clone();
    truncated.pop();
    g.env(
        "truncated-envelope",
        "V3",
        "the last byte cut off",
        truncated.clone(),
        malformed("envelope_decode"),
    );
    g.text(
        "truncated-envelope-text",
        "V3",
        "the same, as text",
        to_text(&truncated),
        malformed("envelope_decode"),
    );
    let mut trailing = good.clone();
    trailing.push(0);
    g.env(
        "trailing-zero-byte",
        "V3",
        "a zero byte after the envelope (field number 0)",
        trailing,
        malformed("envelope_decode"),
    );
    g.env(
        "not-protobuf",
        "V3",
        "ASCII text, not an envelope",
        b"not a badge".to_vec(),
        malformed("envelope_decode"),
    );
    g.env(
        "empty-envelope",
        "V4",
        "zero bytes: every field absent",
        vec![],
        malformed("key_id_length"),
    );
    for (slug, len) in [
        ("key-id-7-bytes", 7),
        ("key-id-9-bytes", 9),
        ("key-id-absent", 0),
    ] {
        let bytes = envelope(&payload, &[0x11; 9][..len], &sig);
        g.env(
            slug,
            "V4",
            "a key id that is not 8 bytes",
            bytes,
            malformed("key_id_length"),
        );
    }
    for (slug, len) in [
        ("signature-63-bytes", 63),
        ("signature-65-bytes", 65),
        ("signature-absent", 0),
    ] {
        let mut s = sig.to_vec();
        s.resize(len, 0);
        g.env(
            slug,
            "V5",
            "a signature that is not 64 bytes",
            envelope(&payload, &kid, &s),
            malformed("signature_length"),
        );
    }
    g.env(
        "empty-payload",
        "V6",
        "no payload",
        envelope(&[], &kid, &sig),
        malformed("empty_payload"),
    );
    g.env(
        "bad-key-id-before-bad-signature",
        "V4",
        "a 7-byte key id and a 63-byte signature: the key id is checked first",
        envelope(&payload, &kid[..7], &sig[..63]),
        malformed("key_id_length"),
    );
    let mut unknown = good.clone();
    unknown.extend_from_slice(&[0x7a, 3, b'x', b'y', b'z']);
    g.env(
        "unknown-envelope-field",
        "V3",
        "an unknown field 15 in the envelope: ignored, it is not signed",
        unknown,
        valid(&c),
    );
    let mut repeated = vec![0x12, 8];
    repeated.extend_from_slice(&[0xee; 8]);
    repeated.extend_from_slice(&good);
    g.env(
        "key-id-repeated",
        "V3",
        "key_id given twice, a wrong one then the right one: protobuf keeps the last",
        repeated,
        valid(&c),
    );
}

fn signer_rules(g: &mut Gen<'_>) {
    let pki = g.pki;
    let c = claims(40);
    let payload = c.encode_to_vec();
    let sig = sign(&pki.signer_hz.key, &payload);
    g.env(
        "unknown-key-id",
        "V7",
        "a key id no entry has",
        envelope(&payload, &[0x5a; 8], &sig),
        fail("UNKNOWN_SIGNER", "unknown_signer"),
    );
    let text = to_text(&signed(&pki.signer_unlisted, &c));
    g.text(
        "unlisted-signer",
        "V7",
        "a Hangzhou badge signer issued by the root but in no list",
        text,
        fail("UNKNOWN_SIGNER", "unknown_signer"),
    );
    let text = to_text(&signed(&pki.signer_foreign, &c));
    g.text(
        "foreign-root-signer",
        "V7",
        "a badge signer of another federation's root",
        text,
        fail("UNKNOWN_SIGNER", "unknown_signer"),
    );
    for (slug, who) in [
        ("signed-by-node", &pki.node_hz),
        ("signed-by-list-signer", &pki.list_signer),
        ("signed-by-gateway", &pki.gateway),
    ] {
        let text = to_text(&signed(who, &c));
        g.text(
            slug,
            "V8",
            "a listed certificate that is not a badge signer",
            text,
            fail("UNKNOWN_SIGNER", "wrong_signer_role"),
        );
    }
    let bytes = envelope(&payload, &key_id(&pki.node_hz.der), &[0; 64]);
    g.env(
        "wrong-role-and-bad-signature",
        "V8",
        "the node's key id with a zero signature: the role is checked before the signature",
        bytes,
        fail("UNKNOWN_SIGNER", "wrong_signer_role"),
    );
    let gz = pb::BadgeClaims {
        issuer_city: 440_100,
        ..claims(41)
    };
    let text = to_text(&signed(&pki.signer_gz, &gz));
    g.text(
        "revoked-signer",
        "V10",
        "Guangzhou's signer is REVOKED in the list",
        text,
        fail("SIGNER_REVOKED", "signer_revoked"),
    );
    let bytes = envelope(
        &gz.encode_to_vec(),
        &key_id(&pki.signer_gz.der),
        &sign(&pki.signer_hz.key, &gz.encode_to_vec()),
    );
    g.env(
        "revoked-key-id-forged",
        "V9",
        "the revoked signer's key id on a signature by another key: the signature is checked first",
        bytes,
        bad_signature(),
    );
    let gz0 = pb::BadgeClaims {
        policy_version: 0,
        ..gz
    };
    let text = to_text(&signed(&pki.signer_gz, &gz0));
    g.text(
        "revoked-signer-bad-claims",
        "V10",
        "a revoked signer's badge with policy_version 0: revocation is checked before the claims",
        text,
        fail("SIGNER_REVOKED", "signer_revoked"),
    );
    let wh = pb::BadgeClaims {
        issuer_city: 420_100,
        ..claims(42)
    };
    let text = to_text(&signed(&pki.signer_hz, &wh));
    g.text(
        "issuer-mismatch",
        "V12",
        "Hangzhou's signer signs a badge naming Wuhan",
        text,
        fail("BAD_SIGNATURE", "issuer_mismatch"),
    );
}

fn signature_rules(g: &mut Gen<'_>) {
    let pki = g.pki;
    let c = claims(50);
    let payload = c.encode_to_vec();
    let kid = key_id(&pki.signer_hz.der);
    let sig = sign(&pki.signer_hz.key, &payload);
    let mut flipped = sig;
    flipped[63] ^= 0x01;
    g.env(
        "signature-bit-flipped",
        "V9",
        "one bit of S flipped",
        envelope(&payload, &kid, &flipped),
        bad_signature(),
    );
    let mut edited = payload.clone();
    let last = edited.len() - 1;
    edited[last] ^= 0x01;
    g.env(
        "payload-bit-flipped",
        "V9",
        "one bit of the payload flipped after signing",
        envelope(&edited, &kid, &sig),
        bad_signature(),
    );
    let other_ctx = signing::sign(TRUST_LIST_CONTEXT, &payload, &pki.signer_hz.key)
        .expect("sign")
        .to_bytes();
    g.env(
        "trust-list-context",
        "V9",
        "signed under the trust-list context",
        envelope(&payload, &kid, &other_ctx),
        bad_signature(),
    );
    let mut no_len = b"tessera/badge/v1".to_vec();
    no_len.extend_from_slice(&payload);
    let plain = ed25519_dalek::Signer::sign(&pki.signer_hz.key, &no_len).to_bytes();
    g.env(
        "no-length-prefix",
        "V9",
        "Ed25519 over context || payload, without the length",
        envelope(&payload, &kid, &plain),
        bad_signature(),
    );
    let bare = ed25519_dalek::Signer::sign(&pki.signer_hz.key, &payload).to_bytes();
    g.env(
        "bare-payload",
        "V9",
        "Ed25519 over the payload alone",
        envelope(&payload, &kid, &bare),
        bad_signature(),
    );
    let by_wuhan = sign(&pki.signer_wh.key, &payload);
    g.env(
        "another-key",
        "V9",
        "Hangzhou's key id on Wuhan's signature",
        envelope(&payload, &kid, &by_wuhan),
        bad_signature(),
    );
    g.env(
        "zero-signature",
        "V9",
        "64 zero bytes",
        envelope(&payload, &kid, &[0; 64]),
        bad_signature(),
    );
}

fn hostile_signatures(g: &mut Gen<'_>) {
    let pki = g.pki;
    let signer = &pki.signer_hz;
    let kid = key_id(&signer.der);
    let a = craft::secret_scalar(&signer.key);
    let a_bytes = signer.key.verifying_key().to_bytes();
    assert_eq!(
        craft::public_point(&a, &craft::torsion(0)),
        a_bytes,
        "scalar of the key"
    );
    let c = claims(60);
    let payload = c.encode_to_vec();
    let sig = sign(&signer.key, &payload);
    let (r, s) = (&sig[..32], &sig[32..]);
    let r: [u8; 32] = r.try_into().expect("32");
    let s_plus_l = craft::add_l(s);
    g.env(
        "s-plus-l",
        "S1",
        "a valid signature with S + L in place of S",
        envelope(&payload, &kid, &craft::join(&r, &s_plus_l)),
        bad_signature(),
    );
    g.env(
        "s-equals-l",
        "S1",
        "S = L",
        envelope(&payload, &kid, &craft::join(&r, &craft::L)),
        bad_signature(),
    );
    g.env(
        "s-all-ones",
        "S1",
        "S = 2^256 - 1",
        envelope(&payload, &kid, &craft::join(&r, &[0xff; 32])),
        bad_signature(),
    );
    let names = [
        "identity",
        "order-8-a",
        "order-4-a",
        "order-8-b",
        "order-2",
        "order-8-c",
        "order-4-b",
        "order-8-d",
    ];
    for (point, name) in craft::small_order_points().into_iter().zip(names) {
        let forged = craft::sign_with_r_bytes(&a, &a_bytes, point, &payload);
        g.env(
            &format!("small-order-r-{name}"),
            "S3",
            "R a point of small order, S = k·a: made by the key holder, holds up to the cofactor",
            envelope(&payload, &kid, &forged),
            bad_signature(),
        );
    }
    for (name, bytes) in [
        ("identity-y-plus-p", craft::IDENTITY_NON_CANONICAL),
        ("identity-sign-bit", craft::IDENTITY_SIGN_BIT),
        ("y-zero-as-p", craft::Y_ZERO_NON_CANONICAL),
    ] {
        let forged = craft::sign_with_r_bytes(&a, &a_bytes, bytes, &payload);
        g.env(
            &format!("non-canonical-r-{name}"),
            "S3",
            "R a non-canonical encoding, S = k·a over those R bytes",
            envelope(&payload, &kid, &forged),
            bad_signature(),
        );
    }
    for (name, index) in [("order-8", 1), ("order-4", 2), ("order-2", 4)] {
        let c = claims(61 + index as u16);
        let payload = c.encode_to_vec();
        let nonce = craft::scalar(&format!("torsion r {name}"));
        let torsion_sig =
            craft::sign_with_torsion(&a, &a_bytes, &nonce, &craft::torsion(index), &payload);
        g.env(&format!("torsion-r-{name}"), "S5", "made by the key holder with a torsion component in R: the cofactored equation holds, so it is VALID everywhere", envelope(&payload, &kid, &torsion_sig), valid(&c));
        if index == 1 {
            let s_l = craft::add_l(&torsion_sig[32..]);
            let r_t: [u8; 32] = torsion_sig[..32].try_into().expect("32");
            g.env(
                "torsion-r-with-s-plus-l",
                "S1",
                "torsion in R and S + L: S is checked first",
                envelope(&payload, &kid, &craft::join(&r_t, &s_l)),
                bad_signature(),
            );
        }
    }
}

fn hostile_keys(g: &mut Gen<'_>) {
    let lists = g.lists;
    let c = claims(70);
    let payload = c.encode_to_vec();
    for key in &lists.hostile {
        let kid = key_id(&key.cert.der);
        match &key.scalar {
            None if key.name == "non-canonical-large-order" => {
                let sig = sign(&g.pki.signer_hz.key, &payload);
                g.add(&format!("key-{}", key.name), "S2", "a badge signer whose public key is a non-canonical encoding (y + p) of a point of large order", KEYS, NOW, Form::Envelope(envelope(&payload, &kid, &sig)), bad_signature());
            }
            None => {
                g.add(&format!("key-{}", key.name), "S2", "a badge signer whose public key has small order (or encodes one non-canonically); R = identity, S = 0 holds for every message up to the cofactor", KEYS, NOW, Form::Envelope(envelope(&payload, &kid, &craft::small_order_key_signature())), bad_signature());
            }
            Some(a) => {
                let a_bytes = key.cert.public_key;
                let nonce = craft::scalar("mixed-order key nonce");
                let sig =
                    craft::sign_with_torsion(a, &a_bytes, &nonce, &craft::torsion(0), &payload);
                g.add(&format!("key-{}", key.name), "S5", "a key with a torsion component (not of small order), signing honestly: the cofactored equation holds", KEYS, NOW, Form::Envelope(envelope(&payload, &kid, &sig)), valid(&c));
                let c2 = claims(71);
                let payload2 = c2.encode_to_vec();
                let sig =
                    craft::sign_with_torsion(a, &a_bytes, &nonce, &craft::torsion(3), &payload2);
                g.add(
                    &format!("key-{}-torsion-r", key.name),
                    "S5",
                    "the same key with torsion in R as well",
                    KEYS,
                    NOW,
                    Form::Envelope(envelope(&payload2, &kid, &sig)),
                    valid(&c2),
                );
            }
        }
    }
}

fn claims_rules(g: &mut Gen<'_>) {
    let pki = g.pki;
    let text = to_text(&signed_payload(&pki.signer_hz, b"\xff\xff\xff"));
    g.text(
        "claims-not-protobuf",
        "C1",
        "a signed payload that is not BadgeClaims",
        text,
        malformed("claims_decode"),
    );
    for (slug, version) in [("claims-version-2", 2), ("claims-version-0", 0)] {
        let c = pb::BadgeClaims {
            version,
            ..claims(80)
        };
        g.claims(
            slug,
            "C2",
            "a claims version other than 1",
            &c,
            malformed("unsupported_version"),
        );
    }
    for (slug, city) in [
        ("city-is-province", 330_000),
        ("city-no-province", 990_100),
        ("city-seven-digits", 1_330_100),
        ("city-zero", 0),
    ] {
        let c = pb::BadgeClaims {
            issuer_city: city,
            ..claims(81)
        };
        g.claims(
            slug,
            "C3",
            "an issuer_city that is not a city code",
            &c,
            malformed("issuer_city_invalid"),
        );
    }
    for (slug, len) in [
        ("badge-id-15-bytes", 15),
        ("badge-id-17-bytes", 17),
        ("badge-id-absent", 0),
    ] {
        let c = pb::BadgeClaims {
            badge_id: vec![7; len],
            ..claims(82)
        };
        g.claims(
            slug,
            "C4",
            "a badge_id that is not 16 bytes",
            &c,
            malformed("badge_id_length"),
        );
    }
    for (slug, colour) in [("colour-unspecified", 0), ("colour-4", 4)] {
        let c = pb::BadgeClaims {
            colour,
            ..claims(83)
        };
        g.claims(
            slug,
            "C5",
            "a colour other than GREEN, YELLOW, RED",
            &c,
            malformed("colour_invalid"),
        );
    }
    let c = pb::BadgeClaims {
        policy_version: 0,
        ..claims(84)
    };
    g.claims(
        "policy-version-0",
        "C8",
        "policy_version 0 (policies are numbered from 1)",
        &c,
        malformed("policy_version_zero"),
    );
    let c = pb::BadgeClaims {
        policy_version: 1,
        ..claims(85)
    };
    g.claims("policy-version-1", "C8", "policy_version 1", &c, valid(&c));
    let c = pb::BadgeClaims {
        policy_version: u32::MAX,
        ..claims(86)
    };
    g.claims(
        "policy-version-max",
        "C8",
        "policy_version 2^32 - 1",
        &c,
        valid(&c),
    );
    let c = claims(87);
    let text = to_text(&signed_payload(&pki.signer_hz, &padded_payload(&c, 5)));
    g.text(
        "unknown-claims-field",
        "C1",
        "an unknown field 15 in the signed claims: ignored",
        text,
        valid(&c),
    );
    let c = pb::BadgeClaims {
        version: 2,
        issuer_city: 0,
        ..claims(88)
    };
    g.claims(
        "version-before-city",
        "C2",
        "version 2 and city 0: the version is checked first",
        &c,
        malformed("unsupported_version"),
    );
    let c = pb::BadgeClaims {
        badge_id: vec![1; 15],
        colour: 0,
        ..claims(89)
    };
    g.claims(
        "badge-id-before-colour",
        "C4",
        "a 15-byte id and no colour: the id is checked first",
        &c,
        malformed("badge_id_length"),
    );
    let c = pb::BadgeClaims {
        valid_until: NOW + 40 * DAY,
        policy_version: 0,
        ..claims(90)
    };
    g.claims(
        "window-before-policy",
        "C7",
        "a 40-day window and policy_version 0: the window is checked first",
        &c,
        malformed("window_too_long"),
    );
    let c = pb::BadgeClaims {
        policy_version: 0,
        holder_hint: Some(pb::HolderHint {
            masked_name: "Zhang Sanfeng".into(),
            id_tail: String::new(),
        }),
        ..claims(91)
    };
    g.claims(
        "policy-before-hint",
        "C8",
        "policy_version 0 and a full name: the policy version is checked first",
        &c,
        malformed("policy_version_zero"),
    );
}

fn hint(n: u16, masked_name: &str, id_tail: &str) -> pb::BadgeClaims {
    pb::BadgeClaims {
        holder_hint: Some(pb::HolderHint {
            masked_name: masked_name.into(),
            id_tail: id_tail.into(),
        }),
        ..claims(n)
    }
}

fn hint_rules(g: &mut Gen<'_>) {
    for (slug, name) in [
        ("masked-name-one-star", "L*"),
        ("masked-name-three-stars", "W***"),
        ("masked-name-han", "张**"),
        ("masked-name-star-first", "**"),
        ("masked-name-empty", ""),
    ] {
        let c = hint(100, name, "123X");
        g.claims(
            slug,
            "C9",
            "a masked name of the allowed form",
            &c,
            valid(&c),
        );
    }
    for (slug, name) in [
        ("masked-name-full-latin", "Zhang Sanfeng"),
        ("masked-name-full-han", "张三丰"),
        ("masked-name-no-star", "Z"),
        ("masked-name-four-stars", "Z****"),
        ("masked-name-two-letters", "ZS*"),
        ("masked-name-star-then-letter", "张*三"),
        ("masked-name-only-star", "*"),
        ("masked-name-sixteen", "ZhangSanfengXYZW"),
    ] {
        let c = hint(101, name, "123X");
        g.claims(
            slug,
            "C9",
            "a masked name that is not one character and 1 to 3 asterisks",
            &c,
            malformed("masked_name_form"),
        );
    }
    for (slug, tail) in [
        ("id-tail-digits", "0042"),
        ("id-tail-x", "123X"),
        ("id-tail-empty", ""),
    ] {
        let c = hint(102, "L*", tail);
        g.claims(slug, "C10", "an ID tail of the allowed form", &c, valid(&c));
    }
    for (slug, tail) in [
        ("id-tail-two", "12"),
        ("id-tail-five", "12345"),
        ("id-tail-lower-x", "123x"),
        ("id-tail-full-id", "33010619900101123X"),
        ("id-tail-fullwidth", "１２３４"),
        ("id-tail-space", "12 3"),
    ] {
        let c = hint(103, "L*", tail);
        g.claims(
            slug,
            "C10",
            "an ID tail that is not four of 0-9 and X",
            &c,
            malformed("id_tail_form"),
        );
    }
    let c = pb::BadgeClaims {
        holder_hint: None,
        ..claims(104)
    };
    g.claims(
        "hint-absent",
        "C9",
        "no holder_hint at all: read as an empty name and tail",
        &c,
        valid(&c),
    );
    let c = hint(105, "Zhang Sanfeng", "12");
    g.claims(
        "name-before-tail",
        "C9",
        "a full name and a short tail: the name is checked first",
        &c,
        malformed("masked_name_form"),
    );
}

fn window_rules(g: &mut Gen<'_>) {
    let window = |n: u16, issued_at: i64, valid_until: i64| pb::BadgeClaims {
        issued_at,
        valid_until,
        ..claims(n)
    };
    let c = window(110, NOW - 15 * DAY, NOW + 15 * DAY);
    g.claims(
        "window-30-days",
        "C7",
        "a window of exactly 30 days",
        &c,
        valid(&c),
    );
    let c = window(111, NOW - 15 * DAY, NOW + 15 * DAY + 1);
    g.claims(
        "window-30-days-plus-1",
        "C7",
        "a window of 30 days and 1 second",
        &c,
        malformed("window_too_long"),
    );
    let c = window(112, i64::MIN, NOW + DAY);
    g.claims("issued-at-min", "C7", "issued_at = -2^63: the window is over 30 days (MALFORMED), checked before the signer's validity", &c, malformed("window_too_long"));
    let c = window(113, NOW - 3600, i64::MAX);
    g.claims(
        "valid-until-max",
        "C7",
        "valid_until = 2^63 - 1",
        &c,
        malformed("window_too_long"),
    );
    let c = window(114, NOW, NOW);
    g.claims(
        "window-empty",
        "C6",
        "valid_until = issued_at",
        &c,
        malformed("empty_window"),
    );
    let c = window(115, NOW, NOW - 1);
    g.claims(
        "window-negative",
        "C6",
        "valid_until = issued_at - 1",
        &c,
        malformed("empty_window"),
    );
    let c = window(116, NOW + 300, NOW + DAY);
    g.claims(
        "issued-now-plus-300",
        "V14",
        "issued_at = now + 300 (clock skew)",
        &c,
        valid(&c),
    );
    let c = window(117, NOW + 301, NOW + DAY);
    g.claims(
        "issued-now-plus-301",
        "V14",
        "issued_at = now + 301",
        &c,
        fail("NOT_YET_VALID", "not_yet_valid"),
    );
    let c = window(118, NOW - DAY, NOW);
    g.claims(
        "valid-until-now",
        "V15",
        "valid_until = now: still valid",
        &c,
        valid(&c),
    );
    let c = window(119, NOW - DAY, NOW - 1);
    g.claims(
        "valid-until-now-minus-1",
        "V15",
        "valid_until = now - 1",
        &c,
        fail("EXPIRED", "expired"),
    );
    let c = window(120, CERT_NOT_BEFORE, CERT_NOT_BEFORE + 30 * DAY);
    g.claims(
        "issued-at-signer-not-before",
        "V13",
        "issued_at = the signer certificate's not_before",
        &c,
        valid(&c),
    );
    let c = window(121, CERT_NOT_BEFORE - 1, CERT_NOT_BEFORE - 1 + DAY);
    g.claims(
        "issued-before-signer",
        "V13",
        "issued_at = not_before - 1 (and expired): the signer's validity is checked before expiry",
        &c,
        fail("BAD_SIGNATURE", "signer_not_valid_at_issue"),
    );
    let late = CERT_NOT_AFTER - 1;
    let c = window(122, CERT_NOT_AFTER - DAY, CERT_NOT_AFTER);
    let text = to_text(&signed(&g.pki.signer_hz, &c));
    g.add(
        "valid-until-signer-not-after",
        "V13",
        "valid_until = the signer certificate's not_after",
        MAIN,
        late,
        Form::Text(text),
        valid(&c),
    );
    let c = window(123, CERT_NOT_AFTER - DAY, CERT_NOT_AFTER + 1);
    let text = to_text(&signed(&g.pki.signer_hz, &c));
    g.add(
        "valid-until-past-signer",
        "V13",
        "valid_until = not_after + 1",
        MAIN,
        late,
        Form::Text(text),
        fail("BAD_SIGNATURE", "signer_not_valid_at_issue"),
    );
    let c = window(124, NOW + 400, NOW + 400 + 31 * DAY);
    g.claims(
        "window-before-not-yet-valid",
        "C7",
        "a 31-day window starting in 400 s: MALFORMED before NOT_YET_VALID",
        &c,
        malformed("window_too_long"),
    );
    // The list's sunset.
    let c = window(125, SHORT_SUNSET - DAY, SHORT_SUNSET + DAY);
    let text = to_text(&signed(&g.pki.signer_hz, &c));
    g.add(
        "at-list-sunset",
        "V1",
        "now = the list's sunset_at: still trusted",
        SHORT,
        SHORT_SUNSET,
        Form::Text(text.clone()),
        valid(&c),
    );
    g.add(
        "past-list-sunset",
        "V1",
        "now = sunset_at + 1: nothing is trusted",
        SHORT,
        SHORT_SUNSET + 1,
        Form::Text(text),
        fail("UNKNOWN_SIGNER", "trust_list_sunset"),
    );
    g.add(
        "past-sunset-bad-envelope",
        "V1",
        "past the sunset, bytes that are not an envelope: the sunset is checked first",
        SHORT,
        SHORT_SUNSET + 1,
        Form::Envelope(b"not a badge".to_vec()),
        fail("UNKNOWN_SIGNER", "trust_list_sunset"),
    );
    g.add(
        "past-sunset-bad-text",
        "T3",
        "past the sunset, text without a prefix: the text is read before anything else",
        SHORT,
        SHORT_SUNSET + 1,
        Form::Text("HC1:ABC".into()),
        malformed("text_missing_prefix"),
    );
}
