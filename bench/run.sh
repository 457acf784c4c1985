#!/usr/bin/env bash
# Side-by-side write benchmark: a 3-node wukongim cluster vs a 3-node etcd cluster (the anchor,
# from Debian's etcd-server), on this machine, in the same run. Both are driven by wk-bench with
# the same HTTP client, concurrency and payload size; each is run RUNS times and the medians and
# their ratio are appended to bench/RESULTS.md. Beside the HTTP load, the same wukongim cluster is
# also driven through the WuKongIM binary protocol: CONCURRENCY wk-bench TCP clients (DH + AES),
# paired up to message each other, each with one SEND in flight, for 10 s ("wukongim-tcp": SENDs
# acknowledged per second, SEND→SENDACK latency; the recipients are online and get RECVs).
# Each row also gives the CPU time (user + system) the three servers spent per request during
# the load: on 2 shared cores, what bounds throughput once the clients keep every core busy.
#
# Usage: bench/run.sh [RUNS=3] [TOTAL=20000] [CONCURRENCY=64] [SIZE=256]   (WK=<binary> to run another build)
#        PREFILL=N bench/run.sh ...: each cluster first takes N writes of the same kind, not
#                               measured (a store that is not fresh: snapshots copy more)
#        bench/run.sh --quick   one short run each (1 3000 32 256), ratio printed, RESULTS.md untouched:
#                               the regression guard to quote before/after a performance change.
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=0
if [ "${1:-}" = --quick ]; then QUICK=1; set -- 1 3000 32 256; fi
RUNS=${1:-3} TOTAL=${2:-20000} CONC=${3:-64} SIZE=${4:-256}
command -v etcd >/dev/null || { apt-get update -qq && apt-get install -y -qq etcd-server etcd-client >/dev/null; }
cargo build --release -q -p wukongim --bin wukongim --bin wk-bench
WK=${WK:-target/release/wukongim} BENCH=target/release/wk-bench
work=$(mktemp -d) ; trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
results="$work/results.jsonl"

. bench/lib.sh

PREFILL=${PREFILL:-0}
# prefill TARGET ENDPOINTS: PREFILL writes through wk-bench, not measured.
prefill() {
  [ "$PREFILL" -gt 0 ] || return 0
  $BENCH --target "$1" --endpoints "$2" --concurrency "$CONC" --total "$PREFILL" --size "$SIZE" >/dev/null
}

run_etcd() {
  local cluster="" pids=()
  for i in 1 2 3; do cluster+="e$i=http://127.0.0.2$i:2380,"; done
  for i in 1 2 3; do
    etcd --name "e$i" --data-dir "$work/etcd$i" --listen-client-urls "http://127.0.0.2$i:2379" \
      --advertise-client-urls "http://127.0.0.2$i:2379" --listen-peer-urls "http://127.0.0.2$i:2380" \
      --initial-advertise-peer-urls "http://127.0.0.2$i:2380" --initial-cluster "${cluster%,}" \
      --initial-cluster-state new --log-level error >"$work/etcd$i.log" 2>&1 &
    pids+=($!)
  done
  for i in 1 2 3; do wait_http "http://127.0.0.2$i:2379/health"; done
  prefill etcd 127.0.0.21:2379,127.0.0.22:2379,127.0.0.23:2379
  measured "${pids[*]}" $BENCH --target etcd --endpoints 127.0.0.21:2379,127.0.0.22:2379,127.0.0.23:2379 \
    --concurrency "$CONC" --total "$TOTAL" --size "$SIZE" >>"$results"
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
  rm -rf "$work"/etcd?
}

# The binary-protocol load on the wukongim cluster, as one result line like wk-bench's HTTP one.
run_wkproto() {
  $BENCH --target wkproto --api 127.0.0.31:5001 --endpoints 127.0.0.31:5100,127.0.0.32:5100,127.0.0.33:5100 \
    --workload person --clients "$CONC" --inflight 1 --size "$SIZE" --duration 10s --json |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print(json.dumps({"target":"wukongim-tcp","requests":r["sendacks"],"errors":r["send_errors"]+r["dropped"]+r["connect_errors"],"seconds":r["seconds"],"rps":r["sends_per_s"],"p50_ms":r["sendack"]["p50_ms"],"p99_ms":r["sendack"]["p99_ms"]}))'
}

run_wukongim() {
  local pids
  wk_start "$work" "$WK"; pids=("${WK_PIDS[@]}")
  prefill wukongim 127.0.0.31:5001,127.0.0.32:5001,127.0.0.33:5001
  measured "${pids[*]}" $BENCH --target wukongim --endpoints 127.0.0.31:5001,127.0.0.32:5001,127.0.0.33:5001 \
    --concurrency "$CONC" --total "$TOTAL" --size "$SIZE" >>"$results"
  measured "${pids[*]}" run_wkproto >>"$results"
  kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
  rm -rf "$work"/wk?
}

for r in $(seq 1 "$RUNS"); do
  echo "run $r/$RUNS: etcd" >&2; run_etcd
  echo "run $r/$RUNS: wukongim" >&2; run_wukongim
done

out=bench/RESULTS.md; [ "$QUICK" = 1 ] && out=/dev/null
python3 - "$results" "$RUNS" "$TOTAL" "$CONC" "$SIZE" <<'PY' | tee -a "$out"
import json, statistics, sys, datetime, platform, os
path, runs, total, conc, size = sys.argv[1:]
rows = [json.loads(l) for l in open(path)]
def med(t, k): return statistics.median(r[k] for r in rows if r["target"] == t)
def errs(t): return sum(r["errors"] for r in rows if r["target"] == t)
wk_rps, et_rps = med("wukongim", "rps"), med("etcd", "rps")
print(f"\n## {datetime.date.today()} — 3-node write throughput, wukongim vs etcd {os.popen('etcd --version 2>/dev/null').read().split()[2] if True else ''}\n")
prefill = int(os.environ.get("PREFILL", "0"))
pre = f"PREFILL={prefill} " if prefill else ""
print(f"`{pre}bench/run.sh {runs} {total} {conc} {size}` on {os.cpu_count()} cores ({platform.machine()}); {runs} runs each, medians"
      + (f", each cluster first given {prefill:,} writes (not measured)" if prefill else "") + ".\n")
print("| target | req/s | p50 ms | p99 ms | errors | server CPU µs/req |")
print("|---|---|---|---|---|---|")
for t in ("wukongim", "wukongim-tcp", "etcd"):
    if not any(r["target"] == t for r in rows): continue
    print(f"| {t} | {med(t,'rps'):.0f} | {med(t,'p50_ms'):.2f} | {med(t,'p99_ms'):.2f} | {errs(t)} | {med(t,'cpu_us'):.0f} |")
print(f"\nRatio wukongim/etcd: throughput **{wk_rps/et_rps:.2f}×**, p99 latency {med('wukongim','p99_ms')/med('etcd','p99_ms'):.2f}×, "
      f"CPU of the three servers per request {med('wukongim','cpu_us')/med('etcd','cpu_us'):.2f}×.")
if any(r["target"] == "wukongim-tcp" for r in rows):
    print(f"Through the binary protocol (wukongim-tcp, {conc} TCP clients, one SEND in flight each): **{med('wukongim-tcp','rps')/et_rps:.2f}×** etcd's throughput, {med('wukongim-tcp','rps')/wk_rps:.2f}× the HTTP load's.")
print("Each wukongim request is a replicated IM message send (stored, sequenced, conversations updated);")
print("each etcd request is a replicated key put. Raw runs: " + "; ".join(f"{r['target']} {r['rps']:.0f}" for r in rows) + ".")
PY
