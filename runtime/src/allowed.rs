//! Who may make a call: the rule an authorization table
//! ([`crate::authz::Table`]) holds for each method, below both the table
//! and the standard services' entries ([`crate::standard::ENTRIES`]).

use tessera_core::Role;

/// Who may make a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// Callers of these roles, from anywhere.
    Roles(&'static [Role]),
    /// An operator certificate of the serving node's own city.
    OperatorOfThisCity,
    /// Any caller that passed mutual TLS.
    AnyEnrolled,
}
