#!/usr/bin/env bash
# Sets up, builds and tests Strata; README command 2. .ci/run runs it plain, then with --sanitize.
#   1. installs the Debian packages that are missing (as root; otherwise lists them and stops)
#   2. configures build/ (Ninja, Release, every warning on, CUDA backend when nvcc is found)
#   3. builds everything (library, tests, samples, benchmarks) with all cores
#   4. runs the test suite under ctest, one process per GoogleTest suite
#   5. installs Strata into build/_install and builds and runs tests/consumer/ against it
# Exits non-zero when any step fails; ends with the GoogleTest case counts, ctest's summary and
# a table of the phases and their times (also written to BUILD_DIR/phases.txt).
# With --sanitize the same suite runs under AddressSanitizer and UBSan instead, in
# build-sanitize/ (CPU backend only, building just what the suite runs, no install step): any
# report fails its test.
#
# usage: scripts/test.sh [--build-dir DIR] [--werror] [--sanitize] [-- EXTRA_CMAKE_ARGS...]
#   environment: STRATA_CUDA=AUTO|ON|OFF (default AUTO) picks the CUDA backend.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  sed -n '2,16s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

build_dir=""
werror="OFF"
sanitize=0
extra_cmake_args=()
while (($# > 0)); do
  case "$1" in
    --build-dir) [[ $# -ge 2 ]] || strata_die "--build-dir needs a directory"; build_dir="$2"; shift 2 ;;
    --build-dir=*) build_dir="${1#*=}"; shift ;;
    --werror) werror="ON"; shift ;;
    --sanitize) sanitize=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; extra_cmake_args=("$@"); break ;;
    *) usage >&2; strata_die "unknown argument: $1" ;;
  esac
done
if [[ -z "$build_dir" ]]; then
  build_dir="$( ((sanitize)) && echo build-sanitize || echo build)"
fi
mode_args=()
if ((sanitize)); then
  # NOTE: the CUDA runtime and ASan's shadow memory do not mix; the sanitized suite is the CPU one.
  # NOTE: and without MPI: Open MPI keeps its allocations to the end, which LeakSanitizer would
  # report from every rank; the sanitized suite checks the library built without it instead.
  mode_args=(-DSTRATA_CUDA=OFF -DSTRATA_MPI=OFF -DSTRATA_SANITIZE=address,undefined
             -DSTRATA_BUILD_BENCH=OFF)
  # A report ends the test that made it; leaks are reports too.
  export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:${ASAN_OPTIONS:-}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
fi
# A relative --build-dir is taken from where the script was started.
[[ "$build_dir" = /* ]] || build_dir="$PWD/$build_dir"

start_seconds=$SECONDS
jobs="$(strata_jobs)"

# The phases and their seconds, printed as a table at the end and kept in $build_dir/phases.txt
# (which .ci/run gathers).
phase_names=()
phase_seconds=()
phase_started=$SECONDS
phase_done() {
  phase_names+=("$1")
  phase_seconds+=($((SECONDS - phase_started)))
  phase_started=$SECONDS
}

strata_log "checking packages"
strata_ensure_packages "${STRATA_BUILD_PACKAGES[@]}" libgtest-dev libbenchmark-dev \
  dataset-fashion-mnist
strata_add_cuda_to_path
phase_done "packages"

cd "$STRATA_ROOT"
export CCACHE_BASEDIR="$STRATA_ROOT"  # cache hits across checkouts in different folders

strata_log "configuring $build_dir"
mkdir -p "$build_dir"
rm -f "$build_dir/phases.txt"  # written anew at the end
strata_configure "$build_dir" \
  -DCMAKE_BUILD_TYPE=Release \
  -DSTRATA_CUDA="${STRATA_CUDA:-AUTO}" \
  -DSTRATA_BUILD_TESTS=ON \
  -DSTRATA_BUILD_SAMPLES=ON \
  -DSTRATA_BUILD_BENCH=ON \
  -DSTRATA_WARNINGS_AS_ERRORS="$werror" \
  "${mode_args[@]}" "${extra_cmake_args[@]}" 2>&1 | tee "$build_dir/configure.log"
phase_done "configure"

# The sanitized suite builds only the programs its tests run (strata_test_programs).
build_targets=()
if ((sanitize)); then
  build_targets=(--target strata_test_programs)
fi
strata_log "building with $jobs jobs"
cmake --build "$build_dir" -j "$jobs" "${build_targets[@]}"
phase_done "build"

strata_log "running the tests"
ctest_log="$build_dir/ctest.log"
ctest_status=0
ctest --test-dir "$build_dir" --output-on-failure --no-tests=error -j "$jobs" 2>&1 \
  | tee "$ctest_log" || ctest_status=$?
phase_done "tests"

install_dir="$build_dir/_install"
consumer_dir="$build_dir/_consumer"
consumer_status=0
if ((sanitize)); then
  consumer_status=skipped  # the installed library would need the sanitizer runtimes
else
  strata_log "installing into $install_dir and building tests/consumer against it"
  rm -rf "$install_dir" "$consumer_dir"
  # NOTE: `set -e` does not apply inside an `||` list, hence the explicit `&&` chain.
  {
    cmake --install "$build_dir" --prefix "$install_dir" >"$build_dir/install.log" &&
      cmake -S tests/consumer -B "$consumer_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_PREFIX_PATH="$install_dir" &&
      cmake --build "$consumer_dir" &&
      "$consumer_dir/strata_consumer"
  } || consumer_status=$?
  phase_done "install + consumer"
fi

elapsed=$((SECONDS - start_seconds))
echo
strata_log "summary"
grep -h "^-- Strata .*CUDA backend" "$build_dir/configure.log" | sed 's/^-- //' || true
if grep -q "tests passed, " "$ctest_log"; then
  # ctest counts suites; the cases (skipped CUDA ones among them) are counted from the reports.
  python3 "$STRATA_ROOT/scripts/test_summary.py" "$build_dir/test-results" \
    --out "$build_dir/test-summary.txt" || true
  grep -E "tests passed, |^Total Test time" "$ctest_log" | sed 's/tests passed/ctest entries passed/'
  sed -n '/^The following tests FAILED:/,/^[^\t]/p' "$ctest_log"
else
  echo "ctest printed no summary (exit status $ctest_status); see $ctest_log"
fi
if [[ "$consumer_status" == skipped ]]; then
  echo "install + find_package(Strata) consumer: skipped (sanitized build)"
elif ((consumer_status == 0)); then
  echo "install + find_package(Strata) consumer: passed"
else
  echo "install + find_package(Strata) consumer: FAILED (exit status $consumer_status)"
fi
phase_names+=("total")
phase_seconds+=("$elapsed")
{
  printf '%-28s %8s\n' "phase ($(basename "$build_dir"))" "time"
  for i in "${!phase_names[@]}"; do
    printf '%-28s %8s\n' "${phase_names[$i]}" "$(strata_format_duration "${phase_seconds[$i]}")"
  done
} | tee "$build_dir/phases.txt"

if ((ctest_status != 0)) || [[ "$consumer_status" != 0 && "$consumer_status" != skipped ]]; then
  exit 1
fi
