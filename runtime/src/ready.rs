//! Tower's rule for middleware: only the instance that was polled ready
//! may be called.

/// The service that was polled ready, for a middleware's `call`, leaving a
/// fresh clone in its place (tower's rule: only the polled instance may be
/// called).
pub(crate) fn take_ready<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}
