//! Enrolling the federation's parties: a city (node and badge signer), a
//! verifier, an operator, a gateway.

use tessera_core::{CityCode, Identity, ProvinceCode, Role, Scope};

use super::*;

impl AuthorityDir {
    /// Enrols a city: a node TLS certificate for `endpoint` and a separate
    /// badge-signer certificate.
    pub fn enrol_city(
        &mut self,
        code: CityCode,
        name: &str,
        endpoint: &str,
        now: i64,
    ) -> Result<Issued, AuthorityError> {
        let name = check_name(name)?;
        endpoint_host(endpoint)?;
        let node = Identity::new(Role::CityNode, Scope::City(code))
            .map_err(|e| AuthorityError::BadOption(e.to_string()))?;
        let signer = Identity::new(Role::BadgeSigner, Scope::City(code))
            .map_err(|e| AuthorityError::BadOption(e.to_string()))?;
        if self.active(&node.to_uri()).next().is_some()
            || self.active(&signer.to_uri()).next().is_some()
        {
            return Err(AuthorityError::DuplicateCity(code));
        }
        self.load_root()?;
        let dir = unused_dir(&self.dir.join("cities").join(code.to_string()));
        let journal = journal::Journal::new(
            &self.dir,
            "enrol-city",
            now,
            std::slice::from_ref(&dir),
            vec![],
        )?;
        let issued = self.journaled(&journal, |this| {
            let issued = vec![
                this.issue_into(
                    &dir,
                    "node",
                    node,
                    &name,
                    Some(endpoint),
                    now,
                    LEAF_VALIDITY_SECS,
                )?,
                this.issue_into(
                    &dir,
                    "badge-signer",
                    signer,
                    &name,
                    None,
                    now,
                    LEAF_VALIDITY_SECS,
                )?,
            ];
            this.commit(issued.clone())?;
            Ok(issued)
        })?;
        Ok(Issued {
            dir,
            enrolments: issued,
        })
    }

    fn enrol_one(
        &mut self,
        kind: &str,
        stem: &str,
        identity: Identity,
        name: &str,
        endpoint: Option<&str>,
        now: i64,
    ) -> Result<Issued, AuthorityError> {
        let name = check_name(name)?;
        if let Some(ep) = endpoint {
            endpoint_host(ep)?;
        }
        let uri = identity.to_uri();
        if self.active(&uri).any(|e| e.name == name) {
            return Err(AuthorityError::Duplicate(format!("{uri} named {name:?}")));
        }
        let code = identity.scope().code();
        let base = if code == 0 {
            slug(&name)
        } else {
            format!("{code:06}-{}", slug(&name))
        };
        self.load_root()?;
        let dir = unused_dir(&self.dir.join(kind).join(base));
        let command = format!("enrol-{}", kind.trim_end_matches('s'));
        let journal =
            journal::Journal::new(&self.dir, &command, now, std::slice::from_ref(&dir), vec![])?;
        let issued = self.journaled(&journal, |this| {
            let issued = vec![this.issue_into(
                &dir,
                stem,
                identity,
                &name,
                endpoint,
                now,
                LEAF_VALIDITY_SECS,
            )?];
            this.commit(issued.clone())?;
            Ok(issued)
        })?;
        Ok(Issued {
            dir,
            enrolments: issued,
        })
    }

    /// Enrols a checkpoint verifier scoped to a province.
    pub fn enrol_verifier(
        &mut self,
        province: ProvinceCode,
        name: &str,
        now: i64,
    ) -> Result<Issued, AuthorityError> {
        let identity = Identity::new(Role::Verifier, Scope::Province(province))
            .map_err(|e| AuthorityError::BadOption(e.to_string()))?;
        self.enrol_one("verifiers", "verifier", identity, name, None, now)
    }

    /// Enrols an operator of an enrolled city.
    pub fn enrol_operator(
        &mut self,
        city: CityCode,
        name: &str,
        now: i64,
    ) -> Result<Issued, AuthorityError> {
        let node = Identity::new(Role::CityNode, Scope::City(city))
            .map_err(|e| AuthorityError::BadOption(e.to_string()))?;
        if self.active(&node.to_uri()).next().is_none() {
            return Err(AuthorityError::UnknownCity(city));
        }
        let identity = Identity::new(Role::Operator, Scope::City(city))
            .map_err(|e| AuthorityError::BadOption(e.to_string()))?;
        self.enrol_one("operators", "operator", identity, name, None, now)
    }

    /// Enrols a national gateway reachable at `endpoint`.
    pub fn enrol_gateway(
        &mut self,
        name: &str,
        endpoint: &str,
        now: i64,
    ) -> Result<Issued, AuthorityError> {
        let identity = Identity::new(Role::Gateway, Scope::Nation)
            .map_err(|e| AuthorityError::BadOption(e.to_string()))?;
        self.enrol_one("gateways", "gateway", identity, name, Some(endpoint), now)
    }
}
