#!/usr/bin/env bash
# Fuzzes the file readers: builds the libFuzzer harnesses of tests/fuzz/ with Clang,
# AddressSanitizer and UBSan in build-fuzz/, then runs each target for a bounded time,
# starting from its seed corpus (tests/fuzz/corpus/<target>/, copied, never written to).
#   build-fuzz/corpus/<target>/    the corpus the runs grew (kept between runs)
#   build-fuzz/findings/<target>/  inputs that crashed, leaked or hung: each is a finding
#   build-fuzz/logs/<target>.log   libFuzzer's output
# A finding becomes a regression test once fixed: copy the input into
# tests/fuzz/regressions/<target>/ (tests/test_fuzz_corpus.cpp replays every file there).
# Exits 1 when any target has a finding.
#
# usage: scripts/fuzz.sh [--seconds N] [--parallel P] [--build-dir DIR] [TARGET...]
#   TARGET: idx, cifar10, csv, safetensors (default: all four)
#   --seconds N   how long each target runs (default 600)
#   --parallel P  how many targets run at once (default: the number of cores)
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  sed -n '2,16s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

all_targets=(idx cifar10 csv safetensors)
seconds=600
parallel="$(strata_jobs)"
build_dir="build-fuzz"
targets=()
while (($# > 0)); do
  case "$1" in
    --seconds) [[ $# -ge 2 ]] || strata_die "--seconds needs a number"; seconds="$2"; shift 2 ;;
    --parallel) [[ $# -ge 2 ]] || strata_die "--parallel needs a number"; parallel="$2"; shift 2 ;;
    --build-dir) [[ $# -ge 2 ]] || strata_die "--build-dir needs a folder"; build_dir="$2"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    -*) usage >&2; strata_die "unknown option: $1" ;;
    *) targets+=("$1"); shift ;;
  esac
done
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || strata_die "--seconds must be a positive number, got $seconds"
[[ "$parallel" =~ ^[1-9][0-9]*$ ]] || strata_die "--parallel must be a positive number, got $parallel"
((${#targets[@]} > 0)) || targets=("${all_targets[@]}")
for target in "${targets[@]}"; do
  [[ " ${all_targets[*]} " == *" $target "* ]] ||
    strata_die "no fuzz target '$target'; the targets are: ${all_targets[*]}"
done
[[ "$build_dir" = /* ]] || build_dir="$PWD/$build_dir"

strata_log "checking packages"
strata_ensure_packages "${STRATA_BUILD_PACKAGES[@]}" clang libclang-rt-14-dev libomp-dev
cd "$STRATA_ROOT"
export CCACHE_BASEDIR="$STRATA_ROOT"

strata_log "configuring $build_dir (Clang, libFuzzer, ASan, UBSan)"
# Static: the harnesses and the library they exercise form one instrumented program.
CXX="${STRATA_FUZZ_CXX:-clang++}" strata_configure "$build_dir" \
  -DCMAKE_BUILD_TYPE=Release -DSTRATA_CUDA=OFF -DSTRATA_FUZZ=ON -DBUILD_SHARED_LIBS=OFF \
  -DSTRATA_BUILD_TESTS=OFF -DSTRATA_BUILD_SAMPLES=OFF -DSTRATA_BUILD_BENCH=OFF >/dev/null
strata_log "building the harnesses"
cmake --build "$build_dir" -j "$(strata_jobs)" --target "${targets[@]/#/strata_fuzz_}"

# Reports stop the run (abort_on_error) and name the input; leaks count as findings.
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

run_target() {
  local target="$1" corpus="$build_dir/corpus/$1" findings="$build_dir/findings/$1/"
  rm -rf "$findings"  # findings are this run's
  mkdir -p "$corpus" "$findings" "$build_dir/logs"
  # -timeout: an input taking over 10 s is a hang; -rss_limit_mb: over 2 GiB is a finding too.
  "$build_dir/tests/fuzz/strata_fuzz_$target" "$corpus" "tests/fuzz/corpus/$target" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$findings" >"$build_dir/logs/$target.log" 2>&1
}

strata_log "fuzzing ${targets[*]} for ${seconds}s each, $parallel at a time"
start_seconds=$SECONDS
pids=()
for target in "${targets[@]}"; do
  while (($(jobs -rp | wc -l) >= parallel)); do
    wait -n || true
  done
  run_target "$target" &
  pids+=($!)
done
for pid in "${pids[@]}"; do
  wait "$pid" || true  # a finding makes libFuzzer exit non-zero; counted below
done

echo
strata_log "summary ($(strata_format_duration $((SECONDS - start_seconds))))"
found=0
for target in "${targets[@]}"; do
  log="$build_dir/logs/$target.log"
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  coverage="$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)"
  corpus_size="$(find "$build_dir/corpus/$target" -type f | wc -l)"
  mapfile -t artifacts < <(find "$build_dir/findings/$target" -type f | sort)
  printf '%-12s %10s runs in %ss, coverage %s edges, corpus %s inputs, findings %d\n' \
    "$target" "${runs:-?}" "$seconds" "${coverage:-?}" "$corpus_size" "${#artifacts[@]}"
  for artifact in "${artifacts[@]}"; do
    echo "    $artifact"
    found=1
  done
done
if ((found)); then
  echo "reproduce one with: $build_dir/tests/fuzz/strata_fuzz_TARGET FILE (see $build_dir/logs/)"
  exit 1
fi
