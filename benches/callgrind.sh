#!/usr/bin/env bash
# Instructions per click and per postback, counted by valgrind's callgrind:
# the same binary and inputs give the same count whatever else the machine is
# doing, so two builds can be compared without the ±15 % noise of load.sh.
#
#   benches/callgrind.sh                 # 2,000 clicks and 2,000 postbacks
#   N=500 benches/callgrind.sh
#
# Runs the release server under callgrind three times against a private
# redis-server: once with no traffic (start-up, seeding, shut-down), once with
# N clicks, once with N clicks and N postbacks, each from one keep-alive
# connection (python3 http.client), every click a distinct visitor. The
# differences divided by N are the instructions of one click and of one
# postback in clickback's own process (user space only: the kernel's socket
# work and Redis are not in it). Prints the functions with the most
# instructions of their own in the clicks run too. Then the same for
# benches/floor_server.rs in MODE=write (a 302 after one awaited SET, the
# stack's floor; SKIP_FLOOR=1 skips it): idle, then N requests of the
# click's shape, for the instructions the stack itself needs per request.
# Needs valgrind (installed with apt-get when missing); ~3 minutes.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

N="${N:-2000}"
CLICKBACK_WORKERS=1
install_missing valgrind:valgrind redis-server:redis-server redis-cli:redis-tools curl:curl python3:python3

release_binary
[[ -z "${SKIP_FLOOR:-}" ]] && FLOOR_BIN="$(bench_binary floor_server)"
start_redis

cat >"$BENCH_TMP/drive.py" <<'PY'
import http.client, sys
port, clicks, postbacks, click_path, token = (
    int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
def get(path, headers=None):
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    response.read()
    return response
ids = []
for i in range(clicks):
    r = get(click_path, {"User-Agent": "Mozilla/5.0 (callgrind %d)" % i})
    assert r.status == 302, r.status
    ids.append(r.getheader("Location").rsplit("click_id=", 1)[-1])
for i in range(postbacks):
    r = get("/postback?click_id=%s&token=%s&txid=t%d" % (ids[i], token, i))
    assert r.status == 200, r.status
PY

# stop_and_count PID FILE: stops the process under callgrind and prints the
# instructions it ran (callgrind writes FILE as the process exits).
stop_and_count() {
    kill -INT "$1"
    wait "$1" 2>/dev/null || true
    awk '/^summary:|^totals:/ { print $2; exit }' "$2"
}

# run NAME CLICKS POSTBACKS: one server under callgrind; prints its total Ir.
run() {
    local name="$1" clicks="$2" postbacks="$3"
    rcli flushall >/dev/null
    start_clickback cg valgrind --tool=callgrind --callgrind-out-file="$BENCH_TMP/callgrind.$name"
    seed_bench_offer
    python3 "$BENCH_TMP/drive.py" "$CB_PORT" "$clicks" "$postbacks" "$CLICK_PATH" "$TOKEN" ||
        die "$name: the requests failed"
    stop_and_count "$CB_PID" "$BENCH_TMP/callgrind.$name"
}

log "callgrind: idle run"
idle="$(run idle 0 0)"
log "callgrind: $N clicks"
clicks="$(run clicks "$N" 0)"
log "callgrind: $N clicks + $N postbacks"
both="$(run both "$N" "$N")"

# floor_run N: callgrind Ir of floor_server (MODE=write, 1 worker) serving N
# requests of the click's shape.
floor_run() {
    local n="$1" port pid
    port="$(free_port)"
    MODE=write LISTEN="127.0.0.1:$port" REDIS_URL="$REDIS_URL" WORKERS=1 KEY_PREFIX=cgfloor \
        valgrind --tool=callgrind --callgrind-out-file="$BENCH_TMP/callgrind.floor.$n" \
        "$FLOOR_BIN" --bench >"$BENCH_TMP/floor.$n.log" 2>&1 &
    pid=$!
    BENCH_PIDS+=("$pid")
    wait_for floor_server curl -fsS -o /dev/null "http://127.0.0.1:$port/"
    python3 "$BENCH_TMP/drive.py" "$port" "$n" 0 "$CLICK_PATH" "$TOKEN" >/dev/null 2>&1 ||
        die "floor: the requests failed"
    stop_and_count "$pid" "$BENCH_TMP/callgrind.floor.$n"
}
floor_line=""
if [[ -z "${SKIP_FLOOR:-}" ]]; then
    log "callgrind: floor_server idle, then $N requests"
    floor_idle="$(floor_run 0)"
    floor_busy="$(floor_run "$N")"
    floor_line="| floor_server (302 + one SET): + $N requests | $floor_busy | $(((floor_busy - floor_idle) / N)) per request (idle run: $floor_idle) |"
fi

per_click=$(((clicks - idle) / N))
per_postback=$(((both - clicks) / N))
echo
echo "instructions in clickback's process (callgrind Ir, user space), $N requests, 1 worker, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "| run | total Ir | per request |"
echo "|---|---|---|"
echo "| start, seed, stop | $idle | |"
echo "| + $N clicks | $clicks | $per_click per click |"
echo "| + $N postbacks | $both | $per_postback per postback |"
[[ -n "$floor_line" ]] && echo "$floor_line"
echo
echo "functions with the most instructions of their own (clicks run, start-up included):"
callgrind_annotate "$BENCH_TMP/callgrind.clicks" 2>/dev/null | grep -E '^ *[0-9,]+ ' |
    sed -E 's#/root/.cargo/registry/src/[^/]+/##; s#/rustc/[0-9a-f]+/##; s# \[[^]]*\]$##' | head -30
