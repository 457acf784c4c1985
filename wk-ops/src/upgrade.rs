//! Putting a wukongim binary in place on every node before a roll (`wk-ops upgrade`): upload
//! beside the installed one, verify its sha256 on the node, run `--version` and
//! `--config … --check` there, and only when every node passed, swap it in with a rename
//! (the running process keeps its old file; the previous binary stays as `<binary>.prev`).
//! Staged files are named per node (`<binary>.staged-<id>`) so nodes sharing a host never
//! collide.
//! `--rollback` stages `<binary>.prev` the same way. Nothing is started here: the roll does it.

use crate::inventory::{Inventory, Node};
use crate::remote::RemoteError;
use crate::rolling::fleet::Fleet;
use crate::ssh::shell_quote;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// What goes onto the nodes.
pub enum Source<'a> {
    /// A new binary's bytes.
    Binary(&'a [u8]),
    /// The previous binary kept on each node.
    Previous,
}

/// Why a node cannot take the binary.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error("node {node}: the uploaded binary's sha256 is {got}, expected {want}")]
    Checksum {
        node: u64,
        got: String,
        want: String,
    },
    #[error("node {node}: no previous binary {path} to roll back to")]
    NoPrevious { node: u64, path: String },
}

/// The sha256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Paths on a node.
struct Paths {
    bin: String,
    staged: String,
    prev: String,
    config: String,
}

fn paths(inv: &Inventory, node: &Node) -> Paths {
    let bin = inv.systemd.binary.clone();
    Paths {
        // Per node: several nodes may share one host (and one binary).
        staged: format!("{bin}.staged-{}", node.id),
        prev: format!("{bin}.prev"),
        config: inv.systemd.node_config_path(node.id),
        bin,
    }
}

/// Stages the binary on `node` and checks it there; returns its `--version` line.
pub async fn stage(
    inv: &Inventory,
    fleet: &Fleet,
    node: &Node,
    source: &Source<'_>,
    timeout: Duration,
) -> Result<String, StageError> {
    let r = fleet.runner(node.id);
    let p = paths(inv, node);
    let (staged, prev) = (shell_quote(&p.staged), shell_quote(&p.prev));
    match source {
        Source::Binary(bytes) => {
            r.run_with_input(
                &format!("umask 022 && cat > {staged}.tmp && chmod 0755 {staged}.tmp && mv -f {staged}.tmp {staged}"),
                bytes,
                timeout,
            )
            .await
            .and_then(|o| check_status(node.id, "upload", o))?;
            let out = r.check(&format!("sha256sum {staged}"), timeout).await?;
            let got = out
                .stdout
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string();
            let want = sha256_hex(bytes);
            if got != want {
                return Err(StageError::Checksum {
                    node: node.id,
                    got,
                    want,
                });
            }
        }
        Source::Previous => {
            if !r.run(&format!("test -x {prev}"), timeout).await?.success() {
                return Err(StageError::NoPrevious {
                    node: node.id,
                    path: p.prev,
                });
            }
            r.check(
                &format!("cp -p {prev} {staged}.tmp && mv -f {staged}.tmp {staged}"),
                timeout,
            )
            .await?;
        }
    }
    let version = r.check(&format!("{staged} --version"), timeout).await?;
    r.check(
        &format!("{staged} --config {} --check", shell_quote(&p.config)),
        timeout,
    )
    .await?;
    Ok(version.stdout.trim().to_string())
}

fn check_status(
    node: u64,
    what: &str,
    o: crate::remote::Output,
) -> Result<crate::remote::Output, RemoteError> {
    if o.success() {
        Ok(o)
    } else {
        Err(RemoteError::Failed {
            node,
            command: what.into(),
            status: o.status,
            stdout: o.stdout,
            stderr: o.stderr,
        })
    }
}

/// Removes a staged binary (after another node failed).
pub async fn unstage(
    inv: &Inventory,
    fleet: &Fleet,
    node: &Node,
    timeout: Duration,
) -> Result<(), RemoteError> {
    let staged = shell_quote(&paths(inv, node).staged);
    fleet
        .runner(node.id)
        .check(&format!("rm -f {staged} {staged}.tmp"), timeout)
        .await
        .map(|_| ())
}

/// Swaps the staged binary in: the installed one is kept as `.prev` (when upgrading) and the
/// staged one renamed over it.
pub async fn swap(
    inv: &Inventory,
    fleet: &Fleet,
    node: &Node,
    source: &Source<'_>,
    timeout: Duration,
) -> Result<(), RemoteError> {
    let p = paths(inv, node);
    let (bin, staged, prev) = (
        shell_quote(&p.bin),
        shell_quote(&p.staged),
        shell_quote(&p.prev),
    );
    let keep = match source {
        // The installed binary becomes .prev unless it already is the new one (a re-run, or a
        // node sharing the binary with one swapped before it).
        Source::Binary(_) => format!(
            "if [ -e {bin} ] && ! cmp -s {bin} {staged}; then \
             cp -p {bin} {prev}.tmp && mv -f {prev}.tmp {prev}; fi && "
        ),
        Source::Previous => String::new(),
    };
    fleet
        .runner(node.id)
        .check(&format!("{keep}mv -f {staged} {bin}"), timeout)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha256_of_abc() {
        assert_eq!(
            super::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
