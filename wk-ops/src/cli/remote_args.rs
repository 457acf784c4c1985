//! The options commands that reach nodes share: SSH (`--known-hosts`,
//! `--accept-new-host-keys`, `--connect-timeout`) and, for actions that change the fleet,
//! `--dry-run`, `--yes` and `--wait`.

use crate::remote::RemoteOptions;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// known_hosts file for SSH host keys (default: OpenSSH's, ~/.ssh/known_hosts).
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// Trust and record host keys of hosts seen for the first time (changed keys are still
    /// refused).
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// Seconds to connect and authenticate over SSH.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub connect_timeout: u64,
}

impl RemoteArgs {
    pub fn options(&self) -> RemoteOptions {
        RemoteOptions {
            known_hosts: self.known_hosts.clone(),
            accept_new_host_keys: self.accept_new_host_keys,
            connect_timeout: Duration::from_secs(self.connect_timeout.max(1)),
            ..RemoteOptions::default()
        }
    }
}

/// The options every action that changes the fleet shares (`rolling-restart`, `upgrade`,
/// `scale-out`, `scale-in`).
#[derive(Debug, Clone, Args)]
pub struct ActionArgs {
    /// Print the plan and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long, short)]
    pub yes: bool,
    /// Seconds each wait may take: the cluster ready before a node, a node back or caught up.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub wait: u64,
}

impl ActionArgs {
    /// The roll timing with `--wait`.
    pub fn timing(&self) -> crate::rolling::Timing {
        crate::rolling::Timing {
            wait: Duration::from_secs(self.wait),
            ..crate::rolling::Timing::default()
        }
    }
}
