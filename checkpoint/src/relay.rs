//! The station's one mutual-TLS connection to the gateway: online checks
//! relayed to `Verify` (concurrent checks share the channel, multiplexed on
//! one HTTP/2 connection) and the periodic `FetchTrustList` that keeps the
//! station's view of the gateway (connected or not) and its list fresh.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tessera_core::{Role, text};
use tessera_proto::v1 as pb;
use tessera_proto::v1::gateway_client::GatewayClient;
use tessera_runtime::follow::{KEEPALIVE, MAX_LIST_BYTES};
use tessera_runtime::{TlsIdentity, TrustState, grpc, tls};
use tonic::Code;
use tonic::transport::Channel;

/// Longest an online check may take, the gateway's relay to the city
/// included (the gateway answers STATUS_UNAVAILABLE well before this).
pub const CHECK_DEADLINE: Duration = Duration::from_secs(10);

/// Why a check could not be relayed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The gateway cannot be reached (down, unreachable, too slow).
    #[error("the gateway cannot be reached: {0}")]
    Unreachable(String),
    /// The gateway answered the call with a refusal.
    #[error("the gateway refused the check: {0}")]
    Refused(String),
}

/// The gateway, over one channel.
#[derive(Debug, Clone)]
pub struct Gateway {
    channel: Channel,
    client: GatewayClient<Channel>,
    address: String,
    connected: Arc<AtomicBool>,
}

impl Gateway {
    /// A client of the gateway at `address` presenting `identity`, trusting
    /// `trust` (a gateway certificate the list in force revokes is refused).
    /// Connects lazily, and again by itself after the gateway comes back.
    pub fn new(
        identity: &TlsIdentity,
        trust: Arc<TrustState>,
        address: &str,
    ) -> Result<Self, tessera_runtime::follow::FollowError> {
        let config = tls::client_config(identity, trust, Role::Gateway)?;
        let channel = grpc::keepalive_channel(address, config, KEEPALIVE)?;
        Ok(Self {
            client: GatewayClient::new(channel.clone()).max_decoding_message_size(MAX_LIST_BYTES),
            channel,
            address: address.to_owned(),
            connected: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The one channel to the gateway, for the trust-list watch to share.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The gateway's address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Whether the last call to the gateway got an answer.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    fn saw(&self, status: Option<&tonic::Status>) {
        let reached = !status.is_some_and(unreachable);
        self.connected.store(reached, Ordering::Relaxed);
    }

    /// The verdict on `qr_text` at `now`: text that is no badge is
    /// MALFORMED here, without a round trip; anything else is the gateway's
    /// `Verify`.
    pub async fn verify(&self, qr_text: &str, now: i64) -> Result<pb::Verdict, RelayError> {
        if let Err(e) = text::from_text(qr_text, tessera_core::badge::MAX_ENVELOPE_LEN) {
            return Ok(tessera_core::VerifyError::from(e).verdict(now));
        }
        let mut request = tonic::Request::new(pb::VerifyRequest {
            badge: Some(pb::verify_request::Badge::QrText(qr_text.to_owned())),
        });
        request.set_timeout(CHECK_DEADLINE);
        let mut client = self.client.clone();
        let answer = match tokio::time::timeout(CHECK_DEADLINE, client.verify(request)).await {
            Ok(answer) => answer,
            Err(_) => Err(tonic::Status::deadline_exceeded("no answer in time")),
        };
        self.saw(answer.as_ref().err());
        answer.map(tonic::Response::into_inner).map_err(|s| {
            if unreachable(&s) {
                RelayError::Unreachable(s.message().to_owned())
            } else {
                RelayError::Refused(format!("{:?}: {}", s.code(), s.message()))
            }
        })
    }

    /// The gateway's trust list in force, its signed bytes, unless the
    /// station holds `known` already (`None`).
    pub async fn fetch_trust_list(&self, known: u64) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut request = tonic::Request::new(pb::FetchTrustListRequest {
            known_sequence: known,
        });
        request.set_timeout(CHECK_DEADLINE);
        let answer = self.client.clone().fetch_trust_list(request).await;
        self.saw(answer.as_ref().err());
        Ok(answer?
            .into_inner()
            .list
            .map(|l| prost::Message::encode_to_vec(&l)))
    }
}

/// Whether a call's status says the gateway was not reached.
fn unreachable(s: &tonic::Status) -> bool {
    matches!(
        s.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled
    )
}

/// An outcome's name as the API spells it (`VALID`, `REVOKED`, …).
pub fn outcome_name(outcome: i32) -> &'static str {
    let o = pb::Outcome::try_from(outcome).unwrap_or(pb::Outcome::Unspecified);
    o.as_str_name().trim_start_matches("OUTCOME_")
}

/// The verdict as the API's JSON.
pub fn verdict_json(v: &pb::Verdict) -> serde_json::Value {
    let colour = match pb::Colour::try_from(v.colour).unwrap_or(pb::Colour::Unspecified) {
        pb::Colour::Unspecified => "",
        c => c.as_str_name().trim_start_matches("COLOUR_"),
    };
    serde_json::json!({
        "outcome": outcome_name(v.outcome),
        "colour": colour,
        "valid_until": v.valid_until,
        "issuer_city": v.issuer_city,
        "issuer_name": v.issuer_name,
        "checked_at": v.checked_at,
        "signature_valid": v.signature_valid,
        "detail": v.detail,
        "reason": v.reason,
    })
}
