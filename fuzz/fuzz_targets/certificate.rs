//! Certificate DER → role and identity, the way every tessera component
//! reads a certificate (`CertInfo::parse`, `parse_issued_by`,
//! `TrustAnchor::from_der`), plus the identity URI on its own.
//!
//! Each input is tried as a whole certificate, as a to-be-signed part the
//! golden root signs (the only way past `parse_issued_by`'s signature
//! check), and, if it is UTF-8, as a `tessera:` identity URI.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_core::cert::{CertError, CertInfo};
use tessera_core::{Identity, KeyId, Role, TrustAnchor};
use tessera_fuzz::golden;

fn check_info(der: &[u8], info: &CertInfo) {
    let identity = info.identity();
    assert_eq!(identity.to_uri().parse::<Identity>(), Ok(identity));
    assert_eq!(identity.role().scope_kind(), identity.scope().kind());
    assert_eq!(
        Role::from_proto(identity.role().to_proto() as i32),
        Some(identity.role())
    );
    assert_eq!(info.key_id(), KeyId::of_certificate(der));
    assert!(info.not_before() <= info.not_after());
    let _ = format!("{info:?}");
}

fn check_der(der: &[u8]) {
    let g = golden();
    let parsed = CertInfo::parse(der);
    if let Ok(info) = &parsed {
        check_info(der, info);
    }
    match CertInfo::parse_issued_by(der, &g.root) {
        Ok(info) => {
            assert_eq!(parsed.as_ref(), Ok(&info));
            assert_ne!(info.identity().role(), Role::Root);
        }
        Err(e) => {
            if let Err(p) = &parsed {
                assert_eq!(&e, p);
            }
        }
    }
    if let Ok(anchor) = TrustAnchor::from_der(der) {
        assert_eq!(anchor.info().identity().role(), Role::Root);
        assert_eq!(parsed.as_ref().ok(), Some(anchor.info()));
        assert_eq!(anchor.der(), der);
    }
    if let Err(e) = &parsed {
        assert!(!e.to_string().is_empty());
        // Only the size limit is checked before the DER parser runs.
        if der.len() > tessera_core::cert::MAX_CERTIFICATE_LEN {
            assert!(matches!(e, CertError::TooLarge(_)));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let g = golden();

    // 1. The input as a certificate from a peer or a trust list.
    check_der(data);

    // 2. The input as the to-be-signed part of a certificate the root signed.
    let der = g.sign_certificate(data);
    check_der(&der);
    if let Ok(info) = CertInfo::parse(&der) {
        let issued = CertInfo::parse_issued_by(&der, &g.root);
        // Signed by the root: refused only for a CA or another issuer name.
        if let Err(e) = issued {
            assert_eq!(e, CertError::NotIssuedByRoot);
        } else {
            assert_ne!(info.identity().role(), Role::Root);
        }
    }

    // 3. The input as an identity URI: only canonical URIs parse.
    if let Ok(uri) = std::str::from_utf8(data)
        && let Ok(identity) = uri.parse::<Identity>()
    {
        assert_eq!(identity.to_uri(), uri);
    }
});
