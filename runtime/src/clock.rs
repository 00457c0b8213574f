//! The one clock of the servers: every check in `tessera-core` takes `now`
//! as an argument, and this is where the servers read it.

use std::time::{SystemTime, UNIX_EPOCH};

/// The current time in Unix seconds (0 before 1970, `i64::MAX` past the
/// year 292 billion: neither is a time a check should see).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_clock_reads_a_time_after_this_code_was_written() {
        // 2026-01-01T00:00:00Z: a clock before it is broken, not early.
        assert!(super::unix_now() > 1_767_225_600);
    }
}
