//! The station's HTTPS answers (the contract with the scanner app,
//! docs/OPERATIONS.md "A checkpoint station"): the embedded app, the public
//! trust documents, pairing, and the online check.
//!
//! Every request is bounded before it is looked at: bodies of at most
//! [`MAX_BODY`] bytes, read within [`BODY_DEADLINE`]; anything else gets a
//! precise JSON error and a status that says whose fault it is, and changes
//! nothing.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;

use crate::assets;
use crate::counters::Counters;
use crate::devices::{Devices, PairError};
use crate::relay::{self, Gateway, RelayError};
use crate::trust::TrustCache;

/// Largest request body read.
pub const MAX_BODY: usize = 4096;
/// Longest a request body may take to arrive.
pub const BODY_DEADLINE: Duration = Duration::from_secs(10);
/// Longest path looked at.
const MAX_PATH: usize = 512;

/// A reply.
pub type Reply = Response<Full<Bytes>>;

/// What the API answers from.
#[derive(Clone)]
pub struct Api {
    pub(crate) devices: Devices,
    pub(crate) cache: TrustCache,
    pub(crate) gateway: Gateway,
    pub(crate) counters: Counters,
    pub(crate) station: String,
    pub(crate) now: Arc<dyn Fn() -> i64 + Send + Sync>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("station", &self.station)
            .finish_non_exhaustive()
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static(content_type));
    assets::secure_headers(h);
    r
}

fn json(status: StatusCode, value: &serde_json::Value) -> Reply {
    let mut r = reply(status, "application/json", value.to_string());
    r.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    r
}

fn error(status: StatusCode, message: &str) -> Reply {
    json(status, &serde_json::json!({ "error": message }))
}

fn method_not_allowed(allow: &'static str) -> Reply {
    let mut r = error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("this path answers {allow} only"),
    );
    r.headers_mut()
        .insert("allow", HeaderValue::from_static(allow));
    r
}

#[derive(Deserialize)]
struct PairBody {
    code: String,
}

#[derive(Deserialize)]
struct VerifyBody {
    qr_text: String,
}

/// Why a body was not read.
enum BodyError {
    TooLarge,
    Unreadable,
}

/// Reads at most [`MAX_BODY`] bytes of body within [`BODY_DEADLINE`].
async fn read_body(request: Request<Incoming>) -> Result<Bytes, BodyError> {
    let declared = request
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(BodyError::TooLarge);
    }
    let limited = Limited::new(request.into_body(), MAX_BODY);
    match tokio::time::timeout(BODY_DEADLINE, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        _ => Err(BodyError::Unreadable),
    }
}

impl Api {
    /// Answers one request; never panics on what it reads.
    pub async fn answer(&self, request: Request<Incoming>) -> Reply {
        let path = request.uri().path().to_owned();
        if path.len() > MAX_PATH {
            return error(StatusCode::URI_TOO_LONG, "no path here is that long");
        }
        let method = request.method().clone();
        let read_only = method == Method::GET || method == Method::HEAD;
        match path.as_str() {
            "/api/trust-list" if read_only => self.trust_list(&request),
            "/api/root.der" if read_only => {
                let mut r = reply(
                    StatusCode::OK,
                    "application/pkix-cert",
                    self.cache.trust().root().der().to_vec(),
                );
                r.headers_mut()
                    .insert("cache-control", HeaderValue::from_static("no-cache"));
                r
            }
            "/api/station" if read_only => match self.authorised(&request) {
                Ok(()) => self.station(),
                Err(r) => *r,
            },
            "/api/pair" if method == Method::POST => self.pair(request).await,
            "/api/verify" if method == Method::POST => self.verify(request).await,
            "/api/trust-list" | "/api/root.der" | "/api/station" => method_not_allowed("GET, HEAD"),
            "/api/pair" | "/api/verify" => method_not_allowed("POST"),
            p if p.starts_with("/api/") => error(StatusCode::NOT_FOUND, "no such API path"),
            _ if !read_only => method_not_allowed("GET, HEAD"),
            p => match assets::lookup(p) {
                Some(a) => {
                    let mut r = reply(StatusCode::OK, a.content_type, Bytes::from_static(a.bytes));
                    r.headers_mut()
                        .insert("cache-control", HeaderValue::from_static(a.cache));
                    r
                }
                None => {
                    let mut r = reply(
                        StatusCode::NOT_FOUND,
                        "text/plain; charset=utf-8",
                        "not here: the scanner is at /\n",
                    );
                    r.headers_mut()
                        .insert("cache-control", HeaderValue::from_static("no-cache"));
                    r
                }
            },
        }
    }

    fn trust_list<B>(&self, request: &Request<B>) -> Reply {
        let Some(list) = self.cache.current() else {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "this station holds no trust list yet: it has not reached the gateway since it was set up",
            );
        };
        let etag = format!("\"{}\"", list.sequence());
        let matches = request
            .headers()
            .get("if-none-match")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
        let mut r = if matches {
            let mut r = reply(
                StatusCode::NOT_MODIFIED,
                "application/octet-stream",
                Bytes::new(),
            );
            r.headers_mut().remove("content-type");
            r
        } else {
            reply(
                StatusCode::OK,
                "application/octet-stream",
                list.signed_bytes().to_vec(),
            )
        };
        let h = r.headers_mut();
        h.insert("cache-control", HeaderValue::from_static("no-cache"));
        if let Ok(v) = HeaderValue::from_str(&etag) {
            h.insert("etag", v);
        }
        h.insert("x-tessera-sequence", HeaderValue::from(list.sequence()));
        r
    }

    /// Whether the request carries the token of a paired device; else the
    /// 401 to send.
    fn authorised<B>(&self, request: &Request<B>) -> Result<(), Box<Reply>> {
        let token = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let why = match token {
            None => {
                "this needs a paired device: send Authorization: Bearer TOKEN (pair with a code from `tessera checkpoint pair`)"
            }
            Some(t) => match self.devices.device(t) {
                Some(_) => return Ok(()),
                None => "this device is not paired (unknown or revoked token): pair it again",
            },
        };
        self.counters.refused("unauthorised");
        let mut r = error(StatusCode::UNAUTHORIZED, why);
        r.headers_mut()
            .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        Err(Box::new(r))
    }

    fn station(&self) -> Reply {
        json(
            StatusCode::OK,
            &serde_json::json!({
                "station": self.station,
                "trust_list_sequence": self.cache.current().map_or(0, |l| l.sequence()),
                "gateway": if self.gateway.connected() { "connected" } else { "unreachable" },
            }),
        )
    }

    /// The body as `T`, or the reply that says why not.
    async fn body<T>(&self, request: Request<Incoming>, what: &str) -> Result<T, Box<Reply>>
    where
        T: serde::de::DeserializeOwned,
    {
        let bytes = match read_body(request).await {
            Ok(b) => b,
            Err(BodyError::TooLarge) => {
                self.counters.refused("too_large");
                return Err(Box::new(error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("a request body here is at most {MAX_BODY} bytes"),
                )));
            }
            Err(BodyError::Unreadable) => {
                self.counters.refused("bad_request");
                return Err(Box::new(error(
                    StatusCode::BAD_REQUEST,
                    "the request body did not arrive whole in time",
                )));
            }
        };
        serde_json::from_slice(&bytes).map_err(|e| {
            self.counters.refused("bad_request");
            // serde's message names the position and the field, never the
            // value: no badge text reaches a reply or a log this way.
            let kind = if e.is_data() {
                "a JSON object with"
            } else {
                "JSON:"
            };
            Box::new(error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "the body must be {kind} {what} (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            ))
        })
    }

    async fn pair(&self, request: Request<Incoming>) -> Reply {
        let body: PairBody = match self.body(request, "\"code\": string").await {
            Ok(b) => b,
            Err(r) => return *r,
        };
        let devices = self.devices.clone();
        let now = (self.now)();
        let paired = tokio::task::spawn_blocking(move || devices.pair(body.code.trim(), now)).await;
        match paired {
            Ok(Ok(p)) => {
                self.counters.pairing("paired");
                tracing::info!(device = %p.device, "device paired");
                json(
                    StatusCode::OK,
                    &serde_json::json!({ "device": p.device, "token": p.token }),
                )
            }
            Ok(Err(e @ (PairError::Unknown | PairError::Expired))) => {
                self.counters.pairing("refused");
                error(StatusCode::FORBIDDEN, &e.to_string())
            }
            Ok(Err(PairError::Data(e))) => {
                self.counters.pairing("failed");
                tracing::warn!(error = %e, "pairing: data directory");
                error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
            Err(e) => {
                tracing::warn!(error = %e, "pairing task");
                error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }

    async fn verify(&self, request: Request<Incoming>) -> Reply {
        if let Err(r) = self.authorised(&request) {
            return *r;
        }
        let body: VerifyBody = match self.body(request, "\"qr_text\": string").await {
            Ok(b) => b,
            Err(r) => return *r,
        };
        match self.gateway.verify(&body.qr_text, (self.now)()).await {
            Ok(v) => {
                self.counters.check(relay::outcome_name(v.outcome));
                json(StatusCode::OK, &relay::verdict_json(&v))
            }
            Err(RelayError::Unreachable(why)) => {
                self.counters.refused("gateway_unreachable");
                tracing::warn!(gateway = %self.gateway.address(), error = %why, "online check: gateway unreachable");
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the gateway cannot be reached: the status was not asked",
                )
            }
            Err(e @ RelayError::Refused(_)) => {
                self.counters.refused("gateway_refused");
                tracing::warn!(gateway = %self.gateway.address(), error = %e, "online check refused");
                error(StatusCode::BAD_GATEWAY, &e.to_string())
            }
        }
    }
}
