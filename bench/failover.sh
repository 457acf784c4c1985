#!/usr/bin/env bash
# Failover benchmark: a 3-node wukongim cluster vs a 3-node etcd cluster (the anchor, Debian's
# etcd-server), both with a 100 ms heartbeat and a 1 s election timeout. Under continuous writes
# the leader is killed with SIGKILL; the time from the kill to the first acknowledged write sent
# after it is measured, ROUNDS times per cluster (the killed node is restarted and the cluster
# healthy again before each round). Medians and their ratio are appended to bench/RESULTS.md.
# The measuring is bench/failover.py (python3, standard library only).
#
# Usage: bench/failover.sh [ROUNDS=10] [extra failover.py flags, e.g. --targets wukongim]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-10}
shift || true
command -v etcd >/dev/null || { apt-get update -qq && apt-get install -y -qq etcd-server etcd-client >/dev/null; }
command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3 >/dev/null; }
cargo build --release -q -p wukongim --bin wukongim
work=$(mktemp -d) ; trap 'rm -rf "$work"' EXIT
summary="$work/summary.md"
python3 bench/failover.py --wukongim target/release/wukongim --work "$work" --rounds "$ROUNDS" \
  --results "$summary" "$@"
{
  echo
  echo "## $(date -u +%F) — failover under writes, wukongim vs etcd $(etcd --version | awk 'NR==1{print $3}')"
  echo
  echo "\`bench/failover.sh $ROUNDS\`${*:+ (with extra flags)} on $(nproc) cores ($(uname -m)), at $(git rev-parse --short HEAD)."
  echo
  cat "$summary"
} | tee -a bench/RESULTS.md
