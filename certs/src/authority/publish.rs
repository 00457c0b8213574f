//! Revoking certificates and publishing the next trust list from the
//! registry (installing rotated badge signers it carries).

use std::path::PathBuf;

use tessera_core::trust::TRUST_LIST_VERSION;
use tessera_core::{Identity, Role};
use tessera_proto::v1 as pb;

use super::*;

impl AuthorityDir {
    /// Revokes certificates; they are refused from the next trust list on.
    pub fn revoke(
        &mut self,
        target: &RevokeTarget,
        now: i64,
    ) -> Result<Vec<Enrolment>, AuthorityError> {
        let matches = |e: &Enrolment| -> bool {
            e.is_active()
                && match target {
                    RevokeTarget::City(code) => {
                        e.identity == format!("tessera:city:{code}:node")
                            || e.identity == format!("tessera:city:{code}:badge-signer")
                    }
                    RevokeTarget::Serial(serial) => e.serial.eq_ignore_ascii_case(serial.trim()),
                }
        };
        if let Some(e) = self.registry.enrolments.iter().find(|e| matches(e))
            && (e.identity.ends_with(":trust-list-signer") || e.identity.ends_with(":root"))
        {
            return Err(AuthorityError::BadOption(format!(
                "{} cannot be revoked by a trust list it signs: rotate it instead (tessera authority rotate-list-signer)",
                e.identity
            )));
        }
        if let Some(e) = self.registry.enrolments.iter().find(|e| matches(e))
            && e.identity.ends_with(":issuing-ca")
        {
            return Err(AuthorityError::BadOption(format!(
                "{} issues the certificates in use: revoke it by rotating it (tessera authority rotate-issuing-ca --compromised), which re-certifies what it issued under a new one",
                e.identity
            )));
        }
        let mut next = self.registry.clone();
        let mut revoked = vec![];
        for e in next.enrolments.iter_mut().filter(|e| matches(e)) {
            e.revoked_at = Some(now);
            revoked.push(e.clone());
        }
        if revoked.is_empty() {
            return Err(AuthorityError::NothingToRevoke(match target {
                RevokeTarget::City(code) => format!("city {code}"),
                RevokeTarget::Serial(s) => format!("serial {s}"),
            }));
        }
        next.save(&self.dir.join(REGISTRY))?;
        self.registry = next;
        Ok(revoked)
    }

    /// Builds and signs the next trust list, valid until `now + valid_for`
    /// (capped at the sunset), records it under `trust-lists/` and returns
    /// its sequence and encoded bytes.
    pub fn publish(&mut self, now: i64, valid_for: i64) -> Result<(u64, Vec<u8>), AuthorityError> {
        if !(1..=30 * DAY).contains(&valid_for) {
            return Err(AuthorityError::BadOption(
                "a trust list's validity must be 1 second to 30 days".into(),
            ));
        }
        if now >= self.registry.sunset_at {
            return Err(AuthorityError::BadOption(
                "the federation has passed its sunset date: no list can be published".into(),
            ));
        }
        let (signer_cert, signer_key) = self.current_list_signer()?;
        let signer_der = keys::read_cert(&signer_cert)?;
        let signer_key = Custody::load(&self.dir)?.list_signer_key(&signer_key, &signer_der)?;
        let mut entries = vec![];
        let mut revoked_serials = vec![];
        let mut listed = vec![];
        for (index, e) in self.registry.enrolments.iter().enumerate() {
            if e.pruned_at.is_some() {
                continue;
            }
            let identity: Identity = e
                .identity
                .parse()
                .map_err(|err| AuthorityError::Registry(format!("{}: {err}", e.identity)))?;
            let serial = hex::decode(&e.serial)
                .map_err(|err| AuthorityError::Registry(format!("serial {}: {err}", e.serial)))?;
            match identity.role() {
                Role::Root => {}
                Role::Authority | Role::Operator | Role::Verifier => {
                    if e.revoked_at.is_some() {
                        revoked_serials.push(serial);
                    }
                }
                Role::TrustListSigner
                | Role::IssuingCa
                | Role::Gateway
                | Role::CityNode
                | Role::BadgeSigner => {
                    let der = keys::read_cert(&self.dir.join(&e.cert_file))?;
                    if e.listed_at.is_none() {
                        listed.push(index);
                    }
                    entries.push(pb::TrustEntry {
                        code: identity.scope().code(),
                        name: e.name.clone(),
                        role: identity.role().to_proto() as i32,
                        certificate_der: der,
                        endpoint: e.endpoint.clone().unwrap_or_default(),
                        status: if e.revoked_at.is_some() {
                            pb::EntryStatus::Revoked as i32
                        } else {
                            pb::EntryStatus::Active as i32
                        },
                        not_before: e.not_before,
                        not_after: e.not_after,
                        revoked_at: e.revoked_at.unwrap_or(0),
                    });
                }
            }
        }
        let sequence = self.registry.last_sequence + 1;
        let list = pb::TrustList {
            version: TRUST_LIST_VERSION,
            sequence,
            issued_at: now,
            next_update: (now + valid_for).min(self.registry.sunset_at),
            sunset_at: self.registry.sunset_at,
            entries,
            revoked_serials,
        };
        let bytes = signer_key.sign_list(&list, &signer_der)?;
        let lists = self.dir.join("trust-lists");
        let file = lists.join(format!("{sequence:06}.tsl"));
        // A rotated badge signer this list carries goes live now (and only
        // now): key first, then certificate.
        let mut then = vec![];
        for (from, to) in self.pending_installs() {
            for ext in ["key", "crt"] {
                then.push(journal::Journal::install(
                    &self.dir,
                    &from.with_extension(ext),
                    &to.with_extension(ext),
                ));
            }
        }
        let journal = journal::Journal::new(
            &self.dir,
            "trust-list publish",
            now,
            std::slice::from_ref(&file),
            then,
        )?;
        self.journaled(&journal, |this| {
            create_dir(&lists)?;
            // Overwritten if an earlier attempt at this sequence failed before the
            // registry recorded it.
            write_replacing(&file, &bytes)?;
            let mut next = this.registry.clone();
            next.last_sequence = sequence;
            for index in listed {
                if let Some(e) = next.enrolments.get_mut(index) {
                    e.listed_at = Some(now);
                }
            }
            for e in &mut next.enrolments {
                e.install_over = None;
            }
            next.save(&this.dir.join(REGISTRY))?;
            this.registry = next;
            Ok(())
        })?;
        Ok((sequence, bytes))
    }

    /// Rotated badge signers the next `publish` installs over their bundle's
    /// live files: (issued certificate, live certificate), keys beside them.
    pub fn pending_installs(&self) -> Vec<(PathBuf, PathBuf)> {
        self.registry
            .enrolments
            .iter()
            .filter(|e| e.is_current())
            .filter_map(|e| {
                let to = e.install_over.as_ref()?;
                Some((self.dir.join(&e.cert_file), self.dir.join(to)))
            })
            .collect()
    }
}
