//! The online issuing CA: how it is replaced (`rotate-issuing-ca`).
//!
//! A new issuing CA is made by the root (so this needs the root key), and
//! every certificate in use that the old one issued is certified again by
//! the new one **for the same public key**: a compromised issuing CA does
//! not compromise the parties' keys, so no party needs a new key or
//! request. Each new certificate is written into its bundle as
//! `<stem>.<n>.crt` (it, then the new issuing CA's certificate) and
//! installed over the live file as `renew` does; a badge signer's, like a
//! rotated signer's, and the authority's own TLS client's go live with the
//! next list published, which carries the new issuing CA (the gateway
//! refuses a client whose issuing CA its list does not carry, so that list
//! is uploaded with the old client certificate). The old certificates are retired. The old issuing CA is revoked
//! (`--compromised`: the next list lists it REVOKED, and with it everything
//! it issued) or retired (still ACTIVE until what it issued expires).
//!
//! All of it runs under one journal: a crash half way is undone, or
//! finished once `registry.json` recorded it (`tessera authority recover`).

use std::path::{Path, PathBuf};

use tessera_core::cert::{IssuedBy, PublicKey};
use tessera_core::{CertInfo, Identity, Role, Scope, TrustAnchor};

use super::journal::Journal;
use super::rotation::{stem, unused_number};
use super::*;

/// What `rotate-issuing-ca` did.
#[derive(Debug, Clone)]
pub struct IssuingCaRotation {
    /// The old issuing CA, as now recorded (revoked or retired).
    pub old: Enrolment,
    /// The new issuing CA.
    pub new: Enrolment,
    /// Each certificate certified again: the old (retired) and the new
    /// enrolment, and the file to hand to its holder.
    pub recertified: Vec<(Enrolment, Enrolment, PathBuf)>,
}

/// One certificate to certify again.
struct Plan {
    index: usize,
    identity: Identity,
    subject: SubjectKey,
    not_after: i64,
    /// The live file copied to a numbered name first, when the registry
    /// points at the live file.
    archive: Option<(PathBuf, Vec<u8>)>,
    issued: PathBuf,
    /// The key copied beside a badge signer's new certificate (its
    /// certificate goes live with the next list, key and certificate).
    key_copy: Option<(PathBuf, Vec<u8>)>,
    /// Where it is installed: at once, or (a badge signer) at `publish`.
    live: PathBuf,
    deferred: bool,
}

fn subject_of(info: &CertInfo) -> SubjectKey {
    match info.public_key() {
        PublicKey::EcdsaP256(key) => {
            SubjectKey::EcdsaP256(key.to_encoded_point(false).as_bytes().to_vec())
        }
        PublicKey::Ed25519(key) => SubjectKey::Ed25519(key.to_bytes()),
    }
}

fn rel(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir).unwrap_or(path).display().to_string()
}

impl AuthorityDir {
    /// Replaces the issuing CA (see the module's docs); `compromised`
    /// revokes the old one from the next list on. Needs the root key.
    pub fn rotate_issuing_ca(
        &mut self,
        compromised: bool,
        now: i64,
    ) -> Result<IssuingCaRotation, AuthorityError> {
        if !self.has_issuing_ca() {
            return Err(AuthorityError::BadOption(
                "this directory has no issuing CA (it was made before issuing CAs existed): its root issues every certificate".into(),
            ));
        }
        if let Some(label) = &super::Custody::load(&self.dir)?.labels().issuing_ca {
            return Err(AuthorityError::BadOption(format!(
                "the issuing CA's key is in a token ({} names it {label:?}), and rotate-issuing-ca \
                 cannot make its successor in the token yet: nothing was changed (PKI.md, Known limitations)",
                super::CUSTODY_FILE
            )));
        }
        let ca_uri = "tessera:nation:000000:issuing-ca";
        let ca_index = self
            .current_index(ca_uri, |_| true)
            .ok_or_else(|| AuthorityError::Registry("no issuing CA in use".into()))?;
        let old_ca = self.registry.enrolments[ca_index].clone();
        let root = TrustAnchor::from_der(&self.root_der)
            .map_err(|e| AuthorityError::Registry(format!("root/root.crt: {e}")))?;
        let live_ca = self.dir.join(ISSUING_CA_CERT);
        let live_ca_key = self.dir.join(ISSUING_CA_KEY);
        let old_ca_file = std::fs::read(&live_ca).map_err(|e| AuthorityError::io(&live_ca, e))?;
        let old_ca_der = keys::certs_from_pem(&old_ca_file, &live_ca)?.swap_remove(0);
        let old_ca_cert = tessera_core::cert::IssuingCa::from_der(&old_ca_der, &root)
            .map_err(|e| AuthorityError::Registry(format!("{ISSUING_CA_CERT}: {e}")))?;
        if tessera_core::cert::hex_string(old_ca_cert.info().serial()) != old_ca.serial {
            return Err(AuthorityError::Registry(format!(
                "{ISSUING_CA_CERT} is not the issuing CA registry.json records ({}): restore it first",
                old_ca.serial
            )));
        }
        let plans = self.plan_recertification(&root, &old_ca_cert)?;
        self.load_root()?;

        let ca_dir = self.dir.join("issuing-ca");
        let ca_archive = ca_dir.join(format!(
            "issuing-ca.{}.crt",
            unused_number(&ca_dir, "issuing-ca", 1)
        ));
        let n = unused_number(&ca_dir, "issuing-ca", 2)
            .max(unused_number(&ca_dir, "issuing-ca", 1) + 1);
        let ca_stem = format!("issuing-ca.{n}");
        let new_ca_cert = ca_dir.join(format!("{ca_stem}.crt"));
        let new_ca_key = ca_dir.join(format!("{ca_stem}.key"));
        let mut creates = vec![ca_archive.clone(), new_ca_cert.clone(), new_ca_key.clone()];
        let mut then = vec![
            Journal::install(&self.dir, &new_ca_key, &live_ca_key),
            Journal::install(&self.dir, &new_ca_cert, &live_ca),
        ];
        for plan in &plans {
            creates.push(plan.issued.clone());
            if let Some((path, _)) = &plan.archive {
                creates.push(path.clone());
            }
            if let Some((path, _)) = &plan.key_copy {
                creates.push(path.clone());
            }
            if !plan.deferred {
                then.push(Journal::install(&self.dir, &plan.issued, &plan.live));
            }
        }
        let journal = Journal::new(&self.dir, "rotate-issuing-ca", now, &creates, then)?;
        self.journaled(&journal, |this| {
            keys::write_new_file(&ca_archive, &old_ca_file, true)?;
            let national = Identity::new(Role::IssuingCa, Scope::Nation)
                .map_err(|e| AuthorityError::BadOption(e.to_string()))?;
            let mut new_ca = this.issue_into(
                &ca_dir,
                &ca_stem,
                national,
                &old_ca.name,
                None,
                now,
                ISSUING_CA_VALIDITY_SECS,
            )?;
            new_ca.cert_file = rel(&this.dir, &new_ca_cert);
            let key = keys::read_tls_key(&new_ca_key)?;
            let der = keys::read_cert(&new_ca_cert)?;
            let ca_not_after = new_ca.not_after;
            this.issuing_ca = Some(IssuingCa::from_parts(key, der));
            let mut next = this.registry.clone();
            if let Some(e) = next.enrolments.get_mut(ca_index) {
                e.cert_file = rel(&this.dir, &ca_archive);
                if compromised {
                    e.revoked_at = Some(now);
                } else {
                    e.retired_at = Some(now);
                }
            }
            next.enrolments.push(new_ca.clone());
            let mut recertified = vec![];
            for plan in &plans {
                let (old, new) = this.recertify(plan, ca_not_after, &mut next, now)?;
                recertified.push((old, new, plan.issued.clone()));
            }
            next.save(&this.dir.join(REGISTRY))?;
            let old = next
                .enrolments
                .get(ca_index)
                .cloned()
                .unwrap_or(old_ca.clone());
            this.registry = next;
            Ok(IssuingCaRotation {
                old,
                new: new_ca,
                recertified,
            })
        })
    }

    /// Every certificate in use that `old_ca` issued, and where its
    /// successor goes. Reads only.
    fn plan_recertification(
        &self,
        root: &TrustAnchor,
        old_ca: &tessera_core::cert::IssuingCa,
    ) -> Result<Vec<Plan>, AuthorityError> {
        let mut plans = vec![];
        let cas = std::slice::from_ref(old_ca);
        for (index, e) in self.registry.enrolments.iter().enumerate() {
            if !e.is_current() {
                continue;
            }
            let identity = Self::identity_of(e)?;
            let Some(stem) = stem(identity.role()) else {
                continue;
            };
            let file = self.dir.join(&e.cert_file);
            let der = keys::read_cert(&file)?;
            let Ok((info, IssuedBy::IssuingCa(_))) = CertInfo::parse_issued_within(&der, root, cas)
            else {
                continue;
            };
            let dir = file
                .parent()
                .map(Path::to_path_buf)
                .ok_or_else(|| AuthorityError::Registry(format!("{}: no bundle", e.cert_file)))?;
            let live = match &e.install_over {
                Some(to) => self.dir.join(to),
                None => dir.join(format!("{stem}.crt")),
            };
            let first = unused_number(&dir, stem, 1);
            let archive = if file == live {
                let bytes = std::fs::read(&file).map_err(|err| AuthorityError::io(&file, err))?;
                Some((dir.join(format!("{stem}.{first}.crt")), bytes))
            } else {
                None
            };
            let n = unused_number(&dir, stem, 2).max(first + 1);
            let issued = dir.join(format!("{stem}.{n}.crt"));
            let key_src = file.with_extension("key");
            // A badge signer whose key the authority holds goes live with
            // the next list, which carries it (as after rotate-signer); so
            // does the authority's own TLS client, so that the list carrying
            // the new issuing CA is uploaded with the client certificate the
            // gateway's list in force still accepts.
            let deferred =
                matches!(identity.role(), Role::BadgeSigner | Role::Authority) && key_src.exists();
            let key_copy = if deferred {
                let bytes =
                    std::fs::read(&key_src).map_err(|err| AuthorityError::io(&key_src, err))?;
                Some((issued.with_extension("key"), bytes))
            } else {
                None
            };
            plans.push(Plan {
                index,
                identity,
                subject: subject_of(&info),
                not_after: info.not_after(),
                archive,
                issued,
                key_copy,
                live,
                deferred,
            });
        }
        Ok(plans)
    }

    /// Certifies `plan`'s key again with the issuing CA loaded, writes its
    /// files and records it in `next`: (old, new) enrolments.
    fn recertify(
        &self,
        plan: &Plan,
        ca_not_after: i64,
        next: &mut Registry,
        now: i64,
    ) -> Result<(Enrolment, Enrolment), AuthorityError> {
        let old = next
            .enrolments
            .get(plan.index)
            .cloned()
            .ok_or_else(|| AuthorityError::Registry("no such enrolment".into()))?;
        if let Some((path, bytes)) = &plan.archive {
            keys::write_new_file(path, bytes, true)?;
        }
        if let Some((path, bytes)) = &plan.key_copy {
            keys::write_new_file(path, bytes, true)?;
        }
        let hosts = match &old.endpoint {
            Some(ep) => vec![endpoint_host(ep)?],
            None => vec![],
        };
        let req = CertRequest {
            identity: plan.identity,
            common_name: old.name.clone(),
            hosts,
            not_before: now - BACKDATE_SECS,
            // The same end as before: certifying again extends nothing.
            not_after: plan.not_after.min(ca_not_after),
            serial: None,
        };
        let (der, pem) = self.certify(&req, plan.subject.clone())?;
        keys::write_new_file(&plan.issued, pem.as_bytes(), true)?;
        let info = CertInfo::parse(&der).map_err(|e| AuthorityError::BadOption(e.to_string()))?;
        let new = Enrolment {
            identity: old.identity.clone(),
            name: old.name.clone(),
            endpoint: old.endpoint.clone(),
            serial: tessera_core::cert::hex_string(info.serial()),
            cert_file: rel(&self.dir, &plan.issued),
            not_before: info.not_before(),
            not_after: info.not_after(),
            revoked_at: None,
            retired_at: None,
            listed_at: None,
            pruned_at: None,
            install_over: plan.deferred.then(|| rel(&self.dir, &plan.live)),
        };
        if let Some(e) = next.enrolments.get_mut(plan.index) {
            if let Some((path, _)) = &plan.archive {
                e.cert_file = rel(&self.dir, path);
            }
            e.retired_at = Some(now);
            e.install_over = None;
        }
        next.enrolments.push(new.clone());
        let old = next.enrolments.get(plan.index).cloned().unwrap_or(old);
        Ok((old, new))
    }
}

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

    fn badge(dir: &Path, cert: &str, key: &str, now: i64) -> Vec<u8> {
        use tessera_core::badge::{BadgeClaims, BadgeSigner, Colour, HolderHint};
        let signer = BadgeSigner::new(
            keys::read_signer_key(&dir.join(key)).unwrap(),
            &keys::read_cert(&dir.join(cert)).unwrap(),
        )
        .unwrap();
        let claims = BadgeClaims {
            issuer_city: "330100".parse().unwrap(),
            badge_id: tessera_core::BadgeId::from_bytes([7; 16]),
            colour: Colour::Green,
            issued_at: now,
            valid_until: now + DAY,
            policy_version: 1,
            holder_hint: HolderHint::mask("张三丰", "33010619900101123X"),
        };
        signer.sign(&claims).unwrap()
    }

    #[test]
    fn after_a_compromised_issuing_ca_is_rotated_only_the_recertified_parties_are_trusted() {
        use tessera_core::trust::ChainRefusal;
        let tmp = tempfile::tempdir().unwrap();
        let mut a = authority(tmp.path());
        let code: CityCode = "330100".parse().unwrap();
        let city = a
            .enrol_city(code, "Hangzhou", "127.0.0.1:7101", NOW)
            .unwrap()
            .dir;
        let operator = a.enrol_operator(code, "CDC", NOW).unwrap().dir;
        let first = publish(&mut a, NOW + 1);
        let old_node = keys::read_cert(&city.join("node.crt")).unwrap();
        let old_operator = keys::read_cert(&operator.join("operator.crt")).unwrap();
        let node_key = std::fs::read(city.join("node.key")).unwrap();
        let old_badge = badge(&city, "badge-signer.crt", "badge-signer.key", NOW + 5);
        assert!(tessera_core::verify(&old_badge, &first, NOW + 5).is_ok());
        let old_ca = keys::read_cert(&a.dir().join(ISSUING_CA_CERT)).unwrap();

        let r = a.rotate_issuing_ca(true, NOW + 10).unwrap();
        assert_eq!(r.old.revoked_at, Some(NOW + 10));
        // Node, badge signer, operator and the authority's own client.
        assert_eq!(r.recertified.len(), 4, "{:?}", r.recertified);
        let new_ca = keys::read_cert(&a.dir().join(ISSUING_CA_CERT)).unwrap();
        assert_ne!(new_ca, old_ca);
        assert!(a.dir().join("issuing-ca/issuing-ca.1.crt").exists());
        // The node's live file is the new certificate for the same key,
        // then the new issuing CA; its key file is untouched.
        let node = keys::read_certs(&city.join("node.crt")).unwrap();
        assert_eq!(node[1], new_ca);
        assert_ne!(node[0], old_node);
        let (before, after) = (
            CertInfo::parse(&old_node).unwrap(),
            CertInfo::parse(&node[0]).unwrap(),
        );
        assert_eq!(before.public_key(), after.public_key());
        assert_eq!(before.not_after(), after.not_after());
        assert_eq!(std::fs::read(city.join("node.key")).unwrap(), node_key);

        let list = publish(&mut a, NOW + 20);
        let old_entry = list.by_key_id(&tessera_core::KeyId::of_certificate(&old_ca));
        assert!(old_entry.unwrap().is_revoked());
        assert!(list.issuing_ca_in_force(&new_ca));
        // A party still on the old certificate is refused, one on the new
        // certificate is not.
        let serial = CertInfo::parse(&old_ca).unwrap().serial().to_vec();
        for old in [&old_node, &old_operator] {
            assert_eq!(
                list.chain_refusal(old),
                Some(ChainRefusal::IssuerRevoked(serial.clone()))
            );
        }
        let new_operator = keys::read_cert(&operator.join("operator.crt")).unwrap();
        assert_eq!(list.chain_refusal(&node[0]), None);
        assert_eq!(list.chain_refusal(&new_operator), None);
        // The badge signer went live with that list: its badges verify, the
        // old certificate's are refused for their issuer.
        let new_badge = badge(&city, "badge-signer.crt", "badge-signer.key", NOW + 25);
        let verified = tessera_core::verify(&new_badge, &list, NOW + 25).unwrap();
        assert_eq!(verified.claims().issuer_city, code);
        let err = tessera_core::verify(&old_badge, &list, NOW + 25).unwrap_err();
        assert_eq!(err.reason(), "issuer_revoked");
        // The authority's own client was certified again too.
        let client = keys::read_certs(&a.dir().join("authority/authority.crt")).unwrap();
        assert_eq!(client[1], new_ca);
        assert_eq!(list.chain_refusal(&client[0]), None);
    }

    #[test]
    fn a_retired_issuing_ca_stays_active_and_the_rotation_needs_the_root_key() {
        let tmp = tempfile::tempdir().unwrap();
        let mut a = authority(tmp.path());
        let old_ca = keys::read_cert(&a.dir().join(ISSUING_CA_CERT)).unwrap();
        let old_client = keys::read_cert(&a.dir().join("authority/authority.crt")).unwrap();
        let r = a.rotate_issuing_ca(false, NOW + 10).unwrap();
        assert_eq!(r.old.retired_at, Some(NOW + 10));
        assert!(r.old.revoked_at.is_none());
        let list = publish(&mut a, NOW + 20);
        assert!(list.issuing_ca_in_force(&old_ca));
        assert_eq!(list.issuing_cas().count(), 2);
        assert_eq!(list.chain_refusal(&old_client), None);
        // A second rotation, without the root key, is refused and changes nothing.
        std::fs::remove_file(a.dir().join("root/root.key")).unwrap();
        let dir = a.dir().to_path_buf();
        let before = std::fs::read(dir.join(REGISTRY)).unwrap();
        let mut a = AuthorityDir::open(&dir).unwrap();
        let err = a.rotate_issuing_ca(true, NOW + 30).unwrap_err();
        assert!(err.to_string().contains("root.key"), "{err}");
        assert_eq!(std::fs::read(dir.join(REGISTRY)).unwrap(), before);
        assert!(!dir.join("issuing-ca/issuing-ca.3.crt").exists());
        assert!(!dir.join(journal::JOURNAL).exists());
    }
}
