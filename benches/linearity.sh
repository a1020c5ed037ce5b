#!/usr/bin/env bash
# Does a click cost the same with 10 K and with 5 M clicks already stored?
# (clicks/s should stay flat from 10 K to 5 M stored clicks).
#
#   benches/linearity.sh                       # levels 10K,100K,1M,5M; 3 x 5 s each
#   LEVELS=10000,1000000 ROUNDS=1 benches/linearity.sh
#
# Starts a private redis-server (deploy/redis.conf's listpack limits) and the
# release server, then for each level fills Redis up to that many stored
# clicks and measures clicks/s with wrk (-t1 -c64, a distinct visitor per
# request, as benches/load.sh does), ROUNDS times, and prints the median.
# The stored clicks are written straight into Redis in the server's shape
# (hour buckets of the previous hours, 1 M clicks an hour, with a
# duplicate-click marker per click as the server writes for distinct
# visitors), so filling 5 M takes a minute rather than the ~4 minutes of
# clicking them; the measured clicks land in the current hour's buckets as
# in production. Redis memory is printed per level too.
#
# Env: LEVELS, ROUNDS (3), DURATION (5s), CONNECTIONS (64), CLICKBACK_BIN,
# SKIP_BUILD=1.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

LEVELS="${LEVELS:-10000,100000,1000000,5000000}"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5s}"
CONNECTIONS="${CONNECTIONS:-64}"
export CLICKBACK_WORKERS="${CLICKBACK_WORKERS:-1}"
PREFIX="lin$(date +%s)"

install_missing wrk:wrk redis-server:redis-server redis-cli:redis-tools curl:curl python3:python3

release_binary
check_quiet

start_redis
start_clickback "$PREFIX"
seed_bench_offer

# Stored clicks of earlier hours (from a week ago on, 1 M an hour), in the
# server's shape, written by benches/clicks.py.
FILL_T0=$(($(date +%s) - 7 * 86400))

write_click_script "$BENCH_TMP/click.lua"

used_memory() { rcli info memory | tr -d '\r' | awk -F: '$1=="used_memory"{print $2}'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

filled=0
declare -a ROWS
IFS=',' read -ra levels <<<"$LEVELS"
for level in "${levels[@]}"; do
    if ((level > filled)); then
        log "filling Redis up to $level stored clicks"
        python3 "$BENCH_ROOT/benches/clicks.py" server "$((level - filled))" --start "$filled" \
            --t0 "$FILL_T0" --per-hour 1000000 --prefix "$PREFIX" --offer "$OFFER" --aff "$AFF" --markers |
            rcli --pipe >"$BENCH_TMP/pipe.log" 2>&1 || die "fill failed: $(tail -3 "$BENCH_TMP/pipe.log")"
        grep -q 'errors: 0' "$BENCH_TMP/pipe.log" || die "fill refused: $(tail -2 "$BENCH_TMP/pipe.log")"
        filled=$level
    fi
    rates=()
    for ((r = 1; r <= ROUNDS; r++)); do
        wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -s "$BENCH_TMP/click.lua" \
            "http://127.0.0.1:$CB_PORT$CLICK_PATH" >"$BENCH_TMP/wrk.$level.$r" 2>&1 || die "wrk failed"
        rates+=("$(awk '/^Requests\/sec/ { printf "%.0f", $2 }' "$BENCH_TMP/wrk.$level.$r")")
        log "level $level round $r: ${rates[-1]} clicks/s"
    done
    rate="$(printf '%s\n' "${rates[@]}" | median)"
    p99="$(awk '$1 == "99%" { print $2 }' "$BENCH_TMP/wrk.$level.$ROUNDS")"
    keys="$(rcli dbsize)"
    ROWS+=("$(printf '| %-9s | %-9s | %-22s | %-8s | %-7s | %-9s |' "$level" "$rate" "${rates[*]}" "$p99" "$keys" "$(numfmt --to=iec "$(used_memory)")")")
done

echo
echo "clicks/s against stored clicks (wrk -t1 -c$CONNECTIONS -d$DURATION, $ROUNDS rounds, median; CLICKBACK_WORKERS=$CLICKBACK_WORKERS; $(date -u +%Y-%m-%dT%H:%MZ))"
echo "| stored before | clicks/s (median) | rounds | p99 (last round) | Redis keys | used_memory |"
echo "|---|---|---|---|---|---|"
for row in "${ROWS[@]}"; do echo "$row"; done
