//! The SSH runner: commands on a node's host through the system OpenSSH client.
//!
//! Why the system `ssh` driven by `tokio::process` rather than `russh` or the `openssh` crate:
//! operators already have `ssh` configured (agents, `~/.ssh/config`, jump hosts, hardware keys)
//! and expect wk-ops to behave exactly like `ssh user@host`; OpenSSH's ControlMaster gives one
//! authenticated connection per host that every later command reuses; and it costs no new
//! dependency. Every option that matters is passed explicitly: `BatchMode=yes` (never a
//! password prompt), `ConnectTimeout`, `StrictHostKeyChecking=yes` (or `accept-new` when the
//! operator opts in), a known_hosts file when one is given, the inventory's user/port/identity
//! with `IdentitiesOnly=yes`. The master connection lives in a private socket directory and is
//! closed when the runner is dropped, so nothing stays behind.
//!
//! `ssh` exits 255 for its own failures; the runner reads its stderr and turns the common ones
//! into [`RemoteError::Auth`] and [`RemoteError::HostKey`] with the fix in the message.

use crate::inventory::Node;
use crate::remote::{run_process, Output, RemoteError, Runner};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// How wk-ops connects to nodes (the same for every node of one run).
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Known-hosts file; None means OpenSSH's defaults (`~/.ssh/known_hosts`).
    pub known_hosts: Option<PathBuf>,
    /// Trust and record the host key of a host seen for the first time (a changed key is
    /// still refused).
    pub accept_new_host_keys: bool,
    /// TCP connect plus SSH handshake.
    pub connect_timeout: Duration,
    /// The `ssh` program.
    pub ssh_program: PathBuf,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            known_hosts: None,
            accept_new_host_keys: false,
            connect_timeout: Duration::from_secs(10),
            ssh_program: PathBuf::from("ssh"),
        }
    }
}

/// Runs commands on one node over SSH, sharing one master connection.
pub struct SshRunner {
    node: u64,
    destination: String,
    args: Vec<String>,
    program: PathBuf,
    /// Holds the ControlMaster socket directory; removed on drop.
    _control: tempfile::TempDir,
}

impl SshRunner {
    /// A runner for `node` with `opts`.
    pub fn new(node: &Node, opts: &RemoteOptions) -> Result<SshRunner, RemoteError> {
        let control = tempfile::Builder::new()
            .prefix("wk-ops-ssh-")
            .tempdir()
            .map_err(|e| RemoteError::Spawn {
                node: node.id,
                command: String::new(),
                reason: format!("cannot create the SSH control directory: {e}"),
            })?;
        let args = ssh_args(node, opts, &control.path().join("master"));
        Ok(SshRunner {
            node: node.id,
            destination: format!("{}@{}", node.ssh.user, node.host),
            args,
            program: opts.ssh_program.clone(),
            _control: control,
        })
    }

    fn command(&self, remote: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .arg(&self.destination)
            .arg("--")
            .arg(format!("sh -c {}", shell_quote(remote)))
            .kill_on_drop(true)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }
}

#[async_trait::async_trait]
impl Runner for SshRunner {
    async fn exec(
        &self,
        command: &str,
        input: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Output, RemoteError> {
        tracing::debug!(node_id = self.node, host = %self.destination, command, "ssh");
        let program = self.program.display().to_string();
        let cmd = self.command(command);
        let out = run_process(self.node, command, &program, cmd, input, timeout).await?;
        if out.status == 255 {
            if let Some(e) = classify(self.node, &self.destination, &out.stderr) {
                return Err(e);
            }
        }
        Ok(out)
    }
    fn node(&self) -> u64 {
        self.node
    }
    /// Streams the file through the SSH channel into a temp name beside `remote`, then renames
    /// it: memory stays bounded whatever the file's size, and no half-written file is left.
    async fn upload(&self, local: &Path, remote: &str) -> Result<(), RemoteError> {
        let tmp = format!("{remote}.wk-upload");
        let command = format!(
            "cat > {t} && sync {t} && mv -f {t} {r}",
            t = shell_quote(&tmp),
            r = shell_quote(remote)
        );
        let fail = |reason: String| RemoteError::Spawn {
            node: self.node,
            command: format!("upload {} to {remote}", local.display()),
            reason,
        };
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(|e| fail(format!("cannot open {}: {e}", local.display())))?;
        let mut cmd = self.command(&command);
        cmd.stdin(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| fail(format!("cannot start {}: {e}", self.program.display())))?;
        if let Some(mut stdin) = child.stdin.take() {
            tokio::io::copy(&mut file, &mut stdin)
                .await
                .map_err(|e| fail(e.to_string()))?;
            stdin.shutdown().await.map_err(|e| fail(e.to_string()))?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if out.status.success() {
            Ok(())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            if let Some(e) = classify(self.node, &self.destination, &stderr) {
                return Err(e);
            }
            Err(RemoteError::Failed {
                node: self.node,
                command,
                status: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr,
            })
        }
    }
}

impl Drop for SshRunner {
    fn drop(&mut self) {
        // Close the master connection (a no-op when none was opened).
        let _ = std::process::Command::new(&self.program)
            .args(&self.args)
            .args(["-O", "exit"])
            .arg(&self.destination)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Every `ssh` option but the destination and the command.
fn ssh_args(node: &Node, opts: &RemoteOptions, control_path: &Path) -> Vec<String> {
    let secs = opts.connect_timeout.as_secs().max(1);
    let mut a: Vec<String> = vec!["-T".into(), "-p".into(), node.ssh.port.0.to_string()];
    let mut o = |kv: String| {
        a.push("-o".into());
        a.push(kv);
    };
    o("BatchMode=yes".into());
    o(format!("ConnectTimeout={secs}"));
    o(format!(
        "StrictHostKeyChecking={}",
        if opts.accept_new_host_keys {
            "accept-new"
        } else {
            "yes"
        }
    ));
    if let Some(kh) = &opts.known_hosts {
        o(format!("UserKnownHostsFile={}", kh.display()));
    }
    o("ControlMaster=auto".into());
    o(format!("ControlPath={}", control_path.display()));
    o("ControlPersist=60".into());
    o("ServerAliveInterval=5".into());
    o("ServerAliveCountMax=3".into());
    o("LogLevel=ERROR".into());
    if let Some(id) = &node.ssh.identity_file {
        o("IdentitiesOnly=yes".into());
        a.push("-i".into());
        a.push(expand_home(id));
    }
    a
}

/// `~/x` → `$HOME/x` (ssh expands `~` itself in config files, not on the command line).
fn expand_home(path: &str) -> String {
    match (path.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) => format!("{}/{rest}", home.trim_end_matches('/')),
        _ => path.to_string(),
    }
}

/// Quotes `s` as one word for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Turns `ssh`'s own failures (exit 255) into typed errors; None for anything else.
fn classify(node: u64, destination: &str, stderr: &str) -> Option<RemoteError> {
    let detail = stderr.trim().to_string();
    if stderr.contains("Permission denied") || stderr.contains("Too many authentication failures") {
        return Some(RemoteError::Auth {
            node,
            destination: destination.into(),
            detail,
        });
    }
    if stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        return Some(RemoteError::HostKey {
            node,
            destination: destination.into(),
            hint: "the host key CHANGED since it was recorded: if the host was reinstalled, \
                   remove the old key with `ssh-keygen -R <host>` and connect again"
                .into(),
            detail,
        });
    }
    if stderr.contains("Host key verification failed") || stderr.contains("host key is known") {
        return Some(RemoteError::HostKey {
            node,
            destination: destination.into(),
            hint: "the host key is not in known_hosts: verify it and add it (ssh-keyscan), \
                   or pass --accept-new-host-keys to trust hosts seen for the first time"
                .into(),
            detail,
        });
    }
    const CONNECT: &[&str] = &[
        "ssh: ",
        "Connection refused",
        "Connection timed out",
        "Connection closed by",
        "Connection reset",
        "kex_exchange_identification",
        "Could not resolve hostname",
        "No route to host",
    ];
    // Otherwise 255 may simply be the remote command's own exit status.
    CONNECT
        .iter()
        .any(|p| stderr.contains(p))
        .then(|| RemoteError::Connect {
            node,
            destination: destination.into(),
            detail,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn ssh_failures_are_classified() {
        let auth = classify(1, "root@h", "root@h: Permission denied (publickey).\r\n");
        assert!(matches!(auth, Some(RemoteError::Auth { .. })), "{auth:?}");
        let unknown = classify(
            1,
            "root@h",
            "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\nHost key verification failed.\n",
        );
        assert!(matches!(unknown, Some(RemoteError::HostKey { .. })));
        let refused = classify(
            1,
            "root@h",
            "ssh: connect to host h port 22: Connection refused",
        );
        assert!(matches!(refused, Some(RemoteError::Connect { .. })));
    }
}
