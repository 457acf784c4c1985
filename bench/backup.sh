#!/usr/bin/env bash
# Backup benchmark (issue 12): a 3-node wukongim cluster on loopback is filled with ≥ 1 GiB of
# messages (wk-bench, 16 KiB payloads) and its dirty pages are flushed (`sync`, so neither side
# pays for the fill's writeback), then RUNS times, alternating which goes first,
#   1. `wk-ops backup` (snapshot on a follower, streamed over HTTP into tar + zstd -3), and
#   2. `tar -I 'zstd -3'` of the same node's data directory (the torn-copy baseline)
# are timed; medians are reported. Throughput is state bytes (the data directory's size) per
# second for both. The source node's RSS is sampled every 100 ms during the backups (peak minus
# idle), and wk-ops' own peak RSS comes from /usr/bin/time (largest of the runs). Then the other follower is stopped and wiped, the leader
# snapshots and purges its log, and the wiped follower is started again: it can only catch up by
# installing the ≥ 1 GiB snapshot streamed in chunks, and its peak RSS (VmHWM) above its RSS at
# start is recorded. The result is appended to bench/RESULTS.md.
#
# Usage: bench/backup.sh [MESSAGES=65536] [SIZE=16384] [THREADS=2] [RUNS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
MESSAGES=${1:-65536} SIZE=${2:-16384} THREADS=${3:-2} RUNS=${4:-3}
for tool in zstd tar curl python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench/backup.sh needs $tool (Debian: zstd tar curl python3 time)" >&2; exit 2; }
done
# WK_BIN / OPS_BIN run other builds of the node and wk-ops (an A/B against an older commit).
cargo build --release -q -p wukongim --bin wukongim --bin wk-bench
cargo build --release -q -p wk-ops
WK=${WK_BIN:-$PWD/target/release/wukongim} BENCH=$PWD/target/release/wk-bench
OPS=${OPS_BIN:-$PWD/target/release/wk-ops}
SVC=$PWD/tests/supervisor/wk-svc
work=$(mktemp -d)
cleanup() {
  for i in 1 2 3; do WK_SVC_BIN=$WK "$SVC" stop "$work/rendered/nodes/100$i/wk.yaml" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT

svc() { echo "WK_SVC_BIN=$WK $SVC $1 $work/rendered/nodes/{id}/wk.yaml"; }
cat >"$work/inventory.yaml" <<YAML
cluster: { name: bench, raft: { heartbeatTick: 100ms, electionTick: 10, snapshotEntries: 100000000, compactionOverhead: 10 },
  openApi: true, auth: { enabled: false }, tokenAuthOn: false }
defaults:
  rootDir: $work/data
  ssh: { local: true }
  logLevel: warn
  service: { start: "$(svc start)", stop: "$(svc stop)", restart: "$(svc restart)", status: "$(svc status)" }
nodes:
  - { id: 1001, host: 127.0.0.41 }
  - { id: 1002, host: 127.0.0.42 }
  - { id: 1003, host: 127.0.0.43 }
systemd: { binary: $WK, configDir: $work/rendered/nodes }
backup: { dir: $work/backups, onCalendar: daily, keep: { last: 5, daily: 0, weekly: 0 } }
YAML
"$OPS" render "$work/inventory.yaml" --out "$work/rendered" --only nodes >/dev/null
for i in 1 2 3; do WK_SVC_BIN=$WK "$SVC" start "$work/rendered/nodes/100$i/wk.yaml"; done
for _ in $(seq 1 300); do
  curl -fsS http://127.0.0.41:5001/cluster/status 2>/dev/null | grep -q '"healthy"' && break; sleep 0.1
done

echo "filling: $MESSAGES messages of $SIZE bytes" >&2
$BENCH --target wukongim --endpoints 127.0.0.41:5001,127.0.0.42:5001,127.0.0.43:5001 \
  --concurrency 32 --total "$MESSAGES" --size "$SIZE" >"$work/fill.json"

# The node wk-ops will pick is a caught-up follower; pin it so its RSS can be sampled.
leader=$(curl -fsS http://127.0.0.41:5001/cluster/status | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"])')
src=1001; [ "$leader" = 1001 ] && src=1002
pid=$(cat "$work/rendered/nodes/$src/wk.yaml.pid")
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
sleep 2 # let the fill's last applies settle before reading the idle RSS (not a synchronisation)
sync # the fill's writeback would otherwise slow whichever side runs first
idle=$(rss)
state_bytes=$(du -sb --exclude=snapshots "$work/data/$src" | cut -f1)

( peak=0; while kill -0 "$pid" 2>/dev/null && [ ! -e "$work/backup.done" ]; do
    r=$(rss); [ "$r" -gt "$peak" ] && peak=$r; echo "$peak" >"$work/peak"; sleep 0.1; done ) &
sampler=$!
secs() { python3 -c "print($2 - $1)"; }
run_ops() {
  local start end
  rm -rf "$work/backups"
  start=$(date +%s.%N)
  /usr/bin/time -f '%M' -o "$work/ops.rss" "$OPS" backup "$work/inventory.yaml" --node "$src" --level 3 --threads "$THREADS" >"$work/backup.out"
  end=$(date +%s.%N)
  ops_runs+=("$(secs "$start" "$end")"); ops_rss_runs+=("$(cat "$work/ops.rss")")
  archive_bytes=$(stat -c %s "$work"/backups/*.tar.zst)
}
run_tar() {
  local start end
  start=$(date +%s.%N)
  # The live directory (snapshot files aside), as the guide's script copies it; tar's "file
  # changed as we read it" (exit 1) is what a copy of a live database looks like, not a failure.
  tar -I "zstd -3 -T$THREADS" --exclude=./snapshots --warning=no-file-changed \
    -cf "$work/baseline.tar.zst" -C "$work/data/$src" . || [ $? -eq 1 ]
  end=$(date +%s.%N)
  tar_runs+=("$(secs "$start" "$end")")
  tar_bytes=$(stat -c %s "$work/baseline.tar.zst")
}
ops_runs=() tar_runs=() ops_rss_runs=()
for run in $(seq 1 "$RUNS"); do
  if [ $((run % 2)) -eq 1 ]; then run_ops; run_tar; else run_tar; run_ops; fi
  echo "run $run: wk-ops ${ops_runs[-1]} s, tar ${tar_runs[-1]} s" >&2
done
touch "$work/backup.done"; wait "$sampler" || true
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
ops_s=$(median "${ops_runs[@]}") tar_s=$(median "${tar_runs[@]}")
ops_rss=$(printf '%s\n' "${ops_rss_runs[@]}" | sort -n | tail -1)

# A follower's snapshot install: stop and wipe the other follower, snapshot and purge on the
# leader, start the follower again and wait until it has caught up (by snapshot: the log is gone).
victim=1001; while [ "$victim" = "$leader" ] || [ "$victim" = "$src" ]; do victim=$((victim + 1)); done
api() { echo "http://127.0.0.4${1: -1}:5001$2"; }
WK_SVC_BIN=$WK "$SVC" stop "$work/rendered/nodes/$victim/wk.yaml"
rm -rf "${work:?}/data/$victim"
snap=$(curl -fsS -m 1200 -X POST -H 'content-type: application/json' -d '{}' "$(api "$leader" /cluster/snapshot)")
snap_bytes=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["data"]["size"])' "$snap")
for _ in $(seq 1 600); do
  purged=$(curl -fsS "$(api "$leader" /cluster/raft/status)" | python3 -c 'import json,sys; print(json.load(sys.stdin)["purged_index"] or 0)')
  [ "$purged" -gt 0 ] && break; sleep 0.1
done
WK_SVC_BIN=$WK "$SVC" start "$work/rendered/nodes/$victim/wk.yaml"
vpid=$(cat "$work/rendered/nodes/$victim/wk.yaml.pid")
vidle=$(awk '/VmRSS/ {print $2}' "/proc/$vpid/status")
start=$(date +%s.%N)
for _ in $(seq 1 6000); do
  curl -fsS -m 600 -X POST -H 'content-type: application/json' -d '{}' "$(api "$victim" /cluster/sync/force)" >/dev/null 2>&1 && break
  sleep 0.1
done
end=$(date +%s.%N)
install_s=$(python3 -c "print($end - $start)")
vpeak=$(awk '/VmHWM/ {print $2}' "/proc/$vpid/status")
installed=$(curl -fsS "$(api "$victim" /cluster/raft/status)" | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshot"]["installed"])')
[ "$installed" -ge 1 ] || { echo "the wiped follower did not catch up by snapshot" >&2; exit 1; }

python3 - "$state_bytes" "$ops_s" "$archive_bytes" "$tar_s" "$tar_bytes" "$idle" "$(cat "$work/peak")" \
  "$ops_rss" "$MESSAGES" "$SIZE" "$THREADS" "$snap_bytes" "$install_s" "$vidle" "$vpeak" "$RUNS" \
  "${ops_runs[*]}" "${tar_runs[*]}" <<'PY' | tee -a bench/RESULTS.md
import sys, datetime, os, platform
state, ops_s, arch, tar_s, tar_b, idle, peak, ops_rss, msgs, size, threads, snap, inst_s, vidle, vpeak, runs, ops_all, tar_all = sys.argv[1:]
snap, inst_s, vidle, vpeak = int(snap), float(inst_s), int(vidle), int(vpeak)
state, arch, tar_b = int(state), int(arch), int(tar_b)
ops_s, tar_s = float(ops_s), float(tar_s)
idle, peak, ops_rss = int(idle), int(peak), int(ops_rss)
mib = 1 << 20
print(f"\n## {datetime.date.today()} — backup throughput and memory (bench/backup.sh)\n")
print(f"`bench/backup.sh {msgs} {size} {threads} {runs}` on {os.cpu_count()} cores ({platform.machine()}): "
      f"a 3-node cluster holding {state/mib:.0f} MiB per node (wk-bench payloads, highly compressible); "
      f"medians of {runs} runs, alternating which side goes first.\n")
print("| what | seconds | MiB/s of state | output MiB |")
print("|---|---|---|---|")
print(f"| `wk-ops backup` (fresh snapshot on a follower, HTTP, tar + zstd -3, {threads} threads) | {ops_s:.1f} | {state/mib/ops_s:.0f} | {arch/mib:.1f} |")
print(f"| `tar -I 'zstd -3 -T{threads}'` of the same data directory | {tar_s:.1f} | {state/mib/tar_s:.0f} | {tar_b/mib:.1f} |")
runs_of = lambda xs: ", ".join(f"{float(x):.2f}" for x in xs.split())
print(f"\nRuns (s): wk-ops {runs_of(ops_all)}; tar {runs_of(tar_all)}.")
print(f"Ratio wk-ops/tar throughput: **{tar_s/ops_s:.2f}×** (goal ≥ 0.9×; wk-ops also builds the snapshot).")
print(f"Source node RSS: idle {idle/1024:.0f} MiB, peak during the backup {peak/1024:.0f} MiB "
      f"(**+{(peak-idle)/1024:.0f} MiB**, goal < 200 MiB); wk-ops peak RSS {ops_rss/1024:.0f} MiB.")
print(f"Wiped follower catching up by a {snap/mib:.0f} MiB snapshot (streamed in chunks, built into a new "
      f"database file and swapped in): {inst_s:.1f} s; RSS at start {vidle/1024:.0f} MiB, peak (VmHWM) {vpeak/1024:.0f} MiB "
      f"(**+{(vpeak-vidle)/1024:.0f} MiB**, goal < 200 MiB).")
PY
