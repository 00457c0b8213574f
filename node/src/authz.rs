//! Which callers may make which call: the node's one authorization table.

use tessera_certs::PeerIdentity;
use tessera_core::{CityCode, Role};
use tonic::Status;

/// Who may make a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// An operator certificate of this node's own city.
    OperatorOfThisCity,
    /// The national gateway.
    Gateway,
    /// Any caller that passed mutual TLS.
    AnyEnrolled,
}

/// Every RPC of `tessera.v1.CityNode` and who may call it.
pub const TABLE: &[(&str, Allowed)] = &[
    (
        "/tessera.v1.CityNode/IngestRecords",
        Allowed::OperatorOfThisCity,
    ),
    (
        "/tessera.v1.CityNode/IssueBadge",
        Allowed::OperatorOfThisCity,
    ),
    ("/tessera.v1.CityNode/Explain", Allowed::OperatorOfThisCity),
    ("/tessera.v1.CityNode/CheckStatus", Allowed::Gateway),
    ("/tessera.v1.CityNode/WhoAmI", Allowed::AnyEnrolled),
];

/// Checks `peer` against the table entry of `method` (a full gRPC path).
/// An RPC missing from the table is refused.
pub fn authorize(method: &str, peer: &PeerIdentity, city: CityCode) -> Result<(), Status> {
    let allowed = TABLE
        .iter()
        .find(|(m, _)| *m == method)
        .map(|(_, a)| *a)
        .ok_or_else(|| {
            Status::permission_denied(format!("{method} is not in the authorization table"))
        })?;
    let role = peer.identity.role();
    let ok = match allowed {
        Allowed::OperatorOfThisCity => role == Role::Operator && peer.identity.city() == Some(city),
        Allowed::Gateway => role == Role::Gateway,
        Allowed::AnyEnrolled => true,
    };
    if ok {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "{} may not call {method} on the node of {city}",
            peer.identity
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every RPC the standard defines for the node is in the table, and the
    /// table names no RPC the standard lacks.
    #[test]
    fn the_table_lists_exactly_the_rpcs_of_the_standard() {
        let proto = include_str!("../../proto/tessera/v1/node.proto");
        let mut in_proto: Vec<String> = proto
            .lines()
            .filter_map(|l| l.trim().strip_prefix("rpc "))
            .filter_map(|l| l.split('(').next())
            .map(|name| format!("/tessera.v1.CityNode/{}", name.trim()))
            .collect();
        let mut in_table: Vec<String> = TABLE.iter().map(|(m, _)| (*m).to_owned()).collect();
        in_proto.sort();
        in_table.sort();
        assert_eq!(in_proto, in_table);
    }
}
