#!/usr/bin/env bash
# Runs Schemathesis against a live clickback on a real Redis, both started
# here on free ports and stopped on exit, driven by clickback's own OpenAPI
# document (GET /api/v1/openapi.json).
#
#   tests/schemathesis/run.sh                 # the CI run
#   ST_MAX_EXAMPLES=200 tests/schemathesis/run.sh
#   ST_PROFILE=release tests/schemathesis/run.sh
#
# Installs Schemathesis (pinned) into a venv under target/ when it is
# missing, builds clickback (debug unless ST_PROFILE=release), seeds an
# advertiser, an offer, an affiliate, a click, a conversion and an API key of
# each role with the admin token, then runs every operation: examples,
# coverage, fuzzing and the stateful phase that follows the document's
# OpenAPI links (PUT offer → GET offer, stats, click; click → postback with
# the redirect's click id → conversions). Exits non-zero on any failed check.
# The report (JUnit) is left in target/schemathesis/. See docs/FUZZING.md.
set -euo pipefail

SCHEMATHESIS_VERSION="4.32.5"
ST_MAX_EXAMPLES="${ST_MAX_EXAMPLES:-25}"
ST_PROFILE="${ST_PROFILE:-debug}"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
out="$root/target/schemathesis"
mkdir -p "$out"

venv="$root/target/schemathesis-venv"
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then
  echo "--- installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

echo "--- building clickback ($ST_PROFILE)"
if [ "$ST_PROFILE" = release ]; then
  cargo build -q --release --bin clickback
else
  cargo build -q --bin clickback
fi
binary="${CARGO_TARGET_DIR:-$root/target}/$ST_PROFILE/clickback"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

redis_port="$(free_port)"
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  >"$out/redis.log" 2>&1 &
pids+=($!)

# Bounded wait for something to answer.
wait_for() {
  local what="$1"
  shift
  for _ in $(seq 1 100); do
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  echo "$what did not come up" >&2
  return 1
}
wait_for "redis-server" redis-cli -p "$redis_port" ping

app_port="$(free_port)"
base="http://127.0.0.1:$app_port"
admin_token="st-admin-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# CLICKBACK_DELIVERY_CONCURRENCY=0: this instance never sends deliveries, so
# the URLs the fuzzer writes into affiliates and offer destinations are never
# called.
REDIS_URL="redis://127.0.0.1:$redis_port" \
  CLICKBACK_LISTEN="127.0.0.1:$app_port" \
  CLICKBACK_ADMIN_TOKEN="$admin_token" \
  CLICKBACK_HASH_SALT="schemathesis" \
  CLICKBACK_KEY_PREFIX="st" \
  CLICKBACK_DELIVERY_CONCURRENCY=0 \
  CLICKBACK_TRUSTED_PROXIES=127.0.0.1 \
  RUST_LOG="${RUST_LOG:-warn}" \
  "$binary" >"$out/clickback.log" 2>&1 &
pids+=($!)
wait_for "clickback" curl -sf "$base/readyz" || {
  tail -20 "$out/clickback.log" >&2
  exit 1
}

echo "--- seeding"
api() {
  local method="$1" path="$2" body="${3:-}"
  local args=(-sS -f -X "$method" -H "Authorization: Bearer $admin_token" "$base$path")
  if [ -n "$body" ]; then
    args+=(-H 'Content-Type: application/json' --data "$body")
  fi
  curl "${args[@]}"
}
offer_token="st-offer-token-0123456789"
api PUT /api/v1/advertisers/adv1 '{"name":"Advertiser","show_payouts":true}' >/dev/null
api PUT /api/v1/offers/o1 "{\"name\":\"Shop\",\"url\":\"https://shop.example/landing\",\"payout\":\"2.50\",\"revenue\":\"4\",\"currency\":\"EUR\",\"postback_token\":\"$offer_token\",\"advertiser_id\":\"adv1\"}" >/dev/null
api PUT /api/v1/affiliates/a1 '{"name":"Affiliate","postback_url":"https://aff.example/pb?cid={click_id}"}' >/dev/null
key_secret() {
  api POST /api/v1/keys "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["secret"])'
}
affiliate_key="$(key_secret '{"role":"affiliate","aff_id":"a1","name":"affiliate"}')"
advertiser_key="$(key_secret '{"role":"advertiser","advertiser_id":"adv1","name":"advertiser"}')"
key_secret '{"role":"admin","name":"admin"}' >/dev/null
location="$(curl -sS -o /dev/null -w '%{redirect_url}' "$base/c/o1?aff_id=a1&sub1=seed")"
click_id="$(python3 -c 'import sys, urllib.parse as u; print(u.parse_qs(u.urlsplit(sys.argv[1]).query)["click_id"][0])' "$location")"
curl -sS -f "$base/postback?click_id=$click_id&token=$offer_token&txid=T1&status=pending" >/dev/null

export ST_ADMIN_TOKEN="$admin_token" ST_OFFER_TOKEN="$offer_token" ST_AFF_ID="a1"
status=0
run() {
  local name="$1" token="$2"
  shift 2
  echo "--- schemathesis: $name"
  ST_ADMIN_TOKEN="$token" PYTHONPATH="$here" "$venv/bin/schemathesis" --config-file "$here/schemathesis.toml" \
    run "$base/api/v1/openapi.json" \
    --report junit --report-junit-path "$out/$name.xml" \
    --seed "${ST_SEED:-1}" --max-examples "$ST_MAX_EXAMPLES" "$@" || status=1
}
started=$SECONDS
# Every operation with the admin token; then the scoped views with each
# party's key (with the admin token they answer 404 by design).
run admin "$admin_token"
run affiliate "$affiliate_key" --include-tag scoped --phases examples,coverage,fuzzing
run advertiser "$advertiser_key" --include-tag scoped --phases examples,coverage,fuzzing
echo "--- schemathesis took $((SECONDS - started)) s"
if grep -q ' 500 \| 5[0-9][0-9] internal' "$out/clickback.log"; then
  echo "--- clickback logged server errors:"
  grep ' 5[0-9][0-9] ' "$out/clickback.log" | head -20
fi
exit "$status"
