#!/usr/bin/env bash
# Report counters with many sub values: N clicks (default 1,000,000) with
# VALUES distinct sub1 values (default 100,000), written through the store
# (RedisStore::record_click, pipelined on the multiplexed connection, not
# HTTP) into a private redis-server; prints Redis's memory (all, and the
# report counters' own) and the time of stats queries by sub1, source and
# hour in a time zone against the plain report (benches/subs.rs).
#
#   benches/subs.sh                      # 1 M clicks, 100 k values, ~2-3 minutes on 2 cores
#   N=200000 VALUES=50000 CAP=100000 benches/subs.sh
#
# Env: N, VALUES, CONCURRENCY (clicks in flight, default 256), CAP (distinct
# values admitted per dimension and day; default the server's 10,000).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

install_missing redis-server:redis-server redis-cli:redis-tools

SUBS_BIN="$(bench_binary subs)"
start_redis
log "loading ${N:-1000000} clicks with ${VALUES:-100000} distinct sub1 values"
REDIS_URL="$REDIS_URL" "$SUBS_BIN"
