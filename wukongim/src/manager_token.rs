//! The manager token in force (`managerToken` or `managerTokenFile`). With a file it is
//! re-read on every SIGHUP, so an operator rotates it by replacing the file on each node and
//! signalling — no restart, no dropped client connections. A replacement that cannot be used
//! (missing, empty, readable by others, not UTF-8) is logged and the token in force stays: a
//! bad edit never opens the API.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// The current manager token, shared by the HTTP API and the gateway's manager CONNECT.
pub struct ManagerToken {
    file: Option<PathBuf>,
    current: RwLock<Option<Arc<str>>>,
}

impl ManagerToken {
    /// The token as configured at start (`None`: the API is open).
    pub fn new(token: Option<String>, file: Option<PathBuf>) -> Self {
        ManagerToken {
            file,
            current: RwLock::new(token.map(Arc::from)),
        }
    }

    /// The token in force, if any.
    pub fn get(&self) -> Option<Arc<str>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether `given` is the token in force, compared in constant time. False when no token
    /// is set (callers decide what an unset token means).
    pub fn matches(&self, given: &str) -> bool {
        self.get()
            .is_some_and(|t| crate::secret::ct_eq(t.as_bytes(), given.as_bytes()))
    }

    /// Re-reads `managerTokenFile`. Returns whether the token changed; an unusable file is an
    /// error and leaves the token in force.
    pub fn reload(&self) -> Result<bool, String> {
        let Some(path) = &self.file else {
            return Ok(false);
        };
        let text = crate::secret::read_token_file(path, "managerTokenFile")?;
        if text.is_empty() {
            return Err(format!(
                "managerTokenFile {}: empty (the token in force is kept; an empty file would \
                 open the API)",
                path.display()
            ));
        }
        let mut cur = self.current.write().unwrap_or_else(|e| e.into_inner());
        let changed = cur.as_deref() != Some(text.as_str());
        *cur = Some(Arc::from(text));
        Ok(changed)
    }

    /// Reloads the file on every SIGHUP until `stop` (nothing to do without a file).
    pub async fn reload_on_sighup(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        use tokio::signal::unix::{signal, SignalKind};
        if self.file.is_none() {
            return;
        }
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        loop {
            tokio::select! {
                r = hup.recv() => if r.is_none() { return },
                _ = stop.cancelled() => return,
            }
            match self.reload() {
                Ok(true) => {
                    tracing::info!("managerTokenFile re-read (SIGHUP): new manager token in force")
                }
                Ok(false) => tracing::info!("managerTokenFile re-read (SIGHUP): unchanged"),
                Err(e) => {
                    tracing::error!(error = %e, "managerTokenFile not reloaded; the token in force stays")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(path: &std::path::Path, text: &str, mode: u32) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn reload_takes_a_new_token_and_refuses_bad_files_keeping_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("manager.token");
        write(&f, "first\n", 0o600);
        let t = ManagerToken::new(Some("first".into()), Some(f.clone()));
        assert!(t.matches("first"));
        assert_eq!(t.reload(), Ok(false));

        write(&f, "second\n", 0o600);
        assert_eq!(t.reload(), Ok(true));
        assert!(t.matches("second") && !t.matches("first"));

        for (text, mode, why) in [("", 0o600, "empty"), ("third", 0o644, "mode 0644")] {
            write(&f, text, mode);
            let e = t.reload().unwrap_err();
            assert!(e.contains(why) && e.contains("managerTokenFile"), "{e}");
            assert!(t.matches("second"), "the token in force stays after {why}");
        }
        std::fs::remove_file(&f).unwrap();
        assert!(t.reload().is_err());
        assert!(t.matches("second"));
    }

    #[test]
    fn no_token_matches_nothing() {
        let t = ManagerToken::new(None, None);
        assert!(t.get().is_none() && !t.matches("") && !t.matches("x"));
        assert_eq!(t.reload(), Ok(false));
    }
}
