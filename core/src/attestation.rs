//! Deletion attestations: what a city node signs when it is switched off,
//! and how anyone holding the national root checks it.
//!
//! An attestation is signed with the node's own key (the key of its
//! `CityNode` TLS certificate, see docs/PKI.md for why), which is ECDSA
//! P-256. The signed input is domain-separated as every tessera signature:
//! `"tessera/deletion-attestation/v1" || u32-big-endian(len) || payload`,
//! the payload an encoded `DeletionAttestation` kept exactly as signed. The
//! signature is ECDSA P-256 with SHA-256 over that input, its nonce derived
//! by RFC 6979 (the same attestation signed twice gives the same bytes),
//! written as 64 bytes `r || s`, each a 32-byte big-endian integer (not
//! DER). A verifier checks the bytes before it decodes them and never
//! re-encodes.

use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey};
use prost::Message;
use tessera_proto::v1 as pb;

use crate::cert::{CertError, CertInfo, TrustAnchor};
use crate::identity::Role;
use crate::ids::CityCode;
use crate::signing;

/// The context of a deletion-attestation signature.
pub const ATTESTATION_CONTEXT: &[u8] = b"tessera/deletion-attestation/v1";
/// The attestation version this library writes and reads.
pub const ATTESTATION_VERSION: u32 = 1;
/// Largest signed attestation accepted, in bytes (a real one is under 1 KiB
/// with its certificate).
pub const MAX_ATTESTATION_LEN: usize = 32 * 1024;
/// How far in the future an attestation's `destroyed_at` may lie (clock
/// skew).
pub const CLOCK_SKEW_SECS: i64 = 300;
/// The reason of a destruction at the trust list's sunset date.
pub const REASON_SUNSET: &str = "sunset";
/// The reason of a destruction ordered by the city's operator.
pub const REASON_OPERATOR: &str = "operator";

/// Why an attestation was not signed or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttestationError {
    /// Larger than [`MAX_ATTESTATION_LEN`].
    #[error("attestation of {0} bytes exceeds the limit of {MAX_ATTESTATION_LEN}")]
    TooLarge(usize),
    /// The envelope or the payload does not decode (e.g. truncated bytes).
    #[error("attestation does not decode: {0}")]
    Malformed(String),
    /// The signer certificate is unreadable or not issued by the root.
    #[error("attestation signer certificate does not chain to the national root: {0}")]
    UntrustedSigner(CertError),
    /// The signer certificate has another role than city node.
    #[error("attestation signed by a {0} certificate, not a city node's")]
    SignerRole(Role),
    /// The signature does not match the payload (an edited payload).
    #[error(
        "attestation signature does not match its payload (the payload was altered or signed by another key)"
    )]
    BadSignature,
    /// A version this library does not read.
    #[error(
        "attestation version {0} is not supported (this verifier reads version {ATTESTATION_VERSION})"
    )]
    UnsupportedVersion(u32),
    /// The payload names another city than the signer's certificate.
    #[error("attestation is about city {attested:06} but signed by the node of city {signer}")]
    OtherCity {
        /// The signer certificate's city.
        signer: CityCode,
        /// The city in the payload.
        attested: u32,
    },
    /// The signer certificate was not valid when the destruction finished.
    #[error(
        "the signer certificate was not valid at destroyed_at {destroyed_at} (valid {not_before} to {not_after})"
    )]
    SignerNotValidThen {
        /// The attestation's destroyed_at.
        destroyed_at: i64,
        /// Start of the certificate's validity.
        not_before: i64,
        /// End of the certificate's validity.
        not_after: i64,
    },
    /// destroyed_at lies further in the future than clock skew explains.
    #[error("attestation claims a destruction in the future ({destroyed_at} > now {now})")]
    InFuture {
        /// The attestation's destroyed_at.
        destroyed_at: i64,
        /// The verifier's clock.
        now: i64,
    },
    /// The reason is neither "sunset" nor "operator".
    #[error("attestation reason {0:?} is neither \"sunset\" nor \"operator\"")]
    Reason(String),
    /// Signing: the key is not the one the certificate certifies.
    #[error("the signing key does not match the node certificate")]
    KeyMismatch,
}

/// A deletion attestation whose signer and signature have been verified.
#[derive(Debug, Clone)]
pub struct VerifiedAttestation {
    claims: pb::DeletionAttestation,
    signer: CertInfo,
    city: CityCode,
}

impl VerifiedAttestation {
    /// What the node attests, exactly as signed.
    pub fn claims(&self) -> &pb::DeletionAttestation {
        &self.claims
    }
    /// The signing node's certificate.
    pub fn signer(&self) -> &CertInfo {
        &self.signer
    }
    /// The attested city (the signer's own).
    pub fn city(&self) -> CityCode {
        self.city
    }
}

/// ECDSA P-256/SHA-256 over the domain-separated input, RFC 6979 nonce;
/// `None` only for a payload over 4 GiB.
fn sign_p256(payload: &[u8], key: &SigningKey) -> Option<Signature> {
    let input = signing::signing_input(ATTESTATION_CONTEXT, payload)?;
    Some(key.sign(&input))
}

/// Whether `signature` (64 bytes `r || s`) is `key`'s over the
/// domain-separated input.
fn verify_p256(payload: &[u8], signature: &[u8], key: &p256::ecdsa::VerifyingKey) -> bool {
    let (Some(input), Ok(signature)) = (
        signing::signing_input(ATTESTATION_CONTEXT, payload),
        Signature::from_slice(signature),
    ) else {
        return false;
    };
    key.verify(&input, &signature).is_ok()
}

/// Signs `claims` with the node's key; `certificate_der` is the node's
/// certificate, embedded so that a verifier needs only the root. Refuses a
/// key that is not the certificate's, a certificate of another role, and
/// claims about another city. Returns the encoded SignedAttestation.
pub fn sign_attestation(
    claims: &pb::DeletionAttestation,
    key: &SigningKey,
    certificate_der: &[u8],
) -> Result<Vec<u8>, AttestationError> {
    let cert = CertInfo::parse(certificate_der).map_err(AttestationError::UntrustedSigner)?;
    check_signer(&cert, claims.city)?;
    if cert.p256_key() != Some(key.verifying_key()) {
        return Err(AttestationError::KeyMismatch);
    }
    let payload = claims.encode_to_vec();
    let signature = sign_p256(&payload, key).ok_or(AttestationError::TooLarge(payload.len()))?;
    let bytes = pb::SignedAttestation {
        payload,
        signature: signature.to_bytes().to_vec(),
        signer_certificate: certificate_der.to_vec(),
    }
    .encode_to_vec();
    if bytes.len() > MAX_ATTESTATION_LEN {
        return Err(AttestationError::TooLarge(bytes.len()));
    }
    Ok(bytes)
}

fn check_signer(cert: &CertInfo, city: u32) -> Result<CityCode, AttestationError> {
    let identity = cert.identity();
    if identity.role() != Role::CityNode {
        return Err(AttestationError::SignerRole(identity.role()));
    }
    let signer = identity
        .city()
        .ok_or(AttestationError::SignerRole(identity.role()))?;
    if signer.get() != city {
        return Err(AttestationError::OtherCity {
            signer,
            attested: city,
        });
    }
    Ok(signer)
}

/// Verifies an encoded SignedAttestation against the national root, `now`
/// being the verifier's clock: the signer certificate chains to the root,
/// is a city node's, its key signed these exact payload bytes, the payload
/// is version 1 about the signer's own city, the certificate was valid at
/// `destroyed_at`, which is not in the future, and the reason is known.
///
/// Revocation is not checked here (it needs a trust list): a holder of
/// one also checks [`CertInfo::serial`] and key id against it.
pub fn verify_attestation(
    bytes: &[u8],
    root: &TrustAnchor,
    now: i64,
) -> Result<VerifiedAttestation, AttestationError> {
    verify_attestation_within(bytes, root, &[], now)
}

/// [`verify_attestation`] for a node certificate that may be issued by one
/// of these issuing CAs (those of the trust list held, or the node's own
/// chain) as well as by the root.
pub fn verify_attestation_within(
    bytes: &[u8],
    root: &TrustAnchor,
    cas: &[crate::cert::IssuingCa],
    now: i64,
) -> Result<VerifiedAttestation, AttestationError> {
    if bytes.len() > MAX_ATTESTATION_LEN {
        return Err(AttestationError::TooLarge(bytes.len()));
    }
    let signed = pb::SignedAttestation::decode(bytes)
        .map_err(|e| AttestationError::Malformed(e.to_string()))?;
    let (signer, _) = CertInfo::parse_issued_within(&signed.signer_certificate, root, cas)
        .map_err(AttestationError::UntrustedSigner)?;
    if signer.identity().role() != Role::CityNode {
        return Err(AttestationError::SignerRole(signer.identity().role()));
    }
    // A city node's key is P-256 (cert.rs refuses any other).
    let holds = signer
        .p256_key()
        .is_some_and(|key| verify_p256(&signed.payload, &signed.signature, key));
    if !holds {
        return Err(AttestationError::BadSignature);
    }
    let claims = pb::DeletionAttestation::decode(signed.payload.as_slice())
        .map_err(|e| AttestationError::Malformed(e.to_string()))?;
    if claims.version != ATTESTATION_VERSION {
        return Err(AttestationError::UnsupportedVersion(claims.version));
    }
    let city = check_signer(&signer, claims.city)?;
    if !signer.valid_at(claims.destroyed_at) {
        return Err(AttestationError::SignerNotValidThen {
            destroyed_at: claims.destroyed_at,
            not_before: signer.not_before(),
            not_after: signer.not_after(),
        });
    }
    if claims.destroyed_at > now.saturating_add(CLOCK_SKEW_SECS) {
        return Err(AttestationError::InFuture {
            destroyed_at: claims.destroyed_at,
            now,
        });
    }
    if claims.reason != REASON_SUNSET && claims.reason != REASON_OPERATOR {
        return Err(AttestationError::Reason(claims.reason));
    }
    Ok(VerifiedAttestation {
        claims,
        signer,
        city,
    })
}

/// The authority's account of a switch-off: the cities whose node a trust
/// list carries (not revoked), each with its verified attestation or why
/// none counts, and attestations held for cities the list does not carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Census {
    /// The list's sequence.
    pub sequence: u64,
    /// The list's sunset date.
    pub sunset_at: i64,
    /// Each city of the list, by code: code, name, and its verified
    /// attestation's claims, or `Err` (why it is invalid) or `Ok(None)`
    /// (none held).
    pub cities: Vec<(u32, String, Result<Option<pb::DeletionAttestation>, String>)>,
    /// Attestations held for cities not in the list, by code.
    pub others: Vec<(u32, Result<pb::DeletionAttestation, String>)>,
}

impl Census {
    /// How many cities of the list have no valid attestation.
    pub fn missing(&self) -> usize {
        self.cities
            .iter()
            .filter(|(_, _, v)| !matches!(v, Ok(Some(_))))
            .count()
    }
}

/// Accounts for every city node `list` carries with the attestations
/// `held` (as a gateway collected them), each verified against `root` at
/// `now`. An attestation counts for a city only if it verifies, was signed
/// by a node key the list holds for that city (one signed by an earlier
/// node of the city, wiped long ago, says nothing of the node that serves it
/// now), and says the badge-signer key was destroyed. Of several for one
/// city, the last in `held` decides; one that does not verify is named
/// under the city it claims, unless a valid one is held for it.
pub fn census(
    list: &crate::trust::CheckedTrustList,
    held: &[pb::SignedAttestation],
    root: &TrustAnchor,
    now: i64,
) -> Census {
    use std::collections::BTreeMap;
    let sequence = list.sequence();
    let mut cities: BTreeMap<u32, String> = BTreeMap::new();
    let mut node_keys: BTreeMap<u32, Vec<crate::ids::KeyId>> = BTreeMap::new();
    for e in list.entries() {
        let id = e.cert().identity();
        if id.role() == Role::CityNode
            && !e.is_revoked()
            && let Some(city) = id.city()
        {
            cities.insert(city.get(), e.name().to_owned());
            node_keys
                .entry(city.get())
                .or_default()
                .push(e.cert().key_id());
        }
    }
    let mut verdicts: BTreeMap<u32, Result<pb::DeletionAttestation, String>> = BTreeMap::new();
    for signed in held {
        match verify_attestation_within(&signed.encode_to_vec(), root, list.issuing_ca_certs(), now)
        {
            Ok(v) => {
                let city = v.city().get();
                let current = node_keys
                    .get(&city)
                    .is_none_or(|keys| keys.contains(&v.signer().key_id()));
                let verdict = if !current {
                    Err(format!(
                        "signed by node key {}, which is not this city's node in trust list {sequence}: an earlier node's switch-off",
                        v.signer().key_id()
                    ))
                } else if !v.claims().signer_key_destroyed {
                    Err("the badge-signer key was not destroyed".to_owned())
                } else {
                    Ok(v.claims().clone())
                };
                verdicts.insert(city, verdict);
            }
            Err(e) => {
                // Name the city it claims, to say which one is in doubt.
                let claimed = pb::DeletionAttestation::decode(signed.payload.as_slice())
                    .map_or(0, |c| c.city);
                verdicts.entry(claimed).or_insert(Err(e.to_string()));
            }
        }
    }
    Census {
        sequence,
        sunset_at: list.sunset_at(),
        cities: cities
            .iter()
            .map(|(code, name)| {
                let verdict = match verdicts.get(code) {
                    Some(Ok(c)) => Ok(Some(c.clone())),
                    Some(Err(e)) => Err(e.clone()),
                    None => Ok(None),
                };
                (*code, name.clone(), verdict)
            })
            .collect(),
        others: verdicts
            .into_iter()
            .filter(|(code, _)| !cities.contains_key(code))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki::{DAY, Leaf, NOW, TestPki};
    use crate::{Identity, Scope};

    const CITY: u32 = 330_100;

    fn node(pki: &TestPki, code: u32) -> Leaf {
        let city = CityCode::new(code).unwrap();
        let identity = Identity::new(Role::CityNode, Scope::City(city)).unwrap();
        pki.issue(identity, NOW - DAY, NOW + 365 * DAY)
    }

    fn claims(city: u32) -> pb::DeletionAttestation {
        pb::DeletionAttestation {
            version: ATTESTATION_VERSION,
            city,
            destroyed_at: NOW,
            residents: 3,
            records: 7,
            badges: 2,
            policy_version: 4,
            signer_key_destroyed: true,
            sunset_at: NOW - 10,
            trust_list_sequence: 5,
            reason: REASON_SUNSET.into(),
        }
    }

    fn signed(pki: &TestPki) -> Vec<u8> {
        let leaf = node(pki, CITY);
        sign_attestation(&claims(CITY), &leaf.tls_key, &leaf.der).unwrap()
    }

    /// Re-signs `claims` with `leaf`'s key and certificate, skipping the
    /// signer-side checks (what a forger can do).
    fn forge(claims: &pb::DeletionAttestation, key: &SigningKey, der: &[u8]) -> Vec<u8> {
        let payload = claims.encode_to_vec();
        let signature = sign_p256(&payload, key).unwrap();
        pb::SignedAttestation {
            payload,
            signature: signature.to_bytes().to_vec(),
            signer_certificate: der.to_vec(),
        }
        .encode_to_vec()
    }

    #[test]
    fn a_signed_attestation_verifies_and_reads_back_every_field() {
        let pki = TestPki::new();
        let verified = verify_attestation(&signed(&pki), pki.anchor(), NOW).unwrap();
        assert_eq!(verified.claims(), &claims(CITY));
        assert_eq!(verified.city().get(), CITY);
        assert_eq!(verified.signer().identity().role(), Role::CityNode);
    }

    #[test]
    fn the_signature_is_deterministic_p256_as_64_bytes_r_s() {
        use p256::ecdsa::signature::Verifier as _;
        let pki = TestPki::new();
        let leaf = node(&pki, CITY);
        let once = sign_attestation(&claims(CITY), &leaf.tls_key, &leaf.der).unwrap();
        let twice = sign_attestation(&claims(CITY), &leaf.tls_key, &leaf.der).unwrap();
        assert_eq!(once, twice, "RFC 6979: same key and claims, same bytes");
        let envelope = pb::SignedAttestation::decode(once.as_slice()).unwrap();
        assert_eq!(envelope.signature.len(), 64);
        // What PROTOCOL.md tells an implementer: ECDSA P-256/SHA-256 over
        // context || u32be(len) || payload, r || s.
        let mut input = ATTESTATION_CONTEXT.to_vec();
        input.extend_from_slice(&(envelope.payload.len() as u32).to_be_bytes());
        input.extend_from_slice(&envelope.payload);
        let signature = Signature::from_slice(&envelope.signature).unwrap();
        assert!(
            leaf.tls_key
                .verifying_key()
                .verify(&input, &signature)
                .is_ok()
        );
        // The same signature DER-encoded is not the wire form.
        let mut der = envelope.clone();
        der.signature = signature.to_der().as_bytes().to_vec();
        assert_eq!(
            verify_attestation(&der.encode_to_vec(), pki.anchor(), NOW).unwrap_err(),
            AttestationError::BadSignature
        );
    }

    #[test]
    fn a_flipped_payload_byte_is_a_bad_signature() {
        let pki = TestPki::new();
        let bytes = signed(&pki);
        let mut envelope = pb::SignedAttestation::decode(bytes.as_slice()).unwrap();
        // Flip each payload byte in turn: none may pass.
        for i in 0..envelope.payload.len() {
            let mut tampered = envelope.clone();
            tampered.payload[i] ^= 0x01;
            let err = verify_attestation(&tampered.encode_to_vec(), pki.anchor(), NOW).unwrap_err();
            assert_eq!(err, AttestationError::BadSignature, "byte {i}");
        }
        // Counts edited and re-encoded: still the original signature.
        let mut edited = claims(CITY);
        edited.records = 0;
        envelope.payload = edited.encode_to_vec();
        assert_eq!(
            verify_attestation(&envelope.encode_to_vec(), pki.anchor(), NOW).unwrap_err(),
            AttestationError::BadSignature
        );
    }

    #[test]
    fn a_signature_for_another_purpose_is_refused() {
        let pki = TestPki::new();
        let leaf = node(&pki, CITY);
        let payload = claims(CITY).encode_to_vec();
        let input = signing::signing_input(signing::TRUST_LIST_CONTEXT, &payload).unwrap();
        let trust_sig: Signature = leaf.tls_key.sign(&input);
        let bytes = pb::SignedAttestation {
            payload,
            signature: trust_sig.to_bytes().to_vec(),
            signer_certificate: leaf.der.clone(),
        }
        .encode_to_vec();
        assert_eq!(
            verify_attestation(&bytes, pki.anchor(), NOW).unwrap_err(),
            AttestationError::BadSignature
        );
    }

    #[test]
    fn a_badge_signer_cannot_attest() {
        let pki = TestPki::new();
        let signer = pki.badge_signer(CITY);
        assert_eq!(
            sign_attestation(&claims(CITY), &signer.tls_key, &signer.der).unwrap_err(),
            AttestationError::SignerRole(Role::BadgeSigner)
        );
        let forged = forge(&claims(CITY), &signer.tls_key, &signer.der);
        assert_eq!(
            verify_attestation(&forged, pki.anchor(), NOW).unwrap_err(),
            AttestationError::SignerRole(Role::BadgeSigner)
        );
    }

    #[test]
    fn a_node_cannot_attest_for_another_city() {
        let pki = TestPki::new();
        let other = node(&pki, 320_100);
        assert!(matches!(
            sign_attestation(&claims(CITY), &other.tls_key, &other.der),
            Err(AttestationError::OtherCity { attested: CITY, .. })
        ));
        let forged = forge(&claims(CITY), &other.tls_key, &other.der);
        let err = verify_attestation(&forged, pki.anchor(), NOW).unwrap_err();
        assert!(
            matches!(err, AttestationError::OtherCity { signer, attested: CITY } if signer.get() == 320_100),
            "{err}"
        );
    }

    #[test]
    fn a_node_of_a_foreign_root_is_untrusted() {
        let pki = TestPki::new();
        let foreign = TestPki::new();
        let bytes = signed(&foreign);
        assert_eq!(
            verify_attestation(&bytes, pki.anchor(), NOW).unwrap_err(),
            AttestationError::UntrustedSigner(CertError::NotIssuedByRoot)
        );
    }

    #[test]
    fn a_key_that_is_not_the_certificates_cannot_sign() {
        let pki = TestPki::new();
        let leaf = node(&pki, CITY);
        let other = crate::test_pki::tls_key();
        assert_eq!(
            sign_attestation(&claims(CITY), &other, &leaf.der).unwrap_err(),
            AttestationError::KeyMismatch
        );
        let forged = forge(&claims(CITY), &other, &leaf.der);
        assert_eq!(
            verify_attestation(&forged, pki.anchor(), NOW).unwrap_err(),
            AttestationError::BadSignature
        );
    }

    #[test]
    fn truncated_or_oversized_bytes_are_malformed_not_a_panic() {
        let pki = TestPki::new();
        let bytes = signed(&pki);
        for cut in [1, 10, bytes.len() / 2, bytes.len() - 1] {
            let err = verify_attestation(&bytes[..cut], pki.anchor(), NOW).unwrap_err();
            assert!(
                matches!(
                    err,
                    AttestationError::Malformed(_) | AttestationError::UntrustedSigner(_)
                ),
                "cut at {cut}: {err}"
            );
        }
        assert!(matches!(
            verify_attestation(&bytes[..bytes.len() - 1], pki.anchor(), NOW),
            Err(AttestationError::Malformed(_))
        ));
        assert_eq!(
            verify_attestation(&vec![0; MAX_ATTESTATION_LEN + 1], pki.anchor(), NOW).unwrap_err(),
            AttestationError::TooLarge(MAX_ATTESTATION_LEN + 1)
        );
        assert!(matches!(
            verify_attestation(b"", pki.anchor(), NOW),
            Err(AttestationError::UntrustedSigner(_))
        ));
    }

    #[test]
    fn version_time_and_reason_are_checked() {
        let pki = TestPki::new();
        let leaf = node(&pki, CITY);
        let with = |edit: &dyn Fn(&mut pb::DeletionAttestation)| {
            let mut c = claims(CITY);
            edit(&mut c);
            verify_attestation(&forge(&c, &leaf.tls_key, &leaf.der), pki.anchor(), NOW).unwrap_err()
        };
        assert_eq!(
            with(&|c| c.version = 2),
            AttestationError::UnsupportedVersion(2)
        );
        assert!(matches!(
            with(&|c| c.destroyed_at = NOW + 400 * DAY),
            AttestationError::SignerNotValidThen { .. }
        ));
        assert!(matches!(
            with(&|c| c.destroyed_at = NOW - 2 * DAY),
            AttestationError::SignerNotValidThen { .. }
        ));
        assert_eq!(
            with(&|c| c.destroyed_at = NOW + 3600),
            AttestationError::InFuture {
                destroyed_at: NOW + 3600,
                now: NOW
            }
        );
        assert_eq!(
            with(&|c| c.reason = "bored".into()),
            AttestationError::Reason("bored".into())
        );
    }

    fn held(bytes: &[u8]) -> pb::SignedAttestation {
        pb::SignedAttestation::decode(bytes).unwrap()
    }

    #[test]
    fn the_census_accounts_for_each_listed_city_and_says_why_one_does_not_count() {
        let pki = TestPki::new();
        let (attested, missing, kept, replaced) = (CITY, 420_100, 440_100, 510_100);
        let nodes: Vec<Leaf> = [attested, missing, kept, replaced]
            .iter()
            .map(|c| node(&pki, *c))
            .collect();
        let list = pki.trust_list(nodes.iter().map(|l| l.entry.clone()));
        // An earlier node of `replaced`, not in the list.
        let earlier = node(&pki, replaced);
        let outsider = node(&pki, 110_100);
        let sign = |leaf: &Leaf, c: pb::DeletionAttestation| {
            held(&sign_attestation(&c, &leaf.tls_key, &leaf.der).unwrap())
        };
        let mut not_destroyed = claims(kept);
        not_destroyed.signer_key_destroyed = false;
        let mut garbage = sign(&nodes[1], claims(missing));
        garbage.signature[0] ^= 1;
        let census = census(
            &list,
            &[
                sign(&nodes[0], claims(attested)),
                garbage,
                sign(&nodes[2], not_destroyed),
                sign(&earlier, claims(replaced)),
                sign(&outsider, claims(110_100)),
            ],
            pki.anchor(),
            NOW + 60,
        );
        assert_eq!(census.sequence, 1);
        assert_eq!(census.sunset_at, list.sunset_at());
        let by_code = |code: u32| {
            census
                .cities
                .iter()
                .find(|(c, _, _)| *c == code)
                .map(|(_, _, v)| v.clone())
                .unwrap()
        };
        assert_eq!(by_code(attested), Ok(Some(claims(attested))));
        let bad = by_code(missing).unwrap_err();
        assert!(bad.contains("signature"), "{bad}");
        let kept_key = by_code(kept).unwrap_err();
        assert!(kept_key.contains("not destroyed"), "{kept_key}");
        let old = by_code(replaced).unwrap_err();
        assert!(old.contains("earlier node"), "{old}");
        assert_eq!(census.cities.len(), 4, "one line per listed city");
        assert_eq!(census.others, vec![(110_100, Ok(claims(110_100)))]);
        assert_eq!(census.missing(), 3);

        // Nothing held: every city missing, none invalid.
        let empty = super::census(&list, &[], pki.anchor(), NOW);
        assert!(empty.cities.iter().all(|(_, _, v)| *v == Ok(None)));
        assert_eq!(empty.missing(), 4);
    }
}
