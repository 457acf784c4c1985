//! Crash-safe file writes: temp file in the same directory, fsync, rename, fsync the directory;
//! removing the temp files a crash left behind ([`remove_leftovers`]); and [`io_err`], for
//! interfaces that speak `io::Result` (openraft's storage, the transports).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Writes `data` to `path` atomically with the given permission bits.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Removes the files directly in `dir` whose name `is_leftover` accepts (temp files a crash left
/// half-written), logging each as `what`. Best effort: an unreadable directory removes nothing.
pub fn remove_leftovers(dir: &Path, is_leftover: impl Fn(&str) -> bool, what: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if is_leftover(&name) {
            tracing::info!(file = %name, "removing {what} left by a crash");
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Any error as an `io::Error` (kind `Other`), keeping its message.
pub fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}
