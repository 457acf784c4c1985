//! Log setup: human format on a terminal, JSON with `--log-format json`, level from `logLevel`
//! (or `WK_LOGLEVEL`), optionally appended to `logFile`.

use crate::config::Config;
use anyhow::{Context, Result};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber.
pub fn init(config: &Config, format: &str) -> Result<()> {
    let filter = EnvFilter::try_new(&config.log_level)
        .with_context(|| format!("logLevel `{}`", config.log_level))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(true);
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let result = match (&config.log_file, format) {
        (Some(path), fmt) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating log directory {}", dir.display()))?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening logFile {}", path.display()))?;
            let writer = std::sync::Mutex::new(file);
            if fmt == "json" {
                builder.json().with_writer(writer).with_ansi(false).try_init()
            } else {
                builder.with_writer(writer).with_ansi(false).try_init()
            }
        }
        (None, "json") => builder.json().with_writer(std::io::stderr).try_init(),
        (None, _) => builder.with_writer(std::io::stderr).with_ansi(tty).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install logger: {e}"))
}
