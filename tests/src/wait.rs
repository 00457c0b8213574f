//! Waiting in tests: try a probe, pause, try again, and give up after a
//! bound with a message that names what was awaited and for how long.
//!
//! The bound only ends a wait that would otherwise hang: it is never a timed
//! assertion, so bounds are generous (seconds where the wait takes
//! milliseconds). A probe answers `bool`, `Option<T>` (ready with a value)
//! or `Result<T, E>` (not ready yet, and why: the last `E` goes into the
//! failure message).
//!
//! ```ignore
//! wait_until("the node to listen", Duration::from_secs(20), || {
//!     TcpStream::connect(addr).is_ok()
//! });
//! let list = wait_until_async("list 2", Duration::from_secs(20), async || {
//!     held(&gateway).await.filter(|l| l.sequence() >= 2)
//! })
//! .await;
//! ```
//!
//! One file for both test trees: the tessera-tests library exports it as
//! `tessera_tests::wait`, and the CLI's tests (which do not depend on
//! tessera-tests) include the same file with `#[path]` from
//! `cli/tests/common/mod.rs`. It needs only std and tokio.

use std::fmt::Debug;
use std::time::{Duration, Instant};

/// How long a wait pauses between tries unless told otherwise.
pub const EVERY: Duration = Duration::from_millis(50);

/// What a probe answers.
pub trait Ready {
    /// What a ready probe gives.
    type Value;
    /// The value once ready; otherwise what was seen, if anything worth
    /// printing.
    fn ready(self) -> Result<Self::Value, Option<String>>;
}

impl Ready for bool {
    type Value = ();
    fn ready(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

impl<T> Ready for Option<T> {
    type Value = T;
    fn ready(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: Debug> Ready for Result<T, E> {
    type Value = T;
    fn ready(self) -> Result<T, Option<String>> {
        self.map_err(|e| Some(format!("{e:?}")))
    }
}

/// A wait that ran out: what was awaited, for how long, and what the probe
/// last saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    /// What was awaited.
    pub what: String,
    /// How long the wait lasted.
    pub waited: Duration,
    /// The probe's last answer, when it said why it was not ready.
    pub last: Option<String>,
}

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "waited {:?} for {}", self.waited, self.what)?;
        match &self.last {
            Some(last) => write!(f, "; last seen: {last}"),
            None => write!(f, "; it never came"),
        }
    }
}

impl std::error::Error for TimedOut {}

/// A wait for `what`, given up after `timeout`.
#[derive(Debug, Clone)]
pub struct Wait {
    what: String,
    timeout: Duration,
    every: Duration,
}

/// A wait for `what` (named in the failure message, e.g. "the node to
/// listen on 127.0.0.1:4000"), given up after `timeout`, trying every
/// [`EVERY`].
pub fn wait(what: impl Into<String>, timeout: Duration) -> Wait {
    Wait {
        what: what.into(),
        timeout,
        every: EVERY,
    }
}

impl Wait {
    /// Pauses `every` between tries instead of [`EVERY`].
    pub fn every(mut self, every: Duration) -> Self {
        self.every = every;
        self
    }

    fn timed_out(&self, started: Instant, last: Option<String>) -> TimedOut {
        TimedOut {
            what: self.what.clone(),
            waited: started.elapsed(),
            last,
        }
    }

    /// Tries `probe` until it is ready (its value) or the time is up
    /// ([`TimedOut`]). The probe is tried at least once, and once more after
    /// the bound has passed.
    pub fn poll<R: Ready>(&self, mut probe: impl FnMut() -> R) -> Result<R::Value, TimedOut> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        loop {
            let last = match probe().ready() {
                Ok(value) => return Ok(value),
                Err(last) => last,
            };
            if Instant::now() >= deadline {
                return Err(self.timed_out(started, last));
            }
            std::thread::sleep(self.every);
        }
    }

    /// [`Wait::poll`], failing the test when the time is up.
    #[track_caller]
    pub fn until<R: Ready>(&self, probe: impl FnMut() -> R) -> R::Value {
        self.poll(probe).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Wait::poll`] for an async probe, pausing with tokio's timer.
    pub async fn poll_async<R: Ready>(
        &self,
        mut probe: impl AsyncFnMut() -> R,
    ) -> Result<R::Value, TimedOut> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        loop {
            let last = match probe().await.ready() {
                Ok(value) => return Ok(value),
                Err(last) => last,
            };
            if Instant::now() >= deadline {
                return Err(self.timed_out(started, last));
            }
            tokio::time::sleep(self.every).await;
        }
    }

    /// [`Wait::poll_async`], failing the test when the time is up.
    pub async fn until_async<R: Ready>(&self, probe: impl AsyncFnMut() -> R) -> R::Value {
        self.poll_async(probe)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Waits until `probe` is ready, trying every [`EVERY`]; fails the test
/// after `timeout` naming `what`.
#[track_caller]
pub fn wait_until<R: Ready>(what: &str, timeout: Duration, probe: impl FnMut() -> R) -> R::Value {
    wait(what, timeout).until(probe)
}

/// [`wait_until`] for an async probe.
pub async fn wait_until_async<R: Ready>(
    what: &str,
    timeout: Duration,
    probe: impl AsyncFnMut() -> R,
) -> R::Value {
    wait(what, timeout).until_async(probe).await
}
