//! How a request that does not decode reaches the wire: `INVALID_ARGUMENT`,
//! not the `INTERNAL` tonic gives it.
//!
//! tonic decodes a request in its codec, before any handler runs, and
//! answers a body that is not protobuf (or a frame it cannot read) with
//! `INTERNAL`. Operators read `INTERNAL` as a storage or signing failure of
//! the server (docs/OPERATIONS.md), and any enrolled client could fire that
//! alert. [`DecodeStatusLayer`] rewrites exactly those answers; every
//! `INTERNAL` a handler gives is left as it is. A streaming handler passes
//! the status of a request item that does not decode through
//! [`request_status`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::{Code, Status};
use tower::{Layer, Service};

/// How tonic and prost begin the message of an `INTERNAL` status they give
/// for a request body that does not decode or is not framed as gRPC (tonic
/// 0.14 `codec/decode.rs` and `server/grpc.rs`, tonic-prost's decoder).
const DECODE_FAILURES: &[&str] = &[
    "failed to decode Protobuf message",
    "protocol error: received message with",
    "Unexpected EOF decoding stream",
    "Missing request message",
    "Error decompressing",
];

/// Whether `status` is tonic's answer to a request that does not decode.
pub fn is_decode_failure(status: &Status) -> bool {
    status.code() == Code::Internal
        && DECODE_FAILURES
            .iter()
            .any(|prefix| status.message().starts_with(prefix))
}

/// The status a client gets for `status`, which reading its request gave:
/// `INVALID_ARGUMENT` for a request that does not decode, `status` otherwise.
pub fn request_status(status: Status) -> Status {
    if is_decode_failure(&status) {
        Status::invalid_argument(format!("the request does not decode: {}", status.message()))
    } else {
        status
    }
}

/// Rewrites the status in the headers of `response` (a "trailers-only"
/// answer, as every refused unary call gets) when it is tonic's answer to a
/// request that does not decode.
pub fn rewrite<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let Some(status) = Status::from_header_map(headers) else {
        return response;
    };
    if !is_decode_failure(&status) {
        return response;
    }
    let refused = request_status(status);
    headers.remove("grpc-status");
    headers.remove("grpc-message");
    headers.remove("grpc-status-details-bin");
    if refused.add_header(headers).is_err() {
        // The message is tonic's own and always encodes; should it not,
        // the code alone still says what happened.
        headers.insert(
            "grpc-status",
            http::HeaderValue::from(Code::InvalidArgument as i32),
        );
    }
    response
}

/// Answers a request that does not decode with `INVALID_ARGUMENT`. Put it
/// inside the metrics layer, so that the calls are counted with that code.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeStatusLayer;

impl<S> Layer<S> for DecodeStatusLayer {
    type Service = DecodeStatus<S>;
    fn layer(&self, inner: S) -> Self::Service {
        DecodeStatus { inner }
    }
}

/// The service [`DecodeStatusLayer`] builds.
#[derive(Debug, Clone)]
pub struct DecodeStatus<S> {
    inner: S,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> Service<http::Request<B>> for DecodeStatus<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let answer = self.inner.call(request);
        Box::pin(async move { answer.await.map(rewrite) })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn answered(status: Status) -> Status {
        let response = rewrite(status.into_http::<()>());
        Status::from_header_map(response.headers()).unwrap()
    }

    #[test]
    fn a_body_that_does_not_decode_is_invalid_argument() {
        let err = <tessera_proto::v1::VerifyRequest as prost::Message>::decode(&[0xff_u8][..])
            .unwrap_err();
        // What tonic-prost makes of it.
        let s = answered(Status::internal(err.to_string()));
        assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
        assert!(s.message().contains("does not decode"), "{s:?}");
        let s = answered(Status::internal("Unexpected EOF decoding stream."));
        assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    }

    #[test]
    fn a_handlers_internal_error_and_other_codes_stay() {
        let s = answered(Status::internal("internal error"));
        assert_eq!(s.code(), Code::Internal, "{s:?}");
        assert_eq!(s.message(), "internal error");
        let s = answered(Status::permission_denied(
            "failed to decode Protobuf message",
        ));
        assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
        let ok = rewrite(http::Response::new(()));
        assert!(Status::from_header_map(ok.headers()).is_none());
    }
}
