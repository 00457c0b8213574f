//! Rotation and renewal: a new certificate and key for a party that already
//! holds one, with an overlap instead of a gap.
//!
//! Every command here issues the new certificate and key under new,
//! numbered names in the party's bundle (`node.2.crt`, `node.2.key`; never
//! overwritten), records it, and then installs it over the bundle's *live*
//! files (`node.crt`, `node.key`, the names `node.toml` and `gateway.toml`
//! give), key first, each by an atomic rename. A node or gateway running
//! from the bundle reloads the live files by itself. The certificate that
//! was live is first copied to a numbered name of its own, so that
//! `registry.json` keeps pointing at a file holding each certificate issued.
//!
//! What happens to the old certificate depends on what it signed:
//!
//! - a badge signer is **retired**: still ACTIVE in the trust lists, so the
//!   badges it signed verify until they expire; `prune-signers` leaves it
//!   out of later lists once every one of them has ([`AuthorityDir::prune_signers`]);
//! - a TLS certificate (node, gateway, operator, verifier, authority) is
//!   retired too: it was never needed in the list to be accepted, and its
//!   key is gone from the bundle; revoke it by serial if the key may have
//!   leaked;
//! - the trust-list signer is **revoked** at once: the first list the new
//!   signer signs lists the old one REVOKED, and a verifier holding that
//!   list refuses every later list the old key signs.

use std::path::{Path, PathBuf};

use tessera_core::badge::MAX_VALIDITY_SECS;
use tessera_core::trust::CLOCK_SKEW_SECS;
use tessera_core::{CityCode, Identity, Role};

use super::journal::{Journal, Step};
use super::{
    AuthorityDir, AuthorityError, Enrolment, LEAF_VALIDITY_SECS, REGISTRY, SIGNER_VALIDITY_SECS,
    check_name,
};
use crate::keys;

/// Whose TLS certificate to renew.
#[derive(Debug, Clone)]
pub enum RenewTarget {
    /// A city's node.
    City(CityCode),
    /// A gateway, by its enrolled name.
    Gateway(String),
    /// Any TLS certificate by serial (hex): an operator, a verifier, the
    /// authority's own client.
    Serial(String),
}

/// What a rotation or renewal did.
#[derive(Debug, Clone)]
pub struct Reissued {
    /// The bundle directory.
    pub dir: PathBuf,
    /// The certificate replaced, as now recorded (retired, or revoked for
    /// the trust-list signer).
    pub old: Enrolment,
    /// The new certificate.
    pub new: Enrolment,
    /// The new certificate and key under their own names (kept).
    pub issued: (PathBuf, PathBuf),
    /// The live files, which hold the new certificate and key now, or,
    /// when `deferred`, from the next trust list published.
    pub live: (PathBuf, PathBuf),
    /// A badge signer: the live files keep the old signer until `publish`.
    pub deferred: bool,
}

/// What `prune-signers` did and did not do.
#[derive(Debug, Clone, Default)]
pub struct Pruned {
    /// Retired badge signers left out of the trust lists from now on (with
    /// `dry_run`, that would be), their keys removed from their bundles.
    pub pruned: Vec<Enrolment>,
    /// Retired badge signers some of whose badges may still be valid, with
    /// the time from which they can be pruned, and whether a list carrying
    /// their successor has been published (until it is, the node keeps
    /// signing with the old key).
    pub waiting: Vec<(Enrolment, i64, bool)>,
}

/// The file stem of a role's certificate and key in its bundle.
pub(super) fn stem(role: Role) -> Option<&'static str> {
    Some(match role {
        Role::CityNode => "node",
        Role::BadgeSigner => "badge-signer",
        Role::Gateway => "gateway",
        Role::Operator => "operator",
        Role::Verifier => "verifier",
        Role::Authority => "authority",
        Role::TrustListSigner => "signer",
        Role::IssuingCa => "issuing-ca",
        Role::Root => return None,
    })
}

/// The smallest `n >= from` for which neither `stem.n.crt` nor `stem.n.key`
/// exists in `dir`.
pub(super) fn unused_number(dir: &Path, stem: &str, from: u32) -> u32 {
    (from..)
        .find(|n| {
            !dir.join(format!("{stem}.{n}.crt")).exists()
                && !dir.join(format!("{stem}.{n}.key")).exists()
        })
        .unwrap_or(from)
}

/// When every badge a retired signer may have signed has expired: the node
/// signs with the old key until it holds a list carrying the new one, so
/// the overlap runs from the first list publishing the successor, for the
/// longest badge life, plus clock skew; and never past the old signer's
/// certificate, which no badge outlives.
fn prunable_from(old: &Enrolment, successor: Option<&Enrolment>) -> (i64, bool) {
    match successor.and_then(|s| s.listed_at) {
        Some(listed) => (
            listed
                .saturating_add(MAX_VALIDITY_SECS)
                .saturating_add(CLOCK_SKEW_SECS)
                .min(old.not_after),
            true,
        ),
        None => (old.not_after, false),
    }
}

impl AuthorityDir {
    pub(super) fn identity_of(e: &Enrolment) -> Result<Identity, AuthorityError> {
        e.identity
            .parse()
            .map_err(|err| AuthorityError::Registry(format!("{}: {err}", e.identity)))
    }

    /// The index of the current (active, not retired) enrolment of
    /// `identity` accepted by `filter`, the latest if several.
    pub(super) fn current_index(
        &self,
        identity: &str,
        filter: impl Fn(&Enrolment) -> bool,
    ) -> Option<usize> {
        self.registry
            .enrolments
            .iter()
            .rposition(|e| e.identity == identity && e.is_current() && filter(e))
    }

    /// The certificate and key files of the trust-list signer in use.
    pub(super) fn current_list_signer(&self) -> Result<(PathBuf, PathBuf), AuthorityError> {
        let index = self
            .current_index("tessera:nation:000000:trust-list-signer", |_| true)
            .ok_or_else(|| {
                AuthorityError::Registry(
                    "no active trust-list signer: restore registry.json from a backup".into(),
                )
            })?;
        let cert = self.dir.join(&self.registry.enrolments[index].cert_file);
        Ok((cert.clone(), cert.with_extension("key")))
    }

    /// Issues a successor to enrolment `index` (see the module's docs) and
    /// returns what was written. The old certificate is revoked if
    /// `revoke_old`, else retired.
    fn reissue(
        &mut self,
        index: usize,
        revoke_old: bool,
        now: i64,
    ) -> Result<Reissued, AuthorityError> {
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
        let validity = if identity.role() == Role::TrustListSigner {
            SIGNER_VALIDITY_SECS
        } else {
            LEAF_VALIDITY_SECS
        };
        let old_path = self.dir.join(&old.cert_file);
        let dir = old_path
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| AuthorityError::Registry(format!("{}: no bundle", old.cert_file)))?;
        let live_cert = dir.join(format!("{stem}.crt"));
        let live_key = dir.join(format!("{stem}.key"));
        // The live certificate must still be the one recorded, or the
        // archive below would record the wrong certificate.
        let archive = if old_path == live_cert {
            // The whole file is archived: the certificate and the chain after it.
            let file = std::fs::read(&live_cert).map_err(|e| AuthorityError::io(&live_cert, e))?;
            let der = keys::certs_from_pem(&file, &live_cert)?.swap_remove(0);
            let info = tessera_core::CertInfo::parse(&der)
                .map_err(|e| AuthorityError::BadOption(e.to_string()))?;
            let serial: String = info.serial().iter().map(|b| format!("{b:02x}")).collect();
            if serial != old.serial {
                return Err(AuthorityError::Registry(format!(
                    "{} holds serial {serial}, not {} as registry.json records: restore it first",
                    live_cert.display(),
                    old.serial
                )));
            }
            let n = unused_number(&dir, stem, 1);
            Some((dir.join(format!("{stem}.{n}.crt")), file))
        } else {
            None
        };
        // A party enrolled by request holds its own key: making a new one
        // here would hand it a key the authority knows.
        if !live_key.exists() && dir.join(format!("{stem}.csr")).exists() {
            return Err(AuthorityError::KeyNotHeld(old.identity.clone()));
        }
        self.load_issuer_for(identity.role())?;
        // A badge signer's new pair waits for a trust list carrying it
        // (`publish` installs it), and its old key is kept beside its
        // certificate until `prune-signers`: a node restarted in between
        // still finds, in the live files, a signer the lists carry.
        let deferred = identity.role() == Role::BadgeSigner;
        let n = unused_number(&dir, stem, 2);
        let issued_cert = dir.join(format!("{stem}.{n}.crt"));
        let issued_key = dir.join(format!("{stem}.{n}.key"));
        // A trust-list signer whose key is in a token gets its new key
        // there (see `custody`), and the configuration naming it is
        // installed with the certificate.
        let token = match identity.role() {
            Role::TrustListSigner => super::custody::next_in_token(&self.dir, n)?,
            _ => None,
        };
        let mut creates = vec![issued_cert.clone(), issued_key.clone()];
        if let Some(next) = &token {
            creates.push(next.file.clone());
        }
        if let Some((path, _)) = &archive {
            creates.push(path.clone());
            if deferred {
                creates.push(path.with_extension("key"));
            }
        }
        let then = if let Some(next) = &token {
            vec![
                Journal::install(&self.dir, &issued_cert, &live_cert),
                Journal::install(&self.dir, &next.file, &self.dir.join(super::CUSTODY_FILE)),
            ]
        } else if deferred {
            vec![]
        } else {
            // Key first: a reader that sees the new key with the old
            // certificate finds they do not match and keeps what it has
            // until the next look.
            vec![
                Journal::install(&self.dir, &issued_key, &live_key),
                Journal::install(&self.dir, &issued_cert, &live_cert),
            ]
        };
        let command = match identity.role() {
            Role::BadgeSigner => "rotate-signer",
            Role::TrustListSigner => "rotate-list-signer",
            _ => "renew",
        };
        let journal = Journal::new(&self.dir, command, now, &creates, then)?;
        let live_rel = live_cert
            .strip_prefix(&self.dir)
            .unwrap_or(&live_cert)
            .display()
            .to_string();
        let (old, new) = self.journaled(&journal, |this| {
            if let Some((path, file)) = &archive {
                keys::write_new_file(path, file, true)?;
                if deferred {
                    let key =
                        std::fs::read(&live_key).map_err(|e| AuthorityError::io(&live_key, e))?;
                    keys::write_new_file(&path.with_extension("key"), &key, true)?;
                }
            }
            let source = match &token {
                Some(next) => next.make_key()?,
                None => super::custody::KeySource::Generate,
            };
            let mut new = this.issue_with(
                &dir,
                &format!("{stem}.{n}"),
                identity,
                &old.name,
                old.endpoint.as_deref(),
                source,
                now,
                validity,
            )?;
            if deferred {
                new.install_over = Some(live_rel.clone());
            }

            let mut next = this.registry.clone();
            if let Some(e) = next.enrolments.get_mut(index) {
                if let Some((path, _)) = &archive {
                    e.cert_file = path
                        .strip_prefix(&this.dir)
                        .unwrap_or(path)
                        .display()
                        .to_string();
                }
                if revoke_old {
                    e.revoked_at = Some(now);
                } else {
                    e.retired_at = Some(now);
                }
                // Rotated again before a list carried it: never goes live.
                e.install_over = None;
            }
            next.enrolments.push(new.clone());
            next.save(&this.dir.join(REGISTRY))?;
            let old = next.enrolments.get(index).cloned().unwrap_or(old.clone());
            this.registry = next;
            Ok((old, new))
        })?;
        Ok(Reissued {
            dir,
            old,
            new,
            issued: (issued_cert, issued_key),
            live: (live_cert, live_key),
            deferred,
        })
    }

    /// Rotates a city's badge signer: a new badge-signer certificate and key
    /// become the bundle's `badge-signer.crt` and `.key`; the old signer is
    /// retired, not revoked, and stays ACTIVE in the trust lists so the
    /// badges it signed stay valid until they expire. Both signers are in
    /// the next list published. The node signs with the new key once it
    /// holds a list carrying it.
    pub fn rotate_signer(&mut self, city: CityCode, now: i64) -> Result<Reissued, AuthorityError> {
        let uri = format!("tessera:city:{city}:badge-signer");
        let index = self
            .current_index(&uri, |_| true)
            .ok_or(AuthorityError::UnknownCity(city))?;
        self.reissue(index, false, now)
    }

    /// Renews a TLS certificate with a new key. The old certificate is
    /// retired (still valid, not revoked); a server running from the bundle
    /// reloads the live files and presents the new certificate on new
    /// connections.
    pub fn renew(&mut self, target: &RenewTarget, now: i64) -> Result<Reissued, AuthorityError> {
        let index = self.renew_index(target)?;
        self.reissue(index, false, now)
    }

    /// The index of the current enrolment `target` names, if it is one
    /// `renew` renews (not a signer nor the issuing CA).
    pub(super) fn renew_index(&self, target: &RenewTarget) -> Result<usize, AuthorityError> {
        Ok(match target {
            RenewTarget::City(code) => self
                .current_index(&format!("tessera:city:{code}:node"), |_| true)
                .ok_or(AuthorityError::UnknownCity(*code))?,
            RenewTarget::Gateway(name) => {
                let name = check_name(name)?;
                self.current_index("tessera:nation:000000:gateway", |e| e.name == name)
                    .ok_or_else(|| AuthorityError::NothingToRenew(format!("gateway {name:?}")))?
            }
            RenewTarget::Serial(serial) => {
                let index = self
                    .registry
                    .enrolments
                    .iter()
                    .position(|e| e.is_current() && e.serial.eq_ignore_ascii_case(serial.trim()))
                    .ok_or_else(|| AuthorityError::NothingToRenew(format!("serial {serial}")))?;
                let identity = Self::identity_of(&self.registry.enrolments[index])?;
                match identity.role() {
                    Role::BadgeSigner => {
                        return Err(AuthorityError::BadOption(
                            "a badge signer is rotated, not renewed: use rotate-signer --city"
                                .into(),
                        ));
                    }
                    Role::TrustListSigner => {
                        return Err(AuthorityError::BadOption(
                            "the trust-list signer is rotated, not renewed: use rotate-list-signer"
                                .into(),
                        ));
                    }
                    Role::IssuingCa => {
                        return Err(AuthorityError::BadOption(
                            "the issuing CA is rotated, not renewed: use rotate-issuing-ca".into(),
                        ));
                    }
                    _ => index,
                }
            }
        })
    }

    /// Rotates the trust-list signer: a new signer certificate and key sign
    /// every list from the next one on, and the old signer is revoked, so
    /// that list is the first to list it REVOKED. Verifiers accept the new
    /// signer because it chains to the root; once they hold its list they
    /// refuse every list the old key signs. Needs the root key.
    ///
    /// When the signer's key is in a token (`authority.toml`), the new key
    /// is made in the token under a new label (`<label>.<n>`, the first
    /// unused) and `authority.toml`, rewritten to name it, is installed
    /// with the new certificate; the old key stays in the token.
    pub fn rotate_list_signer(&mut self, now: i64) -> Result<Reissued, AuthorityError> {
        let index = self
            .current_index("tessera:nation:000000:trust-list-signer", |_| true)
            .ok_or_else(|| AuthorityError::Registry("no active trust-list signer".into()))?;
        self.reissue(index, true, now)
    }

    /// Leaves out of every later trust list each retired badge signer (of
    /// `city`, or of every city) whose badges have all expired: the first
    /// list carrying its successor was published more than
    /// [`MAX_VALIDITY_SECS`] (plus clock skew) ago, or its certificate has
    /// expired. The others are returned with the time they can go.
    ///
    /// Pruning is the only command that removes a retired signer's key
    /// (`badge-signer.<n>.key`). With `dry_run` nothing is changed: the
    /// result says what would be pruned.
    pub fn prune_signers(
        &mut self,
        city: Option<CityCode>,
        now: i64,
        dry_run: bool,
    ) -> Result<Pruned, AuthorityError> {
        let mut result = Pruned::default();
        let mut next = self.registry.clone();
        let enrolments = &self.registry.enrolments;
        for (index, old) in enrolments.iter().enumerate() {
            if !old.is_active() || old.retired_at.is_none() {
                continue;
            }
            let identity = Self::identity_of(old)?;
            if identity.role() != Role::BadgeSigner
                || city.is_some_and(|c| identity.city() != Some(c))
            {
                continue;
            }
            let successor = enrolments
                .iter()
                .skip(index + 1)
                .find(|e| e.identity == old.identity);
            let (at, published) = prunable_from(old, successor);
            if at <= now {
                if let Some(e) = next.enrolments.get_mut(index) {
                    e.pruned_at = Some(now);
                    result.pruned.push(e.clone());
                }
            } else {
                result.waiting.push((old.clone(), at, published));
            }
        }
        if dry_run || result.pruned.is_empty() {
            return Ok(result);
        }
        let live: Vec<PathBuf> = self
            .pending_installs()
            .into_iter()
            .map(|(_, live)| live.with_extension("key"))
            .collect();
        let then = result
            .pruned
            .iter()
            .map(|e| self.dir.join(&e.cert_file).with_extension("key"))
            .filter(|key| !live.contains(key))
            .map(|key| Step::Remove {
                path: key
                    .strip_prefix(&self.dir)
                    .unwrap_or(&key)
                    .display()
                    .to_string(),
            })
            .collect();
        let journal = Journal::new(&self.dir, "prune-signers", now, &[], then)?;
        self.journaled(&journal, |this| {
            next.save(&this.dir.join(REGISTRY))?;
            this.registry = next;
            Ok(())
        })?;
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::authority::InitOptions;
    use tessera_core::trust::{CheckedTrustList, EntryStatus, TrustListError};
    use tessera_core::{CertInfo, KeyId, TrustAnchor};

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    fn authority(tmp: &Path) -> AuthorityDir {
        let options = InitOptions {
            name: "Test authority".into(),
            sunset_at: NOW + 700 * DAY,
        };
        let mut a = AuthorityDir::init(&tmp.join("a"), &options, NOW).unwrap();
        a.enrol_city("330100".parse().unwrap(), "Hangzhou", "127.0.0.1:7101", NOW)
            .unwrap();
        a
    }

    fn key_id(path: &Path) -> KeyId {
        KeyId::of_certificate(&keys::read_cert(path).unwrap())
    }

    fn publish(a: &mut AuthorityDir, now: i64) -> CheckedTrustList {
        let (_, bytes) = a.publish(now, DAY).unwrap();
        CheckedTrustList::verify(&bytes, &TrustAnchor::from_der(a.root_der()).unwrap(), now)
            .unwrap()
    }

    fn status(list: &CheckedTrustList, id: &KeyId) -> Option<EntryStatus> {
        list.by_key_id(id).map(|e| e.status())
    }

    #[test]
    fn a_rotated_badge_signer_stays_listed_until_pruned_after_its_last_badge_expired() {
        let tmp = tempfile::tempdir().unwrap();
        let mut a = authority(tmp.path());
        let city: CityCode = "330100".parse().unwrap();
        let bundle = a.dir().join("cities/330100");
        let old_id = key_id(&bundle.join("badge-signer.crt"));
        publish(&mut a, NOW);

        let r = a.rotate_signer(city, NOW + 10).unwrap();
        assert_eq!(r.old.retired_at, Some(NOW + 10));
        assert!(r.old.revoked_at.is_none());
        assert_eq!(r.old.cert_file, "cities/330100/badge-signer.1.crt");
        assert_eq!(r.new.cert_file, "cities/330100/badge-signer.2.crt");
        assert!(r.deferred);
        assert_eq!(key_id(&bundle.join("badge-signer.1.crt")), old_id);
        let old_key = std::fs::read(bundle.join("badge-signer.key")).unwrap();
        assert_eq!(
            std::fs::read(bundle.join("badge-signer.1.key")).unwrap(),
            old_key,
            "the old key is kept beside its certificate"
        );
        let new_id = key_id(&bundle.join("badge-signer.2.crt"));
        assert_ne!(new_id, old_id);
        // Until a list carries the new signer, the live files keep the old
        // one: a node restarted now signs with a key the lists carry.
        assert_eq!(key_id(&bundle.join("badge-signer.crt")), old_id);

        // Not prunable before the successor is even published.
        let p = a.prune_signers(None, NOW + 40 * DAY, false).unwrap();
        assert!(p.pruned.is_empty());
        assert!(matches!(p.waiting.as_slice(), [(_, _, false)]));

        let listed_at = NOW + DAY;
        let list = publish(&mut a, listed_at);
        assert_eq!(status(&list, &old_id), Some(EntryStatus::Active));
        assert_eq!(status(&list, &new_id), Some(EntryStatus::Active));
        // That list carries the new signer: it is live now.
        assert_eq!(key_id(&bundle.join("badge-signer.crt")), new_id);
        assert_eq!(
            std::fs::read(bundle.join("badge-signer.key")).unwrap(),
            std::fs::read(bundle.join("badge-signer.2.key")).unwrap()
        );
        assert!(a.pending_installs().is_empty());

        let last_badge = listed_at + MAX_VALIDITY_SECS + CLOCK_SKEW_SECS;
        let p = a.prune_signers(Some(city), last_badge - 1, false).unwrap();
        assert!(p.pruned.is_empty());
        assert_eq!(p.waiting[0].1, last_badge);
        assert!(p.waiting[0].2);
        assert!(bundle.join("badge-signer.1.key").exists());
        // A dry run names it and changes nothing.
        let before = a.registry().enrolments.clone();
        let p = a.prune_signers(Some(city), last_badge, true).unwrap();
        assert_eq!(p.pruned.len(), 1);
        assert_eq!(p.pruned[0].serial, r.old.serial);
        assert_eq!(a.registry().enrolments, before);
        assert!(bundle.join("badge-signer.1.key").exists());
        let p = a.prune_signers(Some(city), last_badge, false).unwrap();
        assert_eq!(p.pruned.len(), 1);
        assert!(
            !bundle.join("badge-signer.1.key").exists(),
            "pruning removes the retired key"
        );
        assert!(bundle.join("badge-signer.1.crt").exists());
        let list = publish(&mut a, last_badge + 1);
        assert_eq!(
            status(&list, &old_id),
            None,
            "a pruned signer is not listed"
        );
        assert_eq!(status(&list, &new_id), Some(EntryStatus::Active));
        assert!(
            a.prune_signers(None, last_badge + 2, false)
                .unwrap()
                .pruned
                .is_empty()
        );
    }

    #[test]
    fn a_renewed_tls_certificate_replaces_the_live_files_and_the_old_one_is_retired() {
        let tmp = tempfile::tempdir().unwrap();
        let mut a = authority(tmp.path());
        let city: CityCode = "330100".parse().unwrap();
        let bundle = a.dir().join("cities/330100");
        let first = CertInfo::parse(&keys::read_cert(&bundle.join("node.crt")).unwrap()).unwrap();

        let r = a.renew(&RenewTarget::City(city), NOW + 10).unwrap();
        assert_eq!(r.old.retired_at, Some(NOW + 10));
        let live = CertInfo::parse(&keys::read_cert(&bundle.join("node.crt")).unwrap()).unwrap();
        assert_ne!(live.serial(), first.serial());
        assert_eq!(live.identity(), first.identity());
        assert!(live.not_after() > first.not_after());
        let key = keys::read_tls_key(&bundle.join("node.key")).unwrap();
        assert_eq!(live.p256_key(), Some(key.verifying_key()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(bundle.join("node.key"))
                .unwrap()
                .permissions();
            assert_eq!(mode.mode() & 0o777, 0o600);
        }

        // A second renewal needs no new archive: the live one was issued as node.2.
        let r2 = a.renew(&RenewTarget::City(city), NOW + 20).unwrap();
        assert_eq!(r2.old.cert_file, "cities/330100/node.2.crt");
        assert_eq!(r2.new.cert_file, "cities/330100/node.3.crt");
        assert!(!bundle.join("node.4.crt").exists());
        let current: Vec<_> = a
            .registry()
            .enrolments
            .iter()
            .filter(|e| e.identity.ends_with(":node") && e.is_current())
            .collect();
        assert_eq!(current.len(), 1);
        // Retired TLS certificates are still listed active; each listed once.
        let list = publish(&mut a, NOW + 30);
        let nodes = list
            .entries()
            .iter()
            .filter(|e| e.cert().identity().role() == Role::CityNode && !e.is_revoked())
            .count();
        assert_eq!(nodes, 3);

        // Gateways by name, anything else by serial; signers are rotated instead.
        a.enrol_gateway("national", "127.0.0.1:7000", NOW).unwrap();
        a.renew(&RenewTarget::Gateway("national".into()), NOW + 40)
            .unwrap();
        assert!(a.dir().join("gateways/national/gateway.2.crt").exists());
        let signer = a
            .registry()
            .enrolments
            .iter()
            .find(|e| e.identity.ends_with(":badge-signer"))
            .unwrap()
            .serial
            .clone();
        let err = a.renew(&RenewTarget::Serial(signer), NOW).unwrap_err();
        assert!(err.to_string().contains("rotate-signer"), "{err}");
        assert!(matches!(
            a.renew(&RenewTarget::Gateway("nope".into()), NOW),
            Err(AuthorityError::NothingToRenew(_))
        ));
    }

    #[test]
    fn a_live_certificate_changed_by_hand_stops_a_renewal_before_it_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let mut a = authority(tmp.path());
        let bundle = a.dir().join("cities/330100");
        std::fs::copy(bundle.join("badge-signer.crt"), bundle.join("node.crt")).unwrap();
        let before = a.registry().enrolments.len();
        let err = a
            .renew(&RenewTarget::City("330100".parse().unwrap()), NOW)
            .unwrap_err();
        assert!(err.to_string().contains("restore it"), "{err}");
        assert_eq!(a.registry().enrolments.len(), before);
        assert!(!bundle.join("node.1.crt").exists());
        assert!(!bundle.join("node.2.crt").exists());
    }

    #[test]
    fn the_first_list_of_a_new_trust_list_signer_revokes_the_old_one() {
        let tmp = tempfile::tempdir().unwrap();
        let mut a = authority(tmp.path());
        let first = publish(&mut a, NOW);
        let old_id = first.signer_certificate().key_id();

        let r = a.rotate_list_signer(NOW + 10).unwrap();
        assert_eq!(r.old.revoked_at, Some(NOW + 10));
        let (_, bytes) = a.publish(NOW + 20, DAY).unwrap();
        let root = TrustAnchor::from_der(a.root_der()).unwrap();
        let second = first.verify_successor(&bytes, &root, NOW + 20).unwrap();
        let new_id = second.signer_certificate().key_id();
        assert_ne!(new_id, old_id);
        assert_eq!(
            new_id,
            key_id(&a.dir().join("trust-list-signer/signer.crt"))
        );
        assert!(matches!(
            status(&second, &old_id),
            Some(EntryStatus::Revoked { .. })
        ));
        assert_eq!(status(&second, &new_id), Some(EntryStatus::Active));

        // The old signer's earlier list cannot come back.
        assert!(matches!(
            second.verify_successor(first.signed_bytes(), &root, NOW + 30),
            Err(TrustListError::Rollback { .. })
        ));
        // Revoking a signer by serial is still refused: rotation is the way.
        let serial = r.new.serial.clone();
        let err = a
            .revoke(&crate::authority::RevokeTarget::Serial(serial), NOW)
            .unwrap_err();
        assert!(err.to_string().contains("rotate-list-signer"), "{err}");
    }
}
