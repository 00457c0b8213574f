//! Which callers may make which call: the node's one authorization table.

use tessera_core::{CityCode, Role};
use tessera_runtime::authz::{Allowed, Table};

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
    (
        "/tessera.v1.CityNode/CheckStatus",
        Allowed::Roles(&[Role::Gateway]),
    ),
    ("/tessera.v1.CityNode/WhoAmI", Allowed::AnyEnrolled),
    (
        "/tessera.v1.CityNode/ExportRecords",
        Allowed::OperatorOfThisCity,
    ),
    (
        "/tessera.v1.CityNode/EraseResident",
        Allowed::OperatorOfThisCity,
    ),
    (
        "/tessera.v1.CityNode/AccessLog",
        Allowed::OperatorOfThisCity,
    ),
    (
        "/tessera.v1.CityNode/BackupStore",
        Allowed::OperatorOfThisCity,
    ),
    (
        "/tessera.v1.CityNode/CorrectRecord",
        Allowed::OperatorOfThisCity,
    ),
];

/// The table of the node of `city`, for `tessera_runtime::authz::AuthzLayer`.
pub fn table(city: CityCode) -> Table {
    Table {
        entries: TABLE,
        city: Some(city),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every RPC the standard defines is in the table, and the table names
    /// no RPC the standard lacks.
    #[test]
    fn the_table_lists_exactly_the_rpcs_of_the_standard() {
        let proto = include_str!("../../proto/tessera/v1/node.proto");
        assert_eq!(
            tessera_runtime::authz::rpcs_in_proto(proto, "CityNode"),
            table("330100".parse().unwrap()).paths()
        );
    }
}
