//! Who a certificate speaks for: its role and the city, province or nation it
//! is scoped to, written in the certificate as one SAN URI of the form
//! `tessera:<scope>:<code>:<role>`, e.g. `tessera:city:330100:node`.

use std::fmt;
use std::str::FromStr;

use tessera_proto::v1 as pb;

use crate::ids::{CityCode, CodeError, ProvinceCode};

/// The URI scheme prefix of every tessera identity.
pub const URI_PREFIX: &str = "tessera:";

/// What a key may be used for. One key, one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The offline national root CA.
    Root,
    /// Signs trust lists.
    TrustListSigner,
    /// The national authority's administrative client.
    Authority,
    /// The national gateway (TLS server and client).
    Gateway,
    /// A city node (TLS server and client).
    CityNode,
    /// A city's badge signer (never TLS).
    BadgeSigner,
    /// A city operator (TLS client).
    Operator,
    /// A checkpoint verifier scoped to a province (TLS client).
    Verifier,
    /// The online issuing CA, issued by the root (never TLS).
    IssuingCa,
}

impl Role {
    /// Every role, in wire order.
    pub const ALL: [Role; 9] = [
        Role::Root,
        Role::TrustListSigner,
        Role::Authority,
        Role::Gateway,
        Role::CityNode,
        Role::BadgeSigner,
        Role::Operator,
        Role::Verifier,
        Role::IssuingCa,
    ];

    /// The role's name in an identity URI.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::TrustListSigner => "trust-list-signer",
            Role::Authority => "authority",
            Role::Gateway => "gateway",
            Role::CityNode => "node",
            Role::BadgeSigner => "badge-signer",
            Role::Operator => "operator",
            Role::Verifier => "verifier",
            Role::IssuingCa => "issuing-ca",
        }
    }

    /// The scope a certificate of this role must carry.
    pub fn scope_kind(self) -> ScopeKind {
        match self {
            Role::Root
            | Role::TrustListSigner
            | Role::Authority
            | Role::Gateway
            | Role::IssuingCa => ScopeKind::Nation,
            Role::CityNode | Role::BadgeSigner | Role::Operator => ScopeKind::City,
            Role::Verifier => ScopeKind::Province,
        }
    }

    /// Whether a certificate of this role may take part in TLS.
    pub fn uses_tls(self) -> bool {
        matches!(
            self,
            Role::Authority | Role::Gateway | Role::CityNode | Role::Operator | Role::Verifier
        )
    }

    /// The wire value.
    pub fn to_proto(self) -> pb::Role {
        match self {
            Role::Root => pb::Role::Root,
            Role::TrustListSigner => pb::Role::TrustListSigner,
            Role::Authority => pb::Role::Authority,
            Role::Gateway => pb::Role::Gateway,
            Role::CityNode => pb::Role::CityNode,
            Role::BadgeSigner => pb::Role::BadgeSigner,
            Role::Operator => pb::Role::Operator,
            Role::Verifier => pb::Role::Verifier,
            Role::IssuingCa => pb::Role::IssuingCa,
        }
    }

    /// Reads a wire value; `None` for unspecified or unknown values.
    pub fn from_proto(value: i32) -> Option<Self> {
        match pb::Role::try_from(value).ok()? {
            pb::Role::Unspecified => None,
            pb::Role::Root => Some(Role::Root),
            pb::Role::TrustListSigner => Some(Role::TrustListSigner),
            pb::Role::Authority => Some(Role::Authority),
            pb::Role::Gateway => Some(Role::Gateway),
            pb::Role::CityNode => Some(Role::CityNode),
            pb::Role::BadgeSigner => Some(Role::BadgeSigner),
            pb::Role::Operator => Some(Role::Operator),
            pb::Role::Verifier => Some(Role::Verifier),
            pb::Role::IssuingCa => Some(Role::IssuingCa),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of place a role is scoped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    /// The whole nation.
    Nation,
    /// One city.
    City,
    /// One province.
    Province,
}

/// The place a certificate speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The whole nation (code 000000).
    Nation,
    /// One city.
    City(CityCode),
    /// One province.
    Province(ProvinceCode),
}

impl Scope {
    /// The numeric code used in trust-list entries: 0 for the nation.
    pub fn code(self) -> u32 {
        match self {
            Scope::Nation => 0,
            Scope::City(c) => c.get(),
            Scope::Province(p) => p.get(),
        }
    }

    /// The kind of scope.
    pub fn kind(self) -> ScopeKind {
        match self {
            Scope::Nation => ScopeKind::Nation,
            Scope::City(_) => ScopeKind::City,
            Scope::Province(_) => ScopeKind::Province,
        }
    }
}

/// A role with its scope: who a certificate speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity {
    role: Role,
    scope: Scope,
}

/// Why an identity URI or pairing was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The URI does not start with `tessera:` or lacks parts.
    #[error("{0:?} is not a tessera identity URI (tessera:<scope>:<code>:<role>)")]
    NotTesseraUri(String),
    /// Unknown role name.
    #[error("unknown role {0:?}")]
    UnknownRole(String),
    /// Unknown scope name.
    #[error("unknown scope {0:?} (nation, city or province)")]
    UnknownScope(String),
    /// The code is malformed for its scope.
    #[error("bad code in identity: {0}")]
    Code(#[from] CodeError),
    /// The nation scope carries code 000000 only.
    #[error("the nation scope must carry code 000000, not {0:?}")]
    NationCode(String),
    /// The role is not allowed in this scope.
    #[error("role {role} cannot be scoped to a {scope:?}")]
    RoleScopeMismatch {
        /// The role.
        role: Role,
        /// The scope kind given.
        scope: ScopeKind,
    },
}

impl Identity {
    /// Pairs a role with a scope, refusing pairs the PKI never issues.
    pub fn new(role: Role, scope: Scope) -> Result<Self, IdentityError> {
        if role.scope_kind() != scope.kind() {
            return Err(IdentityError::RoleScopeMismatch {
                role,
                scope: scope.kind(),
            });
        }
        Ok(Self { role, scope })
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The scope.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// The city, for city-scoped roles.
    pub fn city(&self) -> Option<CityCode> {
        match self.scope {
            Scope::City(c) => Some(c),
            _ => None,
        }
    }

    /// The province this identity belongs to, for city and province scopes.
    pub fn province(&self) -> Option<ProvinceCode> {
        match self.scope {
            Scope::City(c) => Some(c.province()),
            Scope::Province(p) => Some(p),
            Scope::Nation => None,
        }
    }

    /// The SAN URI that carries this identity in a certificate.
    pub fn to_uri(&self) -> String {
        let (scope, code) = match self.scope {
            Scope::Nation => ("nation", "000000".to_owned()),
            Scope::City(c) => ("city", c.to_string()),
            Scope::Province(p) => ("province", p.to_string()),
        };
        format!("{URI_PREFIX}{scope}:{code}:{}", self.role)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_uri())
    }
}

impl FromStr for Identity {
    type Err = IdentityError;

    fn from_str(uri: &str) -> Result<Self, Self::Err> {
        let bad = || IdentityError::NotTesseraUri(uri.to_owned());
        let rest = uri.strip_prefix(URI_PREFIX).ok_or_else(bad)?;
        let mut parts = rest.split(':');
        let (Some(scope), Some(code), Some(role), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let role = Role::ALL
            .into_iter()
            .find(|r| r.as_str() == role)
            .ok_or_else(|| IdentityError::UnknownRole(role.to_owned()))?;
        let scope = match scope {
            "nation" if code == "000000" => Scope::Nation,
            "nation" => return Err(IdentityError::NationCode(code.to_owned())),
            "city" => Scope::City(code.parse()?),
            "province" => Scope::Province(code.parse()?),
            other => return Err(IdentityError::UnknownScope(other.to_owned())),
        };
        Identity::new(role, scope)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip() {
        for uri in [
            "tessera:nation:000000:root",
            "tessera:nation:000000:trust-list-signer",
            "tessera:nation:000000:authority",
            "tessera:nation:000000:gateway",
            "tessera:city:330100:node",
            "tessera:city:330100:badge-signer",
            "tessera:city:330100:operator",
            "tessera:province:420000:verifier",
        ] {
            let id: Identity = uri.parse().unwrap();
            assert_eq!(id.to_uri(), uri);
        }
    }

    #[test]
    fn wrong_pairs_and_garbage_are_refused() {
        assert!(matches!(
            "tessera:province:420000:node".parse::<Identity>(),
            Err(IdentityError::RoleScopeMismatch { .. })
        ));
        assert!(matches!(
            "tessera:city:330100:gateway".parse::<Identity>(),
            Err(IdentityError::RoleScopeMismatch { .. })
        ));
        assert!(matches!(
            "tessera:city:330100:janitor".parse::<Identity>(),
            Err(IdentityError::UnknownRole(_))
        ));
        assert!(matches!(
            "tessera:city:330100:node:extra".parse::<Identity>(),
            Err(IdentityError::NotTesseraUri(_))
        ));
        assert!(matches!(
            "spiffe://x/y".parse::<Identity>(),
            Err(IdentityError::NotTesseraUri(_))
        ));
        assert!(matches!(
            "tessera:nation:330100:gateway".parse::<Identity>(),
            Err(IdentityError::NationCode(_))
        ));
    }

    #[test]
    fn proto_roles_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::from_proto(role.to_proto() as i32), Some(role));
        }
        assert_eq!(Role::from_proto(0), None);
        assert_eq!(Role::from_proto(99), None);
    }
}
