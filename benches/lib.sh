# shellcheck shell=bash
# Shared helpers of the benchmark scripts (sourced, not run).
# Everything these helpers start is recorded in BENCH_PIDS and stopped by
# bench_cleanup, which every script installs as its EXIT trap.

BENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_PIDS=()
BENCH_TMP="$(mktemp -d /tmp/clickback-bench.XXXXXX)"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

bench_cleanup() {
    local pid
    for pid in "${BENCH_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${BENCH_PIDS[@]}"; do
        # Give each process 5 s to exit, then insist.
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    if [[ -n "${KEEP_TMP:-}" ]]; then
        log "kept $BENCH_TMP"
    else
        rm -rf "$BENCH_TMP"
    fi
}

# install_missing CMD:PACKAGE ...: apt-get installs the packages of missing
# commands (one `apt-get update` first).
install_missing() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    ((${#missing[@]} == 0)) && return 0
    log "installing ${missing[*]} with apt-get"
    local sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
}

# free_port: a TCP port nobody listens on.
free_port() {
    local port
    for _ in $(seq 200); do
        # Below Linux's ephemeral range (32768-60999): a port in it can be
        # taken by any outgoing connection (wrk's, clickback's own) before
        # the server binds it, and that server would then not start.
        port=$((20000 + RANDOM % 12768))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    die "no free port found"
}

# wait_for what command...: retries the command for 15 s.
wait_for() {
    local what="$1"
    shift
    for _ in $(seq 150); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "$what did not come up (see $BENCH_TMP)"
}

# start_redis: a private, non-persistent redis-server with the listpack limits
# of deploy/redis.conf (extra arguments override them); sets REDIS_PORT, REDIS_URL.
start_redis() {
    REDIS_PORT="$(free_port)"
    mkdir -p "$BENCH_TMP/redis"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --hash-max-listpack-entries 512 --hash-max-listpack-value 256 \
        --dir "$BENCH_TMP/redis" --logfile "$BENCH_TMP/redis/redis.log" \
        --daemonize no "$@" &
    REDIS_PID=$!
    BENCH_PIDS+=("$REDIS_PID")
    # shellcheck disable=SC2034 # read by the scripts that source this file
    REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
    wait_for "redis-server" redis-cli -p "$REDIS_PORT" ping
    log "redis-server $(redis-server --version | awk '{print $3}') on port $REDIS_PORT (pid $REDIS_PID)"
}

rcli() { redis-cli -p "$REDIS_PORT" "$@"; }

# start_cluster [N]: N (3) redis-server primaries in cluster mode, joined by
# `redis-cli --cluster create`, with the listpack limits of start_redis.
# Sets CLUSTER_PORTS, CLUSTER_PIDS and CLUSTER_NODES (host:port,… as
# REDIS_CLUSTER_NODES takes it).
start_cluster() {
    local n="${1:-3}" port i
    CLUSTER_PORTS=() CLUSTER_PIDS=()
    for ((i = 0; i < n; i++)); do
        port="$(free_port)"
        # The cluster bus listens on port + 10000.
        while ((port > 55000)) || [[ " ${CLUSTER_PORTS[*]} " == *" $port "* ]]; do port="$(free_port)"; done
        mkdir -p "$BENCH_TMP/cluster/$port"
        redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
            --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 15000 \
            --hash-max-listpack-entries 512 --hash-max-listpack-value 256 \
            --dir "$BENCH_TMP/cluster/$port" --logfile "$BENCH_TMP/cluster/$port/redis.log" \
            --daemonize no &
        CLUSTER_PIDS+=($!)
        BENCH_PIDS+=($!)
        CLUSTER_PORTS+=("$port")
        wait_for "cluster node $port" redis-cli -p "$port" ping
    done
    local addresses=()
    for port in "${CLUSTER_PORTS[@]}"; do addresses+=("127.0.0.1:$port"); done
    redis-cli --cluster create "${addresses[@]}" --cluster-replicas 0 --cluster-yes \
        >"$BENCH_TMP/cluster/create.log" 2>&1 || die "redis-cli --cluster create failed: $(tail -3 "$BENCH_TMP/cluster/create.log")"
    for port in "${CLUSTER_PORTS[@]}"; do
        wait_for "cluster_state:ok on $port" sh -c "redis-cli -p $port cluster info | grep -q cluster_state:ok"
    done
    CLUSTER_NODES="$(IFS=,; echo "${addresses[*]}")"
    log "Redis Cluster of ${#CLUSTER_PORTS[@]} primaries on ports ${CLUSTER_PORTS[*]}"
}
# ccli CMD…: runs a redis-cli command on every cluster node, one output after another.
ccli() { local port; for port in "${CLUSTER_PORTS[@]}"; do redis-cli -p "$port" "$@"; done; }

# cargo_build ARGS...: builds in the repository (never two builds at once:
# waits for a cargo lock held by someone else like any cargo invocation does).
cargo_build() {
    (cd "$BENCH_ROOT" && cargo "$@") || die "cargo $* failed"
}

target_dir() {
    echo "${CARGO_TARGET_DIR:-$BENCH_ROOT/target}"
}

# The benchmark's offer and affiliate, and a tracking link of realistic shape;
# AD_IDS=1 adds the ad platforms' click ids (gclid, fbclid, ga_client_id) an
# auto-tagged ad puts on it.
OFFER="bench-offer"
AFF="bench-aff"
TOKEN="bench-token-123"
CLICK_PATH="/c/$OFFER?aff_id=$AFF&sub1=120210456789&sub2=ad7f3k2q&source=fb"
if [[ -n "${AD_IDS:-}" ]]; then
    CLICK_PATH+="&gclid=Cj0KCQiA2ZCOBhDiARIsAMRfv9K4sS3vBqPz7mX1tLkRqNnYbE0cHwZaAm4xEALw_wcB"
    CLICK_PATH+="&fbclid=IwAR2F4-dbP0l7Mn1IahRqwqsP2X7tYF8wUfG5_WjZmH0cY2ywLXzgPg8cP5k"
    CLICK_PATH+="&ga_client_id=GA1.1.1234567890.1764547200"
fi
ADMIN_TOKEN="bench-admin-token-for-load-$RANDOM$RANDOM"

# release_binary: sets BIN to CLICKBACK_BIN, or to the release build, building
# it first unless SKIP_BUILD is set.
release_binary() {
    BIN="${CLICKBACK_BIN:-$(target_dir)/release/clickback}"
    if [[ -z "${SKIP_BUILD:-}" && -z "${CLICKBACK_BIN:-}" ]]; then
        log "cargo build --release"
        cargo_build build --release -q --bin clickback
    fi
    [[ -x "$BIN" ]] || die "$BIN not found (build it, or unset SKIP_BUILD)"
}

# bench_binary NAME: prints the path of the release executable of
# benches/NAME.rs, building it first unless SKIP_BUILD is set (then the newest
# one cargo produced).
bench_binary() {
    local name="$1" bin="" f
    if [[ -z "${SKIP_BUILD:-}" ]]; then
        log "building benches/$name.rs (release)"
        bin="$(cd "$BENCH_ROOT" && cargo bench --bench "$name" --no-run --message-format=json-render-diagnostics |
            grep -o "\"executable\":\"[^\"]*$name[^\"]*\"" | tail -1 | cut -d'"' -f4)" ||
            die "cargo bench --bench $name --no-run failed"
    else
        for f in "$(target_dir)"/release/deps/"$name"-*; do
            [[ -x "$f" && "$f" != *.d && (-z "$bin" || "$f" -nt "$bin") ]] && bin="$f"
        done
    fi
    [[ -n "$bin" && -x "$bin" ]] || die "$name executable not found (under $(target_dir)/release/deps)"
    echo "$bin"
}

# start_clickback PREFIX [WRAPPER...]: starts $BIN (under WRAPPER, e.g.
# valgrind, when given) on a free port against $REDIS_URL with its keys under
# PREFIX and waits until it is ready; sets CB_PORT and CB_PID.
start_clickback() {
    local prefix="$1"
    shift
    CB_PORT="$(free_port)"
    log "clickback on port $CB_PORT (workers ${CLICKBACK_WORKERS:-1}, prefix $prefix)"
    REDIS_URL="$REDIS_URL" CLICKBACK_LISTEN="127.0.0.1:$CB_PORT" \
        CLICKBACK_ADMIN_TOKEN="$ADMIN_TOKEN" CLICKBACK_KEY_PREFIX="$prefix" \
        CLICKBACK_WORKERS="${CLICKBACK_WORKERS:-1}" CLICKBACK_HASH_SALT="bench-salt" \
        CLICKBACK_DEMO=0 RUST_LOG="${RUST_LOG:-warn}" CLICKBACK_ALLOW_PRIVATE_TARGETS=1 \
        "$@" "$BIN" >"$BENCH_TMP/clickback.$CB_PORT.log" 2>&1 &
    CB_PID=$!
    BENCH_PIDS+=("$CB_PID")
    wait_for clickback curl -fsS "http://127.0.0.1:$CB_PORT/readyz"
}

# seed_bench_offer: creates $OFFER (2.50 EUR, token $TOKEN, 30-day window)
# and $AFF through the admin API of the clickback on $CB_PORT.
seed_bench_offer() {
    local path body code
    for path in "offers/$OFFER" "affiliates/$AFF"; do
        body='{"name":"a"}'
        [[ "$path" == offers/* ]] &&
            body="{\"url\":\"https://shop.example/landing?x=1\",\"payout\":\"2.50\",\"currency\":\"EUR\",\"postback_token\":\"$TOKEN\",\"attribution_window_secs\":2592000}"
        code="$(curl -sS -o "$BENCH_TMP/admin.out" -w '%{http_code}' -X PUT \
            -H "Authorization: Bearer $ADMIN_TOKEN" -H 'Content-Type: application/json' \
            --data "$body" "http://127.0.0.1:$CB_PORT/api/v1/$path")"
        [[ "$code" == 2* ]] || die "PUT /api/v1/$path answered $code: $(cat "$BENCH_TMP/admin.out")"
    done
}

# write_click_script FILE: a wrk script requesting $CLICK_PATH with a new
# User-Agent every time, so every click is a distinct visitor (its own
# visitor hash, spread over the 64 shards, a unique click) as in real traffic.
# The User-Agents carry the wrk run's start time, so a later run (another
# round, the seed) sends new visitors too, not the first run's again.
write_click_script() {
    # The request is built from one template per thread with string.format:
    # wrk.format per request cost wrk ~1.7 µs more CPU per request (measured
    # against nginx: 3.3 → 1.65 µs of wrk user time per request), CPU that the
    # measured server shares on this machine.
    cat >"$1" <<'LUA'
local counter, run, i, template = 0, os.time(), 0, nil
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  thread:set("run", run)
end
function init(args)
  local host = wrk.headers["Host"] or (wrk.host .. ":" .. wrk.port)
  template = "GET " .. os.getenv("CLICK_PATH"):gsub("%%", "%%%%") .. " HTTP/1.1\r\nHost: " .. host ..
    "\r\nUser-Agent: Mozilla/5.0 (bench " .. run .. "." .. tid .. ".%d)\r\n\r\n"
end
function request()
  i = i + 1
  return template:format(i)
end
LUA
    export CLICK_PATH
}

# cpu_busy_pct [SECS]: how busy all CPUs were over SECS (default 1) seconds,
# in percent, from /proc/stat. Used to flag runs disturbed by other work.
cpu_busy_pct() {
    local secs="${1:-1}" a b
    read -ra a </proc/stat
    sleep "$secs"
    read -ra b </proc/stat
    awk -v u1="${a[1]}" -v n1="${a[2]}" -v s1="${a[3]}" -v i1="${a[4]}" -v w1="${a[5]}" \
        -v q1="${a[6]}" -v r1="${a[7]}" -v t1="${a[8]}" \
        -v u2="${b[1]}" -v n2="${b[2]}" -v s2="${b[3]}" -v i2="${b[4]}" -v w2="${b[5]}" \
        -v q2="${b[6]}" -v r2="${b[7]}" -v t2="${b[8]}" 'BEGIN {
            busy = (u2 - u1) + (n2 - n1) + (s2 - s1) + (q2 - q1) + (r2 - r1) + (t2 - t1)
            idle = (i2 - i1) + (w2 - w1)
            printf "%d", (busy + idle > 0) ? 100 * busy / (busy + idle) : 0 }'
}

# check_quiet: measures how busy the machine is before a benchmark starts;
# with WAIT_QUIET=<seconds>, waits up to that long for it to drop below 15 %.
# Sets BUSY_BEFORE (percent).
check_quiet() {
    local deadline=$((SECONDS + ${WAIT_QUIET:-0}))
    while :; do
        BUSY_BEFORE="$(cpu_busy_pct 1)"
        ((BUSY_BEFORE < 15 || SECONDS >= deadline)) && break
        log "machine ${BUSY_BEFORE}% busy with other work; waiting (WAIT_QUIET)"
        sleep 4
    done
    if ((BUSY_BEFORE >= 15)); then
        log "WARNING: the CPUs were ${BUSY_BEFORE}% busy with other work before the start: numbers will be low and noisy"
    fi
}

# --- CPU accounting of a measured phase ------------------------------------------
# Other work may compile or test on the same machine. A phase records how
# much of the machine's CPU time went to processes that are not ours (this
# script's children, e.g. wrk, and BENCH_PIDS with their threads and child
# processes), so that a disturbed run can be told from a clean one.
CLK_TCK="$(getconf CLK_TCK 2>/dev/null || echo 100)"

# Jiffies of the given processes (all threads), utime + stime.
pid_ticks() {
    local sum=0 p t
    for p in "$@"; do
        [[ -r "/proc/$p/stat" ]] || continue
        t="$(sed 's/^.*) //' "/proc/$p/stat" | awk '{ print $12 + $13 }')" || continue
        sum=$((sum + ${t:-0}))
    done
    echo "$sum"
}

# OUR_TICKS := jiffies of BENCH_PIDS, their direct children (nginx workers)
# and of the waited-for children of this shell (wrk, redis-cli, curl...).
# Must run in the main shell, not in $(...): `times` of a subshell is empty.
our_ticks() {
    local pids=("${BENCH_PIDS[@]}") p kids
    for p in "${BENCH_PIDS[@]}"; do
        mapfile -t kids < <(pgrep -P "$p" 2>/dev/null || true)
        pids+=("${kids[@]}")
    done
    times >"$BENCH_TMP/times.out"
    local children
    children="$(awk -v hz="$CLK_TCK" 'NR == 2 {
        n = 0
        for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); n += (a[1] * 60 + a[2]) * hz }
        printf "%d", n }' "$BENCH_TMP/times.out")"
    OUR_TICKS=$(($(pid_ticks "${pids[@]}") + children))
}

# busy and total jiffies of all CPUs.
cpu_jiffies() { awk '/^cpu / { b = $2 + $3 + $4 + $7 + $8 + $9; print b, b + $5 + $6 }' /proc/stat; }

phase_start() {
    our_ticks
    PHASE_OURS="$OUR_TICKS"
    read -ra PHASE_CPU < <(cpu_jiffies)
}

# phase_end: sets OTHER_PCT, the share of all CPUs used by other work during
# the phase, and IDLE_PCT, the share left idle (0-100).
phase_end() {
    local now ours busy total mine
    read -ra now < <(cpu_jiffies)
    our_ticks
    ours="$OUR_TICKS"
    busy=$((now[0] - PHASE_CPU[0]))
    total=$((now[1] - PHASE_CPU[1]))
    mine=$((ours - PHASE_OURS))
    OTHER_PCT=$(((busy - mine) * 100 / (total > 0 ? total : 1)))
    ((OTHER_PCT < 0)) && OTHER_PCT=0
    IDLE_PCT=$(((total - busy) * 100 / (total > 0 ? total : 1)))
    return 0
}
