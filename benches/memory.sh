#!/usr/bin/env bash
# Redis memory per stored click, for the encoding the server writes and for
# five alternatives. Each encoding is loaded into an empty private
# redis-server with `redis-cli --pipe` (N clicks, default 1,000,000) and the
# `used_memory` delta of `INFO memory` is divided by N.
#
#   benches/memory.sh                    # 1 M clicks per encoding
#   N=200000 ONLY=string,bucket benches/memory.sh
#
# The generator, benches/clicks.py, imitates `Click::encode` (src/domain/click.rs)
# byte for byte.
# What the server writes (mode `server`):
# key   <prefix>:{S}:c:<HHHH><BB>  (S = shard, from the visitor hash; HHHH = the
#       click's UTC hour, BB = one of CLICKBACK_CLICK_BUCKETS buckets, base64url)
# field the 16 random characters of the click id
# value 3\0<unix ts>\0<window secs>\0<offer>\0<aff>\0<sub1>\0<sub2>\0<sub3>\0<sub4>\0<sub5>\0<source>\0<visitor>
# The other modes use the first format (one key per 22-character click id,
# value without the window field).
# with sub1 = a 12-digit campaign id, sub2 = an 8-char ad id, sub3-5 empty,
# source = "fb", visitor = an 11-char base64url hash, every click a distinct
# visitor; TTL 30 days (attribution_window_secs 2592000). ~75-byte values.
#
# Encodings (ONLY= picks some, comma-separated):
#   server       what the server writes: hour buckets of CLICK_BUCKETS (64) per shard and
#                hour, HSET bucket field value + bucket EXPIRE, with deploy/redis.conf's
#                hash-max-listpack-entries 512 and hash-max-listpack-value 256 (LISTPACK_VALUE)
#   string       one string per click with TTL: SET key value EX ttl (the one-key-per-click
#                format the server still reads for 22-character click ids)
#   string_dedup the string plus the duplicate-click marker the server also writes for
#                each distinct visitor: <prefix>:{S}:u:<offer>|<aff>|<visitor> "1" EX 86400
#                (CLICKBACK_UNIQUE_CLICK_WINDOW_SECS; it expires after a day, the click after 30)
#   hash         one small hash per click, short field names, empty subs left out, EXPIRE:
#                HSET key t <ts> o <offer> a <aff> 1 <sub1> 2 <sub2> s <source> v <visitor> u 1
#   bucket       hour buckets <prefix>:{S}:c:<hour> holding id -> value, the bucket expiring as a
#                whole, with Redis defaults (hash-max-listpack-entries 128, -value 64)
#   bucket_lp    buckets small enough to stay listpacks: <prefix>:{S}:c:<hour>:<2nd id char>,
#                with hash-max-listpack-entries 512 and hash-max-listpack-value 256
#
# Env: N, ONLY, CLICKS_PER_HOUR (how many of the N clicks share one hour
# bucket; default 3,600,000 = 1,000 clicks/s, so 1 M clicks fill one hour),
# CLICK_BUCKETS (buckets per shard and hour of mode `server`, 64),
# AD_ID_SHARE (the fraction of clicks carrying ad platforms' click ids, 0),
# CLUSTER=1 (also load mode `server` into a 3-primary Redis Cluster, each
# command sent to the node serving its key by benches/split_by_slot.py, and
# divide the sum of the nodes' used_memory deltas by N).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

N="${N:-1000000}"
ONLY="${ONLY:-server,string,string_dedup,hash,bucket,bucket_lp}"
CLICKS_PER_HOUR="${CLICKS_PER_HOUR:-3600000}"
CLICK_BUCKETS="${CLICK_BUCKETS:-64}"

install_missing redis-server:redis-server redis-cli:redis-tools python3:python3
start_redis


used_memory() { rcli info memory | tr -d '\r' | awk -F: '$1=="used_memory"{print $2}'; }

declare -A RESULT DETAIL
IFS=',' read -ra modes <<<"$ONLY"
for mode in "${modes[@]}"; do
    rcli flushall >/dev/null
    rcli config set hash-max-listpack-entries 128 >/dev/null
    rcli config set hash-max-listpack-value 64 >/dev/null
    if [[ "$mode" == bucket_lp || "$mode" == server ]]; then
        rcli config set hash-max-listpack-entries 512 >/dev/null
        rcli config set hash-max-listpack-value "${LISTPACK_VALUE:-256}" >/dev/null
    fi
    sleep 0.2
    before="$(used_memory)"
    log "$mode: loading $N clicks"
    python3 "$BENCH_ROOT/benches/clicks.py" "$mode" "$N" --per-hour "$CLICKS_PER_HOUR" \
        --buckets "$CLICK_BUCKETS" --ad-ids "${AD_ID_SHARE:-0}" | rcli --pipe >"$BENCH_TMP/pipe.$mode.log" 2>&1 ||
        die "redis-cli --pipe failed for $mode: $(tail -3 "$BENCH_TMP/pipe.$mode.log")"
    grep -q 'errors: 0' "$BENCH_TMP/pipe.$mode.log" ||
        die "$mode: Redis refused commands: $(tail -2 "$BENCH_TMP/pipe.$mode.log")"
    after="$(used_memory)"
    keys="$(rcli dbsize)"
    # The encoding Redis chose for one of the keys written.
    sample="$(rcli randomkey)"
    enc="$(rcli object encoding "$sample")"
    RESULT[$mode]=$(((after - before) / N))
    DETAIL[$mode]="keys=$keys, encoding=$enc, used_memory $(numfmt --to=iec "$before") -> $(numfmt --to=iec "$after")"
    log "$mode: $((RESULT[$mode])) bytes/click (${DETAIL[$mode]})"
done

if [[ -n "${CLUSTER:-}" ]]; then
    start_cluster 3
    node_memory() { local port n=0; for port in "${CLUSTER_PORTS[@]}"; do
        n=$((n + $(redis-cli -p "$port" info memory | tr -d '\r' | awk -F: '$1=="used_memory"{print $2}'))); done; echo "$n"; }
    # Which node serves which slots, as split_by_slot.py takes it.
    specs=()
    for port in "${CLUSTER_PORTS[@]}"; do
        id="$(redis-cli -p "$port" cluster myid)"
        ranges="$(redis-cli -p "$port" cluster nodes | awk -v id="$id" '$1 == id { for (i = 9; i <= NF; i++) printf "%s%s", (i > 9 ? "," : ""), $i }')"
        specs+=("$port:$ranges")
    done
    mkdir -p "$BENCH_TMP/split"
    sleep 0.2
    before="$(node_memory)"
    log "cluster: loading $N clicks (mode server) through benches/split_by_slot.py"
    python3 "$BENCH_ROOT/benches/clicks.py" server "$N" --per-hour "$CLICKS_PER_HOUR" \
        --buckets "$CLICK_BUCKETS" | python3 "$BENCH_ROOT/benches/split_by_slot.py" "$BENCH_TMP/split" "${specs[@]}"
    keys=0
    for port in "${CLUSTER_PORTS[@]}"; do
        redis-cli -p "$port" --pipe <"$BENCH_TMP/split/$port.resp" >"$BENCH_TMP/pipe.cluster.$port.log" 2>&1 ||
            die "redis-cli --pipe failed on $port: $(tail -3 "$BENCH_TMP/pipe.cluster.$port.log")"
        grep -q 'errors: 0' "$BENCH_TMP/pipe.cluster.$port.log" ||
            die "cluster node $port refused commands: $(tail -2 "$BENCH_TMP/pipe.cluster.$port.log")"
        keys=$((keys + $(redis-cli -p "$port" dbsize)))
    done
    after="$(node_memory)"
    modes+=(cluster)
    RESULT[cluster]=$(((after - before) / N))
    DETAIL[cluster]="mode server on 3 primaries, keys=$keys, used_memory (sum) $(numfmt --to=iec "$before") -> $(numfmt --to=iec "$after")"
    log "cluster: $((RESULT[cluster])) bytes/click (${DETAIL[cluster]})"
fi

echo
echo "Redis memory per click, $N clicks with realistic sub-IDs (redis $(redis-server --version | awk '{print $3}' | cut -d= -f2))"
printf '%-13s %12s  %s\n' encoding bytes/click details
for mode in "${modes[@]}"; do
    printf '%-13s %12s  %s\n' "$mode" "${RESULT[$mode]}" "${DETAIL[$mode]}"
done
