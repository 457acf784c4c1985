//! Loopback ports for test servers that no other test process can be handed at the same time.
//!
//! Binding port 0 and closing the listener ("a free port a moment ago") races on a busy machine:
//! the kernel hands the same ephemeral port to the next `bind(0)` or outgoing connection of any
//! other test process, and the server then fails with "Address already in use" (seen in CI).
//! Here ports come from below the kernel's ephemeral range (`ip_local_port_range`), so the kernel
//! never gives them out by itself, and each one is claimed across processes by creating
//! `<temp>/wk-test-ports/<port>` exclusively. Claims older than [`STALE`] are taken back (a test
//! run never lasts that long), so the pool does not run dry across runs.

use std::io;
use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// A claim this old belongs to a finished run.
const STALE: Duration = Duration::from_secs(3 * 3600);
/// Lowest port handed out.
const FLOOR: u16 = 10_000;
/// Width of the pool below the ephemeral range.
const WIDTH: u16 = 20_000;

fn claims_dir() -> PathBuf {
    std::env::temp_dir().join("wk-test-ports")
}

/// The first port of the kernel's ephemeral range (32768 when it cannot be read).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// The pool: `[low, high)`, below the ephemeral range.
fn pool() -> (u16, u16) {
    let high = ephemeral_start().max(FLOOR + 1_000);
    (high.saturating_sub(WIDTH).max(FLOOR), high)
}

/// Claims `port` for this process unless another live claim holds it.
fn claim(port: u16) -> bool {
    let dir = claims_dir();
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(port.to_string());
    let create = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .is_ok()
    };
    if create() {
        return true;
    }
    let stale = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age > STALE);
    stale && std::fs::remove_file(&path).is_ok() && create()
}

/// A start offset that differs between processes and calls, so concurrent tests do not all
/// probe the same ports first.
fn start_offset(width: u32) -> u32 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mixed = (std::process::id().wrapping_mul(2_654_435_761)) ^ nanos.wrapping_mul(40_503);
    mixed % width
}

/// A port on `ip` that is free now, outside the kernel's ephemeral range and claimed for this
/// test process alone (see the module doc). Falls back to a kernel-chosen port only if the whole
/// pool is taken.
pub fn reserve(ip: &str) -> io::Result<u16> {
    let (low, high) = pool();
    let width = u32::from(high - low);
    let start = start_offset(width);
    for i in 0..width {
        let port = low + ((start + i) % width) as u16;
        if TcpListener::bind((ip, port)).is_ok() && claim(port) {
            return Ok(port);
        }
    }
    Ok(TcpListener::bind((ip, 0))?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ports_are_distinct_bindable_and_outside_the_ephemeral_range() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let p = reserve("127.0.0.1").unwrap();
            assert!(p < ephemeral_start(), "{p} is in the ephemeral range");
            assert!(seen.insert(p), "{p} handed out twice");
            TcpListener::bind(("127.0.0.1", p)).unwrap();
        }
    }
}
