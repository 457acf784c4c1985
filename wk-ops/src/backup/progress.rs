//! Progress of a long transfer: an indicatif bar when stderr is a terminal, otherwise a plain
//! log line every 10 % (or every 10 s without a known size), so timers and CI logs stay
//! readable.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// One transfer's progress.
pub struct Progress {
    label: String,
    total: Option<u64>,
    done: u64,
    bar: Option<ProgressBar>,
    next_percent: u64,
    last_line: Instant,
}

impl Progress {
    /// `total` bytes (when known) of `label`.
    pub fn new(label: &str, total: Option<u64>) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = match total {
                Some(t) => ProgressBar::new(t),
                None => ProgressBar::new_spinner(),
            };
            let style = ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(label.to_string());
            bar
        });
        Progress {
            label: label.into(),
            total,
            done: 0,
            bar,
            next_percent: 10,
            last_line: Instant::now(),
        }
    }

    /// `n` more bytes done.
    pub fn inc(&mut self, n: u64) {
        self.done += n;
        if let Some(bar) = &self.bar {
            bar.inc(n);
            return;
        }
        match self.total {
            Some(t) if t > 0 => {
                let percent = self.done.saturating_mul(100) / t;
                if percent >= self.next_percent && self.done < t {
                    eprintln!("{}: {percent}% ({} of {} bytes)", self.label, self.done, t);
                    self.next_percent = (percent / 10 + 1) * 10;
                }
            }
            _ => {
                if self.last_line.elapsed() >= Duration::from_secs(10) {
                    eprintln!("{}: {} bytes", self.label, self.done);
                    self.last_line = Instant::now();
                }
            }
        }
    }

    /// Clears the bar (the caller prints the result).
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
