//! Process figures from /proc/self only (systemd's `ProcSubset=pid` hides the rest of /proc):
//! resident memory, CPU seconds, open file descriptors.

/// (resident bytes, cpu seconds, open fds); zeros where unreadable.
pub fn read() -> (u64, f64, u64) {
    let page = 4096u64;
    let ticks = 100.0; // USER_HZ on Linux
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|p| p * page)
        .unwrap_or(0);
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
    (rss, cpu, fds)
}
