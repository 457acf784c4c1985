#!/usr/bin/env python3
"""Failover benchmark: kill -9 the leader of a 3-node cluster under continuous writes and time
from the kill to the first acknowledged write sent after it; wukongim against etcd (the anchor),
both with a 100 ms heartbeat and a 1 s election timeout, in the same invocation.

Started by bench/failover.sh (which installs etcd and builds the binary). One JSON line per round
goes to stdout; the summary (medians, ratio) goes to stderr and, with --results, to a file.

The writer is open-loop: every --interval ms it starts one write on every live node (a new
connection each, answered or abandoned after --timeout s), so a write stuck on a dead leader
never holds back the next one. A write counts when it is sent after the kill and answered
200 without an error body. Between rounds the killed node is restarted and the next round starts
only once every node answers /health and writes through every node succeed again.
"""

import argparse
import asyncio
import base64
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

now = time.monotonic


def http_json(method, url, body=None, timeout=1.0):
    """One small JSON request; returns the decoded body, or None on any failure."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read() or b"null")
    except Exception:
        return None


class Node:
    def __init__(self, name, host, port, argv, log):
        self.name, self.host, self.port, self.argv, self.log = name, host, port, argv, log
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def url(self, path):
        return f"http://{self.host}:{self.port}{path}"


class Wukongim:
    def __init__(self, binary, work, log_level="warn", name="wukongim"):
        self.name = name
        self.nodes = []
        for i in (1, 2, 3):
            host = f"127.0.0.3{i}"
            cfg = os.path.join(work, f"wk{i}.yaml")
            with open(cfg, "w") as f:
                f.write(f"""rootDir: {work}/wk{i}
addr: tcp://{host}:5100
wsAddr: ws://{host}:5200
httpAddr: {host}:5001
manager: {{ on: true, addr: "{host}:5300" }}
logLevel: {log_level}
cluster:
  nodeId: 100{i}
  serverAddr: {host}:11110
  heartbeatTick: 100ms
  electionTick: 10
  initNodes: ["1001@127.0.0.31:11110", "1002@127.0.0.32:11110", "1003@127.0.0.33:11110"]
""")
            log = open(os.path.join(work, f"wk{i}.log"), "ab")
            self.nodes.append(Node(f"wk{i}", host, 5001, [binary, "--config", cfg], log))

    def is_leader(self, n):
        """Leads a cluster of three voters (a forming cluster adds the third as a learner first)."""
        s = http_json("GET", n.url("/cluster/raft/status"))
        members = (s or {}).get("membership", {})
        return s is not None and s.get("state") == "leader" and \
            len(members.get("voters", [])) == 3 and not members.get("learners")

    def request(self, n, seq):
        body = json.dumps({"from_uid": f"fo-{n.name}", "channel_id": f"fo-sink-{n.name}",
                           "channel_type": 1, "client_msg_no": f"fo-{n.name}-{seq}",
                           "payload": base64.b64encode(b"x" * 64).decode()})
        return "/message/send", body


class Etcd:
    name = "etcd"

    def __init__(self, work):
        cluster = ",".join(f"e{i}=http://127.0.0.2{i}:2380" for i in (1, 2, 3))
        self.nodes = []
        for i in (1, 2, 3):
            host = f"127.0.0.2{i}"
            argv = ["etcd", "--name", f"e{i}", "--data-dir", f"{work}/etcd{i}",
                    "--listen-client-urls", f"http://{host}:2379",
                    "--advertise-client-urls", f"http://{host}:2379",
                    "--listen-peer-urls", f"http://{host}:2380",
                    "--initial-advertise-peer-urls", f"http://{host}:2380",
                    "--initial-cluster", cluster, "--initial-cluster-state", "new",
                    "--heartbeat-interval", "100", "--election-timeout", "1000",
                    "--log-level", "error"]
            log = open(os.path.join(work, f"etcd{i}.log"), "ab")
            self.nodes.append(Node(f"e{i}", host, 2379, argv, log))

    def is_leader(self, n):
        s = http_json("POST", n.url("/v3/maintenance/status"), {})
        return s is not None and s.get("leader") is not None and \
            s.get("leader") == s.get("header", {}).get("member_id")

    def request(self, n, seq):
        key = base64.b64encode(f"fo/{n.name}/{seq}".encode()).decode()
        value = base64.b64encode(b"x" * 64).decode()
        return "/v3/kv/put", json.dumps({"key": key, "value": value})


async def write_once(n, path, body, timeout):
    """One POST on a new connection; True if answered 200 without an error body."""
    async def go():
        r, w = await asyncio.open_connection(n.host, n.port)
        try:
            w.write((f"POST {path} HTTP/1.1\r\nHost: {n.host}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}").encode())
            await w.drain()
            resp = await r.read()
        finally:
            w.close()
        head, _, rest = resp.partition(b"\r\n\r\n")
        status = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
        return status == b"200" and b'"error"' not in rest
    try:
        return await asyncio.wait_for(go(), timeout)
    except Exception:
        return False


class Writer:
    """Open-loop writes to every live node; remembers each answered write's send time."""

    def __init__(self, target, interval, timeout):
        self.target, self.interval, self.timeout = target, interval, timeout
        self.seq = 0
        self.dead = set()
        self.acks = []  # (sent, answered, node name) of writes answered OK
        self.tasks = set()

    async def one(self, n):
        self.seq += 1
        path, body = self.target.request(n, self.seq)
        sent = now()
        if await write_once(n, path, body, self.timeout):
            self.acks.append((sent, now(), n.name))

    async def run(self, until):
        while now() < until:
            for n in self.target.nodes:
                if n.name not in self.dead:
                    t = asyncio.ensure_future(self.one(n))
                    self.tasks.add(t)
                    t.add_done_callback(self.tasks.discard)
            await asyncio.sleep(self.interval)

    def first_ack_after(self, t, node=None):
        hits = [a for a in self.acks if a[0] >= t and (node is None or a[2] == node)]
        return min((a[1] for a in hits), default=None)


async def wait_for(pred, deadline_s, what, step=0.05):
    end = now() + deadline_s
    while now() < end:
        if await asyncio.to_thread(pred):
            return
        await asyncio.sleep(step)
    raise RuntimeError(f"timeout after {deadline_s}s waiting for {what}")


async def healthy(target, deadline_s=60.0):
    """Every node answers /health, one leads, and a write through every node is acknowledged."""
    for n in target.nodes:
        await wait_for(lambda n=n: http_json("GET", n.url("/health")) is not None,
                       deadline_s, f"{n.name} health")
    await wait_for(lambda: any(target.is_leader(n) for n in target.nodes), deadline_s, "a leader")
    w = Writer(target, 0.05, 2.0)
    start = now()
    end = start + deadline_s
    while now() < end:
        await w.run(now() + 0.2)
        if all(w.first_ack_after(start, n.name) for n in target.nodes):
            return
    raise RuntimeError(f"{target.name}: writes through every node not acknowledged in time")


async def round_(target, r, args):
    await healthy(target)
    leader = next((n for n in target.nodes if target.is_leader(n)), None)
    if leader is None:
        raise RuntimeError(f"{target.name}: no leader before round {r}")
    w = Writer(target, args.interval / 1000, args.timeout)
    runner = asyncio.ensure_future(w.run(now() + 3600))
    await asyncio.sleep(args.warmup)
    before = len(w.acks)
    t_kill = now()
    w.dead.add(leader.name)
    leader.kill9()
    end = t_kill + args.give_up
    survivors = [n for n in target.nodes if n is not leader]
    elected = None
    while now() < end and w.first_ack_after(t_kill) is None:
        if elected is None:
            for n in survivors:
                if await asyncio.to_thread(target.is_leader, n):
                    elected = now()
        await asyncio.sleep(0.005)
    runner.cancel()
    first = w.first_ack_after(t_kill)
    for t in list(w.tasks):
        t.cancel()
    row = {"target": target.name, "round": r, "leader": leader.name,
           "warm_acks": before,
           "failover_ms": None if first is None else round((first - t_kill) * 1000, 1),
           # When polling first saw a new leader (a lower bound on the election's end, coarse).
           "leader_seen_ms": None if elected is None else round((elected - t_kill) * 1000, 1)}
    print(json.dumps(row), flush=True)
    leader.start()
    return row


async def run_target(target, args):
    for n in target.nodes:
        n.start()
    try:
        return [await round_(target, r, args) for r in range(1, args.rounds + 1)]
    finally:
        for n in target.nodes:
            n.stop()


def summary(rows, args):
    """The markdown table: per target the median, range and lost rounds; ratios to etcd."""
    targets = list(dict.fromkeys(r["target"] for r in rows))
    got = {t: [r["failover_ms"] for r in rows if r["target"] == t and r["failover_ms"] is not None]
           for t in targets}
    seen = {t: [r["leader_seen_ms"] for r in rows if r["target"] == t and r["leader_seen_ms"]]
            for t in targets}
    med = {t: statistics.median(v) for t, v in got.items() if v}
    lost = sum(1 for r in rows if r["failover_ms"] is None)
    lines = [f"{args.rounds} rounds each: kill -9 of the leader → first acknowledged write sent "
             f"after the kill; writes every {args.interval:g} ms to every live node.", "",
             "| target | median ms | min | max | new leader seen, median ms | "
             f"rounds without an ack in {args.give_up:g} s |", "|---|---|---|---|---|---|"]
    for t in targets:
        v = got[t]
        lost_t = sum(1 for r in rows if r["target"] == t and r["failover_ms"] is None)
        cells = [f"{med[t]:.0f}", f"{min(v):.0f}", f"{max(v):.0f}"] if v else ["–"] * 3
        seen_t = f"{statistics.median(seen[t]):.0f}" if seen[t] else "–"
        lines.append(f"| {t} | " + " | ".join(cells) + f" | {seen_t} | {lost_t} |")
    if "etcd" in med:
        ratios = [f"{t} **{med[t] / med['etcd']:.2f}×**" for t in targets if t != "etcd" and t in med]
        if ratios:
            lines += ["", "Ratio to etcd (medians; goal ≤ 0.7×): " + ", ".join(ratios) + "."]
    lines.append("Raw (ms): " + "; ".join(
        f"{t} " + ", ".join(f"{x:.0f}" for x in got[t]) for t in targets if got[t]) + ".")
    return "\n".join(lines), lost


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--wukongim", required=True, help="path of the wukongim binary")
    p.add_argument("--work", required=True, help="scratch directory for data and logs")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--targets", default="etcd,wukongim",
                   help="in order; `baseline` is wukongim run from --baseline")
    p.add_argument("--baseline", help="another wukongim binary to compare (A/B) in the same run")
    p.add_argument("--interval", type=float, default=10.0, help="ms between writes per node")
    p.add_argument("--timeout", type=float, default=3.0, help="s a write may take")
    p.add_argument("--warmup", type=float, default=1.0, help="s of writes before the kill")
    p.add_argument("--give-up", type=float, default=15.0, help="s to wait for an ack")
    p.add_argument("--wk-log-level", default="warn", help="wukongim's logLevel (diagnosis)")
    p.add_argument("--results", help="append the summary table to this file")
    args = p.parse_args()
    rows = []
    for t in args.targets.split(","):
        if t == "etcd":
            target = Etcd(args.work)
        elif t == "baseline":
            target = Wukongim(args.baseline, args.work, args.wk_log_level, "baseline")
        else:
            target = Wukongim(args.wukongim, args.work, args.wk_log_level)
        print(f"{t}: {args.rounds} rounds", file=sys.stderr, flush=True)
        rows += asyncio.run(run_target(target, args))
    text, lost = summary(rows, args)
    print(text, file=sys.stderr)
    if args.results:
        with open(args.results, "a") as f:
            f.write(text + "\n")
    sys.exit(1 if lost else 0)


if __name__ == "__main__":
    main()
