//! `-d`: run the node in the background, as the guide's recovery script does
//! (`./wukongim --config wk-node.yaml -d`). The process re-executes itself detached (new process
//! group, no stdin, output appended to `<rootDir>/wukongim.out`), writes a pid file and returns.
//! Under systemd this is never needed.

use crate::cli::Args;
use crate::config::Config;
use anyhow::{Context, Result};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// Starts the detached child and writes its pid file.
pub fn spawn_background(args: &Args, config: &Config) -> Result<()> {
    std::fs::create_dir_all(&config.root_dir)
        .with_context(|| format!("creating rootDir {}", config.root_dir.display()))?;
    let pid_file = args
        .pid_file
        .clone()
        .unwrap_or_else(|| config.root_dir.join("wukongim.pid"));
    let out_path = config.root_dir.join("wukongim.out");
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&out_path)
        .with_context(|| format!("opening {}", out_path.display()))?;
    let exe = std::env::current_exe().context("locating the wukongim binary")?;
    let mut cmd = Command::new(exe);
    if let Some(c) = &args.config {
        cmd.arg("--config").arg(c);
    }
    cmd.arg("--log-format").arg(&args.log_format);
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0)
        .spawn()
        .context("starting the background process")?;
    crate::fsutil::write_atomic(&pid_file, format!("{}\n", child.id()).as_bytes(), 0o644)
        .with_context(|| format!("writing pid file {}", pid_file.display()))?;
    println!(
        "wukongim started in the background, pid {} (pid file {})",
        child.id(),
        pid_file.display()
    );
    Ok(())
}
