# Helpers (for the WuKongIM-protocol benches; run.sh and profile.sh use lib.sh) shared by bench/single-node.sh, fanout.sh and connections.sh (sourced, not run):
# build the release binaries, raise the fd limit, start wukongim nodes on loopback addresses
# with tokenAuthOn off (the default), wait for them, sample a process's RSS and CPU, and clean
# up every node this script started.

# WK=<absolute path of a wukongim binary> runs another build (e.g. the one before a change);
# BENCH likewise for wk-bench. Whatever is not given is built here.
wk_build() {
  if [ -z "${WK:-}" ] || [ -z "${BENCH:-}" ]; then
    cargo build --release -q -p wukongim --bin wukongim --bin wk-bench
  fi
  WK=${WK:-$PWD/target/release/wukongim} BENCH=${BENCH:-$PWD/target/release/wk-bench}
  echo "server: $WK" >&2
}

# 10,000 connections need more than the usual 1,024 descriptors, in the node and in wk-bench.
raise_nofile() {
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  echo "fd limit: $(ulimit -n)" >&2
}

for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "bench needs $tool (Debian: curl python3)" >&2; exit 2; }
done

WORK=$(mktemp -d)
NODE_PIDS=()
bench_cleanup() {
  if [ ${#NODE_PIDS[@]} -gt 0 ]; then kill "${NODE_PIDS[@]}" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap bench_cleanup EXIT

wait_http() { for _ in $(seq 1 300); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "timeout: $1" >&2; return 1; }

wait_healthy() {
  for _ in $(seq 1 300); do
    curl -fsS "http://$1:5001/cluster/status" 2>/dev/null | grep -q '"healthy"' && return 0; sleep 0.1
  done
  echo "timeout: cluster at $1 not healthy" >&2; return 1
}

# wk_node IP ID [INIT_NODES]: starts one node (data under $WORK) listening on IP (TCP 5100,
# WebSocket 5200, HTTP 5001, cluster 11110); its pid is appended to NODE_PIDS and LAST_PID.
wk_node() {
  local ip=$1 id=$2 init=${3:-}
  cat >"$WORK/wk$id.yaml" <<YAML
rootDir: $WORK/wk$id
addr: tcp://$ip:5100
wsAddr: ws://$ip:5200
httpAddr: $ip:5001
manager: { on: false }
logLevel: warn
cluster:
  nodeId: $id
  serverAddr: $ip:11110
YAML
  [ -n "$init" ] && echo "  initNodes: [$init]" >>"$WORK/wk$id.yaml"
  "$WK" --config "$WORK/wk$id.yaml" >"$WORK/wk$id.log" 2>&1 &
  LAST_PID=$!
  NODE_PIDS+=("$LAST_PID")
}

# stop_nodes: stops every node started so far and removes their data.
stop_nodes() {
  if [ ${#NODE_PIDS[@]} -gt 0 ]; then kill "${NODE_PIDS[@]}" 2>/dev/null || true; wait "${NODE_PIDS[@]}" 2>/dev/null || true; fi
  NODE_PIDS=()
  rm -rf "$WORK"/wk*
}

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
# CPU seconds (user + system) a process has used so far.
cpu_secs() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
