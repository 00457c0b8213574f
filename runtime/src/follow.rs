//! Following a gateway's trust list: the loop a city node runs against its
//! gateway, and a gateway against the peer gateway it follows.
//!
//! The follower connects with its own certificate (the peer must be a
//! gateway, named by the address dialled) and opens `WatchTrustList` with the
//! sequence it holds: the peer sends its current list at once if it is newer,
//! then every list put in force after it. Each list goes to the caller's
//! `install`, which verifies it up to the root and refuses rollback (a node's
//! [`TrustState::update`], a gateway's registry). The watch is reopened every
//! `refresh`, so a follower also asks at least that often; after a failure
//! (the peer down, a refused certificate) it waits `retry` and connects
//! again. The connection is pinged, so a peer that vanished without closing
//! it is noticed too.

use std::convert::Infallible;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tessera_core::Role;
use tessera_proto::v1 as pb;
use tessera_proto::v1::gateway_client::GatewayClient;
use tonic::transport::Channel;

use crate::grpc::{self, ConnectError};
use crate::tls::{self, TlsError, TlsIdentity, TrustState};

/// How often the connection to the peer is pinged, and how long an answer
/// may take before the connection counts as dead.
pub const KEEPALIVE: Duration = Duration::from_secs(10);

/// Largest trust list accepted from the peer (the gateway's own upper bound
/// on a message).
pub const MAX_LIST_BYTES: usize = 64 * 1024 * 1024;

/// Why a follower could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The client TLS configuration.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The peer's address.
    #[error("following trust lists: {0}")]
    Connect(#[from] ConnectError),
}

/// Follows the trust list of one gateway.
#[derive(Debug, Clone)]
pub struct Follower {
    peer: String,
    config: Arc<rustls::ClientConfig>,
    client: GatewayClient<Channel>,
    trust: Arc<TrustState>,
    refresh: Duration,
    retry: Duration,
}

/// How one watch ended.
enum Ended {
    /// `refresh` elapsed: reopen at once.
    Refresh,
    /// The peer ended the stream, or it failed: wait `retry` first.
    Failed(String),
}

impl Follower {
    /// A follower of the gateway at `peer` (`host:port`, the host named in
    /// its certificate), presenting `identity`, that reads the sequence held
    /// from `trust`. Nothing is connected yet.
    pub fn new(
        identity: &TlsIdentity,
        trust: Arc<TrustState>,
        peer: &str,
        refresh: Duration,
        retry: Duration,
    ) -> Result<Self, FollowError> {
        let config = tls::client_config(identity, Arc::clone(&trust), Role::Gateway)?;
        let client = connect(peer, Arc::clone(&config))?;
        Ok(Self {
            peer: peer.to_owned(),
            config,
            client,
            trust,
            refresh,
            retry,
        })
    }

    /// The gateway followed.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// How often the watch is reopened: a gateway also fetches its peer's
    /// policies and attestations at least this often.
    pub fn refresh(&self) -> Duration {
        self.refresh
    }

    /// How long to wait after a failure before connecting again.
    pub fn retry(&self) -> Duration {
        self.retry
    }

    /// A client of the peer on the follower's connection (for the other
    /// things a gateway copies from its peer).
    pub fn client(&self) -> GatewayClient<Channel> {
        self.client.clone()
    }

    /// A client of the peer on a new connection, after a failure (see
    /// [`Follower::run`] for why not the old one).
    pub fn reconnect(&self) -> Result<GatewayClient<Channel>, FollowError> {
        connect(&self.peer, Arc::clone(&self.config))
    }

    fn known(&self) -> u64 {
        self.trust.current().map_or(0, |l| l.sequence())
    }

    /// Follows for ever, handing each newer signed list (its encoded bytes)
    /// to `install`, which verifies it, puts it in force and returns its
    /// sequence, or says why it refused it.
    pub async fn run<F, Fut, E>(&self, mut install: F) -> Infallible
    where
        F: FnMut(Vec<u8>) -> Fut,
        Fut: Future<Output = Result<u64, E>>,
        E: Display,
    {
        let mut client = self.client.clone();
        loop {
            match self.watch(&mut client, &mut install).await {
                Ended::Refresh => {}
                Ended::Failed(why) => {
                    tracing::warn!(peer = %self.peer, error = %why, retry = ?self.retry, "cannot follow the trust list");
                    tokio::time::sleep(self.retry).await;
                    // A new connection after a failure: the old one may
                    // carry a certificate since renewed and then revoked,
                    // which the peer refuses on every call while the
                    // keepalive holds the connection open for ever.
                    if let Ok(fresh) = connect(&self.peer, Arc::clone(&self.config)) {
                        client = fresh;
                    }
                }
            }
        }
    }

    async fn watch<F, Fut, E>(&self, client: &mut GatewayClient<Channel>, install: &mut F) -> Ended
    where
        F: FnMut(Vec<u8>) -> Fut,
        Fut: Future<Output = Result<u64, E>>,
        E: Display,
    {
        let request = pb::WatchTrustListRequest {
            known_sequence: self.known(),
        };
        let deadline = tokio::time::sleep(self.refresh);
        tokio::pin!(deadline);
        let mut stream = tokio::select! {
            () = &mut deadline => return Ended::Refresh,
            opened = client.watch_trust_list(request) => match opened {
                Ok(r) => r.into_inner(),
                Err(status) => return Ended::Failed(status.message().to_owned()),
            },
        };
        loop {
            let list = tokio::select! {
                () = &mut deadline => return Ended::Refresh,
                next = stream.message() => match next {
                    Ok(Some(list)) => list,
                    Ok(None) => return Ended::Failed("the peer ended the watch".into()),
                    Err(status) => return Ended::Failed(status.message().to_owned()),
                },
            };
            // Not verified here, only read to skip what is already held
            // (the same list published to both sides, say); whatever is
            // installed is verified by `install`.
            let offered = pb::TrustList::decode(list.payload.as_slice()).map_or(0, |l| l.sequence);
            if offered != 0 && offered <= self.known() {
                continue;
            }
            match install(list.encode_to_vec()).await {
                Ok(sequence) => {
                    tracing::info!(peer = %self.peer, sequence, "followed trust list in force");
                }
                Err(e) => {
                    tracing::warn!(peer = %self.peer, error = %e, "trust list from the peer refused");
                }
            }
        }
    }
}

/// A client of the peer on a new (lazily opened) connection.
fn connect(
    peer: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<GatewayClient<Channel>, FollowError> {
    let channel = grpc::keepalive_channel(peer, config, KEEPALIVE)?;
    Ok(GatewayClient::new(channel).max_decoding_message_size(MAX_LIST_BYTES))
}
