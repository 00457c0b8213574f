//! Presenting times and durations to people.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The current time in Unix seconds (the servers' clock).
pub fn now() -> i64 {
    tessera_runtime::clock::unix_now()
}

/// A Unix time as RFC 3339 UTC, or the raw number if out of range.
pub fn time(secs: i64) -> String {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| secs.to_string())
}

/// `s` cut to at most `max` characters, the last an ellipsis when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}
