#!/usr/bin/env bash
# Compares Redis write paths for one click (SET EX + HINCRBY under one hash
# tag) against a private redis-server: deadpool pool vs one multiplexed
# connection, MULTI vs plain pipeline vs one Lua script vs group commit.
#
#   benches/redis_paths.sh                 # every variant, 3 rounds of 3 s, medians
#   SECS=2 ROUNDS=1 ONLY=pool64_multi,mux_pipe benches/redis_paths.sh
#
# Env: SECS (per variant and round, default 3), ROUNDS (3; the variants run
# interleaved so that other load on the machine hits them alike, and the
# medians are printed), TASKS (concurrent tasks, 64),
# THREADS (tokio worker threads of the client, 1), ONLY (variants),
# SKIP_BUILD=1 (reuse the last build). See benches/redis_paths.rs.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

install_missing redis-server:redis-server redis-cli:redis-tools

bin="$(bench_binary redis_paths)"

check_quiet
start_redis
echo "(CPUs ${BUSY_BEFORE}% busy with other work just before the start)"
REDIS_URL="$REDIS_URL" REDIS_PID="$REDIS_PID" FLUSH=1 ROUNDS="${ROUNDS:-3}" SECS="${SECS:-3}" "$bin" --bench
echo
echo "redis-server used: $(rcli info memory | tr -d '\r' | grep '^used_memory_human:')," \
    "keys: $(rcli dbsize)"
