//! Who is on the other end of a connection: the caller's identity read from
//! its certificate ([`PeerIdentity`]), and one connection's place in its
//! remote address's count ([`PeerSlot`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tessera_core::cert::hex_string;
use tessera_core::{Identity, KeyId};

/// Open connections per remote address.
#[derive(Debug, Default)]
pub(crate) struct PeerSlots {
    open: std::sync::Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in its remote address's count, given back when
/// the connection (or its failed handshake) is dropped.
#[derive(Debug)]
pub(crate) struct PeerSlot {
    slots: Arc<PeerSlots>,
    ip: IpAddr,
}

impl PeerSlots {
    pub(crate) fn take(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<PeerSlot> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = open.entry(ip).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            slots: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self
            .slots
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The caller of a request, read from its TLS certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Role and scope.
    pub identity: Identity,
    /// Certificate serial, DER integer content bytes.
    pub serial: Vec<u8>,
    /// Key id of the certificate.
    pub key_id: KeyId,
    /// End of the certificate's validity (Unix seconds): past it, the
    /// connection's calls are refused and its streams end, as for a
    /// revoked certificate ([`crate::authz`]).
    pub not_after: i64,
    /// Remote address, when known.
    pub remote: Option<SocketAddr>,
    /// The issuing CA that issued the certificate, found among the
    /// intermediates the peer presented; `None` when the root issued it
    /// directly. Refused per call once the list in force revokes or does
    /// not list it ([`crate::authz::refused_by`]).
    pub issuer: Option<PeerIssuer>,
}

/// The issuing CA of a peer's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIssuer {
    /// Key id of the issuing CA's certificate.
    pub key_id: KeyId,
    /// Its serial, DER integer content bytes.
    pub serial: Vec<u8>,
}

impl PeerIdentity {
    /// The serial as hex.
    pub fn serial_hex(&self) -> String {
        hex_string(&self.serial)
    }

    /// The identity as the wire message.
    pub fn to_proto(&self) -> tessera_proto::v1::PeerIdentity {
        tessera_proto::v1::PeerIdentity {
            role: self.identity.role().to_proto() as u32,
            code: self.identity.scope().code(),
            serial: self.serial_hex(),
        }
    }
}
