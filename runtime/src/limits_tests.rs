//! The limits' pieces in isolation: the refusal log's budget and what it
//! writes, the `[connections]` section's defaults and bounds.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

#[test]
fn past_the_burst_refusals_are_not_logged_and_their_number_is_reported_once() {
    let start = Instant::now();
    let mut budget = LogBudget::new(start);
    let logged = (0..10_000)
        .filter(|_| budget.spend(start + Duration::from_secs(1)).log)
        .count();
    assert_eq!(logged, LOG_BURST as usize);
    let next = budget.spend(start + LOG_WINDOW);
    assert_eq!(
        next,
        LogDecision {
            log: true,
            suppressed_before: 10_000 - u64::from(LOG_BURST)
        }
    );
    // Reported once only.
    assert_eq!(budget.spend(start + LOG_WINDOW).suppressed_before, 0);
}

/// Counts the log lines written, by level.
#[derive(Default)]
struct Lines {
    info: AtomicUsize,
    warn: AtomicUsize,
}

struct Counting(Arc<Lines>);

impl tracing::Subscriber for Counting {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        match *event.metadata().level() {
            tracing::Level::INFO => self.0.info.fetch_add(1, Ordering::SeqCst),
            tracing::Level::WARN => self.0.warn.fetch_add(1, Ordering::SeqCst),
            _ => 0,
        };
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn a_flood_of_refusals_is_counted_in_full_and_logged_in_a_few_lines() {
    let lines = Arc::new(Lines::default());
    let refusals = Refusals::default();
    let peer: std::net::SocketAddr = ([192, 0, 2, 1], 4000).into();
    let start = Instant::now();
    tracing::subscriber::with_default(Counting(Arc::clone(&lines)), || {
        for _ in 0..5_000 {
            refusals.refused_at(start, "tls", peer, &"bad certificate");
        }
    });
    assert_eq!(refusals.count("tls"), 5_000);
    assert_eq!(lines.info.load(Ordering::SeqCst), LOG_BURST as usize);
    assert_eq!(lines.warn.load(Ordering::SeqCst), 0);
    // The next window starts with one line saying how many were not
    // logged, then the refusal itself.
    tracing::subscriber::with_default(Counting(Arc::clone(&lines)), || {
        refusals.refused_at(start + LOG_WINDOW, "timeout", peer, &"timed out");
    });
    assert_eq!(lines.warn.load(Ordering::SeqCst), 1);
    assert_eq!(lines.info.load(Ordering::SeqCst), LOG_BURST as usize + 1);
    assert_eq!(refusals.count("timeout"), 1);
}

#[test]
fn the_connections_section_defaults_and_bounds() {
    let parse = |text: &str| {
        toml::from_str::<ConnectionsFile>(text)
            .map_err(|e| e.to_string())
            .and_then(|f| f.limits(7))
    };
    let d = parse("").unwrap();
    assert_eq!(d.per_peer, 7);
    assert_eq!(d.max_concurrent_streams, DEFAULT_MAX_CONCURRENT_STREAMS);
    assert_eq!(d.idle_timeout, DEFAULT_IDLE_TIMEOUT);
    assert_eq!(d.tcp_keepalive, DEFAULT_TCP_KEEPALIVE);
    for (text, why) in [
        ("tcp_keepalive_secs = 0", "tcp_keepalive_secs"),
        ("tcp_keepalive_secs = 7201", "tcp_keepalive_secs"),
        ("max_concurrent_streams = 0", "max_concurrent_streams"),
        ("max_watches_per_caller = 0", "max_watches_per_caller"),
        ("idle_timeout_secs = 0", "idle_timeout_secs"),
        ("keepalive_secs = 3601", "keepalive_secs"),
        ("keepalive_timeout_secs = 0", "keepalive_timeout_secs"),
        ("listen_backlog = 1", "listen_backlog"),
        ("idle_timeout = 5", "idle_timeout"),
    ] {
        let e = parse(text).unwrap_err();
        assert!(e.contains(why), "{text}: {e}");
    }
    let s = parse("max_concurrent_streams = 8\nidle_timeout_secs = 2\ntcp_keepalive_secs = 15")
        .unwrap();
    assert_eq!(s.tcp_keepalive, Duration::from_secs(15));
    assert_eq!(s.max_concurrent_streams, 8);
    assert_eq!(s.idle_timeout, Duration::from_secs(2));
}
