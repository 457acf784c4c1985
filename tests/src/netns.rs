//! Real network partitions with Linux network namespaces (iproute2, root).
//!
//! A [`NetLab`] creates one namespace per node plus a `hub` namespace holding a bridge; each
//! node namespace is joined to the bridge by a veth pair and gets `10.<net>.0.<i+1>/24`, the
//! hub `10.<net>.0.254`. The test thread enters the hub ([`NetLab::enter_hub`]) before it
//! builds its runtime, so the test's HTTP and IM clients talk to the nodes over the bridge while
//! the host's own network is untouched (every address lives inside namespaces the lab created
//! and deletes on drop). [`NetLab::isolate`] cuts one node off from the other nodes — blackhole
//! routes on both sides, so packets vanish as on a broken link — while the hub (the clients)
//! still reaches it; [`NetLab::heal`] removes the cut.

use std::process::Command;

/// A set of namespaces for `n` nodes and the hub.
pub struct NetLab {
    prefix: String,
    net: u8,
    n: usize,
    /// Blackhole routes in place: (namespace, destination ip).
    cuts: Vec<(String, String)>,
}

/// Runs `ip ARGS`, failing the test with its output on error.
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run ip (iproute2): {e}"));
    assert!(
        out.status.success(),
        "ip {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl NetLab {
    /// Creates the namespaces, bridge and links. Needs root and iproute2 (a failure, not a
    /// skip, without them).
    pub fn new(n: usize) -> NetLab {
        let pid = std::process::id();
        // A /24 per lab, from the pid, so parallel test processes do not collide.
        let net = (pid % 200) as u8 + 20;
        let lab = NetLab {
            prefix: format!("wk{pid}"),
            net,
            n,
            cuts: Vec::new(),
        };
        let hub = lab.hub();
        ip(&["netns", "add", &hub]);
        ip(&["-n", &hub, "link", "set", "lo", "up"]);
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"]);
        ip(&[
            "-n",
            &hub,
            "addr",
            "add",
            &format!("10.{net}.0.254/24"),
            "dev",
            "br0",
        ]);
        ip(&["-n", &hub, "link", "set", "br0", "up"]);
        for i in 0..n {
            let ns = lab.ns(i);
            let (inner, outer) = (format!("eth{i}"), format!("p{i}"));
            ip(&["netns", "add", &ns]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&[
                "-n", &hub, "link", "add", &outer, "type", "veth", "peer", "name", &inner, "netns",
                &ns,
            ]);
            ip(&["-n", &hub, "link", "set", &outer, "master", "br0", "up"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", lab.ip(i)),
                "dev",
                &inner,
            ]);
            ip(&["-n", &ns, "link", "set", &inner, "up"]);
        }
        lab
    }

    /// The hub namespace's name.
    pub fn hub(&self) -> String {
        format!("{}-hub", self.prefix)
    }

    /// Node `i`'s namespace name.
    pub fn ns(&self, i: usize) -> String {
        format!("{}-n{i}", self.prefix)
    }

    /// Node `i`'s address.
    pub fn ip(&self, i: usize) -> String {
        format!("10.{}.0.{}", self.net, i + 1)
    }

    /// The command prefix that runs a program in node `i`'s namespace.
    pub fn launcher(&self, i: usize) -> Vec<String> {
        ["ip", "netns", "exec", &self.ns(i)]
            .map(String::from)
            .to_vec()
    }

    /// Moves the calling thread (and threads it creates afterwards, e.g. a tokio runtime's
    /// workers) into the hub namespace.
    pub fn enter_hub(&self) {
        let path = format!("/run/netns/{}", self.hub());
        let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        use std::os::fd::AsRawFd;
        // SAFETY: setns on a valid namespace fd only changes this thread's network namespace.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
    }

    /// Cuts node `i` off from every other node (both directions); the hub still reaches it.
    pub fn isolate(&mut self, i: usize) {
        for j in (0..self.n).filter(|j| *j != i) {
            for (from, to) in [(i, j), (j, i)] {
                let (ns, dst) = (self.ns(from), self.ip(to));
                ip(&["-n", &ns, "route", "add", "blackhole", &format!("{dst}/32")]);
                self.cuts.push((ns, dst));
            }
        }
    }

    /// Removes every cut.
    pub fn heal(&mut self) {
        for (ns, dst) in std::mem::take(&mut self.cuts) {
            ip(&["-n", &ns, "route", "del", "blackhole", &format!("{dst}/32")]);
        }
    }
}

impl Drop for NetLab {
    /// Deletes the namespaces (and with them the links). Processes inside must be stopped
    /// first: drop the nodes before the lab.
    fn drop(&mut self) {
        for ns in (0..self.n).map(|i| self.ns(i)).chain([self.hub()]) {
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
    }
}
