//! Renewal and badge-signer rotation for a party enrolled by request: the
//! party made a new key and request (`tessera keygen`), and the authority
//! certifies that key instead of making one.
//!
//! The request is checked as enrolment checks it ([`CheckedRequest`]: its
//! self-signature, its key's type for the role; its subject and extensions
//! are ignored), and refused if its key is one an earlier certificate of the
//! same party carries: a renewal must change the key. The new certificate
//! (same role, scope, name and endpoint) is written as `<stem>.<n>.crt`
//! with the request kept as `<stem>.<n>.csr`, recorded, and the old one
//! retired, under one journal. Nothing is installed over the bundle's live
//! files: the bundle holds no key to go with the new certificate, so the
//! party installs it beside its new key itself.
//!
//! A party enrolled all in one (the authority made its key) is refused
//! here: it is renewed without a request.

use std::path::{Path, PathBuf};

use tessera_core::cert::PublicKey;
use tessera_core::{CertInfo, CityCode, Role};

use super::journal::Journal;
use super::rotation::{RenewTarget, stem, unused_number};
use super::{AuthorityDir, AuthorityError, Enrolment, LEAF_VALIDITY_SECS, REGISTRY};
use crate::keys;
use crate::profile::SubjectKey;
use crate::request::CheckedRequest;

/// What a renewal or rotation by request did.
#[derive(Debug, Clone)]
pub struct ReissuedByRequest {
    /// The bundle directory (in the authority's directory).
    pub dir: PathBuf,
    /// The certificate replaced, now retired.
    pub old: Enrolment,
    /// The new certificate.
    pub new: Enrolment,
    /// The new certificate file (`<stem>.<n>.crt`: it, then the issuing CA's).
    pub cert: PathBuf,
    /// The request, kept (`<stem>.<n>.csr`).
    pub request: PathBuf,
    /// The file stem of the live files the party replaces (`node`,
    /// `badge-signer`, ...).
    pub stem: &'static str,
}

/// Whether `subject` is the key `key` of a certificate.
fn same_key(key: &PublicKey, subject: &SubjectKey) -> bool {
    match (key, subject) {
        (PublicKey::Ed25519(key), SubjectKey::Ed25519(bytes)) => key.to_bytes() == *bytes,
        (PublicKey::EcdsaP256(key), SubjectKey::EcdsaP256(point)) => {
            key.to_encoded_point(false).as_bytes() == point.as_slice()
        }
        _ => false,
    }
}

impl AuthorityDir {
    /// Renews, for the key of `request`, the TLS certificate of a party
    /// enrolled by request (see the module's docs).
    pub fn renew_requested(
        &mut self,
        target: &RenewTarget,
        request: &CheckedRequest,
        now: i64,
    ) -> Result<ReissuedByRequest, AuthorityError> {
        let index = self.renew_index(target)?;
        self.reissue_requested(index, request, now)
    }

    /// Rotates, for the Ed25519 key of `request`, the badge signer of a
    /// city enrolled by request: the old signer is retired and stays ACTIVE
    /// in the trust lists, as [`AuthorityDir::rotate_signer`] leaves it.
    pub fn rotate_signer_requested(
        &mut self,
        city: CityCode,
        request: &CheckedRequest,
        now: i64,
    ) -> Result<ReissuedByRequest, AuthorityError> {
        let uri = format!("tessera:city:{city}:badge-signer");
        let index = self
            .current_index(&uri, |_| true)
            .ok_or(AuthorityError::UnknownCity(city))?;
        self.reissue_requested(index, request, now)
    }

    /// Refuses `request` for a successor to `old` if its key is of the
    /// wrong type or is carried by a certificate issued to the same party.
    fn check_new_key(
        &self,
        old: &Enrolment,
        request: &CheckedRequest,
    ) -> Result<(), AuthorityError> {
        let identity = Self::identity_of(old)?;
        let subject = request.key_for(identity.role())?;
        for e in self
            .registry
            .enrolments
            .iter()
            .filter(|e| e.identity == old.identity && e.name == old.name)
        {
            let der = keys::read_cert(&self.dir.join(&e.cert_file))?;
            let info = CertInfo::parse(&der)
                .map_err(|err| AuthorityError::Registry(format!("{}: {err}", e.cert_file)))?;
            if same_key(info.public_key(), &subject) {
                return Err(AuthorityError::KeyReused {
                    identity: old.identity.clone(),
                    serial: e.serial.clone(),
                });
            }
        }
        Ok(())
    }

    /// When `old` is recorded in the bundle's live `<stem>.crt`, a number
    /// `m` for its copy `<stem>.<m>.crt` and the file's bytes: the registry
    /// then points at the copy, so that each certificate issued stays on
    /// file whatever is later installed over the live name (as
    /// `rotate-issuing-ca` does). Refused if the live file no longer holds
    /// the certificate recorded.
    fn archive_of(
        &self,
        old: &Enrolment,
        dir: &Path,
        stem: &str,
    ) -> Result<Option<(u32, Vec<u8>)>, AuthorityError> {
        let live = dir.join(format!("{stem}.crt"));
        if self.dir.join(&old.cert_file) != live {
            return Ok(None);
        }
        let file = std::fs::read(&live).map_err(|e| AuthorityError::io(&live, e))?;
        let der = keys::certs_from_pem(&file, &live)?.swap_remove(0);
        let info = CertInfo::parse(&der).map_err(|e| AuthorityError::BadOption(e.to_string()))?;
        let serial = tessera_core::cert::hex_string(info.serial());
        if serial != old.serial {
            return Err(AuthorityError::Registry(format!(
                "{} holds serial {serial}, not {} as registry.json records: restore it first",
                live.display(),
                old.serial
            )));
        }
        Ok(Some((unused_number(dir, stem, 1), file)))
    }

    fn reissue_requested(
        &mut self,
        index: usize,
        request: &CheckedRequest,
        now: i64,
    ) -> Result<ReissuedByRequest, AuthorityError> {
        let old = self
            .registry
            .enrolments
            .get(index)
            .cloned()
            .ok_or_else(|| AuthorityError::Registry("no such enrolment".into()))?;
        let identity = Self::identity_of(&old)?;
        let stem = stem(identity.role()).ok_or_else(|| {
            AuthorityError::BadOption("the root cannot be renewed: it anchors everything".into())
        })?;
        if matches!(identity.role(), Role::TrustListSigner | Role::IssuingCa) {
            return Err(AuthorityError::BadOption(format!(
                "{} belongs to the authority: it is rotated without a request",
                old.identity
            )));
        }
        let old_path = self.dir.join(&old.cert_file);
        let dir = old_path
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| AuthorityError::Registry(format!("{}: no bundle", old.cert_file)))?;
        if dir.join(format!("{stem}.key")).exists() || !dir.join(format!("{stem}.csr")).exists() {
            return Err(AuthorityError::KeyHeld(old.identity.clone()));
        }
        self.check_new_key(&old, request)?;
        let archive = self.archive_of(&old, &dir, stem)?;
        self.load_issuer_for(identity.role())?;
        let first = archive.as_ref().map_or(1, |(m, _)| *m);
        let n = unused_number(&dir, stem, 2).max(first + 1);
        let cert = dir.join(format!("{stem}.{n}.crt"));
        let csr = dir.join(format!("{stem}.{n}.csr"));
        let command = match identity.role() {
            Role::BadgeSigner => "rotate-signer",
            _ => "renew",
        };
        let mut creates = vec![cert.clone(), csr.clone()];
        if let Some((m, _)) = &archive {
            creates.push(dir.join(format!("{stem}.{m}.crt")));
        }
        let journal = Journal::new(&self.dir, command, now, &creates, vec![])?;
        let (old, new) = self.journaled(&journal, |this| {
            if let Some((m, file)) = &archive {
                keys::write_new_file(&dir.join(format!("{stem}.{m}.crt")), file, true)?;
            }
            let new = this.issue_for(
                &dir,
                &format!("{stem}.{n}"),
                identity,
                &old.name,
                old.endpoint.as_deref(),
                Some(request),
                now,
                LEAF_VALIDITY_SECS,
            )?;
            let mut next = this.registry.clone();
            if let Some(e) = next.enrolments.get_mut(index) {
                if let Some((m, _)) = &archive {
                    e.cert_file = format!("{}.{m}.crt", e.cert_file.trim_end_matches(".crt"));
                }
                e.retired_at = Some(now);
                e.install_over = None;
            }
            next.enrolments.push(new.clone());
            next.save(&this.dir.join(REGISTRY))?;
            let old = next.enrolments.get(index).cloned().unwrap_or(old.clone());
            this.registry = next;
            Ok((old, new))
        })?;
        Ok(ReissuedByRequest {
            dir,
            old,
            new,
            cert,
            request: csr,
            stem,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::authority::InitOptions;
    use crate::keys::{RoleKey, TlsKey, generate_signer_key};
    use crate::request::make_request;

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    fn request(key: &RoleKey) -> CheckedRequest {
        CheckedRequest::parse(
            make_request(key, "ignored").unwrap().as_bytes(),
            Path::new("r.csr"),
        )
        .unwrap()
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// An authority with city 330100 enrolled by request, and the city's keys.
    fn by_request(tmp: &Path) -> (AuthorityDir, TlsKey, ed25519_dalek::SigningKey) {
        let options = InitOptions {
            name: "Test authority".into(),
            sunset_at: NOW + 700 * DAY,
        };
        let mut a = AuthorityDir::init(&tmp.join("a"), &options, NOW).unwrap();
        let node = TlsKey::generate();
        let signer = generate_signer_key();
        a.enrol_city_requested(
            "330100".parse().unwrap(),
            "Hangzhou",
            "127.0.0.1:7101",
            &request(&RoleKey::Tls(node.clone())),
            &request(&RoleKey::Signer(signer.clone())),
            NOW,
        )
        .unwrap();
        (a, node, signer)
    }

    fn info(path: &Path) -> CertInfo {
        CertInfo::parse(&keys::read_cert(path).unwrap()).unwrap()
    }

    #[test]
    fn a_city_by_request_renews_its_node_for_a_new_key_and_nothing_live_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut a, old_key, _) = by_request(tmp.path());
        let city: CityCode = "330100".parse().unwrap();
        let bundle = a.dir().join("cities/330100");
        let live = std::fs::read(bundle.join("node.crt")).unwrap();
        let new_key = TlsKey::generate();

        let r = a
            .renew_requested(
                &RenewTarget::City(city),
                &request(&RoleKey::Tls(new_key.clone())),
                NOW + 10,
            )
            .unwrap();
        assert_eq!(r.old.retired_at, Some(NOW + 10));
        // The live file is kept as node.1.crt, and the registry points at it.
        assert_eq!(r.old.cert_file, "cities/330100/node.1.crt");
        assert_eq!(std::fs::read(bundle.join("node.1.crt")).unwrap(), live);
        assert_eq!(r.new.cert_file, "cities/330100/node.2.crt");
        assert_eq!(r.stem, "node");
        let new = info(&r.cert);
        assert_eq!(new.p256_key(), Some(new_key.verifying_key()));
        assert_ne!(new.p256_key(), Some(old_key.verifying_key()));
        assert_eq!(new.identity().to_uri(), "tessera:city:330100:node");
        assert_eq!(new.hosts(), info(&bundle.join("node.crt")).hosts());
        assert_eq!(r.new.endpoint.as_deref(), Some("127.0.0.1:7101"));
        assert!(new.not_after() <= a.registry().sunset_at);
        // Issued by the issuing CA: the file holds the chain.
        let chain = keys::certs_from_pem(&std::fs::read(&r.cert).unwrap(), &r.cert).unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(
            std::fs::read(bundle.join("node.crt")).unwrap(),
            live,
            "nothing is installed over the live files"
        );
        assert_eq!(
            files(&bundle),
            [
                "badge-signer.crt",
                "badge-signer.csr",
                "node.1.crt",
                "node.2.crt",
                "node.2.csr",
                "node.crt",
                "node.csr",
                "root.crt"
            ]
        );
        assert!(!a.dir().join(super::super::JOURNAL).exists());

        // The key of any earlier certificate is refused; nothing changes.
        let before = a.registry().enrolments.clone();
        for key in [old_key, new_key] {
            let err = a
                .renew_requested(
                    &RenewTarget::City(city),
                    &request(&RoleKey::Tls(key)),
                    NOW + 20,
                )
                .unwrap_err();
            assert!(matches!(err, AuthorityError::KeyReused { .. }), "{err}");
        }
        // So is a key of the wrong type.
        let err = a
            .renew_requested(
                &RenewTarget::City(city),
                &request(&RoleKey::Signer(generate_signer_key())),
                NOW + 20,
            )
            .unwrap_err();
        assert!(err.to_string().contains("ECDSA P-256"), "{err}");
        assert_eq!(a.registry().enrolments, before);
        assert!(!bundle.join("node.3.crt").exists());

        // A second renewal follows on.
        let r = a
            .renew_requested(
                &RenewTarget::City(city),
                &request(&RoleKey::Tls(TlsKey::generate())),
                NOW + 30,
            )
            .unwrap();
        assert_eq!(r.old.cert_file, "cities/330100/node.2.crt");
        assert_eq!(r.new.cert_file, "cities/330100/node.3.crt");
    }

    #[test]
    fn a_by_request_badge_signer_is_rotated_for_a_new_key_and_both_are_listed() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut a, _, old_signer) = by_request(tmp.path());
        let city: CityCode = "330100".parse().unwrap();
        let new_signer = generate_signer_key();
        let err = a
            .rotate_signer_requested(city, &request(&RoleKey::Signer(old_signer)), NOW + 10)
            .unwrap_err();
        assert!(matches!(err, AuthorityError::KeyReused { .. }), "{err}");
        let err = a
            .rotate_signer_requested(city, &request(&RoleKey::Tls(TlsKey::generate())), NOW + 10)
            .unwrap_err();
        assert!(err.to_string().contains("Ed25519"), "{err}");

        let r = a
            .rotate_signer_requested(
                city,
                &request(&RoleKey::Signer(new_signer.clone())),
                NOW + 10,
            )
            .unwrap();
        assert_eq!(r.old.retired_at, Some(NOW + 10));
        assert!(r.old.revoked_at.is_none());
        assert_eq!(r.new.cert_file, "cities/330100/badge-signer.2.crt");
        assert!(r.new.install_over.is_none());
        assert_eq!(
            info(&r.cert).ed25519_key(),
            Some(&new_signer.verifying_key())
        );
        let (_, bytes) = a.publish(NOW + 20, DAY).unwrap();
        let list = tessera_core::trust::CheckedTrustList::verify(
            &bytes,
            &tessera_core::TrustAnchor::from_der(a.root_der()).unwrap(),
            NOW + 20,
        )
        .unwrap();
        let signers = list
            .entries()
            .iter()
            .filter(|e| e.cert().identity().role() == Role::BadgeSigner && !e.is_revoked())
            .count();
        assert_eq!(signers, 2);
        assert!(a.pending_installs().is_empty());
    }

    #[test]
    fn a_party_whose_key_the_authority_holds_is_renewed_without_a_request() {
        let tmp = tempfile::tempdir().unwrap();
        let options = InitOptions {
            name: "Test authority".into(),
            sunset_at: NOW + 700 * DAY,
        };
        let mut a = AuthorityDir::init(&tmp.path().join("a"), &options, NOW).unwrap();
        a.enrol_gateway("national", "127.0.0.1:7000", NOW).unwrap();
        let before = a.registry().enrolments.clone();
        let err = a
            .renew_requested(
                &RenewTarget::Gateway("national".into()),
                &request(&RoleKey::Tls(TlsKey::generate())),
                NOW + 10,
            )
            .unwrap_err();
        assert!(matches!(err, AuthorityError::KeyHeld(_)), "{err}");
        assert!(err.to_string().contains("without --csr"), "{err}");
        assert_eq!(a.registry().enrolments, before);
        assert!(!a.dir().join("gateways/national/gateway.2.crt").exists());
    }
}
