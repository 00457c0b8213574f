//! Enrolling the federation's parties: a city (node and badge signer), a
//! verifier, an operator, a gateway.
//!
//! Each party is enrolled one of two ways:
//!
//! - **by request** (`*_requested`, `--csr`): the party made its own key
//!   and sent a certificate signing request; the authority checks the
//!   request's signature and key type ([`CheckedRequest`]), certifies that
//!   key, and the bundle holds certificates and the request, no key;
//! - **all in one** (for `demo`, `federation up` and tests): the authority
//!   makes the key too and writes it into the bundle, keeping a copy.

use tessera_core::{CityCode, Identity, ProvinceCode, Role, Scope};

use super::*;
use crate::request::CheckedRequest;

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
        self.enrol_city_with(code, name, endpoint, None, now)
    }

    /// Enrols a city by request: the node's certificate for the P-256 key
    /// of `node` and the badge signer's for the Ed25519 key of
    /// `badge_signer`. Each request's key must be of its role's type.
    pub fn enrol_city_requested(
        &mut self,
        code: CityCode,
        name: &str,
        endpoint: &str,
        node: &CheckedRequest,
        badge_signer: &CheckedRequest,
        now: i64,
    ) -> Result<Issued, AuthorityError> {
        self.enrol_city_with(code, name, endpoint, Some((node, badge_signer)), now)
    }

    fn enrol_city_with(
        &mut self,
        code: CityCode,
        name: &str,
        endpoint: &str,
        requests: Option<(&CheckedRequest, &CheckedRequest)>,
        now: i64,
    ) -> Result<Issued, AuthorityError> {
        if let Some((node, signer)) = requests {
            node.key_for(Role::CityNode)?;
            signer.key_for(Role::BadgeSigner)?;
        }
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
        self.load_issuer_for(Role::CityNode)?;
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
                this.issue_for(
                    &dir,
                    "node",
                    node,
                    &name,
                    Some(endpoint),
                    requests.map(|r| r.0),
                    now,
                    LEAF_VALIDITY_SECS,
                )?,
                this.issue_for(
                    &dir,
                    "badge-signer",
                    signer,
                    &name,
                    None,
                    requests.map(|r| r.1),
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
            by_request: requests.is_some(),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn enrol_one(
        &mut self,
        kind: &str,
        stem: &str,
        identity: Identity,
        name: &str,
        endpoint: Option<&str>,
        request: Option<&CheckedRequest>,
        now: i64,
    ) -> Result<Issued, AuthorityError> {
        if let Some(request) = request {
            request.key_for(identity.role())?;
        }
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
        self.load_issuer_for(identity.role())?;
        let dir = unused_dir(&self.dir.join(kind).join(base));
        let command = format!("enrol-{}", kind.trim_end_matches('s'));
        let journal =
            journal::Journal::new(&self.dir, &command, now, std::slice::from_ref(&dir), vec![])?;
        let issued = self.journaled(&journal, |this| {
            let issued = vec![this.issue_for(
                &dir,
                stem,
                identity,
                &name,
                endpoint,
                request,
                now,
                LEAF_VALIDITY_SECS,
            )?];
            this.commit(issued.clone())?;
            Ok(issued)
        })?;
        Ok(Issued {
            dir,
            enrolments: issued,
            by_request: request.is_some(),
        })
    }

    /// Enrols a checkpoint verifier scoped to a province; by request when
    /// `request` is given.
    pub fn enrol_verifier(
        &mut self,
        province: ProvinceCode,
        name: &str,
        now: i64,
    ) -> Result<Issued, AuthorityError> {
        self.enrol_verifier_requested(province, name, None, now)
    }

    /// Enrols a checkpoint verifier, for the key of `request` when given.
    pub fn enrol_verifier_requested(
        &mut self,
        province: ProvinceCode,
        name: &str,
        request: Option<&CheckedRequest>,
        now: i64,
    ) -> Result<Issued, AuthorityError> {
        let identity = Identity::new(Role::Verifier, Scope::Province(province))
            .map_err(|e| AuthorityError::BadOption(e.to_string()))?;
        self.enrol_one("verifiers", "verifier", identity, name, None, request, now)
    }

    /// Enrols an operator of an enrolled city.
    pub fn enrol_operator(
        &mut self,
        city: CityCode,
        name: &str,
        now: i64,
    ) -> Result<Issued, AuthorityError> {
        self.enrol_operator_requested(city, name, None, now)
    }

    /// Enrols an operator, for the key of `request` when given.
    pub fn enrol_operator_requested(
        &mut self,
        city: CityCode,
        name: &str,
        request: Option<&CheckedRequest>,
        now: i64,
    ) -> Result<Issued, AuthorityError> {
        if let Some(request) = request {
            request.key_for(Role::Operator)?;
        }
        let node = Identity::new(Role::CityNode, Scope::City(city))
            .map_err(|e| AuthorityError::BadOption(e.to_string()))?;
        if self.active(&node.to_uri()).next().is_none() {
            return Err(AuthorityError::UnknownCity(city));
        }
        let identity = Identity::new(Role::Operator, Scope::City(city))
            .map_err(|e| AuthorityError::BadOption(e.to_string()))?;
        self.enrol_one("operators", "operator", identity, name, None, request, now)
    }

    /// Enrols a national gateway reachable at `endpoint`.
    pub fn enrol_gateway(
        &mut self,
        name: &str,
        endpoint: &str,
        now: i64,
    ) -> Result<Issued, AuthorityError> {
        self.enrol_gateway_requested(name, endpoint, None, now)
    }

    /// Enrols a gateway, for the key of `request` when given.
    pub fn enrol_gateway_requested(
        &mut self,
        name: &str,
        endpoint: &str,
        request: Option<&CheckedRequest>,
        now: i64,
    ) -> Result<Issued, AuthorityError> {
        let identity = Identity::new(Role::Gateway, Scope::Nation)
            .map_err(|e| AuthorityError::BadOption(e.to_string()))?;
        self.enrol_one(
            "gateways",
            "gateway",
            identity,
            name,
            Some(endpoint),
            request,
            now,
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::path::Path;

    use super::*;
    use crate::authority::InitOptions;
    use crate::keys::{RoleKey, TlsKey, generate_signer_key};
    use crate::request::make_request;
    use tessera_core::CertInfo;
    use tessera_core::cert::PublicKey;

    const NOW: i64 = 1_800_000_000;

    fn authority(tmp: &Path) -> AuthorityDir {
        let options = InitOptions {
            name: "Test authority".into(),
            sunset_at: NOW + 700 * DAY,
        };
        AuthorityDir::init(&tmp.join("a"), &options, NOW).unwrap()
    }

    fn request(key: &RoleKey) -> CheckedRequest {
        CheckedRequest::parse(
            make_request(key, "ignored").unwrap().as_bytes(),
            Path::new("r.csr"),
        )
        .unwrap()
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_city_by_request_gets_certificates_for_its_keys_and_no_key_files() {
        let tmp = tempfile::tempdir().unwrap();
        let mut a = authority(tmp.path());
        let node = TlsKey::generate();
        let signer = generate_signer_key();
        let code: CityCode = "330100".parse().unwrap();
        let issued = a
            .enrol_city_requested(
                code,
                "Hangzhou",
                "127.0.0.1:7101",
                &request(&RoleKey::Tls(node.clone())),
                &request(&RoleKey::Signer(signer.clone())),
                NOW,
            )
            .unwrap();
        assert_eq!(
            files(&issued.dir),
            [
                "badge-signer.crt",
                "badge-signer.csr",
                "node.crt",
                "node.csr",
                "root.crt"
            ]
        );
        let node_cert =
            CertInfo::parse(&keys::read_cert(&issued.dir.join("node.crt")).unwrap()).unwrap();
        assert_eq!(
            node_cert.public_key(),
            &PublicKey::EcdsaP256(*node.verifying_key())
        );
        assert_eq!(node_cert.identity().to_uri(), "tessera:city:330100:node");
        let signer_cert =
            CertInfo::parse(&keys::read_cert(&issued.dir.join("badge-signer.crt")).unwrap())
                .unwrap();
        assert_eq!(
            signer_cert.public_key(),
            &PublicKey::Ed25519(signer.verifying_key())
        );
        assert_eq!(a.registry().enrolments.len(), 5);

        // The authority cannot make the city a new key.
        let err = a.renew(&RenewTarget::City(code), NOW + 10).unwrap_err();
        assert!(matches!(err, AuthorityError::KeyNotHeld(_)), "{err}");
        let err = a.rotate_signer(code, NOW + 10).unwrap_err();
        assert!(matches!(err, AuthorityError::KeyNotHeld(_)), "{err}");
        assert_eq!(a.registry().enrolments.len(), 5);
        assert_eq!(
            files(&issued.dir),
            [
                "badge-signer.crt",
                "badge-signer.csr",
                "node.crt",
                "node.csr",
                "root.crt"
            ]
        );
    }

    #[test]
    fn requests_of_the_wrong_key_type_are_refused_and_change_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let mut a = authority(tmp.path());
        let before = fs::read(a.dir().join(REGISTRY)).unwrap();
        let tls = request(&RoleKey::Tls(TlsKey::generate()));
        let ed = request(&RoleKey::Signer(generate_signer_key()));
        let code: CityCode = "330100".parse().unwrap();
        // Swapped: the node's request given for the badge signer.
        let err = a
            .enrol_city_requested(code, "Hangzhou", "127.0.0.1:7101", &ed, &tls, NOW)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "r.csr: the request carries an Ed25519 key, but node certificates carry ECDSA P-256 keys"
        );
        let err = a
            .enrol_operator_requested(code, "CDC", Some(&ed), NOW)
            .unwrap_err();
        assert!(
            matches!(
                err,
                AuthorityError::Request(RequestError::WrongKeyType { .. })
            ),
            "{err}"
        );
        let province = ProvinceCode::new(330_000).unwrap();
        assert!(
            a.enrol_verifier_requested(province, "v", Some(&ed), NOW)
                .is_err()
        );
        assert!(
            a.enrol_gateway_requested("gw", "127.0.0.1:1", Some(&ed), NOW)
                .is_err()
        );
        assert_eq!(fs::read(a.dir().join(REGISTRY)).unwrap(), before);
        assert!(!a.dir().join("cities").exists());
        assert!(!a.dir().join("gateways").exists());
    }
}
