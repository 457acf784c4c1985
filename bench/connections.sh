#!/usr/bin/env bash
# Idle-connection benchmark (issue 17): CONNS idle WuKongIM connections (full CONNECT with DH,
# then silence) to one node, over TCP and then over WebSocket, each on a fresh node. Measures the
# node's RSS before and with the connections open (RSS per connection; goal ≤ 8 KiB) and its CPU
# over SAMPLE seconds, first without connections, then while they sit idle (percent of one core,
# from utime + stime in /proc/<pid>/stat: the node's own periodic work shows in both). wk-bench holds the connections
# from the same machine, so the fd limit is raised for both (needs a hard limit ≥ CONNS + 100).
# Prints a Markdown section, appended to bench/RESULTS.md when APPEND=1.
#
# Usage: [APPEND=1] [WK=<wukongim binary>] bench/connections.sh [CONNS=10000] [SAMPLE=10]
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${1:-10000} SAMPLE=${2:-10}
# shellcheck source=bench/lib-proto.sh
source bench/lib-proto.sh
raise_nofile
wk_build
IP=127.0.0.62
OUT=$WORK/results.jsonl
for transport in tcp ws; do
  port=5100; [ "$transport" = ws ] && port=5200
  wk_node "$IP" 1; pid=$LAST_PID; wait_healthy "$IP"
  sleep 1 # let start-up allocations settle before the baseline
  q0=$(cpu_secs "$pid"); sleep "$SAMPLE"; q1=$(cpu_secs "$pid")
  base=$(rss_kib "$pid")
  rm -f "$WORK/ready"
  "$BENCH" --target wkproto --transport "$transport" --api "$IP:5001" --endpoints "$IP:$port" \
    --workload idle --clients "$CONNS" --warmup 0s --duration "$((SAMPLE + 30))s" \
    --ready-file "$WORK/ready" --json >"$WORK/bench-$transport.json" &
  bench=$!
  for _ in $(seq 1 1200); do [ -f "$WORK/ready" ] && break; sleep 0.1; done
  [ -f "$WORK/ready" ] || { echo "wk-bench did not connect in 120 s" >&2; exit 1; }
  sleep 2
  c0=$(cpu_secs "$pid"); t0=$(date +%s.%N)
  sleep "$SAMPLE"
  c1=$(cpu_secs "$pid"); t1=$(date +%s.%N)
  loaded=$(rss_kib "$pid")
  open=$(cat "$WORK/ready")
  kill "$bench" 2>/dev/null || true; wait "$bench" 2>/dev/null || true
  echo "{\"transport\":\"$transport\",\"conns\":$open,\"base_kib\":$base,\"loaded_kib\":$loaded,\"cpu_s\":$(python3 -c "print($c1-$c0)"),\"quiet_cpu_s\":$(python3 -c "print($q1-$q0)"),\"wall_s\":$(python3 -c "print($t1-$t0)")}" >>"$OUT"
  stop_nodes
done

section=$(python3 - "$OUT" "$CONNS" "$SAMPLE" "$(git rev-parse --short HEAD)" "$WK" <<'PY'
import json, sys, datetime, os, platform
path, conns, sample, rev, wk = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
print(f"\n## {datetime.date.today()} — {int(conns):,} idle connections on one node\n")
print(f"`bench/connections.sh {conns} {sample}` at {rev} (server {os.path.basename(os.path.dirname(wk))}/{os.path.basename(wk)}) on {os.cpu_count()} cores ({platform.machine()}), machine shared with")
print("other builds; wk-bench holds the connections from the same machine (full CONNECT with DH each).\n")
print("| transport | connections | node RSS before → with them | RSS per connection | node CPU without → with them (of one core) |")
print("|---|---|---|---|---|")
for r in rows:
    per = (r["loaded_kib"] - r["base_kib"]) / max(r["conns"], 1)
    print(f"| {r['transport']} | {r['conns']:,} | {r['base_kib']/1024:.1f} → {r['loaded_kib']/1024:.1f} MiB | **{per:.1f} KiB** (goal ≤ 8) | {100*r['quiet_cpu_s']/float(sample):.2f} → {100*r['cpu_s']/r['wall_s']:.2f} % |")
PY
)
echo "$section"
[ "${APPEND:-0}" = 1 ] && echo "$section" >>bench/RESULTS.md
exit 0
