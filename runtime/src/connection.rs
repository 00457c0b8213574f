//! One accepted mutual-TLS connection, and what the authorization layer
//! needs to know about its peer, read once, right after the handshake: the
//! remote address and the client certificate's identity, serial and key id.
//!
//! rustls has already verified the client certificate during the handshake
//! ([`crate::tls`]); this only parses the verified leaf, so that a connection
//! carrying many calls does not parse it again on every call. It decides
//! nothing about revocation: the trust list can change while a connection is
//! open, so [`crate::authz`] checks the parsed serial and key id against the
//! current list on each call.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls_pki_types::CertificateDer;
use tessera_core::CertInfo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::Connected;

use crate::calls::{Calls, IdleTimer};
use crate::peer::{PeerIdentity, PeerSlot};

/// An accepted, handshaken TLS connection with its peer read once. tonic
/// hands its [`PeerConnectInfo`] to every request made on it.
#[derive(Debug)]
pub struct PeerStream {
    inner: TlsStream<TcpStream>,
    info: PeerConnectInfo,
    _slot: PeerSlot,
    idle: IdleTimer,
}

impl PeerStream {
    /// Reads the peer of a connection whose handshake has completed.
    /// It holds its remote address's `slot` until dropped, and ends once it
    /// has had no call open for `idle_timeout`.
    pub(crate) fn new(
        inner: TlsStream<TcpStream>,
        slot: PeerSlot,
        idle_timeout: std::time::Duration,
    ) -> Self {
        let (tcp, session) = inner.get_ref();
        let info = PeerConnectInfo::read(tcp.peer_addr().ok(), session.peer_certificates());
        let idle = IdleTimer::new(idle_timeout, Arc::clone(&info.calls));
        Self {
            inner,
            info,
            _slot: slot,
            idle,
        }
    }

    /// The accepted socket under TLS, for tests of its options.
    #[cfg(test)]
    pub(crate) fn tcp(&self) -> &TcpStream {
        self.inner.get_ref().0
    }

    /// The connection's peer, as read after the handshake.
    pub fn info(&self) -> &PeerConnectInfo {
        &self.info
    }
}

impl Connected for PeerStream {
    type ConnectInfo = PeerConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.idle.poll_expired(cx) {
            // Read as the end of the connection: hyper closes it.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Why a connection's peer can make no call at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// The client presented no certificate.
    #[error("no client certificate")]
    NoCertificate,
    /// The client's certificate does not follow a tessera profile.
    #[error("client certificate is not a tessera certificate")]
    NotTessera,
}

/// A connection's peer, read once after the handshake; tonic puts a clone
/// (a reference count) in the extensions of every request on the
/// connection. It holds no certificate bytes, so nothing downstream can
/// parse the certificate again.
#[derive(Debug, Clone)]
pub struct PeerConnectInfo {
    peer: Arc<Result<PeerIdentity, PeerError>>,
    calls: Arc<Calls>,
}

impl PeerConnectInfo {
    /// Parses the leaf of `certs`, the chain rustls verified.
    pub(crate) fn read(remote: Option<SocketAddr>, certs: Option<&[CertificateDer<'_>]>) -> Self {
        let peer = certs
            .and_then(|certs| certs.split_first())
            .ok_or(PeerError::NoCertificate)
            .and_then(|(leaf, chain)| {
                let cert = CertInfo::parse(leaf).map_err(|_| PeerError::NotTessera)?;
                let issuer =
                    CertInfo::issuing_ca_among(leaf, chain).map(|ca| crate::peer::PeerIssuer {
                        key_id: ca.key_id(),
                        serial: ca.serial().to_vec(),
                    });
                Ok((cert, issuer))
            })
            .map(|(cert, issuer)| PeerIdentity {
                identity: cert.identity(),
                serial: cert.serial().to_vec(),
                key_id: cert.key_id(),
                not_after: cert.not_after(),
                remote,
                issuer,
            });
        if let Err(e) = &peer {
            tracing::info!(?remote, error = %e, "connection's peer cannot be admitted");
        }
        Self {
            peer: Arc::new(peer),
            calls: Arc::default(),
        }
    }

    /// The calls open on the connection ([`crate::limits`]).
    pub(crate) fn calls(&self) -> &Arc<Calls> {
        &self.calls
    }

    /// The peer, not yet checked against the current trust list.
    pub fn peer(&self) -> Result<&PeerIdentity, PeerError> {
        self.peer.as_ref().as_ref().map_err(|e| *e)
    }
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
