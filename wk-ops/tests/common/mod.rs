//! Shared helpers for wk-ops' black-box tests: run the built binary in a directory, find
//! external tools (failing under CI, skipping with a notice otherwise), compare with golden
//! files.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The outcome of one `wk-ops` run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with the full output unless the exit code is `code`.
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs `wk-ops ARGS` in `cwd`.
pub fn wk_ops(cwd: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_wk-ops"))
        .args(args)
        .current_dir(cwd)
        .env_remove("WK_OPS_LOG")
        .output()
        .expect("run wk-ops");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p
}

/// Reads `dir/rel` as text.
pub fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// Every file under `dir`, as sorted `/`-separated relative paths.
pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(
                    p.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    let mut out = Vec::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out.sort();
    out
}

/// Finds an external tool (a missing one fails the test), and nginx with
/// its stream module.
#[allow(unused_imports)]
pub use wk_testkit::{nginx_with_stream, require};

/// Runs a command, returning (success, combined output).
pub fn run_tool(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Creates an executable stub (for `systemd-analyze verify`, which wants ExecStart to exist).
pub fn stub_executable(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, "#!/bin/sh\nexit 0\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// The example inventory shipped in the repository.
pub fn example_inventory() -> PathBuf {
    repo_root().join("examples/inventory.yaml")
}

/// A small valid inventory; `extra` is appended.
pub fn minimal_inventory(extra: &str) -> String {
    format!(
        "cluster: {{ name: test }}\nnodes:\n  - {{ id: 1, host: 10.0.0.1 }}\n  - {{ id: 2, host: 10.0.0.2 }}\n  - {{ id: 3, host: 10.0.0.3 }}\n{extra}"
    )
}
