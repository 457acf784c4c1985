#!/usr/bin/env bash
# Fan-out benchmark (issue 17): one group of MEMBERS WebSocket members (all online) spread
# round-robin over a 3-node cluster on loopback; SENDERS of them send at a fixed total rate, which
# is raised step by step (RATES) until p99 send→RECV passes 50 ms. Reports the knee (the last rate
# under 50 ms) and p99 at 1,000 msg/s (goal < 10 ms; run even past the knee, for the record).
# wk-bench speaks the WuKongIM protocol (DH + AES, msgKey checked, RECVACK per RECV) on the same
# cores as the three nodes. Prints a Markdown section, appended to bench/RESULTS.md when APPEND=1.
#
# ALL_RATES=1 runs every rate even past the knee (for A/B comparisons of two builds: WK=, BENCH=).
#
# Usage: [APPEND=1] [ALL_RATES=1] [WK=<binary>] bench/fanout.sh [MEMBERS=1000] [DURATION=10s] [RATES="10 20 50 100 200 500 1000"]
set -euo pipefail
cd "$(dirname "$0")/.."
MEMBERS=${1:-1000} DURATION=${2:-10s} RATES=${3:-"10 20 50 100 200 500 1000"}
SENDERS=${SENDERS:-10}
# shellcheck source=bench/lib-proto.sh
source bench/lib-proto.sh
raise_nofile
wk_build
init="\"1@127.0.0.71:11110\", \"2@127.0.0.72:11110\", \"3@127.0.0.73:11110\""
for i in 1 2 3; do wk_node "127.0.0.7$i" "$i" "$init"; done
wait_healthy 127.0.0.71
OUT=$WORK/results.jsonl
knee_passed=0
for rate in $RATES; do
  if [ "$knee_passed" = 1 ] && [ "$rate" != 1000 ] && [ "${ALL_RATES:-0}" != 1 ]; then continue; fi
  echo "fan-out: $MEMBERS members, $rate msg/s" >&2
  "$BENCH" --target wkproto --transport ws --api 127.0.0.71:5001 \
    --endpoints 127.0.0.71:5200,127.0.0.72:5200,127.0.0.73:5200 --workload group --groups 1 \
    --members "$MEMBERS" --online "$MEMBERS" --senders "$SENDERS" --rate "$rate" \
    --duration "$DURATION" --json >>"$OUT"
  p99=$(tail -n1 "$OUT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["recv"]["p99_ms"])')
  python3 -c "import sys; sys.exit(0 if float('$p99') > 50 else 1)" && knee_passed=1
done

section=$(python3 - "$OUT" "$MEMBERS" "$DURATION" "$SENDERS" "$(git rev-parse --short HEAD)" "$RATES" <<'PY'
import json, sys, datetime, os, platform
path, members, dur, senders, rev, rates = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
print(f"\n## {datetime.date.today()} — fan-out: one group of {members} WebSocket members over 3 nodes\n")
print(f"`bench/fanout.sh {members} {dur} \"{rates}\"` at {rev} on {os.cpu_count()} cores ({platform.machine()}), machine shared with")
print(f"other builds; 3 nodes and wk-bench (WebSocket, DH + AES, msgKey checked) on the same cores; {senders} senders")
print("at a fixed total rate, one run per rate.\n")
print("| msg/s | expected deliveries/s | deliveries/s | SEND→RECV p50 / p99 / p999 ms | SENDACK p99 ms | dropped |")
print("|---|---|---|---|---|---|")
knee = None
for r in rows:
    exp = r["rate"] * (int(members) - 1)
    print(f"| {r['rate']:g} | {exp:,.0f} | {r['recvs_per_s']:,.0f} | {r['recv']['p50_ms']:.1f} / {r['recv']['p99_ms']:.1f} / {r['recv']['p999_ms']:.1f} | {r['sendack']['p99_ms']:.2f} | {r['dropped']} |")
    if r["recv"]["p99_ms"] <= 50 and r["dropped"] == 0 and r["recvs_per_s"] >= 0.95 * exp:
        knee = r
at1k = [r for r in rows if r["rate"] == 1000]
print()
print(f"Knee (last rate with p99 send→RECV ≤ 50 ms, ≥ 95 % delivered, no dropped connection): "
      + (f"**{knee['rate']:g} msg/s** ({knee['recvs_per_s']:,.0f} deliveries/s, p99 {knee['recv']['p99_ms']:.1f} ms)." if knee else "none."))
if at1k:
    r = at1k[0]
    print(f"At 1,000 msg/s: p99 send→RECV **{r['recv']['p99_ms']:.1f} ms** (goal < 10 ms), {r['recvs_per_s']:,.0f} of {1000*(int(members)-1):,} deliveries/s, {r['dropped']} connections dropped.")
PY
)
echo "$section"
[ "${APPEND:-0}" = 1 ] && echo "$section" >>bench/RESULTS.md
exit 0
