#!/usr/bin/env bash
# Single-node WuKongIM-protocol benchmark (issue 17). WuKongIM publishes, for v2.1.2 on
# 16 vCPU / 32 GB, 40,000 messages/s sent (100 groups × 100 members) and 200,000 deliveries/s (one
# 10,000-member group with 5,000 online): 2,500 sends/s and 12,500 deliveries/s per core. Those
# published figures are the anchor (no Go toolchain here). Both workloads run against one node on
# this machine, driven by wk-bench protocol clients over TCP with DH + AES on (CONNECT, SEND,
# RECV + RECVACK); our per-core figure divides by every core of the machine, although wk-bench
# runs on the same cores.
#   sends:      SEND_GROUPS groups of SEND_MEMBERS members, SEND_ONLINE of each connected,
#               SEND_SENDERS of those sending closed loop with SEND_INFLIGHT unacknowledged SENDs.
#   deliveries: one group of FAN_MEMBERS members, FAN_ONLINE connected, one sender at each rate
#               of FAN_RATES messages/s (fixed rate); deliveries/s = RECVs/s over all members.
# Each case runs RUNS times on a fresh node; medians are printed as a Markdown section, appended
# to bench/RESULTS.md when APPEND=1.
#
# Usage: [APPEND=1] bench/single-node.sh [RUNS=3] [DURATION=10s]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3} DURATION=${2:-10s}
SEND_GROUPS=${SEND_GROUPS:-100} SEND_MEMBERS=${SEND_MEMBERS:-100} SEND_ONLINE=${SEND_ONLINE:-2}
SEND_SENDERS=${SEND_SENDERS:-1} SEND_INFLIGHT=${SEND_INFLIGHT:-4}
FAN_MEMBERS=${FAN_MEMBERS:-10000} FAN_ONLINE=${FAN_ONLINE:-5000} FAN_RATES=${FAN_RATES:-"5 10 15"}
# shellcheck source=bench/lib-proto.sh
source bench/lib-proto.sh
raise_nofile
wk_build
IP=127.0.0.61
OUT=$WORK/results.jsonl

tag() { python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); r["case"]=sys.argv[1]; print(json.dumps(r))' "$1"; }

for r in $(seq 1 "$RUNS"); do
  echo "run $r/$RUNS: sends ($SEND_GROUPS groups × $SEND_MEMBERS, $SEND_ONLINE online)" >&2
  wk_node "$IP" 1; wait_healthy "$IP"
  "$BENCH" --target wkproto --api "$IP:5001" --endpoints "$IP:5100" --workload group \
    --groups "$SEND_GROUPS" --members "$SEND_MEMBERS" --online "$SEND_ONLINE" \
    --senders "$SEND_SENDERS" --inflight "$SEND_INFLIGHT" --duration "$DURATION" --server-pid "$LAST_PID" \
    --json | tag sends >>"$OUT"
  stop_nodes
  for rate in $FAN_RATES; do
    echo "run $r/$RUNS: deliveries (1 group × $FAN_MEMBERS, $FAN_ONLINE online) at $rate msg/s" >&2
    wk_node "$IP" 1; wait_healthy "$IP"
    "$BENCH" --target wkproto --api "$IP:5001" --endpoints "$IP:5100" --workload group \
      --groups 1 --members "$FAN_MEMBERS" --online "$FAN_ONLINE" --senders 1 --rate "$rate" \
      --duration "$DURATION" --server-pid "$LAST_PID" --json | tag "deliveries@$rate" >>"$OUT"
    stop_nodes
  done
done

section=$(python3 - "$OUT" "$RUNS" "$DURATION" "$SEND_GROUPS" "$SEND_MEMBERS" "$SEND_ONLINE" "$SEND_SENDERS" "$SEND_INFLIGHT" "$FAN_MEMBERS" "$FAN_ONLINE" "$(git rev-parse --short HEAD)" <<'PY'
import json, statistics, sys, datetime, os, platform
path, runs, dur, sg, sm, so, ss, si, fm, fo, rev = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
cores = os.cpu_count()
med = lambda xs: statistics.median(xs) if xs else 0.0
def case(c): return [r for r in rows if r["case"] == c]
print(f"\n## {datetime.date.today()} — single node, WuKongIM protocol vs WuKongIM's published figures\n")
print(f"`bench/single-node.sh {runs} {dur}` at {rev} on {cores} cores ({platform.machine()}), machine shared with")
print("other builds; wk-bench (TCP, DH + AES, msgKey checked on every RECV) runs on the same cores. Medians of")
print(f"{runs} runs, a fresh node each. Anchor: WuKongIM v2.1.2 on 16 vCPU, 2,500 sends/s and 12,500 deliveries/s per core.\n")
s = case("sends")
sps = med([r["sends_per_s"] for r in s])
print(f"**Sends** ({sg} groups × {sm} members, {so} online per group, {ss} sender(s) per group, closed loop with {si} in flight):")
print(f"{sps:,.0f} sends/s = {sps/cores:,.0f} per core = **{sps/cores/2500:.2f}×** WuKongIM's per core (goal 3×);")
print(f"SEND→SENDACK p50 {med([r['sendack']['p50_ms'] for r in s]):.2f} ms, p99 {med([r['sendack']['p99_ms'] for r in s]):.2f} ms (goal < 50 ms), "
      f"p999 {med([r['sendack']['p999_ms'] for r in s]):.2f} ms; SEND→RECV p99 {med([r['recv']['p99_ms'] for r in s]):.2f} ms; "
      f"errors {sum(r['send_errors'] for r in s)}, dropped connections {sum(r['dropped'] for r in s)}; "
      f"{med([r.get('sends_per_server_cpu_s') or 0 for r in s]):,.0f} sends per CPU-second the node got. Runs: "
      + ", ".join(f"{r['sends_per_s']:,.0f}" for r in s) + ".\n")
print(f"**Deliveries** (1 group × {fm} members, {fo} online, one sender at a fixed rate):\n")
print("| msg/s | expected deliveries/s | deliveries/s (median) | per core | × WuKongIM per core | per node CPU-second | SEND→RECV p50 / p99 / p999 ms | SENDACK p99 ms | dropped |")
print("|---|---|---|---|---|---|---|---|---|")
best = None
for c in sorted({r["case"] for r in rows if r["case"].startswith("deliveries@")}, key=lambda c: float(c.split("@")[1])):
    d = case(c); rate = float(c.split("@")[1]); exp = rate * (int(fo) - 1)
    dps = med([r["recvs_per_s"] for r in d])
    p = {k: med([r["recv"][k] for r in d]) for k in ("p50_ms", "p99_ms", "p999_ms")}
    drop = sum(r["dropped"] for r in d)
    cpu = med([r.get("recvs_per_server_cpu_s") or 0 for r in d])
    print(f"| {rate:g} | {exp:,.0f} | {dps:,.0f} | {dps/cores:,.0f} | {dps/cores/12500:.2f}× | {cpu:,.0f} | {p['p50_ms']:.1f} / {p['p99_ms']:.1f} / {p['p999_ms']:.1f} | "
          f"{med([r['sendack']['p99_ms'] for r in d]):.2f} | {drop} |")
    if dps >= 0.95 * exp and drop == 0 and (best is None or dps > best[1]):
        best = (rate, dps)
if best:
    print(f"\nHighest rate kept up with (≥ 95 % of expected deliveries, no dropped connection): {best[0]:g} msg/s, "
          f"{best[1]:,.0f} deliveries/s = {best[1]/cores:,.0f} per core = **{best[1]/cores/12500:.2f}×** WuKongIM's per core (goal 3×).")
else:
    print("\nNo rate was kept up with (≥ 95 % of expected deliveries, no dropped connection).")
PY
)
echo "$section"
[ "${APPEND:-0}" = 1 ] && echo "$section" >>bench/RESULTS.md
exit 0
