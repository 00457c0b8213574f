//! Certificates tessera's own issuing code refuses to make: self-signed
//! leaves, absurd validity, unknown critical extensions, the wrong key usage.
//! Built with rcgen directly, as an attacker or a broken CA would.

use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose, SanType, date_time_ymd,
};
use tessera_certs::keys;
use tessera_core::Identity;
use time::OffsetDateTime;

use crate::{Issued, TestPki};

/// What is odd about a forged certificate.
#[derive(Debug, Clone, Copy, Default)]
pub struct Forge {
    /// Signed under its own name by its own P-256 key instead of the
    /// national root.
    pub self_signed: bool,
    /// Valid from 1950 to 9999.
    pub absurd_validity: bool,
    /// Carries an extension no verifier knows, marked critical.
    pub unknown_critical_extension: bool,
    /// Server authentication only: no client-authentication key usage.
    pub server_auth_only: bool,
}

/// A certificate for `identity` (its SAN URI, a TLS client's key usage and a
/// year's validity around `pki.now`), made odd as `how` says.
pub fn forged(pki: &TestPki, identity: Identity, how: Forge) -> anyhow::Result<Issued> {
    // The key type the role carries, so that only `how` is odd.
    let (key, tls_key) = (keys::generate_signer_key(), keys::TlsKey::generate());
    let subject = if keys::uses_tls_key(identity.role()) {
        rcgen::KeyPair::try_from(tls_key.to_pkcs8_der()?.as_slice())?
    } else {
        rcgen::KeyPair::try_from(keys::key_to_pkcs8_der(&key)?.as_slice())?
    };
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, identity.to_uri());
    params.distinguished_name = dn;
    params.subject_alt_names = vec![SanType::URI(identity.to_uri().as_str().try_into()?)];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![if how.server_auth_only {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    if how.absurd_validity {
        params.not_before = date_time_ymd(1950, 1, 1);
        params.not_after = date_time_ymd(9999, 12, 31);
    } else {
        params.not_before = OffsetDateTime::from_unix_timestamp(pki.now - 10 * crate::DAY)?;
        params.not_after = OffsetDateTime::from_unix_timestamp(pki.now + 365 * crate::DAY)?;
    }
    if how.unknown_critical_extension {
        let mut ext = CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 59_999, 7], vec![5, 0]);
        ext.set_criticality(true);
        params.custom_extensions.push(ext);
    }
    params.use_authority_key_identifier_extension = !how.self_signed;
    let cert = if how.self_signed {
        // Under its own name with a P-256 key of its own (its subject key
        // for a TLS role; a signer's Ed25519 key cannot sign a certificate
        // tessera would read at all).
        params.signed_by(&subject, &Issuer::from_params(&params, &tls_key))?
    } else {
        let issuer = Issuer::from_ca_cert_der(&pki.root.der().into(), pki.root.key())?;
        params.signed_by(&subject, &issuer)?
    };
    Ok(Issued {
        key,
        tls_key,
        der: cert.der().to_vec(),
    })
}
