#!/usr/bin/env bash
# End-to-end load test of clickback against its targets (docs/PERFORMANCE.md),
# in one run on one machine:
#   clickback click redirects (GET /c/{offer}) with a 0-lost-clicks check
#   and clickback postbacks, each crediting a distinct fresh click,
#   judged against the floor of clickback's own stack (benches/floor_server.rs:
#      actix-web answering a bare 302, a 302 after one pipelined Redis SET,
#      a 302 after two SETs in turn, the round trips of a postback, and a 302
#      after one SET through a hand-written RESP pipeline instead of redis-rs):
#      clicks >= 0.85 x the one-SET floor with p99 <= 2 ms, postbacks >= 0.70 x
#      the two-SET floor, 0 lost clicks, every postback credited;
#   plus two references: nginx's fixed `return 302` (1 worker, access_log off)
#   and redis-benchmark's SET ceiling of the same Redis.
# All of wrk, nginx, redis-server and clickback share this machine.
#
#   benches/load.sh                          # 10 s per phase
#   DURATION=3s benches/load.sh              # quick check
#   CLICKBACK_WORKERS=1 SKIP_BUILD=1 benches/load.sh
#
# Env:
#   DURATION            wrk duration of each measured phase (10s)
#   CONNECTIONS         wrk -c (64); THREADS wrk -t (1)
#   WARMUP              unmeasured warm-up of nginx and clickback (2s; 0 = none)
#   SEED                unmeasured extra clicks made before the postback phase
#                       so there is a fresh click for every postback (DURATION)
#   CLICKBACK_WORKERS   actix worker threads (default: the CPUs, as the server's
#                       own default; nginx keeps 1 worker)
#   CLICKBACK_REDIS_POOL_SIZE  (server default when unset)
#   SKIP_BUILD=1        use the existing target/release/clickback
#   CLICKBACK_BIN=path  run this binary instead (A/B comparisons; implies no build)
#   SKIP_REDIS_BENCHMARK=1
#   SKIP_FLOOR=1        skip the four floor phases (actix bare 302, 302 + one SET,
#                       302 + two SETs one after the other, 302 + one SET sent
#                       through a hand-written RESP pipeline instead of redis-rs);
#                       the click and postback rates are then not judged
#   STRICT=1            exit 1 when a target is missed (needs the floor phases)
#   KEEP_TMP=1          keep the temp dir (logs, configs, wrk output)
#   WAIT_QUIET=SECS     wait up to SECS for other work on the machine to stop
#   VISITORS=one        every click from the same visitor (default: a distinct
#                       User-Agent, so a distinct visitor, per request)
#   FORWARD=1           the affiliate has a postback URL (nginx answering 204 on
#                       this machine): every credited postback also queues,
#                       sends and records an affiliate postback; the report
#                       adds how many were delivered and how long the queue
#                       took to drain after the phase
#   CLUSTER=1           also run the click phase on a 3-primary Redis Cluster
#                       (3 redis-server on this machine, a second clickback with
#                       REDIS_CLUSTER_NODES) right after the other phases, and
#                       report it next to the one-node click phase: on one
#                       machine a ratio of the two, not a scaling figure
#   PERF=1              sample clickback with `perf record` during the click and
#                       postback phases and print its hottest symbols (perf
#                       costs a little throughput in that run); PERF=redis
#                       samples redis-server instead
set -euo pipefail
source "$(dirname "$0")/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-1}"
WARMUP="${WARMUP:-2s}"
SEED="${SEED:-$DURATION}"
export CLICKBACK_WORKERS="${CLICKBACK_WORKERS:-$(nproc)}"

# The targets: clicks and postbacks against the stack's floor, click p99.
CLICK_FLOOR_TARGET=0.85    # clicks/s >= this x the "302 + one SET" floor
CLICK_P99_TARGET_MS=2      # click p99 <= this, at CONNECTIONS connections
POSTBACK_FLOOR_TARGET=0.70 # postbacks/s >= this x the "302 + two SETs" floor
[[ -n "${STRICT:-}" && -n "${SKIP_FLOOR:-}" ]] &&
    { echo "STRICT=1 judges clicks and postbacks against the floor phases: unset SKIP_FLOOR" >&2; exit 2; }

PREFIX="bench$(date +%s)"

install_missing wrk:wrk nginx:nginx redis-server:redis-server redis-cli:redis-tools \
    redis-benchmark:redis-tools curl:curl
if [[ -n "${PERF:-}" ]] && ! command -v perf >/dev/null 2>&1; then
    install_missing perf:linux-perf
fi

# --- build -------------------------------------------------------------------
release_binary
[[ -z "${SKIP_FLOOR:-}" ]] && FLOOR_BIN="$(bench_binary floor_server)"
check_quiet

# --- processes ---------------------------------------------------------------
start_redis

start_clickback "$PREFIX"

NG_PORT="$(free_port)"
NG_DIR="$BENCH_TMP/nginx"
mkdir -p "$NG_DIR/tmp"
cat >"$NG_DIR/nginx.conf" <<EOF
worker_processes 1;
pid $NG_DIR/nginx.pid;
error_log $NG_DIR/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    # No per-connection request limit, like clickback: the reference must not
    # pay for reconnects the measured server does not pay for.
    keepalive_requests 100000000;
    client_body_temp_path $NG_DIR/tmp/body;
    proxy_temp_path $NG_DIR/tmp/proxy;
    fastcgi_temp_path $NG_DIR/tmp/fastcgi;
    uwsgi_temp_path $NG_DIR/tmp/uwsgi;
    scgi_temp_path $NG_DIR/tmp/scgi;
    server {
        listen 127.0.0.1:$NG_PORT;
        location / { return 302 https://shop.example/landing?x=1; }
        # The affiliate's tracker, for FORWARD=1.
        location /pb { return 204; }
    }
}
EOF
nginx -p "$NG_DIR" -e "$NG_DIR/error.log" -c "$NG_DIR/nginx.conf" -g 'daemon off;' \
    >"$NG_DIR/stdout.log" 2>&1 &
BENCH_PIDS+=($!)
wait_for nginx curl -fsS -o /dev/null "http://127.0.0.1:$NG_PORT/"
log "nginx $(nginx -v 2>&1 | cut -d/ -f2) on port $NG_PORT (1 worker, access_log off)"

# --- seed --------------------------------------------------------------------
seed_bench_offer
if [[ -n "${FORWARD:-}" ]]; then
    code="$(curl -sS -o "$BENCH_TMP/admin.out" -w '%{http_code}' -X PUT \
        -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
        --data "{\"name\":\"a\",\"postback_url\":\"http://127.0.0.1:$NG_PORT/pb?c={sub1}&s={status}&p={payout}&id={conversion_id}\"}" \
        "http://127.0.0.1:$CB_PORT/api/v1/affiliates/$AFF")"
    [[ "$code" == 2* ]] || die "PUT the affiliate's postback URL answered $code: $(cat "$BENCH_TMP/admin.out")"
    log "forwarding on: the affiliate's postback URL is nginx's /pb"
fi

probe="$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' "http://127.0.0.1:$CB_PORT$CLICK_PATH")"
[[ "$probe" == "302 "*click_id=* ]] || die "a test click answered '$probe', expected a 302 with click_id"
log "test click: $probe"

# --- helpers -----------------------------------------------------------------
# Sum of one metric over every counter hash of this prefix (all shards, all days).
sum_metric() {
    local metric="$1" key total=0 part
    while read -r key; do
        [[ -z "$key" ]] && continue
        part="$(rcli hgetall "$key" | awk -v m="|$metric" '
            NR % 2 == 1 { f = $0; next }
            length(f) > length(m) && substr(f, length(f) - length(m) + 1) == m { s += $0 }
            END { printf "%d", s }')"
        total=$((total + part))
    done < <(rcli --scan --pattern "$PREFIX:{*}:st:*")
    echo "$total"
}
# Clicks are fields of hour-bucket hashes (cb:{S}:c:<hour><bucket>). One
# script walks them: `click_ids` lists the click ids (shard + bucket + field),
# `click_ids count` only counts them.
click_ids() {
    rcli eval "local out, n, cursor = {}, 0, '0'
        repeat
            local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
            cursor = r[1]
            for _, k in ipairs(r[2]) do
                if ARGV[2] == 'count' then
                    n = n + redis.call('HLEN', k)
                else
                    local id = string.match(k, '{(.)}') .. string.match(k, ':c:(.+)$')
                    for _, f in ipairs(redis.call('HKEYS', k)) do out[#out + 1] = id .. f end
                end
            end
        until cursor == '0'
        if ARGV[2] == 'count' then return n end
        return out" 0 "$PREFIX:{*}:c:*" "${1:-list}"
}
# clickback_postbacks_total{result="..."} from /metrics (0 when absent).
postback_metric() {
    curl -fsS "http://127.0.0.1:$CB_PORT/metrics" |
        awk -v r="result=\"$1\"" '/^clickback_postbacks_total\{/ && index($0, r) { s += $NF } END { printf "%d", s }'
}

# command_stats NAME: Redis' own accounting of the commands since the last
# CONFIG RESETSTAT (calls, µs of Redis CPU per call), kept for the report;
# run_wrk resets and reads it around every phase.
command_stats() {
    rcli info commandstats | tr -d '\r' | awk -F'[:,=]' '/^cmdstat_/ {
        sub("cmdstat_", "", $1); if ($1 !~ /^(info|config)/) printf "%s %s×%s µs, ", $1, $3, $7 }' |
        sed 's/, $//' >"$BENCH_TMP/cmdstats.$1"
}

# run_wrk NAME URL [wrk args...]: runs wrk, keeps its output in $BENCH_TMP/wrk.NAME
# and the CPU share of other work during it in OTHER[NAME].
declare -A OTHER IDLE CB_CORES REDIS_CORES
run_wrk() {
    local name="$1" url="$2"
    shift 2
    log "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency${*:+ $*} $url"
    local perf_pid=""
    if [[ -n "${PERF:-}" && ("$name" == click || "$name" == postback) ]]; then
        local perf_target="$CB_PID"
        [[ "${PERF:-}" == redis ]] && perf_target="$REDIS_PID"
        perf record -e cpu-clock -F 999 -p "$perf_target" -o "$BENCH_TMP/perf.$name.data" \
            >"$BENCH_TMP/perf.$name.log" 2>&1 &
        perf_pid=$!
        BENCH_PIDS+=("$perf_pid")
    fi
    local cb0 rd0 t0 t1
    rcli config resetstat >/dev/null
    cb0="$(pid_ticks "$CB_PID")"
    rd0="$(pid_ticks "$REDIS_PID")"
    t0="$(date +%s%N)"
    phase_start
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url" >"$BENCH_TMP/wrk.$name" 2>&1 ||
        die "wrk failed: $(cat "$BENCH_TMP/wrk.$name")"
    phase_end
    t1="$(date +%s%N)"
    command_stats "$name"
    OTHER[$name]="$OTHER_PCT"
    IDLE[$name]="$IDLE_PCT"
    # CPU used by clickback and by Redis during the phase, in cores.
    CB_CORES[$name]="$(awk -v j="$(($(pid_ticks "$CB_PID") - cb0))" -v hz="$CLK_TCK" -v ns="$((t1 - t0))" \
        'BEGIN { printf "%.2f", j / hz / (ns / 1e9) }')"
    REDIS_CORES[$name]="$(awk -v j="$(($(pid_ticks "$REDIS_PID") - rd0))" -v hz="$CLK_TCK" -v ns="$((t1 - t0))" \
        'BEGIN { printf "%.2f", j / hz / (ns / 1e9) }')"
    if [[ -n "$perf_pid" ]]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
        perf report -i "$BENCH_TMP/perf.$name.data" --stdio --no-children --sort dso,symbol \
            --percent-limit 0.7 2>/dev/null | grep -v '^#' | grep -v '^$' |
            sed -E 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//' | cut -c1-140 | head -30 >"$BENCH_TMP/perf.$name.txt" || true
        perf report -i "$BENCH_TMP/perf.$name.data" --stdio --no-children --sort dso 2>/dev/null |
            awk '!/^#/ && NF >= 2 { printf "%s %s, ", $2, $1 }' | sed 's/, $//' >"$BENCH_TMP/perf.$name.dso" || true
    fi
    sed 's/^/    /' "$BENCH_TMP/wrk.$name" >&2
    log "other work on the machine during this phase: ${OTHER_PCT}% of all CPUs"
}
warm() {
    [[ "$WARMUP" == 0 || "$WARMUP" == 0s ]] && return 0
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" "$1" >/dev/null 2>&1 || true
}

# wrk_field NAME FIELD: rps | total | bad (non-2xx/3xx) | errors (socket) | p50 | p90 | p99 (ms)
wrk_field() {
    local f="$BENCH_TMP/wrk.$1"
    case "$2" in
    rps) awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$f" ;;
    total) awk '/ requests in / { print $1 }' "$f" ;;
    bad) awk '/Non-2xx or 3xx responses:/ { n = $NF } END { printf "%d", n }' "$f" ;;
    errors) awk '/Socket errors:/ { gsub(",", ""); n = $4 + $6 + $8 + $10 } END { printf "%d", n }' "$f" ;;
    p50 | p90 | p99)
        awk -v p="${2#p}%" '
            /Latency Distribution/ { in_dist = 1; next }
            in_dist && $1 == p {
                v = $2; unit = v; sub(/[0-9.]+/, "", unit); sub(/[a-z]+$/, "", v)
                if (unit == "us") v /= 1000; else if (unit == "s") v *= 1000; else if (unit == "m") v *= 60000
                printf "%.2f", v; exit
            }' "$f"
        ;;
    esac
}

# --- 1. nginx reference --------------------------------------------------------
warm "http://127.0.0.1:$NG_PORT$CLICK_PATH"
run_wrk nginx "http://127.0.0.1:$NG_PORT$CLICK_PATH"

# --- 2. clicks -----------------------------------------------------------------
warm "http://127.0.0.1:$CB_PORT$CLICK_PATH"
sleep 0.5
# Real traffic is many visitors: every click a distinct one (a duplicate-
# click marker is written, the unique counter moves). VISITORS=one sends
# every click as the same visitor instead (after the first, every click is a
# duplicate, which costs Redis less).
write_click_script "$BENCH_TMP/click.lua"
CLICK_SCRIPT=(-s "$BENCH_TMP/click.lua")
[[ "${VISITORS:-distinct}" == one ]] && CLICK_SCRIPT=()
keys_before="$(click_ids count)"
clk_before="$(sum_metric clk)"
run_wrk click "http://127.0.0.1:$CB_PORT$CLICK_PATH" "${CLICK_SCRIPT[@]}"
sleep 0.5
keys_after="$(click_ids count)"
clk_after="$(sum_metric clk)"
click_total="$(wrk_field click total)"
click_bad="$(wrk_field click bad)"
click_302=$((click_total - click_bad))
stored_keys=$((keys_after - keys_before))
stored_clk=$((clk_after - clk_before))
stored=$((stored_keys < stored_clk ? stored_keys : stored_clk))
lost=$((click_302 > stored ? click_302 - stored : 0))
# wrk stops counting at the deadline; requests still in flight then were
# stored but never counted (at most one per connection).
in_flight=$((stored > click_302 ? stored - click_302 : 0))
log "clicks: wrk counted $click_302 302s ($click_bad non-2xx/3xx); stored: $stored_keys click keys, $stored_clk on the clk counters; lost $lost"

# --- 3. postbacks, each crediting a distinct fresh click -------------------------
if [[ "$SEED" != 0 && "$SEED" != 0s ]]; then
    log "seeding fresh clicks for the postbacks (unmeasured, $SEED)"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$SEED" "${CLICK_SCRIPT[@]}" "http://127.0.0.1:$CB_PORT$CLICK_PATH" >/dev/null 2>&1 || true
fi
ids="$BENCH_TMP/click_ids.txt"
click_ids >"$ids"
ids_available="$(wc -l <"$ids")"
# One stored click and its bucket, to compare with the shape benches/memory.sh writes.
sample_id="$(head -1 "$ids")"
sample_key="$PREFIX:{${sample_id:0:1}}:c:${sample_id:1:6}"
sample_len="$(rcli hstrlen "$sample_key" "${sample_id:7}")"
sample_mem="$(rcli memory usage "$sample_key" samples 0)"
sample_clicks="$(rcli hlen "$sample_key")"
sample_encoding="$(rcli object encoding "$sample_key")"
sample_ttl="$(rcli ttl "$sample_key")"
log "$ids_available never-converted click ids for the postback phase"
cat >"$BENCH_TMP/postback.lua" <<'LUA'
-- Every request credits a different click, with its own txid. Click ids are
-- read from a file (one per line) made from the click keys in Redis. The
-- request is built from one template with string.format, as the click
-- script's: wrk.format per request costs wrk CPU the servers share.
local ids, n, i = {}, 0, 0
local template
function init(args)
  for line in io.lines(os.getenv("CLICK_IDS")) do
    n = n + 1
    ids[n] = line
  end
  local host = wrk.headers["Host"] or (wrk.host .. ":" .. wrk.port)
  template = "GET /postback?click_id=%s&token=" .. os.getenv("POSTBACK_TOKEN"):gsub("%%", "%%%%") ..
    "&txid=t%d HTTP/1.1\r\nHost: " .. host .. "\r\n\r\n"
end
function request()
  i = i + 1
  -- Past the end ids repeat: those postbacks answer "duplicate" and the
  -- script reports the shortfall; SEED makes more ids.
  return template:format(ids[(i - 1) % n + 1], i)
end
LUA
cv_before="$(sum_metric cv)"
credited_before="$(postback_metric credited)"
export CLICK_IDS="$ids" POSTBACK_TOKEN="$TOKEN"
run_wrk postback "http://127.0.0.1:$CB_PORT/" -s "$BENCH_TMP/postback.lua"
sleep 0.5
cv_after="$(sum_metric cv)"
credited_after="$(postback_metric credited)"
pb_total="$(wrk_field postback total)"
pb_bad="$(wrk_field postback bad)"
credited=$((cv_after - cv_before))
credited_metric=$((credited_after - credited_before))
forwarded="off"
if [[ -n "${FORWARD:-}" ]]; then
    # The queue drains after the phase: wait (bounded) for every credited
    # conversion's postback to be delivered, and time it.
    delivered_metric() {
        curl -fsS "http://127.0.0.1:$CB_PORT/metrics" |
            awk '/^clickback_deliveries_total\{result="delivered"\}/ { print $NF }'
    }
    drain_start="$(date +%s.%N)"
    for _ in $(seq 600); do
        [[ "$(delivered_metric)" -ge "$credited_metric" ]] && break
        sleep 0.1
    done
    drained="$(awk -v s="$drain_start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')"
    forwarded="$(delivered_metric) of $credited_metric delivered, drained ${drained}s after the phase"
fi
reused=$((pb_total > ids_available ? pb_total - ids_available : 0))

# --- 4. the stack's floor: actix-web's bare 302, a 302 after one SET, after two ---
# Driven with the click phase's wrk script, so wrk does the same work per
# request as it did for the clicks.
if [[ -z "${SKIP_FLOOR:-}" ]]; then
    for mode in bare write write2 write_raw; do
        FLOOR_PORT="$(free_port)"
        MODE="$mode" LISTEN="127.0.0.1:$FLOOR_PORT" REDIS_URL="$REDIS_URL" WORKERS="$CLICKBACK_WORKERS" \
            KEY_PREFIX="$PREFIX:floor" "$FLOOR_BIN" --bench >"$BENCH_TMP/floor.$mode.log" 2>&1 &
        FLOOR_PID=$!
        BENCH_PIDS+=("$FLOOR_PID")
        wait_for floor_server curl -fsS -o /dev/null "http://127.0.0.1:$FLOOR_PORT/"
        url="http://127.0.0.1:$FLOOR_PORT$CLICK_PATH"
        warm "$url"
        CB_PID="$FLOOR_PID" run_wrk "floor_$mode" "$url" "${CLICK_SCRIPT[@]}"
        kill "$FLOOR_PID" 2>/dev/null || true
        [[ "$(wrk_field "floor_$mode" bad)" == 0 ]] || die "floor_server ($mode) answered non-3xx: $(cat "$BENCH_TMP/wrk.floor_$mode")"
    done
fi

# --- 5. Redis ceiling ------------------------------------------------------------
redis_rps="skipped"
if [[ -z "${SKIP_REDIS_BENCHMARK:-}" ]]; then
    log "redis-benchmark -q -t set -P 1 -c 64 -n 200000"
    redis-benchmark -p "$REDIS_PORT" -q -t set -P 1 -c 64 -n 200000 2>&1 | tr '\r' '\n' |
        grep -E '^SET: [0-9.]+ requests per second' | tail -1 >"$BENCH_TMP/redis-benchmark.txt" || true
    redis_rps="$(awk '{ printf "%.0f", $2 }' "$BENCH_TMP/redis-benchmark.txt")"
    [[ -n "$redis_rps" ]] || redis_rps="failed"
fi

# --- 6. clicks on a 3-primary Redis Cluster (CLUSTER=1) ----------------------------
cluster_row="off (CLUSTER=1)"
if [[ -n "${CLUSTER:-}" ]]; then
    start_cluster 3
    single_cb_port="$CB_PORT" single_cb_pid="$CB_PID"
    REDIS_URL="" start_clickback "$PREFIX" env REDIS_CLUSTER_NODES="$CLUSTER_NODES"
    seed_bench_offer
    # Stored clicks and clk counts over every node (each node's own keys).
    cluster_clicks() {
        local port key n=0
        for port in "${CLUSTER_PORTS[@]}"; do
            while read -r key; do
                [[ -n "$key" ]] && n=$((n + $(redis-cli -p "$port" hlen "$key")))
            done < <(redis-cli -p "$port" --scan --pattern "$PREFIX:{*}:c:*")
        done
        echo "$n"
    }
    cluster_clk() {
        local port key n=0
        for port in "${CLUSTER_PORTS[@]}"; do
            while read -r key; do
                [[ -z "$key" ]] && continue
                n=$((n + $(redis-cli -p "$port" hgetall "$key" | awk '
                    NR % 2 == 1 { f = $0; next } f ~ /\|clk$/ { s += $0 } END { printf "%d", s }')))
            done < <(redis-cli -p "$port" --scan --pattern "$PREFIX:{*}:st:*")
        done
        echo "$n"
    }
    warm "http://127.0.0.1:$CB_PORT$CLICK_PATH"
    sleep 0.5
    cl_keys_before="$(cluster_clicks)" cl_clk_before="$(cluster_clk)"
    nodes0=0
    for pid in "${CLUSTER_PIDS[@]}"; do nodes0=$((nodes0 + $(pid_ticks "$pid"))); done
    t0="$(date +%s%N)"
    run_wrk click_cluster "http://127.0.0.1:$CB_PORT$CLICK_PATH" "${CLICK_SCRIPT[@]}"
    t1="$(date +%s%N)"
    nodes1=0
    for pid in "${CLUSTER_PIDS[@]}"; do nodes1=$((nodes1 + $(pid_ticks "$pid"))); done
    sleep 0.5
    cl_stored_keys=$(($(cluster_clicks) - cl_keys_before))
    cl_stored_clk=$(($(cluster_clk) - cl_clk_before))
    cl_302=$(($(wrk_field click_cluster total) - $(wrk_field click_cluster bad)))
    cl_stored=$((cl_stored_keys < cl_stored_clk ? cl_stored_keys : cl_stored_clk))
    cl_lost=$((cl_302 > cl_stored ? cl_302 - cl_stored : 0))
    cluster_cores="$(awk -v j="$((nodes1 - nodes0))" -v hz="$CLK_TCK" -v ns="$((t1 - t0))" \
        'BEGIN { printf "%.2f", j / hz / (ns / 1e9) }')"
    cluster_rps="$(wrk_field click_cluster rps)"
    cluster_row="$cluster_rps rps, p99 $(wrk_field click_cluster p99) ms, lost $cl_lost of $cl_302 ($cl_stored_keys records / $cl_stored_clk clk), clickback ${CB_CORES[click_cluster]} cores, 3 redis ${cluster_cores} cores, other work ${OTHER[click_cluster]}%"
    log "clicks on the cluster: $cluster_row"
    CB_PORT="$single_cb_port" CB_PID="$single_cb_pid"
fi

# --- report ------------------------------------------------------------------------
ng_rps="$(wrk_field nginx rps)"
cl_rps="$(wrk_field click rps)"
pb_rps="$(wrk_field postback rps)"
# ratio A B [DIGITS]: A / B with DIGITS decimals (2), n/a when B is 0.
ratio() { awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { if (b > 0) printf("%." d "f", a / b); else print "n/a" }'; }
click_ratio="$(ratio "$cl_rps" "$ng_rps")"
pb_ratio="$(ratio "$pb_rps" "$ng_rps")"
# floor_row PHASE: the floor phase's rps, its ratio to nginx and its p99.
floor_row() {
    if [[ -n "${SKIP_FLOOR:-}" ]]; then echo skipped; else
        echo "$(wrk_field "$1" rps) = $(ratio "$(wrk_field "$1" rps)" "$ng_rps") (p99 $(wrk_field "$1" p99) ms)"; fi
}
# floor_ratio RPS PHASE [DIGITS]: RPS against the rps of the floor phase PHASE.
floor_ratio() {
    if [[ -n "${SKIP_FLOOR:-}" ]]; then echo skipped; else
        ratio "$1" "$(wrk_field "$2" rps)" "${3:-2}"; fi
}
# Shown with 2 decimals, judged with 4 (0.846 is not 0.85).
click_floor="$(floor_ratio "$cl_rps" floor_write)"
click_floor_exact="$(floor_ratio "$cl_rps" floor_write 4)"
pb_floor="$(floor_ratio "$pb_rps" floor_write2)"
pb_floor_exact="$(floor_ratio "$pb_rps" floor_write2 4)"
# verdict VALUE OP TARGET: ok, MISSED, or n/a when VALUE is not a number
# (a skipped floor phase).
verdict() {
    awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
        if (v !~ /^-?[0-9]+(\.[0-9]+)?$/) { print "n/a"; exit }
        ok = (op == ">=") ? (v + 0 >= t + 0) : (v + 0 <= t + 0); print ok ? "ok" : "MISSED" }'
}

cat <<EOF

clickback load test: wrk -t$THREADS -c$CONNECTIONS -d$DURATION, CLICKBACK_WORKERS=$CLICKBACK_WORKERS, $(nproc) CPUs, everything on this machine
(other work on the machine: ${BUSY_BEFORE}% of all CPUs just before the start; during the nginx /
click / postback phases ${OTHER[nginx]}% / ${OTHER[click]}% / ${OTHER[postback]}%; $(date -u +%Y-%m-%dT%H:%MZ))
| metric                         | value      | target       |
|--------------------------------|------------|--------------|
| reference: nginx fixed 302 rps | $(printf '%-10s' "$ng_rps") |              |
| nginx p50 / p99 ms             | $(printf '%-10s' "$(wrk_field nginx p50) / $(wrk_field nginx p99)") |              |
| floor: actix bare 302 rps      | $(floor_row floor_bare) of nginx |   |
| floor: actix 302 + 1 SET rps   | $(floor_row floor_write) of nginx |   |
| floor: 302 + 2 SETs in turn    | $(floor_row floor_write2) of nginx |   |
| floor: 302 + 1 SET, raw RESP   | $(floor_row floor_write_raw) of nginx |   |
| click rps                      | $(printf '%-10s' "$cl_rps") |              |
| click / nginx (reference)      | $(printf '%-10s' "$click_ratio") |              |
| click / floor (302 + 1 SET)    | $(printf '%-10s' "$click_floor") | >= $CLICK_FLOOR_TARGET $(verdict "$click_floor_exact" ">=" "$CLICK_FLOOR_TARGET") |
| click p50 / p90 / p99 ms       | $(printf '%-10s' "$(wrk_field click p50) / $(wrk_field click p90) / $(wrk_field click p99)") | p99 <= $CLICK_P99_TARGET_MS $(verdict "$(wrk_field click p99)" "<=" "$CLICK_P99_TARGET_MS") |
| clicks: 302s counted by wrk    | $(printf '%-10s' "$click_302") |              |
| clicks: stored (records / clk) | $(printf '%-10s' "$stored_keys / $stored_clk") |              |
| lost clicks                    | $(printf '%-10s' "$lost") | 0 $(verdict "$lost" "<=" 0) |
| postback rps                   | $(printf '%-10s' "$pb_rps") |              |
| postback / nginx (reference)   | $(printf '%-10s' "$pb_ratio") |              |
| postback / floor (2 SETs)      | $(printf '%-10s' "$pb_floor") | >= $POSTBACK_FLOOR_TARGET $(verdict "$pb_floor_exact" ">=" "$POSTBACK_FLOOR_TARGET") |
| postback p50 / p99 ms          | $(printf '%-10s' "$(wrk_field postback p50) / $(wrk_field postback p99)") |              |
| postbacks: answered / credited | $(printf '%-10s' "$pb_total / $credited") | all credited $(verdict "$((pb_total - credited))" "<=" 0) |
| affiliate postbacks (FORWARD)  | $forwarded |              |
| redis-benchmark SET rps        | $(printf '%-10s' "$redis_rps") |              |
EOF
echo
echo "clicks on one Redis: $cl_rps rps, p99 $(wrk_field click p99) ms, clickback ${CB_CORES[click]} cores, redis ${REDIS_CORES[click]} cores"
echo "clicks on a 3-primary Redis Cluster: $cluster_row"
if [[ -n "${CLUSTER:-}" ]]; then
    echo "cluster / one Redis: $(ratio "${cluster_rps:-0}" "$cl_rps") (same machine: a ratio, not a scaling figure)"
fi
echo
echo "details: click non-2xx/3xx $click_bad, socket errors $(wrk_field click errors); stored but not counted (in flight at wrk's stop) $in_flight"
per_core() { awk -v r="$1" -v c="$2" 'BEGIN { if (c > 0) printf "%.0f", r / c; else print "n/a" }'; }
echo "         CPUs left idle during the nginx / click / postback phases: ${IDLE[nginx]}% / ${IDLE[click]}% / ${IDLE[postback]}%"
echo "         CPU during clicks: clickback ${CB_CORES[click]} cores, redis ${REDIS_CORES[click]} cores" \
    "= $(per_core "$cl_rps" "${CB_CORES[click]}") clicks/s per clickback core, $(per_core "$cl_rps" "${REDIS_CORES[click]}") per redis core"
echo "         CPU during postbacks: clickback ${CB_CORES[postback]} cores, redis ${REDIS_CORES[postback]} cores" \
    "= $(per_core "$pb_rps" "${CB_CORES[postback]}") postbacks/s per clickback core, $(per_core "$pb_rps" "${REDIS_CORES[postback]}") per redis core"
echo "         Redis commands during clicks (calls × µs of Redis CPU each): $(cat "$BENCH_TMP/cmdstats.click")"
echo "         Redis commands during postbacks: $(cat "$BENCH_TMP/cmdstats.postback")"
if [[ -z "${SKIP_FLOOR:-}" ]]; then
    for phase in floor_bare floor_write floor_write2 floor_write_raw; do
        rps="$(wrk_field "$phase" rps)"
        echo "         CPU during $phase: floor_server ${CB_CORES[$phase]} cores, redis ${REDIS_CORES[$phase]} cores" \
            "= $(per_core "$rps" "${CB_CORES[$phase]}") requests/s per floor_server core, $(per_core "$rps" "${REDIS_CORES[$phase]}") per redis core"
    done
fi
echo "         a stored click: value $sample_len bytes in bucket $sample_key ($sample_encoding, $sample_clicks clicks," \
    "MEMORY USAGE $sample_mem bytes = $(awk -v m="$sample_mem" -v n="$sample_clicks" 'BEGIN { printf "%.0f", m / n }') bytes/click, TTL $sample_ttl s)"
echo "         postback non-2xx/3xx $pb_bad, socket errors $(wrk_field postback errors); credited per /metrics $credited_metric; click ids available $ids_available, reused $reused"
max_other=0
for phase in nginx click postback; do ((OTHER[$phase] > max_other)) && max_other=${OTHER[$phase]}; done
if ((max_other >= 10)); then
    echo "WARNING: other work used up to ${max_other}% of the CPUs during a phase: these numbers understate clickback; re-run on a quiet machine" >&2
fi
if ((reused > 0)); then
    echo "WARNING: $reused postbacks reused a click id (ran out of fresh clicks); raise SEED" >&2
fi

if [[ -n "${PERF:-}" ]]; then
    PERF_NAME=clickback
    [[ "$PERF" == redis ]] && PERF_NAME=redis-server
    for phase in click postback; do
        echo
        echo "perf: ${PERF_NAME}'s CPU time during the $phase phase by object: $(cat "$BENCH_TMP/perf.$phase.dso" 2>/dev/null)"
        echo "perf: ${PERF_NAME}'s hottest symbols during the $phase phase (cpu-clock samples, >= 0.7 %)"
        cat "$BENCH_TMP/perf.$phase.txt" 2>/dev/null || echo "(no profile)"
    done
fi

if [[ -n "${STRICT:-}" ]]; then
    for check in "$(verdict "$click_floor_exact" ">=" "$CLICK_FLOOR_TARGET")" \
        "$(verdict "$(wrk_field click p99)" "<=" "$CLICK_P99_TARGET_MS")" "$(verdict "$lost" "<=" 0)" \
        "$(verdict "$pb_floor_exact" ">=" "$POSTBACK_FLOOR_TARGET")" "$(verdict "$((pb_total - credited))" "<=" 0)"; do
        [[ "$check" == ok ]] || exit 1
    done
fi
