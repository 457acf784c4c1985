//! The real `wukongimjssdk` client, driven through `tests/js/client.js` (one Node process per
//! user, JSON lines in and out).

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct JsClient {
    pub uid: String,
    child: Child,
    stdin: ChildStdin,
    events: mpsc::Receiver<Value>,
    /// Every event seen so far, in order.
    pub seen: Vec<Value>,
}

/// Directory of the JS harness.
pub fn js_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("js")
}

impl JsClient {
    /// Starts a client for `uid` against `ws_addr` ("ws://host:port").
    pub fn spawn(ws_addr: &str, uid: &str, token: &str) -> JsClient {
        let dir = js_dir();
        assert!(
            dir.join("dist/sdk.cjs").exists(),
            "tests/js/dist/sdk.cjs missing: run scripts/test (it installs and bundles wukongimjssdk)"
        );
        let mut child = Command::new("node")
            .arg(dir.join("client.js"))
            .args([ws_addr, uid, token])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn node (is Node.js installed?)");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        });
        JsClient {
            uid: uid.into(),
            child,
            stdin,
            events: rx,
            seen: Vec::new(),
        }
    }

    fn command(&mut self, cmd: Value) {
        writeln!(self.stdin, "{cmd}").expect("write to node client");
        self.stdin.flush().unwrap();
    }

    /// Sends a text message through the SDK.
    pub fn send_text(&mut self, channel: &str, channel_type: u8, text: &str) {
        self.command(
            json!({ "op": "send", "channel": channel, "type": channel_type, "text": text }),
        );
    }

    pub fn disconnect(&mut self) {
        self.command(json!({ "op": "disconnect" }));
    }

    pub fn connect(&mut self) {
        self.command(json!({ "op": "connect" }));
    }

    /// The SDK's conversation sync against the HTTP API at `api` (the demo's provider and
    /// conversion); returns the `conversations` event's list.
    pub fn conversations(&mut self, api: &str, timeout: Duration) -> Vec<Value> {
        let mark = self.mark();
        self.command(json!({ "op": "conversations", "api": api }));
        let ev = self.wait_for_since(mark, "conversations", timeout, |v| {
            v["ev"] == "conversations" || v["ev"] == "error"
        });
        assert_eq!(ev["ev"], "conversations", "{ev}");
        ev["list"].as_array().cloned().unwrap_or_default()
    }

    /// Waits (blocking the thread; call from spawn_blocking or plain tests) for an event matching
    /// `pred`, checking already-seen events first.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_for_since(0, what, timeout, pred)
    }

    /// Takes in the events that have arrived and returns how many there are: a mark for
    /// [`JsClient::wait_for_since`] ("after this point").
    pub fn mark(&mut self) -> usize {
        while let Ok(v) = self.events.try_recv() {
            self.seen.push(v);
        }
        self.seen.len()
    }

    /// Like [`JsClient::wait_for`], considering only events from index `mark` of `seen` on.
    pub fn wait_for_since(
        &mut self,
        mark: usize,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(v) = self.seen.iter().skip(mark).find(|v| pred(v)) {
            return v.clone();
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(_) => panic!(
                    "{}: timed out after {timeout:?} waiting for {what}; events: {:#?}",
                    self.uid, self.seen
                ),
            }
        }
    }

    /// Waits until connected (status 1).
    pub fn wait_connected(&mut self) {
        self.wait_for("connected", Duration::from_secs(20), |v| {
            v["ev"] == "status" && v["status"] == 1
        });
    }

    /// Texts received so far (draining pending events first, for `settle`).
    pub fn received_texts(&mut self, settle: Duration) -> Vec<String> {
        let deadline = Instant::now() + settle;
        while let Ok(v) = self
            .events
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(v);
        }
        self.seen
            .iter()
            .filter(|v| v["ev"] == "recv")
            .filter_map(|v| v["text"].as_str().map(str::to_string))
            .collect()
    }
}

impl Drop for JsClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Matches a "recv" event with the given sender, channel (as the receiver sees it) and text.
pub fn recv_text<'a>(
    from: &'a str,
    channel: &'a str,
    ty: u8,
    text: &'a str,
) -> impl Fn(&Value) -> bool + 'a {
    move |v| {
        v["ev"] == "recv"
            && v["from"] == from
            && v["channel"] == channel
            && v["type"] == ty
            && v["text"] == text
    }
}
