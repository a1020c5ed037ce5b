#!/usr/bin/env bash
# Builds and runs every cargo-fuzz target of clickback for a fixed budget.
#
#   tests/fuzz/run.sh                  # every target, 60 s each
#   FUZZ_SECONDS=300 tests/fuzz/run.sh # longer
#   tests/fuzz/run.sh query redirect   # some targets only
#
# Works on stable Rust: cargo-fuzz needs `-Zsanitizer=address`, which
# RUSTC_BOOTSTRAP=1 unlocks on a stable compiler (set here unless the active
# toolchain is already nightly). Installs cargo-fuzz when it is missing.
# Prints the executions of each target and exits non-zero if any target
# crashed, failed a property or could not be built; the crashing input is
# kept in tests/fuzz/artifacts/<target>/ and the log in tests/fuzz/logs/.
# See docs/FUZZING.md.
set -euo pipefail

FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
ALL_TARGETS=(query postback redirect signature money click)

fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$fuzz_dir/../.." && pwd)"
cd "$root"

# Longest input per target (bytes): enough for the largest valid shape, small
# enough that the mutator spends its time on structure rather than bulk.
max_len() {
  case "$1" in
    query) echo 4096 ;;     # real links and postbacks are far below 8 KB
    postback) echo 2048 ;;
    redirect) echo 4096 ;;  # templates are capped at 2048 bytes
    signature) echo 512 ;;  # ~100 short pairs; an HMAC per check keeps it slow
    money) echo 128 ;;      # two short decimal strings and two i64
    click) echo 2048 ;;
    *) echo 4096 ;;
  esac
}

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
if ! rustc -V | grep -q nightly; then
  export RUSTC_BOOTSTRAP=1
fi
# The fuzz crate is its own workspace; start it from the main lock file so it
# fuzzes the dependency versions the server ships with.
if [[ ! -f "$fuzz_dir/Cargo.lock" ]]; then
  cp Cargo.lock "$fuzz_dir/Cargo.lock"
fi

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=("${ALL_TARGETS[@]}")
fi

# -a: debug assertions, so integer overflow panics instead of wrapping.
fuzz_flags=(--fuzz-dir tests/fuzz --debug-assertions)

echo "== building ${#targets[@]} target(s)"
for t in "${targets[@]}"; do
  cargo fuzz build "${fuzz_flags[@]}" "$t"
done

mkdir -p "$fuzz_dir/logs"
declare -A execs secs status
failed=0
for t in "${targets[@]}"; do
  corpus="$fuzz_dir/corpus/$t"
  mkdir -p "$corpus"
  dirs=("$corpus")
  [[ -d "$fuzz_dir/seeds/$t" ]] && dirs+=("$fuzz_dir/seeds/$t")
  lf_args=(
    "-max_total_time=$FUZZ_SECONDS"
    "-max_len=$(max_len "$t")"
    -timeout=10
    -rss_limit_mb=2048
    -print_final_stats=1
  )
  [[ -f "$fuzz_dir/dicts/$t.dict" ]] && lf_args+=("-dict=$fuzz_dir/dicts/$t.dict")
  log="$fuzz_dir/logs/$t.log"
  echo "== $t: ${FUZZ_SECONDS}s, max_len $(max_len "$t")"
  start=$(date +%s)
  if cargo fuzz run "${fuzz_flags[@]}" "$t" "${dirs[@]}" -- "${lf_args[@]}" >"$log" 2>&1; then
    status[$t]=ok
  else
    status[$t]=FAILED
    failed=1
    grep -E "panicked at|ERROR: libFuzzer|SUMMARY|Test unit written|assertion" "$log" | head -20 || true
  fi
  wall=$(($(date +%s) - start))
  # Fuzzing time as libFuzzer counts it ("Done N runs in S second(s)"),
  # without the (re)build that `cargo fuzz run` may do first.
  secs[$t]=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  secs[$t]="${secs[$t]:-$wall}"
  # libFuzzer's final stats line, or failing that its "#N DONE" status line.
  n=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)
  if [[ -z "$n" ]]; then
    n=$(sed -n 's/^#\([0-9]*\)[[:space:]]*DONE.*/\1/p' "$log" | tail -1)
  fi
  execs[$t]="${n:-?}"
  cov=$(grep -E "^#[0-9]+" "$log" | tail -1 | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
  corpus_n=$(find "$corpus" -type f | wc -l)
  echo "   $t: ${status[$t]}, ${execs[$t]} executions in ${secs[$t]}s (${wall}s with build), cov ${cov:-?}, corpus $corpus_n"
done

echo
printf '%-10s %-7s %14s %8s %12s\n' target status executions seconds exec/s
for t in "${targets[@]}"; do
  rate="?"
  if [[ "${execs[$t]}" =~ ^[0-9]+$ ]] && ((${secs[$t]} > 0)); then
    rate=$((${execs[$t]} / ${secs[$t]}))
  fi
  printf '%-10s %-7s %14s %8s %12s\n' "$t" "${status[$t]}" "${execs[$t]}" "${secs[$t]}" "$rate"
done
if ((failed)); then
  echo "fuzzing FAILED: see tests/fuzz/logs/ and tests/fuzz/artifacts/" >&2
  exit 1
fi
