//! Signed scoring policies: a city's [`Policy`] text with its version and the
//! date it comes into force, signed by the city's badge-signer key under its
//! own context ([`POLICY_CONTEXT`]), so a badge signature can never pass as a
//! policy signature, nor the reverse.
//!
//! Verification reads the envelope, finds the signer (a certificate given by
//! the caller, or a trust list's entry by key id), checks the signature over
//! the payload exactly as received, and only then decodes the document and
//! parses its rules with the same parser the node scores with.

use ed25519_dalek::Signature;
use prost::Message;
use tessera_proto::v1 as pb;

use crate::badge::BadgeSigner;
use crate::cert::CertInfo;
use crate::policy::{Policy, PolicyError};
use crate::signing::{self, POLICY_CONTEXT};
use crate::{CheckedTrustList, CityCode, KeyId, Role};

/// Format version of a policy document this standard defines.
pub const POLICY_DOC_VERSION: u32 = 1;
/// Largest encoded signed policy accepted (rules included).
pub const MAX_SIGNED_POLICY_LEN: usize = 64 * 1024;

/// Why a policy document was refused (or could not be signed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyDocError {
    /// Too many bytes.
    #[error("signed policy of {0} bytes exceeds the limit of {MAX_SIGNED_POLICY_LEN}")]
    TooLarge(usize),
    /// The badge-signer key could not sign (a token's error).
    #[error(transparent)]
    Key(#[from] crate::badge::SignError),
    /// Not a SignedPolicy or PolicyDocument.
    #[error("signed policy does not decode: {0}")]
    Malformed(String),
    /// The key id is not 8 bytes.
    #[error("signed policy key_id is {0} bytes, not 8")]
    KeyIdLength(usize),
    /// The signature is not 64 bytes.
    #[error("signed policy signature is {0} bytes, not 64")]
    SignatureLength(usize),
    /// No badge signer with this key id is known.
    #[error("policy signed by unknown key {0}: not a badge signer in the trust list")]
    UnknownSigner(KeyId),
    /// The key belongs to a certificate of another role.
    #[error("policy signed by key {key_id} of a {role} certificate, not a badge signer")]
    NotBadgeSigner {
        /// The key id.
        key_id: KeyId,
        /// Its role.
        role: Role,
    },
    /// The signer is revoked.
    #[error("policy signed by key {0}, which the trust list revokes")]
    SignerRevoked(KeyId),
    /// The signature does not hold.
    #[error("policy signature does not verify")]
    BadSignature,
    /// A document format this code does not know.
    #[error("policy document version {0} is not supported (this standard defines 1)")]
    UnsupportedVersion(u32),
    /// The document names another city than its signer's.
    #[error("policy document is for city {document} but its signer speaks for {signer}")]
    WrongCity {
        /// City in the document.
        document: u32,
        /// City of the signer.
        signer: CityCode,
    },
    /// The signer certificate was not valid when the document says it was signed.
    #[error("policy signed at {signed_at}, outside its signer certificate's validity")]
    SignerNotValidAt {
        /// When the document says it was signed.
        signed_at: i64,
    },
    /// A document that would apply before it was signed.
    #[error("policy effective_from {effective_from} is before it was signed ({signed_at})")]
    Retroactive {
        /// When it would apply.
        effective_from: i64,
        /// When it was signed.
        signed_at: i64,
    },
    /// The document's policy_version differs from the rules' `version`.
    #[error(
        "policy document says version {document} but its rules say version {rules}: they must agree, badges name it"
    )]
    VersionMismatch {
        /// In the document.
        document: u32,
        /// In the rules.
        rules: u32,
    },
    /// The rules do not parse under the policy format.
    #[error("policy rules refused: {0}")]
    Rules(#[from] PolicyError),
}

/// A policy document whose signature, signer and rules were checked.
#[derive(Debug, Clone)]
pub struct VerifiedPolicy {
    document: pb::PolicyDocument,
    policy: Policy,
    key_id: KeyId,
    signed: pb::SignedPolicy,
}

impl VerifiedPolicy {
    /// The city whose policy this is.
    pub fn city(&self) -> u32 {
        self.document.city
    }
    /// The policy version badges scored under it name.
    pub fn policy_version(&self) -> u32 {
        self.document.policy_version
    }
    /// When it was signed (Unix seconds).
    pub fn signed_at(&self) -> i64 {
        self.document.signed_at
    }
    /// When it comes into force (Unix seconds).
    pub fn effective_from(&self) -> i64 {
        self.document.effective_from
    }
    /// Whether it is in force at `now`.
    pub fn in_force_at(&self, now: i64) -> bool {
        self.document.effective_from <= now
    }
    /// The rules as published.
    pub fn rules_text(&self) -> &str {
        &self.document.rules
    }
    /// The parsed rules.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
    /// The signer's key id.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }
    /// The signed envelope, exactly as received.
    pub fn signed(&self) -> &pb::SignedPolicy {
        &self.signed
    }
    /// The signed envelope's encoding, for a file or the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.signed.encode_to_vec()
    }
}

/// Decodes an encoded SignedPolicy (a file's bytes), bounded in size.
pub fn decode_signed(bytes: &[u8]) -> Result<pb::SignedPolicy, PolicyDocError> {
    if bytes.len() > MAX_SIGNED_POLICY_LEN {
        return Err(PolicyDocError::TooLarge(bytes.len()));
    }
    pb::SignedPolicy::decode(bytes).map_err(|e| PolicyDocError::Malformed(e.to_string()))
}

fn envelope(signed: &pb::SignedPolicy) -> Result<(KeyId, Signature), PolicyDocError> {
    let size = signed.encoded_len();
    if size > MAX_SIGNED_POLICY_LEN {
        return Err(PolicyDocError::TooLarge(size));
    }
    let key_id = KeyId::from_slice(&signed.key_id)
        .ok_or(PolicyDocError::KeyIdLength(signed.key_id.len()))?;
    let signature = Signature::from_slice(&signed.signature)
        .map_err(|_| PolicyDocError::SignatureLength(signed.signature.len()))?;
    Ok((key_id, signature))
}

/// Checks everything after the signer is known: role, signature, document,
/// city, signing time and rules.
fn check(
    signed: &pb::SignedPolicy,
    key_id: KeyId,
    signature: &Signature,
    signer: &CertInfo,
) -> Result<VerifiedPolicy, PolicyDocError> {
    let identity = signer.identity();
    let city = match (identity.role(), identity.city()) {
        (Role::BadgeSigner, Some(city)) => city,
        (role, _) => return Err(PolicyDocError::NotBadgeSigner { key_id, role }),
    };
    // A badge signer's key is Ed25519 (cert.rs refuses any other).
    let holds = signer
        .ed25519_key()
        .is_some_and(|key| signing::verify(POLICY_CONTEXT, &signed.payload, signature, key));
    if !holds {
        return Err(PolicyDocError::BadSignature);
    }
    let document = pb::PolicyDocument::decode(signed.payload.as_slice())
        .map_err(|e| PolicyDocError::Malformed(e.to_string()))?;
    let policy = check_document(&document)?;
    if document.city != city.get() {
        return Err(PolicyDocError::WrongCity {
            document: document.city,
            signer: city,
        });
    }
    if !signer.valid_at(document.signed_at) {
        return Err(PolicyDocError::SignerNotValidAt {
            signed_at: document.signed_at,
        });
    }
    Ok(VerifiedPolicy {
        document,
        policy,
        key_id,
        signed: signed.clone(),
    })
}

/// The checks on a document alone: format version, dates, rules, and that
/// the document's version is the rules' version.
pub fn check_document(document: &pb::PolicyDocument) -> Result<Policy, PolicyDocError> {
    if document.version != POLICY_DOC_VERSION {
        return Err(PolicyDocError::UnsupportedVersion(document.version));
    }
    if document.effective_from < document.signed_at {
        return Err(PolicyDocError::Retroactive {
            effective_from: document.effective_from,
            signed_at: document.signed_at,
        });
    }
    let policy = Policy::parse(&document.rules)?;
    if policy.version() != document.policy_version {
        return Err(PolicyDocError::VersionMismatch {
            document: document.policy_version,
            rules: policy.version(),
        });
    }
    Ok(policy)
}

/// Verifies a signed policy against the certificate that should have signed
/// it (a node checking its own city's policy with its badge-signer
/// certificate): same key id, a badge signer, signature and rules good.
pub fn verify_with_certificate(
    signed: &pb::SignedPolicy,
    certificate: &CertInfo,
) -> Result<VerifiedPolicy, PolicyDocError> {
    let (key_id, signature) = envelope(signed)?;
    if key_id != certificate.key_id() {
        return Err(PolicyDocError::UnknownSigner(key_id));
    }
    check(signed, key_id, &signature, certificate)
}

/// Verifies a signed policy against a trust list: its key id names an
/// ACTIVE badge signer of the document's city, the signature holds, and the
/// rules parse.
pub fn verify_with_trust_list(
    signed: &pb::SignedPolicy,
    trust: &CheckedTrustList,
) -> Result<VerifiedPolicy, PolicyDocError> {
    let (key_id, signature) = envelope(signed)?;
    let entry = trust
        .by_key_id(&key_id)
        .ok_or(PolicyDocError::UnknownSigner(key_id))?;
    let role = entry.cert().identity().role();
    if role != Role::BadgeSigner {
        return Err(PolicyDocError::NotBadgeSigner { key_id, role });
    }
    if entry.is_revoked() || trust.is_revoked(entry.cert()) {
        return Err(PolicyDocError::SignerRevoked(key_id));
    }
    check(signed, key_id, &signature, entry.cert())
}

impl BadgeSigner {
    /// Signs a policy document for this signer's city, after checking it
    /// as a verifier would (format, dates, rules, version, city).
    pub fn sign_policy(
        &self,
        document: &pb::PolicyDocument,
    ) -> Result<pb::SignedPolicy, PolicyDocError> {
        check_document(document)?;
        if document.city != self.city().get() {
            return Err(PolicyDocError::WrongCity {
                document: document.city,
                signer: self.city(),
            });
        }
        let payload = document.encode_to_vec();
        let signature = self
            .sign_context(POLICY_CONTEXT, &payload)?
            .ok_or(PolicyDocError::TooLarge(payload.len()))?;
        let signed = pb::SignedPolicy {
            payload,
            key_id: self.key_id().as_bytes().to_vec(),
            signature: signature.to_bytes().to_vec(),
        };
        let size = signed.encoded_len();
        if size > MAX_SIGNED_POLICY_LEN {
            return Err(PolicyDocError::TooLarge(size));
        }
        Ok(signed)
    }
}

/// The one notice rule: a policy announced at `announced_at` may take
/// effect no earlier than `notice_secs` later. The gateway announces at
/// publication (its clock), a node counts from `signed_at`; a city's first
/// policy is exempt, which the caller decides. `Err` carries the earliest
/// moment allowed.
pub fn check_notice(announced_at: i64, effective_from: i64, notice_secs: i64) -> Result<(), i64> {
    let earliest = announced_at.saturating_add(notice_secs);
    if effective_from < earliest {
        Err(earliest)
    } else {
        Ok(())
    }
}

/// Why a policy may not follow those a city already has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SuccessionError {
    /// Its version is not greater than the newest held.
    NotNewer {
        /// Newest version held.
        held: u32,
        /// Version offered.
        offered: u32,
    },
    /// It would take effect before one held already.
    EarlierThanHeld {
        /// Version offered.
        offered: u32,
        /// Its effective date.
        offered_from: i64,
        /// The held version it would precede.
        held: u32,
        /// That version's effective date.
        held_from: i64,
    },
    /// It gives too little notice ([`check_notice`]).
    TooSoon {
        /// Version offered.
        version: u32,
        /// When it would take effect.
        effective_from: i64,
        /// The earliest moment allowed.
        earliest: i64,
    },
}

/// Whether a policy of `version`, in force from `effective_from` and
/// announced at `announced_at`, may follow the `held` ones (version,
/// effective date; oldest effective first): a greater version, not earlier
/// than any held, and, unless it is the city's first, with `notice_secs`
/// of notice. A pure function: the gateway maps its answer to a status.
pub fn check_succession(
    held: &[(u32, i64)],
    version: u32,
    effective_from: i64,
    announced_at: i64,
    notice_secs: i64,
) -> Result<(), SuccessionError> {
    if let Some(newest) = held.iter().map(|(v, _)| *v).max()
        && version <= newest
    {
        return Err(SuccessionError::NotNewer {
            held: newest,
            offered: version,
        });
    }
    if let Some((held_version, held_from)) = held.last()
        && effective_from < *held_from
    {
        return Err(SuccessionError::EarlierThanHeld {
            offered: version,
            offered_from: effective_from,
            held: *held_version,
            held_from: *held_from,
        });
    }
    if !held.is_empty() {
        check_notice(announced_at, effective_from, notice_secs).map_err(|earliest| {
            SuccessionError::TooSoon {
                version,
                effective_from,
                earliest,
            }
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::badge::Envelope;
    use crate::policy::DEFAULT_POLICY;
    use crate::test_pki::{NOW, TestPki, claims};
    use crate::verify::{VerifyError, verify};

    const CITY: u32 = 330_100;

    fn document(rules: &str) -> pb::PolicyDocument {
        pb::PolicyDocument {
            version: POLICY_DOC_VERSION,
            city: CITY,
            // The rules' own version (a document that disagrees is refused),
            // or 1 for rules that do not parse.
            policy_version: crate::policy::Policy::parse(rules).map_or(1, |p| p.version()),
            signed_at: NOW,
            effective_from: NOW + 72 * 3600,
            rules: rules.to_owned(),
        }
    }

    #[test]
    fn a_signed_policy_verifies_by_certificate_and_by_trust_list() {
        let pki = TestPki::new();
        let leaf = pki.badge_signer(CITY);
        let signed = leaf
            .badge_signer()
            .sign_policy(&document(DEFAULT_POLICY))
            .unwrap();
        let cert = CertInfo::parse(&leaf.der).unwrap();
        let by_cert = verify_with_certificate(&signed, &cert).unwrap();
        assert_eq!(by_cert.policy_version(), 2);
        assert_eq!(by_cert.effective_from(), NOW + 72 * 3600);
        assert!(!by_cert.in_force_at(NOW));
        let trust = pki.trust_list([leaf.entry.clone()]);
        let by_list = verify_with_trust_list(&signed, &trust).unwrap();
        assert_eq!(by_list.key_id(), leaf.key_id());
        assert_eq!(by_list.policy(), by_cert.policy());
    }

    #[test]
    fn badge_and_policy_signatures_never_pass_as_each_other() {
        let pki = TestPki::new();
        let leaf = pki.badge_signer(CITY);
        let signer = leaf.badge_signer();
        let trust = pki.trust_list([leaf.entry.clone()]);
        // A badge's signature over its payload, presented as a policy.
        let badge = Envelope::decode(&signer.sign(&claims(CITY, 1)).unwrap()).unwrap();
        let as_policy = pb::SignedPolicy {
            payload: badge.payload.clone(),
            key_id: badge.key_id.as_bytes().to_vec(),
            signature: badge.signature.to_bytes().to_vec(),
        };
        assert_eq!(
            verify_with_trust_list(&as_policy, &trust).unwrap_err(),
            PolicyDocError::BadSignature
        );
        // A policy's signature over its payload, presented as a badge (a
        // policy without rules, so the envelope is within a badge's size and
        // only the signature can refuse it).
        let small = "version = 1\nname = \"n\"\nbase_score = 100\nrules = []\n\
            [bands]\nyellow_below = 70\nred_below = 40\n\
            [validity]\ngreen_hours = 1\nyellow_hours = 1\nred_hours = 1\n";
        let policy = signer.sign_policy(&document(small)).unwrap();
        let as_badge = pb::SignedBadge {
            payload: policy.payload.clone(),
            key_id: policy.key_id.clone(),
            signature: policy.signature.clone(),
        };
        assert!(matches!(
            verify(&as_badge.encode_to_vec(), &trust, NOW),
            Err(VerifyError::BadSignature)
        ));
    }

    #[test]
    fn verification_refuses_with_a_precise_error() {
        let pki = TestPki::new();
        let leaf = pki.badge_signer(CITY);
        let signer = leaf.badge_signer();
        let other = pki.badge_signer(110_100);
        let trust = pki.trust_list([leaf.entry.clone(), other.entry.clone()]);
        let good = signer.sign_policy(&document(DEFAULT_POLICY)).unwrap();

        let mut tampered = good.clone();
        let last = tampered.payload.len() - 1;
        tampered.payload[last] ^= 1;
        assert_eq!(
            verify_with_trust_list(&tampered, &trust).unwrap_err(),
            PolicyDocError::BadSignature
        );

        let unknown = pki.badge_signer(CITY);
        let by_unknown = unknown
            .badge_signer()
            .sign_policy(&document(DEFAULT_POLICY))
            .unwrap();
        assert_eq!(
            verify_with_trust_list(&by_unknown, &trust).unwrap_err(),
            PolicyDocError::UnknownSigner(unknown.key_id())
        );

        let mut revoked_entry = leaf.entry.clone();
        revoked_entry.status = pb::EntryStatus::Revoked as i32;
        revoked_entry.revoked_at = NOW - 10;
        let revoking = pki.trust_list([revoked_entry]);
        assert_eq!(
            verify_with_trust_list(&good, &revoking).unwrap_err(),
            PolicyDocError::SignerRevoked(leaf.key_id())
        );

        // Another city's signer cannot sign for this city: refused when
        // signing, and refused when verifying a document it signed anyway.
        assert!(matches!(
            other.badge_signer().sign_policy(&document(DEFAULT_POLICY)),
            Err(PolicyDocError::WrongCity { document: CITY, .. })
        ));
        let payload = document(DEFAULT_POLICY).encode_to_vec();
        let forged = pb::SignedPolicy {
            signature: signing::sign(POLICY_CONTEXT, &payload, &other.key)
                .unwrap()
                .to_bytes()
                .to_vec(),
            payload,
            key_id: other.key_id().as_bytes().to_vec(),
        };
        assert!(matches!(
            verify_with_trust_list(&forged, &trust),
            Err(PolicyDocError::WrongCity { document: CITY, .. })
        ));

        let mut mismatch = document(DEFAULT_POLICY);
        mismatch.policy_version = 3;
        assert_eq!(
            signer.sign_policy(&mismatch).unwrap_err(),
            PolicyDocError::VersionMismatch {
                document: 3,
                rules: 2
            }
        );
        let mut retro = document(DEFAULT_POLICY);
        retro.effective_from = NOW - 1;
        assert!(matches!(
            signer.sign_policy(&retro),
            Err(PolicyDocError::Retroactive { .. })
        ));
        assert_eq!(
            verify_with_trust_list(
                &pb::SignedPolicy {
                    key_id: vec![1; 7],
                    ..good.clone()
                },
                &trust
            )
            .unwrap_err(),
            PolicyDocError::KeyIdLength(7)
        );
        assert_eq!(
            decode_signed(&vec![0; MAX_SIGNED_POLICY_LEN + 1]).unwrap_err(),
            PolicyDocError::TooLarge(MAX_SIGNED_POLICY_LEN + 1)
        );
    }

    /// Version 1 of the default policy capped every badge 72 hours after the
    /// latest negative test (issue 21). A copy signed before the monotone
    /// checks existed is refused when read, naming the rule and why.
    #[test]
    fn a_signed_policy_whose_negative_test_rule_caps_validity_is_refused_when_read() {
        let pki = TestPki::new();
        let leaf = pki.badge_signer(CITY);
        let v1 = format!(
            "{}\n[[rules]]\nid = \"recent-negative-test-72h\"\ndescription = \"The latest test is negative and was sampled within the last 72 hours: the badge expires 72 hours after sampling\"\nrecord = \"test\"\nlatest_only = true\nwithin_hours = 72\nwhen = {{ positive = false }}\nscore = 0\nvalid_hours_after_record = 72\n",
            DEFAULT_POLICY.replacen("\nversion = 2\n", "\nversion = 1\n", 1)
        );
        let mut doc = document(&v1);
        doc.policy_version = 1;
        assert!(matches!(
            leaf.badge_signer().sign_policy(&doc),
            Err(PolicyDocError::Rules(PolicyError::Rule { .. }))
        ));
        let payload = doc.encode_to_vec();
        let signed = pb::SignedPolicy {
            signature: signing::sign(POLICY_CONTEXT, &payload, &leaf.key)
                .unwrap()
                .to_bytes()
                .to_vec(),
            payload,
            key_id: leaf.key_id().as_bytes().to_vec(),
        };
        let cert = CertInfo::parse(&leaf.der).unwrap();
        let e = verify_with_certificate(&signed, &cert).unwrap_err();
        assert!(
            matches!(&e, PolicyDocError::Rules(PolicyError::Rule { rule, .. }) if rule == "recent-negative-test-72h"),
            "{e:?}"
        );
        assert!(
            e.to_string().contains(
                "must not change the score, the colour or the validity (a negative test may only lift risk rules"
            ),
            "{e}"
        );
    }

    #[test]
    fn policies_naming_inputs_outside_the_record_schema_are_refused() {
        let signer = TestPki::new().badge_signer(CITY).badge_signer();
        let rule = |body: &str| {
            format!(
                "{DEFAULT_POLICY}\n[[rules]]\nid = \"extra\"\ndescription = \"extra\"\n{body}\nscore = -10\n"
            )
        };
        let cases = [
            (rule("record = \"income\""), "income"),
            (rule("record = \"location\""), "location"),
            (rule("record = \"social_media\""), "social_media"),
            (
                rule("record = \"test\"\nwhen = { age_over = 60 }"),
                "age_over",
            ),
            (
                format!("lifestyle_weight = 2\n{DEFAULT_POLICY}"),
                "lifestyle_weight",
            ),
        ];
        for (rules, key) in cases {
            let e = signer.sign_policy(&document(&rules)).unwrap_err();
            assert!(
                matches!(e, PolicyDocError::Rules(PolicyError::OutsideSchema(_))),
                "{key}: {e:?}"
            );
            assert!(e.to_string().contains(key), "{key}: {e}");
        }
        // A condition of one record type used on another names the condition
        // and the record type.
        let e = signer
            .sign_policy(&document(&rule(
                "record = \"vaccination\"\nwhen = { contact = \"close\" }",
            )))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("condition contact does not apply to Vaccination records"),
            "{e}"
        );
    }

    #[test]
    fn succession_wants_a_newer_version_no_earlier_date_and_notice_but_for_the_first() {
        const H: i64 = 3600;
        // The city's first: no notice needed.
        assert_eq!(check_succession(&[], 1, 100, 100, 48 * H), Ok(()));
        let held = [(1, 0), (2, 10 * H)];
        assert_eq!(
            check_succession(&held, 2, 100 * H, 0, 48 * H),
            Err(SuccessionError::NotNewer {
                held: 2,
                offered: 2
            })
        );
        assert_eq!(
            check_succession(&held, 3, 5 * H, 0, 0),
            Err(SuccessionError::EarlierThanHeld {
                offered: 3,
                offered_from: 5 * H,
                held: 2,
                held_from: 10 * H
            })
        );
        // Exactly the notice is enough; a second less is not.
        assert_eq!(check_succession(&held, 3, 58 * H, 10 * H, 48 * H), Ok(()));
        assert_eq!(
            check_succession(&held, 3, 58 * H - 1, 10 * H, 48 * H),
            Err(SuccessionError::TooSoon {
                version: 3,
                effective_from: 58 * H - 1,
                earliest: 58 * H
            })
        );
        assert_eq!(check_notice(0, 10, 10), Ok(()));
        assert_eq!(check_notice(0, 9, 10), Err(10));
    }
}
