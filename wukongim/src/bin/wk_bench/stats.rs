//! Counters and latency samples of the protocol benchmark. Each client task fills its own
//! [`Local`] (no sharing on the hot path); they are merged once at the end, the samples sorted
//! and read at p50/p99/p999 (exact percentiles of every sample in the measured window).

use serde::Serialize;
use std::time::Duration;

/// What one client saw inside the measured window.
#[derive(Debug, Default)]
pub struct Local {
    pub sends: u64,
    pub sendacks: u64,
    /// SENDACKs with a reason other than Success.
    pub send_errors: u64,
    pub recvs: u64,
    /// RECVs whose msgKey did not verify or whose payload did not decrypt.
    pub recv_errors: u64,
    /// send→SENDACK, microseconds.
    pub ack_us: Vec<u32>,
    /// send→RECV (send instant carried in clientMsgNo), microseconds.
    pub recv_us: Vec<u32>,
    /// The connection closed or failed before the end.
    pub dropped: bool,
}

impl Local {
    pub fn merge(&mut self, o: Local) {
        self.sends += o.sends;
        self.sendacks += o.sendacks;
        self.send_errors += o.send_errors;
        self.recvs += o.recvs;
        self.recv_errors += o.recv_errors;
        self.ack_us.extend(o.ack_us);
        self.recv_us.extend(o.recv_us);
        self.dropped |= o.dropped;
    }
}

/// CPU seconds (user + system) used so far by the processes `pids`, from `/proc/<pid>/stat`
/// (fields 14 and 15, in clock ticks of 1/100 s — USER_HZ on Linux); `None` if any is unreadable.
pub fn cpu_seconds(pids: &[u32]) -> Option<f64> {
    let mut ticks = 0u64;
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) may contain spaces; fields after it are space separated.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        ticks += f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    }
    Some(ticks as f64 / 100.0)
}

pub fn micros(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

/// p50/p99/p999/max of a sample set, in milliseconds.
#[derive(Debug, Default, Serialize, Clone, Copy)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    pub fn of(samples: &mut [u32]) -> Percentiles {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_unstable();
        let at = |p: f64| {
            let i = ((samples.len() as f64 * p) as usize).min(samples.len() - 1);
            samples[i] as f64 / 1000.0
        };
        Percentiles {
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: samples[samples.len() - 1] as f64 / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_ramp() {
        let mut s: Vec<u32> = (1..=1000).rev().map(|i| i * 1000).collect();
        let p = Percentiles::of(&mut s);
        assert_eq!(p.p50_ms, 501.0);
        assert_eq!(p.p99_ms, 991.0);
        assert_eq!(p.p999_ms, 1000.0);
        assert_eq!(p.max_ms, 1000.0);
        assert_eq!(Percentiles::of(&mut []).p99_ms, 0.0);
    }

    #[test]
    fn cpu_of_this_process_is_readable() {
        assert!(cpu_seconds(&[std::process::id()]).is_some());
        assert_eq!(cpu_seconds(&[]), Some(0.0));
    }
}
