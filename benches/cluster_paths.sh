#!/usr/bin/env bash
# The click write on a private 3-primary Redis Cluster: one multiplexed
# cluster connection against deadpool pools of cluster connections, and the
# store's per-slot script against a plain pipeline. See benches/cluster_paths.rs.
#
#   benches/cluster_paths.sh                 # every variant, 3 rounds of 3 s, medians
#   SECS=2 ROUNDS=1 ONLY=mux,pool64 benches/cluster_paths.sh
#
# Env: SECS (3), ROUNDS (3, interleaved, medians printed), TASKS (64),
# THREADS (tokio worker threads of the client, 1), ONLY, SKIP_BUILD=1.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

install_missing redis-server:redis-server redis-cli:redis-tools

bin="$(bench_binary cluster_paths)"

check_quiet
start_cluster 3
echo "(CPUs ${BUSY_BEFORE}% busy with other work just before the start)"
CLUSTER_NODES="$CLUSTER_NODES" ROUNDS="${ROUNDS:-3}" SECS="${SECS:-3}" "$bin" --bench
