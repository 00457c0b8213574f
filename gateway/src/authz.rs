//! Which callers may make which call: the gateway's one authorization table,
//! enforced by `tessera_runtime::authz::AuthzLayer` before any handler runs.

use tessera_core::Role;
use tessera_runtime::authz::{Allowed, Table};

/// Every RPC of `tessera.v1.Gateway` and who may call it.
pub const TABLE: &[(&str, Allowed)] = &[
    (
        "/tessera.v1.Gateway/PublishTrustList",
        Allowed::Roles(&[Role::Authority]),
    ),
    ("/tessera.v1.Gateway/FetchTrustList", Allowed::AnyEnrolled),
    ("/tessera.v1.Gateway/WatchTrustList", Allowed::AnyEnrolled),
    (
        "/tessera.v1.Gateway/Verify",
        Allowed::Roles(&[Role::Verifier, Role::CityNode]),
    ),
    (
        "/tessera.v1.Gateway/VerifyBatch",
        Allowed::Roles(&[Role::Verifier, Role::CityNode]),
    ),
    ("/tessera.v1.Gateway/WhoAmI", Allowed::AnyEnrolled),
    // The handler also checks that the policy is the caller's own city's.
    (
        "/tessera.v1.Gateway/PublishPolicy",
        Allowed::Roles(&[Role::CityNode, Role::Operator]),
    ),
    ("/tessera.v1.Gateway/FetchPolicies", Allowed::AnyEnrolled),
    // The handler also checks that the attestation is the caller's own.
    (
        "/tessera.v1.Gateway/SubmitAttestation",
        Allowed::Roles(&[Role::CityNode]),
    ),
    (
        "/tessera.v1.Gateway/ListAttestations",
        // A gateway: a follower copies its peer's attestations (pool.rs).
        Allowed::Roles(&[Role::Authority, Role::Gateway]),
    ),
];

/// The gateway's table.
pub fn table() -> Table {
    Table {
        entries: TABLE,
        city: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every RPC the standard defines is in the table, and the table names
    /// no RPC the standard lacks.
    #[test]
    fn the_table_lists_exactly_the_rpcs_of_the_standard() {
        let proto = include_str!("../../proto/tessera/v1/gateway.proto");
        assert_eq!(
            tessera_runtime::authz::rpcs_in_proto(proto, "Gateway"),
            table().paths()
        );
    }
}
