# Shared by the bench scripts (sourced): a 3-node wukongim cluster on 127.0.0.31-33.

wait_http() { for _ in $(seq 1 300); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "timeout: $1" >&2; return 1; }

# wk_start WORK BINARY: writes wk{1,2,3}.yaml under WORK, starts the three nodes (logs in WORK),
# waits for their /health; their pids are left in WK_PIDS.
wk_start() {
  local work=$1 bin=$2
  WK_PIDS=()
  for i in 1 2 3; do
    cat >"$work/wk$i.yaml" <<YAML
rootDir: $work/wk$i
addr: tcp://127.0.0.3$i:5100
wsAddr: ws://127.0.0.3$i:5200
httpAddr: 127.0.0.3$i:5001
manager: { on: true, addr: "127.0.0.3$i:5300" }
logLevel: warn
cluster:
  nodeId: 100$i
  serverAddr: 127.0.0.3$i:11110
  initNodes: ["1001@127.0.0.31:11110", "1002@127.0.0.32:11110", "1003@127.0.0.33:11110"]
YAML
    "$bin" --config "$work/wk$i.yaml" >"$work/wk$i.log" 2>&1 &
    WK_PIDS+=($!)
  done
  for i in 1 2 3; do wait_http "http://127.0.0.3$i:5001/health"; done
}
