//! Running a command on a node's host: over SSH, or directly on this machine for nodes whose
//! inventory entry says `ssh: { local: true }`. Restore, rolling restart, upgrade, scaling and
//! `check` all go through [`Runner`], so their plan logic can be tested with any runner while
//! every end-to-end test goes through the real thing.

use crate::inventory::Node;
pub use crate::ssh::RemoteOptions;
use std::time::Duration;

/// What a finished command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == 0
    }
}

/// Why a command could not be run or failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("node {node}: `{command}` did not finish within {timeout:?}")]
    Timeout {
        node: u64,
        command: String,
        timeout: Duration,
    },
    #[error("node {node}: cannot run `{command}`: {reason}")]
    Spawn {
        node: u64,
        command: String,
        reason: String,
    },
    #[error("node {node}: SSH authentication as {destination} failed (check ssh.user and ssh.identityFile in the inventory, and the key in the node's authorized_keys): {detail}")]
    Auth {
        node: u64,
        destination: String,
        detail: String,
    },
    #[error("node {node}: SSH to {destination} refused the host key: {hint}\n{detail}")]
    HostKey {
        node: u64,
        destination: String,
        hint: String,
        detail: String,
    },
    #[error("node {node}: cannot connect over SSH to {destination}: {detail}")]
    Connect {
        node: u64,
        destination: String,
        detail: String,
    },
    #[error("node {node}: `{command}` exited with {status}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}")]
    Failed {
        node: u64,
        command: String,
        status: i32,
        stdout: String,
        stderr: String,
    },
}

/// Runs shell commands on one node's host.
#[async_trait::async_trait]
pub trait Runner: Send + Sync {
    /// Runs `command` through `sh -c` on the node's host, `input` (if any) on its stdin; Ok
    /// whatever its exit status. The one method a runner implements to run commands.
    async fn exec(
        &self,
        command: &str,
        input: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Output, RemoteError>;
    /// Runs `command` with no input.
    async fn run(&self, command: &str, timeout: Duration) -> Result<Output, RemoteError> {
        self.exec(command, None, timeout).await
    }
    /// Like [`Runner::run`], with `input` on the command's stdin (uploads).
    async fn run_with_input(
        &self,
        command: &str,
        input: &[u8],
        timeout: Duration,
    ) -> Result<Output, RemoteError> {
        self.exec(command, Some(input), timeout).await
    }
    /// The node this runner drives.
    fn node(&self) -> u64;

    /// Copies the local file `local` to `remote` on the node's host. Runners that cannot copy
    /// files say so.
    async fn upload(&self, local: &std::path::Path, remote: &str) -> Result<(), RemoteError> {
        Err(RemoteError::Spawn {
            node: self.node(),
            command: format!("upload {} to {remote}", local.display()),
            reason: "this runner cannot copy files".into(),
        })
    }

    /// Runs `command` and fails with its output unless it exits 0.
    async fn check(&self, command: &str, timeout: Duration) -> Result<Output, RemoteError> {
        let out = self.run(command, timeout).await?;
        if out.success() {
            Ok(out)
        } else {
            Err(RemoteError::Failed {
                node: self.node(),
                command: command.into(),
                status: out.status,
                stdout: out.stdout,
                stderr: out.stderr,
            })
        }
    }
}

/// Runs commands on this machine.
pub struct LocalRunner {
    pub node: u64,
}

/// Runs a prepared process to its end within `timeout`: `input` (if any) on its stdin, its
/// output captured. `command` and `program` name it in errors. Shared by the local and the
/// SSH runner.
pub(crate) async fn run_process(
    node: u64,
    command: &str,
    program: &str,
    mut cmd: tokio::process::Command,
    input: Option<&[u8]>,
    timeout: Duration,
) -> Result<Output, RemoteError> {
    use std::process::Stdio;
    use tokio::io::AsyncWriteExt;
    cmd.kill_on_drop(true)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let spawn_err = |e: std::io::Error| RemoteError::Spawn {
        node,
        command: command.into(),
        reason: format!("cannot run {program}: {e}"),
    };
    let mut child = cmd.spawn().map_err(spawn_err)?;
    let work = async {
        if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
            stdin.write_all(data).await?;
            stdin.shutdown().await?;
        }
        child.wait_with_output().await
    };
    let out = tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| RemoteError::Timeout {
            node,
            command: command.into(),
            timeout,
        })?
        .map_err(spawn_err)?;
    Ok(Output {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

#[async_trait::async_trait]
impl Runner for LocalRunner {
    async fn exec(
        &self,
        command: &str,
        input: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Output, RemoteError> {
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c").arg(command);
        run_process(self.node, command, "sh", cmd, input, timeout).await
    }
    fn node(&self) -> u64 {
        self.node
    }
    async fn upload(&self, local: &std::path::Path, remote: &str) -> Result<(), RemoteError> {
        if local == std::path::Path::new(remote) {
            return Ok(());
        }
        tokio::fs::copy(local, remote)
            .await
            .map(|_| ())
            .map_err(|e| RemoteError::Spawn {
                node: self.node,
                command: format!("copy {} to {remote}", local.display()),
                reason: e.to_string(),
            })
    }
}

/// Quotes `s` for `sh` (single quotes; embedded single quotes closed, escaped and reopened).
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:@,".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The runner for `node` with default options: local when the inventory says so, SSH
/// otherwise.
pub fn for_node(node: &Node) -> Result<Box<dyn Runner>, RemoteError> {
    for_node_with(node, &RemoteOptions::default())
}

/// The runner for `node`: local when the inventory says so, SSH with `opts` otherwise.
pub fn for_node_with(node: &Node, opts: &RemoteOptions) -> Result<Box<dyn Runner>, RemoteError> {
    if node.ssh.local {
        return Ok(Box::new(LocalRunner { node: node.id }));
    }
    Ok(Box::new(crate::ssh::SshRunner::new(node, opts)?))
}
