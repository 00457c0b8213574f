//! The calls open on one connection and its idle timer: counted by
//! [`crate::limits::CallLimitsLayer`] for every call, read by the
//! connection ([`crate::connection`]) to close itself once idle for its
//! timeout.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Context;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// The calls open on one connection, and since when none has been.
#[derive(Debug)]
pub struct Calls {
    open: AtomicUsize,
    idle_since: Mutex<Instant>,
}

impl Default for Calls {
    fn default() -> Self {
        Self {
            open: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
        }
    }
}

impl Calls {
    /// Counts a call open until the guard is dropped.
    pub(crate) fn begin(self: &Arc<Self>) -> CallGuard {
        self.open.fetch_add(1, Ordering::SeqCst);
        CallGuard(Arc::clone(self))
    }

    /// Since when no call has been open, or `None` while one is.
    fn idle_since(&self) -> Option<Instant> {
        let since = *self
            .idle_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        (self.open.load(Ordering::SeqCst) == 0).then_some(since)
    }
}

/// One open call; dropped when its response body is.
#[derive(Debug)]
pub(crate) struct CallGuard(Arc<Calls>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        let mut since = self
            .0
            .idle_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *since = Instant::now();
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Closes a connection that has had no call open for its idle timeout: its
/// reads end (as if the client had closed) and hyper drops the connection.
/// Pings and other frames do not count as calls.
#[derive(Debug)]
pub(crate) struct IdleTimer {
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    calls: Arc<Calls>,
    expired: bool,
}

impl IdleTimer {
    pub(crate) fn new(timeout: Duration, calls: Arc<Calls>) -> Self {
        Self {
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            calls,
            expired: false,
        }
    }

    /// Whether the connection has been idle for its timeout; if not, wakes
    /// `cx` when it may have been.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        while !self.expired {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return false;
            }
            let now = Instant::now();
            match self.calls.idle_since() {
                Some(since) if since + self.timeout <= now => {
                    tracing::debug!(timeout = ?self.timeout, "closing a connection idle for its timeout");
                    self.expired = true;
                }
                Some(since) => self.sleep.as_mut().reset(since + self.timeout),
                None => self.sleep.as_mut().reset(now + self.timeout),
            }
        }
        true
    }
}
