//! Log setup: human format on a terminal, JSON with `--log-format json`, level from `logLevel`
//! (or `WK_LOGLEVEL`), optionally appended to `logFile`, which is reopened on SIGHUP so
//! logrotate can move it away.

use crate::config::Config;
use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// A log file that can be reopened at the same path.
#[derive(Clone)]
pub struct LogFile {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl LogFile {
    fn open(path: &Path) -> std::io::Result<LogFile> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(LogFile {
            path: path.to_path_buf(),
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// Reopens the path (after logrotate renamed the old file).
    pub fn reopen(&self) -> std::io::Result<()> {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        *self.file.lock().unwrap_or_else(|e| e.into_inner()) = f;
        Ok(())
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

impl<'a> MakeWriter<'a> for LogFile {
    type Writer = LogFile;
    fn make_writer(&'a self) -> LogFile {
        self.clone()
    }
}

static LOG_FILE: OnceLock<LogFile> = OnceLock::new();

/// Installs the global subscriber.
pub fn init(config: &Config, format: &str) -> Result<()> {
    let filter = EnvFilter::try_new(&config.log_level)
        .with_context(|| format!("logLevel `{}`", config.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true);
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let result = match (&config.log_file, format) {
        (Some(path), fmt) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating log directory {}", dir.display()))?;
            }
            let file = LogFile::open(path)
                .with_context(|| format!("opening logFile {}", path.display()))?;
            let _ = LOG_FILE.set(file.clone());
            if fmt == "json" {
                builder.json().with_writer(file).with_ansi(false).try_init()
            } else {
                builder.with_writer(file).with_ansi(false).try_init()
            }
        }
        (None, "json") => builder.json().with_writer(std::io::stderr).try_init(),
        (None, _) => builder
            .with_writer(std::io::stderr)
            .with_ansi(tty)
            .try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install logger: {e}"))
}

/// Reopens `logFile` on every SIGHUP.
pub async fn reopen_on_sighup() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        if let Some(f) = LOG_FILE.get() {
            match f.reopen() {
                Ok(()) => tracing::info!(path = %f.path.display(), "log file reopened (SIGHUP)"),
                Err(e) => eprintln!("cannot reopen log file {}: {e}", f.path.display()),
            }
        }
    }
}
