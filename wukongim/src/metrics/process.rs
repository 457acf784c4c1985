//! Process figures from /proc/self: resident memory, CPU seconds, open file descriptors.

/// (resident bytes, cpu seconds, open fds, start time unix seconds); zeros where unreadable.
pub fn read() -> (u64, f64, u64, f64) {
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
    let (cpu, start_ticks) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised command name; utime=14, stime=15, starttime=22.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ut: f64 = f.get(11)?.parse().ok()?;
            let st: f64 = f.get(12)?.parse().ok()?;
            let start: f64 = f.get(19)?.parse().ok()?;
            Some(((ut + st) / ticks, start))
        })
        .unwrap_or((0.0, 0.0));
    let fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("btime "))
                .and_then(|l| l[6..].trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0);
    (rss, cpu, fds, boot + start_ticks / ticks)
}
