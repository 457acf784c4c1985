#!/usr/bin/env bash
# Profiles the write path under bench/run.sh's load: a 3-node wukongim cluster driven by wk-bench
# through all three nodes, with `perf record` (DWARF call graphs from .eh_frame) on the leader and
# one follower, and `perf stat` counting fsync/fdatasync syscalls on every node. Prints each
# node's fsyncs per committed message, its own wukongim_storage_fsyncs counter beside it, and the
# top frames (self and inclusive) of both profiles; the reports stay in OUT.
#
# Usage: bench/profile.sh [TOTAL=20000] [CONCURRENCY=32] [SIZE=256] [OUT=a new temporary dir]
#        PREFILL=N: write N more messages before profiling (a store that is not fresh)
# Needs perf (Debian: linux-perf) and perf_event_paranoid ≤ 1 or root.
set -euo pipefail
cd "$(dirname "$0")/.."
TOTAL=${1:-20000} CONC=${2:-32} SIZE=${3:-256} OUT=${4:-$(mktemp -d)}
command -v perf >/dev/null || { apt-get update -qq && apt-get install -y -qq linux-perf >/dev/null; }
cargo build --release -q -p wukongim --bin wukongim --bin wk-bench
. bench/lib.sh
work=$(mktemp -d) ; trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$OUT"
wk_start "$work" target/release/wukongim
endpoints=127.0.0.31:5001,127.0.0.32:5001,127.0.0.33:5001
state() { curl -fsS "http://127.0.0.3$1:5001/cluster/raft/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }
leader=""; for _ in $(seq 1 100); do
  for i in 1 2 3; do [ "$(state $i 2>/dev/null)" = leader ] && leader=$i; done
  [ -n "$leader" ] && break; sleep 0.1
done
[ -n "$leader" ] || { echo "no leader" >&2; exit 1; }
follower=$(( leader % 3 + 1 ))
metric() { curl -fsS "http://127.0.0.3$1:5300/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
fsyncs() { metric "$1" wukongim_storage_fsyncs_total; }
batches() { metric "$1" wukongim_raft_batches_total; }
# Warm-up (connections, first channel records; PREFILL more messages to profile a fuller
# store), not measured.
target/release/wk-bench --target wukongim --endpoints "$endpoints" --concurrency "$CONC" --total $(( 2000 + ${PREFILL:-0} )) --size "$SIZE" >/dev/null
declare -A before batched
for i in 1 2 3; do before[$i]=$(fsyncs $i); batched[$i]=$(batches $i); done
pids=()
perf record -q -F 499 --call-graph dwarf,16384 -p "${WK_PIDS[$((leader-1))]}" -o "$OUT/leader.data" 2>/dev/null & pids+=($!)
perf record -q -F 499 --call-graph dwarf,16384 -p "${WK_PIDS[$((follower-1))]}" -o "$OUT/follower.data" 2>/dev/null & pids+=($!)
for i in 1 2 3; do
  perf stat -x, -e syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync -p "${WK_PIDS[$((i-1))]}" -o "$OUT/syscalls$i.csv" & pids+=($!)
done
sleep 1
target/release/wk-bench --target wukongim --endpoints "$endpoints" --concurrency "$CONC" --total "$TOTAL" --size "$SIZE" | tee "$OUT/bench.json"
kill -INT "${pids[@]}"; wait "${pids[@]}" 2>/dev/null || true
entries=0; for i in 1 2 3; do entries=$(( entries + $(batches $i) - batched[$i] )); done
echo "leader: node 100$leader; profiled follower: node 100$follower; $TOTAL messages in $entries log entries (batches)"
for i in 1 2 3; do
  n=$(awk -F, '/sys_enter_f(data)?sync/ {s+=$1} END {print s+0}' "$OUT/syscalls$i.csv")
  c=$(( $(fsyncs $i) - before[$i] ))
  echo "node 100$i: $n fsync+fdatasync syscalls, $c storage commits (metric): $(python3 -c "print(f'{$n/$TOTAL:.3f} syscalls, {$c/$TOTAL:.3f} commits per message')")"
done
trim() { grep -E '^ +[0-9]' | sed -E 's/[ -]+$//' | sed -n "1,$1p"; }
for role in leader follower; do
  perf report -i "$OUT/$role.data" --no-children --sort symbol --percent-limit 1 --stdio 2>/dev/null >"$OUT/$role-self.txt" || true
  perf report -i "$OUT/$role.data" --children --sort symbol --percent-limit 1 --stdio -g none 2>/dev/null >"$OUT/$role-children.txt" || true
  echo "== $role: top frames by self time"; trim 25 <"$OUT/$role-self.txt"
  echo "== $role: top frames including callees"; trim 60 <"$OUT/$role-children.txt"
done
echo "reports and perf data: $OUT"
