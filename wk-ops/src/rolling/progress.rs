//! What the operator sees while a roll runs: an indicatif bar with the current step when
//! stdout is a terminal, plain timestamped lines otherwise (logs, CI, pipes).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// Progress of a roll over `total` nodes.
pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
}

impl Progress {
    /// A bar on a terminal, plain lines otherwise.
    pub fn new(total: usize) -> Progress {
        let bar = std::io::stdout().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{pos}/{len}] {elapsed:>4} {wide_msg}")
                    .expect("a valid progress template"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            bar,
            started: Instant::now(),
        }
    }

    /// The current step of the current node.
    pub fn step(&self, node: u64, what: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(format!("node {node}: {what}")),
            None => self.line(&format!("node {node}: {what}")),
        }
    }

    /// A finished node.
    pub fn node_done(&self, node: u64, what: &str) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
        self.line(&format!("node {node}: {what}"));
    }

    /// A line kept in the output (above the bar on a terminal).
    pub fn line(&self, text: &str) {
        let line = format!("[{:>6.1}s] {text}", self.started.elapsed().as_secs_f64());
        match &self.bar {
            Some(bar) => bar.println(line),
            None => println!("{line}"),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
