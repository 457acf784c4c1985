//! Power loss for tests: [`LazyFs`] mounts `wk-lazyfs` (src/bin/wk-lazyfs.rs), a FUSE
//! filesystem that keeps written data apart from fsynced data and, on [`LazyFs::cut`], drops
//! everything not yet synced — what a machine losing power loses from its page cache. Put a
//! node's data directory on it with [`Node::put_data_on`](crate::Node::put_data_on); a power cut
//! of the node is `kill -9` of its process followed by `cut`. Needs root, `/dev/fuse` and
//! `fusermount3` (Debian `fuse3`): without them the test fails.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A mounted `wk-lazyfs`; dropping it unmounts.
pub struct LazyFs {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    mountpoint: PathBuf,
    _dir: tempfile::TempDir,
}

/// How long the filesystem may take to mount or to answer a command.
const ANSWER: Duration = Duration::from_secs(10);

impl LazyFs {
    /// Mounts a fresh, empty filesystem on a scratch directory.
    pub fn mount() -> LazyFs {
        assert!(
            Path::new("/dev/fuse").exists(),
            "/dev/fuse is missing: the power-loss tests need FUSE (run as root on Linux)"
        );
        // wk-lazyfs mounts through fusermount3 (no libfuse).
        wk_testkit::require("fusermount3", "fuse3");
        let dir = tempfile::Builder::new()
            .prefix("wk-lazyfs")
            .tempdir()
            .expect("tempdir");
        let mountpoint = dir.path().join("mnt");
        std::fs::create_dir(&mountpoint).expect("create mountpoint");
        let mut child = Command::new(crate::bin("wk-lazyfs"))
            .arg(&mountpoint)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn wk-lazyfs");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut fs = LazyFs {
            child,
            stdin,
            lines,
            mountpoint,
            _dir: dir,
        };
        let first = fs.answer();
        assert_eq!(first, "ready", "wk-lazyfs did not mount");
        fs
    }

    /// The mounted directory.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// The power cut: every file's contents go back to their last fsync. Stop the processes
    /// writing here first (a real power cut stops them too). Returns (files rolled back,
    /// bytes dropped).
    pub fn cut(&mut self) -> (usize, usize) {
        let stdin = self.stdin.as_mut().expect("wk-lazyfs stdin");
        writeln!(stdin, "cut").expect("send cut to wk-lazyfs");
        stdin.flush().expect("send cut to wk-lazyfs");
        let line = self.answer();
        let nums: Vec<usize> = line
            .strip_prefix("cut ")
            .unwrap_or_else(|| panic!("wk-lazyfs answered {line:?}"))
            .split(' ')
            .map(|n| n.parse().expect("number"))
            .collect();
        (nums[0], nums[1])
    }

    fn answer(&mut self) -> String {
        match self.lines.recv_timeout(ANSWER) {
            Ok(l) => l,
            Err(e) => {
                let status = self.child.try_wait();
                panic!("wk-lazyfs gave no answer within {ANSWER:?} ({e}); process: {status:?}")
            }
        }
    }
}

impl Drop for LazyFs {
    /// Unmounts (retrying while a file is still busy, lazily as a last resort), then closes
    /// stdin so the filesystem exits; kills it if it does not within a few seconds.
    fn drop(&mut self) {
        let unmount = |lazy: bool| {
            let mut c = Command::new("fusermount3");
            c.arg("-u").arg("-q");
            if lazy {
                c.arg("-z");
            }
            c.arg(&self.mountpoint)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !unmount(false) {
            if std::time::Instant::now() > deadline {
                unmount(true);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
