//! The standard process metrics (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_virtual_memory_bytes`,
//! `process_open_fds`, `process_max_fds`, `process_start_time_seconds`),
//! read from `/proc/self` at each scrape, under the names every Prometheus
//! client library uses, so stock dashboards and alerts work unchanged; and
//! `tessera_build_info`, which names the version and commit.
//!
//! On a system without `/proc` (not Linux) the process families are simply
//! absent: a missing sample never reads as zero memory.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// `/proc`'s clock ticks per second (USER_HZ), fixed at 100 on Linux for
/// every architecture's user-visible interfaces.
const TICKS_PER_SECOND: f64 = 100.0;

/// What `/proc/self` says of this process.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessSample {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident set size, in bytes.
    pub resident_bytes: i64,
    /// Virtual memory size, in bytes.
    pub virtual_bytes: i64,
    /// Open file descriptors.
    pub open_fds: i64,
    /// The soft limit on open file descriptors, if it is not unlimited.
    pub max_fds: Option<i64>,
    /// When the process started, in Unix seconds.
    pub start_time: f64,
}

impl ProcessSample {
    /// Reads `/proc/self`; `None` where there is no such file system.
    pub fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count();
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let page = 4096; // the page size of every Linux target tessera ships for
        parse(&stat, &boot, &limits, page, open_fds)
    }
}

/// The sample from the text of `/proc/self/stat`, `/proc/stat` and
/// `/proc/self/limits`, given the page size and the number of open fds.
fn parse(
    stat: &str,
    boot: &str,
    limits: &str,
    page: i64,
    open_fds: usize,
) -> Option<ProcessSample> {
    // The command name (field 2) is in parentheses and may hold spaces or
    // parentheses itself: the fields proper start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name, field 3 (state) is index 0, so field N is N - 3.
    let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
    let utime = field(14)?;
    let stime = field(15)?;
    let start_ticks = field(22)?;
    let vsize = field(23)?;
    let rss_pages = field(24)?;
    let btime: f64 = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let max_fds = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok());
    Some(ProcessSample {
        cpu_seconds: (utime + stime) / TICKS_PER_SECOND,
        resident_bytes: (rss_pages as i64).saturating_mul(page),
        virtual_bytes: vsize as i64,
        open_fds: i64::try_from(open_fds).unwrap_or(i64::MAX),
        max_fds,
        start_time: btime + start_ticks / TICKS_PER_SECOND,
    })
}

/// Collects [`ProcessSample`] at each scrape. Registered without the
/// `tessera_` prefix.
#[derive(Debug, Default)]
pub struct ProcessCollector;

impl prometheus_client::collector::Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = ProcessSample::read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(s.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let mut gauges = vec![
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                s.resident_bytes as f64,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                s.virtual_bytes as f64,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                s.open_fds as f64,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
                s.start_time,
            ),
        ];
        if let Some(max) = s.max_fds {
            gauges.push((
                "process_max_fds",
                "Maximum number of open file descriptors",
                max as f64,
            ));
        }
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const STAT: &str = "4242 (tessera (x) y) S 1 4242 4242 0 -1 4194560 2000 0 0 0 \
                        250 50 0 0 20 0 9 0 123400 104857600 2560 18446744073709551615";

    #[test]
    fn a_stat_line_with_parentheses_in_the_name_is_read_from_the_last_one() {
        let s = parse(STAT, "cpu 1 2 3\nbtime 1700000000\n", "", 4096, 12).unwrap();
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.resident_bytes, 2560 * 4096);
        assert_eq!(s.virtual_bytes, 104_857_600);
        assert_eq!(s.open_fds, 12);
        assert_eq!(s.start_time, 1_700_000_000.0 + 1234.0);
        assert_eq!(s.max_fds, None);
    }

    #[test]
    fn the_soft_open_files_limit_is_read_and_unlimited_is_absent() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        let s = parse(STAT, "btime 1\n", limits, 4096, 3).unwrap();
        assert_eq!(s.max_fds, Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(
            parse(STAT, "btime 1\n", unlimited, 4096, 3)
                .unwrap()
                .max_fds,
            None
        );
    }

    #[test]
    fn a_truncated_or_garbage_stat_gives_no_sample_rather_than_zeros() {
        assert_eq!(
            parse("4242 (tessera) S 1 2", "btime 1\n", "", 4096, 1),
            None
        );
        assert_eq!(parse("no parenthesis", "btime 1\n", "", 4096, 1), None);
        assert_eq!(parse(STAT, "no boot time\n", "", 4096, 1), None);
    }

    #[test]
    fn this_process_reads_as_a_live_process() {
        if let Some(s) = ProcessSample::read() {
            assert!(s.resident_bytes > 0 && s.open_fds > 0 && s.start_time > 1.0e9);
        }
    }
}
