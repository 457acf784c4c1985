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

# cpu_seconds PID...: user + system CPU seconds the processes have used so far (/proc/PID/stat
# fields 14 and 15, read after the command name, which may hold spaces).
cpu_seconds() {
  local ticks=0 p
  for p in "$@"; do ticks=$(( ticks + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}') )); done
  python3 -c "print($ticks / $(getconf CLK_TCK))"
}

# measured "PID..." COMMAND...: runs COMMAND (a wk-bench run printing one JSON result line) and
# prints that line with "cpu_us" added: the CPU microseconds the processes PID... spent during it
# (cpu_seconds before and after) per request it counted.
measured() {
  local pids=($1) c0 line; shift
  c0=$(cpu_seconds "${pids[@]}")
  line=$("$@")
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["cpu_us"]=(float(sys.argv[3])-float(sys.argv[2]))*1e6/max(r["requests"],1); print(json.dumps(r))' \
    "$line" "$c0" "$(cpu_seconds "${pids[@]}")"
}
