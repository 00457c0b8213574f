//! The public copy: the signed trust list, the national root certificate and
//! every city's signed scoring policies (in force, announced, and every
//! version ever published, for ever), by plain HTTPS GET with **no client
//! certificate**, and a readable page per city in English and Chinese
//! ([`crate::public_page`]). Configured by `[public] listen`.
//!
//! It is read-only and bounded: GET and HEAD only, no request body, request
//! heads of at most 8 KiB, `max_connections` served at once (more wait in
//! the backlog), a deadline on the handshake and on every connection. It
//! reads the caller's nothing and logs no request: the trust list and the
//! policies are public documents, signed so that a reader need not trust
//! this server (docs/POLICY.md, "The public copy").
//!
//! Paths:
//! - `/` and `/?lang=zh`: the index of cities.
//! - `/trust-list`: the signed trust list in force, its exact bytes.
//! - `/root.crt`: the national root certificate (PEM).
//! - `/cities/CODE` (`?lang=zh` / `?lang=en`): the city's page.
//! - `/cities/CODE/policies`: every version, with its dates (JSON).
//! - `/cities/CODE/policies/N`: version N's signed bytes, as published.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tessera_runtime::{TlsIdentity, TrustState};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::config::PublicSettings;
use crate::policies::Policies;
use crate::public_page::{self, Lang};

/// Longest request head (request line and headers) read.
pub const MAX_HEAD_BYTES: usize = 8192;
/// Longest path served.
const MAX_PATH: usize = 256;
/// Deadline of a TLS handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);
/// Deadline of a request head.
const HEAD: Duration = Duration::from_secs(10);
/// Longest a connection is kept, keep-alive included.
const CONNECTION: Duration = Duration::from_secs(60);

/// What the public copy reads from.
#[derive(Clone)]
pub struct PublicCopy {
    trust: Arc<TrustState>,
    policies: Arc<Policies>,
    now: Arc<dyn Fn() -> i64 + Send + Sync>,
}

impl std::fmt::Debug for PublicCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicCopy").finish_non_exhaustive()
    }
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    if let Ok(v) = content_type.parse() {
        h.insert("content-type", v);
    }
    h.insert(
        "x-content-type-options",
        hyper::header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "content-security-policy",
        hyper::header::HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    h.insert(
        "access-control-allow-origin",
        hyper::header::HeaderValue::from_static("*"),
    );
    r
}

fn text(status: StatusCode, message: &str) -> Reply {
    reply(status, "text/plain; charset=utf-8", format!("{message}\n"))
}

fn cached(mut r: Reply, cache: &'static str, etag: &str, if_none_match: Option<&str>) -> Reply {
    let quoted = format!("\"{etag}\"");
    if if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == quoted)) {
        r = reply(
            StatusCode::NOT_MODIFIED,
            "text/plain; charset=utf-8",
            Bytes::new(),
        );
    }
    let h = r.headers_mut();
    h.insert(
        "cache-control",
        hyper::header::HeaderValue::from_static(cache),
    );
    if let Ok(v) = quoted.parse() {
        h.insert("etag", v);
    }
    r
}

impl PublicCopy {
    /// The public copy of `trust` (its root and list in force) and
    /// `policies`, with the clock `now`.
    pub fn new(
        trust: Arc<TrustState>,
        policies: Arc<Policies>,
        now: Arc<dyn Fn() -> i64 + Send + Sync>,
    ) -> Self {
        Self {
            trust,
            policies,
            now,
        }
    }

    /// Answers one request. Anything but a bodiless GET or HEAD of a known
    /// path is refused with a status that says why; nothing is ever written.
    pub fn answer<B: hyper::body::Body>(&self, request: &Request<B>) -> Reply {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut r = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "the public copy is read-only: only GET and HEAD are answered",
            );
            r.headers_mut().insert(
                "allow",
                hyper::header::HeaderValue::from_static("GET, HEAD"),
            );
            return r;
        }
        let has_body = request
            .headers()
            .get("content-length")
            .is_some_and(|v| v.as_bytes() != b"0")
            || request.headers().contains_key("transfer-encoding");
        if has_body {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "a request to the public copy carries no body",
            );
        }
        let path = request.uri().path();
        if path.len() > MAX_PATH {
            return text(StatusCode::URI_TOO_LONG, "no path here is that long");
        }
        let if_none_match = request
            .headers()
            .get("if-none-match")
            .and_then(|v| v.to_str().ok());
        let lang = Lang::from_query(request.uri().query());
        match self.route(path, lang, if_none_match) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "public copy: storage read failed");
                text(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }

    fn route(
        &self,
        path: &str,
        lang: Lang,
        inm: Option<&str>,
    ) -> Result<Reply, crate::policies::PolicyPublishError> {
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        Ok(match parts.as_slice() {
            [] | [""] => self.index(lang),
            ["trust-list"] => match self.trust.current() {
                Some(list) => cached(
                    reply(
                        StatusCode::OK,
                        "application/octet-stream",
                        list.signed_bytes().to_vec(),
                    ),
                    "public, max-age=60",
                    &format!("trust-list-{}", list.sequence()),
                    inm,
                ),
                None => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "this gateway holds no trust list yet",
                ),
            },
            ["root.crt"] => {
                let pem = pem_certificate(self.trust.root().der());
                cached(
                    reply(StatusCode::OK, "application/x-pem-file", pem),
                    "public, max-age=86400",
                    "root",
                    inm,
                )
            }
            ["cities", code] => match parse_city(code) {
                Some(city) => self.city_page(city, lang)?,
                None => not_found(),
            },
            ["cities", code, "policies"] => match parse_city(code) {
                Some(city) => self.history_json(city)?,
                None => not_found(),
            },
            ["cities", code, "policies", version] => {
                match (parse_city(code), version.parse::<u32>().ok()) {
                    (Some(city), Some(version)) => {
                        match self.policies.signed_bytes(city, version)? {
                            // A version never changes once published.
                            Some(bytes) => cached(
                                reply(StatusCode::OK, "application/octet-stream", bytes),
                                "public, max-age=31536000, immutable",
                                &format!("policy-{city:06}-v{version}"),
                                inm,
                            ),
                            None => not_found(),
                        }
                    }
                    _ => not_found(),
                }
            }
            _ => not_found(),
        })
    }

    fn city_name(&self, city: u32) -> String {
        let name = tessera_core::CityCode::new(city).ok().and_then(|code| {
            self.trust
                .current()
                .and_then(|list| list.city_node(code).map(|e| e.name().to_owned()))
        });
        name.unwrap_or_else(|| format!("{city:06}"))
    }

    fn index(&self, lang: Lang) -> Reply {
        let cities: Vec<(u32, String)> = match self.policies.cities() {
            Ok(c) => c.into_iter().map(|c| (c, self.city_name(c))).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "public copy: storage read failed");
                return text(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
            }
        };
        let sequence = self.trust.current().map(|l| l.sequence());
        html(public_page::index(&cities, lang, sequence))
    }

    fn city_page(
        &self,
        city: u32,
        lang: Lang,
    ) -> Result<Reply, crate::policies::PolicyPublishError> {
        let versions = public_page::versions(&self.policies.held(city)?);
        if versions.is_empty() {
            return Ok(not_found());
        }
        Ok(html(public_page::city(
            city,
            &self.city_name(city),
            &versions,
            (self.now)(),
            lang,
        )))
    }

    fn history_json(&self, city: u32) -> Result<Reply, crate::policies::PolicyPublishError> {
        let versions = public_page::versions(&self.policies.held(city)?);
        if versions.is_empty() {
            return Ok(not_found());
        }
        let now = (self.now)();
        let current = public_page::in_force(&versions, now);
        let items: Vec<serde_json::Value> = versions
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let standing = match current {
                    Some(f) if f == i => "in_force",
                    Some(f) if i < f => "superseded",
                    _ => "announced",
                };
                let n = v.document.policy_version;
                serde_json::json!({
                    "version": n,
                    "name": v.policy.name(),
                    "signed_at": v.document.signed_at,
                    "effective_from": v.document.effective_from,
                    "in_force_until": v.until,
                    "standing": standing,
                    "sha256": v.sha256,
                    "url": format!("/cities/{city:06}/policies/{n}"),
                })
            })
            .collect();
        let body =
            serde_json::json!({ "city": format!("{city:06}"), "now": now, "versions": items });
        Ok(cached(
            reply(
                StatusCode::OK,
                "application/json",
                body.to_string().into_bytes(),
            ),
            "public, max-age=60",
            &format!("history-{city:06}-{}", versions.len()),
            None,
        ))
    }
}

fn html(body: String) -> Reply {
    let mut r = reply(StatusCode::OK, "text/html; charset=utf-8", body);
    r.headers_mut().insert(
        "cache-control",
        hyper::header::HeaderValue::from_static("public, max-age=60"),
    );
    r
}

fn not_found() -> Reply {
    text(
        StatusCode::NOT_FOUND,
        "not here: see / for the cities, /trust-list and /root.crt",
    )
}

fn parse_city(code: &str) -> Option<u32> {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    code.parse().ok()
}

fn pem_certificate(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// Serves the public copy on `listener` with `identity`'s certificate and
/// no client authentication, for as long as the gateway runs.
pub async fn serve(
    listener: TcpListener,
    identity: &TlsIdentity,
    copy: PublicCopy,
    settings: PublicSettings,
) {
    let config = match tessera_runtime::tls::public_server_config(identity) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "public copy: no TLS configuration; not served");
            return std::future::pending().await;
        }
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    tracing::info!(listen = %settings.listen, "serving the public copy");
    loop {
        // Waiting for a slot before accepting leaves the rest in the backlog.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                tracing::warn!(error = %e, "public copy: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let copy = copy.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await else {
                return;
            };
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    // hyper sends no body in answer to HEAD.
                    let r = copy.answer(&request);
                    async move { Ok::<_, Infallible>(r) }
                });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD)
                .max_buf_size(MAX_HEAD_BYTES)
                .serve_connection(TokioIo::new(tls), service);
            let _ = tokio::time::timeout(CONNECTION, conn).await;
        });
    }
}
