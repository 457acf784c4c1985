//! Process figures from /proc/self only (systemd's `ProcSubset=pid` hides the rest of /proc):
//! resident memory, CPU seconds, open file descriptors and start time, read at each scrape.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The standard `process_*` families.
#[derive(Debug)]
pub struct Process {
    started: Instant,
}

impl Default for Process {
    fn default() -> Self {
        Process {
            started: Instant::now(),
        }
    }
}

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (rss, cpu, fds) = read();
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
            - self.started.elapsed().as_secs_f64();
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                rss as f64,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                fds as f64,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                start,
            ),
        ];
        for (name, help, v) in gauges {
            let m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(v).encode(m)?;
        }
        let m = encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time in seconds.",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(cpu).encode(m)
    }
}

/// Resident memory of this process in bytes (0 when /proc cannot be read). Cheap: the memory
/// guard polls it, so it must not walk /proc/self/fd (10,000 connections made that walk 4 % of
/// a core on an idle node, bench/connections.sh).
pub fn resident_bytes() -> u64 {
    let page = 4096u64;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|p| p * page)
        .unwrap_or(0)
}

/// (resident bytes, cpu seconds, open fds) for a scrape; zeros where unreadable.
fn read() -> (u64, f64, u64) {
    let ticks = 100.0; // USER_HZ on Linux
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised command name; utime=14, stime=15.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ut: f64 = f.get(11)?.parse().ok()?;
            let st: f64 = f.get(12)?.parse().ok()?;
            Some((ut + st) / ticks)
        })
        .unwrap_or(0.0);
    let fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    (resident_bytes(), cpu, fds)
}
