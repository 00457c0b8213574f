//! The online issuing CA: what it issued, and how it is replaced.

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::path::Path;

    use crate::authority::*;
    use crate::keys;
    use tessera_core::CityCode;
    use tessera_core::trust::CheckedTrustList;
    use tessera_core::{CertInfo, TrustAnchor};

    const NOW: i64 = 1_800_000_000;

    fn authority(tmp: &Path) -> AuthorityDir {
        let options = InitOptions {
            name: "Test authority".into(),
            sunset_at: NOW + 700 * DAY,
        };
        AuthorityDir::init(&tmp.join("a"), &options, NOW).unwrap()
    }

    fn publish(a: &mut AuthorityDir, now: i64) -> CheckedTrustList {
        let (_, bytes) = a.publish(now, DAY).unwrap();
        CheckedTrustList::verify(&bytes, &TrustAnchor::from_der(a.root_der()).unwrap(), now)
            .unwrap()
    }

    #[test]
    fn without_the_root_key_the_authority_enrols_renews_publishes_and_revokes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = authority(tmp.path()).dir().to_path_buf();
        let root =
            TrustAnchor::from_der(&keys::read_cert(&dir.join("root/root.crt")).unwrap()).unwrap();
        assert_eq!(root.info().path_len(), Some(1));
        let ca_der = keys::read_cert(&dir.join(ISSUING_CA_CERT)).unwrap();
        let ca = tessera_core::cert::IssuingCa::from_der(&ca_der, &root).unwrap();
        // The trust-list signer comes from the root, the authority's client
        // from the issuing CA (its file carries the chain).
        let signer = keys::read_cert(&dir.join("trust-list-signer/signer.crt")).unwrap();
        assert!(CertInfo::parse_issued_by(&signer, &root).is_ok());
        let client = keys::read_certs(&dir.join("authority/authority.crt")).unwrap();
        assert_eq!(client.len(), 2);
        assert_eq!(client[1], ca_der);
        assert!(CertInfo::parse_issued_by(&client[0], &root).is_err());
        assert!(CertInfo::parse_with_chain(&client[0], &client[1..], &root).is_ok());

        std::fs::remove_file(dir.join("root/root.key")).unwrap();
        let mut a = AuthorityDir::open(&dir).unwrap();
        let code: CityCode = "330100".parse().unwrap();
        let city = a
            .enrol_city(code, "Hangzhou", "127.0.0.1:7101", NOW)
            .unwrap();
        let node = keys::read_certs(&city.dir.join("node.crt")).unwrap();
        assert_eq!(node, [node[0].clone(), ca_der.clone()]);
        let badge = keys::read_certs(&city.dir.join("badge-signer.crt")).unwrap();
        assert_eq!(badge.len(), 2);
        a.enrol_operator(code, "CDC", NOW).unwrap();
        let province = tessera_core::ProvinceCode::new(330_000).unwrap();
        a.enrol_verifier(province, "station", NOW).unwrap();
        a.enrol_gateway("national", "127.0.0.1:7000", NOW).unwrap();
        let renewed = a.renew(&RenewTarget::City(code), NOW + 10).unwrap();
        let live = keys::read_certs(&renewed.live.0).unwrap();
        assert_eq!(live.len(), 2);
        assert_ne!(live[0], node[0]);
        // The archived certificate file keeps its chain too.
        assert_eq!(
            keys::read_certs(&city.dir.join("node.1.crt")).unwrap(),
            node
        );
        a.rotate_signer(code, NOW + 10).unwrap();

        let list = publish(&mut a, NOW + 20);
        let cas: Vec<_> = list.issuing_cas().collect();
        assert_eq!(cas.len(), 1);
        assert_eq!(cas[0].der(), ca_der.as_slice());
        let node_entry = list.by_key_id(&tessera_core::KeyId::of_certificate(&live[0]));
        let node_entry = node_entry.unwrap();
        assert_eq!(
            node_entry.der(),
            live[0].as_slice(),
            "the entry is the leaf alone"
        );
        assert_eq!(node_entry.issuer(), Some(ca.info().key_id()));

        a.revoke(&RevokeTarget::City(code), NOW + 30).unwrap();
        let list = publish(&mut a, NOW + 40);
        assert!(
            list.by_key_id(&tessera_core::KeyId::of_certificate(&live[0]))
                .unwrap()
                .is_revoked()
        );
        // What needs the root says so.
        let err = a.rotate_list_signer(NOW + 50).unwrap_err();
        assert!(err.to_string().contains("root.key"), "{err}");
        assert!(!dir.join("root/root.key").exists());
    }

    #[test]
    fn the_issuing_ca_is_neither_renewed_nor_revoked_by_serial() {
        let tmp = tempfile::tempdir().unwrap();
        let mut a = authority(tmp.path());
        let serial = a
            .registry()
            .enrolments
            .iter()
            .find(|e| e.identity.ends_with(":issuing-ca"))
            .unwrap()
            .serial
            .clone();
        let err = a
            .renew(&RenewTarget::Serial(serial.clone()), NOW)
            .unwrap_err();
        assert!(err.to_string().contains("rotate-issuing-ca"), "{err}");
        let err = a.revoke(&RevokeTarget::Serial(serial), NOW).unwrap_err();
        assert!(err.to_string().contains("rotate-issuing-ca"), "{err}");
    }
}
