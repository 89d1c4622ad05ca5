//! The standard `process_*` metrics of the daemon's own process (CPU time,
//! memory, threads, open files, start time), read from `/proc/self` at each
//! scrape, under the names every Prometheus client exports them by, so
//! dashboards made for other services work as they are.
//!
//! Read here rather than through the `prometheus` crate's `process` feature:
//! that one pulled in `procfs` and `rustix`, some 25 s of a fresh build, for
//! these few numbers. A file that cannot be read or parsed leaves its metrics
//! at their last value; nothing here panics on what the kernel wrote.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Gauge, IntGauge};

/// The process metrics, refreshed from `/proc/self` whenever they are
/// collected.
pub(crate) struct ProcessMetrics {
    cpu_seconds: Counter,
    open_fds: IntGauge,
    max_fds: IntGauge,
    virtual_bytes: IntGauge,
    resident_bytes: IntGauge,
    start_time: Gauge,
    threads: IntGauge,
}

/// What `/proc/self/stat` says of the process, in its own units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    /// User and system CPU time, in clock ticks.
    cpu_ticks: u64,
    threads: i64,
    /// When the process started, in clock ticks after boot.
    start_ticks: u64,
    virtual_bytes: i64,
}

/// Parse `/proc/self/stat`. The command name (field 2) is in parentheses and
/// may itself hold spaces and parentheses: fields are counted after the last
/// `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let (_, after_name) = text.rsplit_once(')')?;
    // Field 3 (the state) is the first after the name.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |number: usize| fields.get(number.checked_sub(3)?).copied();
    let number = |number: usize| field(number)?.parse::<u64>().ok();
    Some(Stat {
        cpu_ticks: number(14)?.checked_add(number(15)?)?,
        threads: i64::try_from(number(20)?).ok()?,
        start_ticks: number(22)?,
        virtual_bytes: i64::try_from(number(23)?).ok()?,
    })
}

/// A `Key: value kB` line of `/proc/self/status`, in bytes.
fn status_bytes(status: &str, key: &str) -> Option<i64> {
    let line = status.lines().find(|line| line.starts_with(key))?;
    let value = line.get(key.len()..)?.trim_start_matches(':').trim();
    let kilobytes: i64 = value.strip_suffix("kB")?.trim().parse().ok()?;
    kilobytes.checked_mul(1024)
}

/// The soft limit on open files, from `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<i64> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.get("Max open files".len()..)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// When the machine booted, in Unix seconds, from `/proc/stat`.
fn boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// Clock ticks per second (`USER_HZ`), the unit of `/proc/self/stat`'s times.
fn ticks_per_second() -> Option<f64> {
    // SAFETY: sysconf takes a constant and returns a number (-1 when the
    // name is unknown); it touches no memory of ours.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then_some(ticks as f64)
}

impl ProcessMetrics {
    pub(crate) fn new() -> Result<ProcessMetrics, prometheus::Error> {
        Ok(ProcessMetrics {
            cpu_seconds: Counter::new(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
            )?,
            open_fds: IntGauge::new("process_open_fds", "Number of open file descriptors.")?,
            max_fds: IntGauge::new(
                "process_max_fds",
                "Maximum number of open file descriptors.",
            )?,
            virtual_bytes: IntGauge::new(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
            )?,
            resident_bytes: IntGauge::new(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
            )?,
            start_time: Gauge::new(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
            )?,
            threads: IntGauge::new("process_threads", "Number of OS threads in the process.")?,
        })
    }

    /// Read `/proc/self` into the metrics.
    fn refresh(&self) {
        let ticks = ticks_per_second();
        if let Some(stat) = read("/proc/self/stat").as_deref().and_then(parse_stat) {
            if let Some(ticks) = ticks {
                let total = stat.cpu_ticks as f64 / ticks;
                let grown = total - self.cpu_seconds.get();
                if grown > 0.0 {
                    self.cpu_seconds.inc_by(grown);
                }
                // The start never moves: read once, at the first scrape
                // that can.
                if self.start_time.get() == 0.0
                    && let Some(boot) = read("/proc/stat").as_deref().and_then(boot_time)
                {
                    self.start_time
                        .set(boot as f64 + stat.start_ticks as f64 / ticks);
                }
            }
            self.threads.set(stat.threads);
            self.virtual_bytes.set(stat.virtual_bytes);
        }
        if let Some(resident) = read("/proc/self/status")
            .as_deref()
            .and_then(|status| status_bytes(status, "VmRSS"))
        {
            self.resident_bytes.set(resident);
        }
        if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
            // The directory's own descriptor, open while it is read, is one.
            let open = entries.count().saturating_sub(1);
            self.open_fds.set(i64::try_from(open).unwrap_or(i64::MAX));
        }
        if let Some(limit) = read("/proc/self/limits")
            .as_deref()
            .and_then(max_open_files)
        {
            self.max_fds.set(limit);
        }
    }

    fn parts(&self) -> [&dyn Collector; 7] {
        [
            &self.cpu_seconds,
            &self.open_fds,
            &self.max_fds,
            &self.virtual_bytes,
            &self.resident_bytes,
            &self.start_time,
            &self.threads,
        ]
    }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

impl Collector for ProcessMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.parts().into_iter().flat_map(Collector::desc).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.refresh();
        self.parts()
            .into_iter()
            .flat_map(Collector::collect)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        // A command name with spaces and parentheses of its own.
        let line = "4242 (tillsyn (a) b) S 1 4242 4242 0 -1 4194560 1500 0 0 0 \
                    250 125 0 0 20 0 7 0 98765 123456789 2048 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                cpu_ticks: 375,
                threads: 7,
                start_ticks: 98765,
                virtual_bytes: 123_456_789,
            })
        );
        assert_eq!(parse_stat("4242 (tillsyn) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn status_limits_and_boot_time_parse_and_refuse_garbage() {
        let status = "Name:\ttillsyn\nVmRSS:\t   91240 kB\nThreads:\t7\n";
        assert_eq!(status_bytes(status, "VmRSS"), Some(91_240 * 1024));
        assert_eq!(status_bytes(status, "VmSwap"), None);
        assert_eq!(status_bytes("VmRSS:\tlots\n", "VmRSS"), None);
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(max_open_files("Max open files unlimited"), None);
        assert_eq!(
            boot_time("cpu 1 2 3\nbtime 1796600000\n"),
            Some(1_796_600_000)
        );
        assert_eq!(boot_time("cpu 1 2 3\n"), None);
    }

    #[test]
    fn this_process_is_measured() {
        let metrics = ProcessMetrics::new().expect("metrics");
        // Burn CPU until a clock tick of it shows (bounded by rounds, not time).
        let cpu_seconds = |families: &[MetricFamily]| {
            families
                .iter()
                .find(|family| family.name() == "process_cpu_seconds_total")
                .map(|family| family.get_metric()[0].get_counter().get_value())
        };
        let mut sum = 0u64;
        for _ in 0..10_000 {
            if cpu_seconds(&metrics.collect()).is_some_and(|seconds| seconds > 0.0) {
                break;
            }
            for n in 0..1_000_000u64 {
                sum = std::hint::black_box(sum.wrapping_add(n * n));
            }
        }
        assert_ne!(sum, 1);
        let families = metrics.collect();
        let value = |name: &str| -> f64 {
            let family = families
                .iter()
                .find(|family| family.name() == name)
                .expect("every process metric is collected");
            let metric = &family.get_metric()[0];
            if name.ends_with("_total") {
                metric.get_counter().get_value()
            } else {
                metric.get_gauge().get_value()
            }
        };
        assert_eq!(families.len(), 7);
        assert!(value("process_resident_memory_bytes") > 1e6);
        assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
        assert!(value("process_threads") >= 1.0);
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        assert!(value("process_cpu_seconds_total") > 0.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        let started = value("process_start_time_seconds");
        assert!(
            started <= now + 1.0 && started > now - 86_400.0,
            "{started} {now}"
        );
        // A second collection never makes the counter go back.
        let before = value("process_cpu_seconds_total");
        let after = cpu_seconds(&metrics.collect()).expect("counter");
        assert!(after >= before);
    }
}
