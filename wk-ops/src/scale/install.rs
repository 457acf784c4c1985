//! Putting a joining node's rendered `wk.yaml` on its host (`scale-out`): rendered from the
//! inventory by the same code as `wk-ops render`, streamed to a temp file beside the target,
//! checked there by the installed binary (`--config … --check`), made 0640 and group-owned by
//! the service group, synced, then renamed over the target. A file that fails the check never
//! replaces anything and is removed.

use crate::inventory::{Inventory, Node};
use crate::remote::{RemoteError, Runner};
use crate::render::{self, context, Kind, Templates};
use crate::ssh::shell_quote;
use std::time::Duration;

/// Why the node's files could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Render(#[from] render::RenderError),
    #[error("node {0}: nothing rendered for it (is it in the inventory?)")]
    NotRendered(u64),
    #[error("node {node}: the wukongim binary {binary} is not installed on {host}: install it there first (the Ansible playbook or your package does)")]
    NoBinary {
        node: u64,
        binary: String,
        host: String,
    },
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

/// The node's rendered `wk.yaml`.
pub fn rendered(inv: &Inventory, templates: &Templates, id: u64) -> Result<String, InstallError> {
    let want = context::node_file(id);
    render::render(inv, templates, &[Kind::Nodes])?
        .into_iter()
        .find(|f| f.path == want)
        .map(|f| f.contents)
        .ok_or(InstallError::NotRendered(id))
}

/// Installs `contents` as node `node`'s `wk.yaml`; returns the path on the node.
pub async fn install(
    inv: &Inventory,
    runner: &dyn Runner,
    node: &Node,
    contents: &str,
    timeout: Duration,
) -> Result<String, InstallError> {
    let bin = &inv.systemd.binary;
    if !runner
        .run(&format!("test -x {}", shell_quote(bin)), timeout)
        .await?
        .success()
    {
        return Err(InstallError::NoBinary {
            node: node.id,
            binary: bin.clone(),
            host: node.host.clone(),
        });
    }
    let path = inv.systemd.node_config_path(node.id);
    let dir = path.rsplit_once('/').map_or(".", |(d, _)| d);
    let dir = if dir.is_empty() { "/" } else { dir };
    let (p, t, d) = (
        shell_quote(&path),
        shell_quote(&format!("{path}.wk-new")),
        shell_quote(dir),
    );
    let command = format!(
        "umask 027 && mkdir -p {d} && cat > {t} && \
         {{ {bin} --config {t} --check >/dev/null && chmod 0640 {t} && chgrp {group} {t} && \
         sync {t} && mv -f {t} {p}; }} || {{ s=$?; rm -f {t}; exit $s; }}",
        bin = shell_quote(bin),
        group = shell_quote(&inv.systemd.group),
    );
    runner
        .run_with_input(&command, contents.as_bytes(), timeout)
        .await
        .and_then(|o| {
            if o.success() {
                Ok(o)
            } else {
                Err(RemoteError::Failed {
                    node: node.id,
                    command: format!("install {path} (checked with `{bin} --config … --check`)"),
                    status: o.status,
                    stdout: o.stdout,
                    stderr: o.stderr,
                })
            }
        })?;
    Ok(path)
}
