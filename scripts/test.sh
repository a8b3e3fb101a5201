#!/usr/bin/env bash
# Sets up, builds and tests Strata; README command 2. .ci/run runs it plain, then with --sanitize.
#   1. installs the Debian packages that are missing (as root; otherwise lists them and stops)
#   2. configures build/ (Ninja, Release, every warning on, CUDA backend when nvcc is found)
#   3. builds everything (library, tests, samples, benchmarks) with all cores
#   4. runs the test suite under ctest
#   5. installs Strata into build/_install and builds and runs tests/consumer/ against it
# Exits non-zero when any step fails; ends with ctest's summary.
# With --sanitize the same suite runs under AddressSanitizer and UBSan instead, in
# build-sanitize/ (CPU backend only, no benchmarks, no install step): any report fails its test.
#
# usage: scripts/test.sh [--build-dir DIR] [--werror] [--sanitize] [-- EXTRA_CMAKE_ARGS...]
#   environment: STRATA_CUDA=AUTO|ON|OFF (default AUTO) picks the CUDA backend.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
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
  mode_args=(-DSTRATA_CUDA=OFF -DSTRATA_SANITIZE=address,undefined -DSTRATA_BUILD_BENCH=OFF)
  # A report ends the test that made it; leaks are reports too.
  export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:${ASAN_OPTIONS:-}"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
fi
# A relative --build-dir is taken from where the script was started.
[[ "$build_dir" = /* ]] || build_dir="$PWD/$build_dir"

start_seconds=$SECONDS
jobs="$(strata_jobs)"

strata_log "checking packages"
strata_ensure_packages "${STRATA_BUILD_PACKAGES[@]}" libgtest-dev libbenchmark-dev \
  dataset-fashion-mnist
strata_add_cuda_to_path

cd "$STRATA_ROOT"
export CCACHE_BASEDIR="$STRATA_ROOT"  # cache hits across checkouts in different folders

strata_log "configuring $build_dir"
mkdir -p "$build_dir"
strata_configure "$build_dir" \
  -DCMAKE_BUILD_TYPE=Release \
  -DSTRATA_CUDA="${STRATA_CUDA:-AUTO}" \
  -DSTRATA_BUILD_TESTS=ON \
  -DSTRATA_BUILD_SAMPLES=ON \
  -DSTRATA_BUILD_BENCH=ON \
  -DSTRATA_WARNINGS_AS_ERRORS="$werror" \
  "${mode_args[@]}" "${extra_cmake_args[@]}" 2>&1 | tee "$build_dir/configure.log"

strata_log "building with $jobs jobs"
cmake --build "$build_dir" -j "$jobs"

strata_log "running the tests"
ctest_log="$build_dir/ctest.log"
ctest_status=0
ctest --test-dir "$build_dir" --output-on-failure --no-tests=error -j "$jobs" 2>&1 \
  | tee "$ctest_log" || ctest_status=$?

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
fi

elapsed=$((SECONDS - start_seconds))
echo
strata_log "summary"
grep -h "^-- Strata .*CUDA backend" "$build_dir/configure.log" | sed 's/^-- //' || true
if grep -q "tests passed, " "$ctest_log"; then
  grep -E "tests passed, |^Total Test time" "$ctest_log"
  # The skipped tests (CUDA ones on a machine without a GPU) are counted, not listed.
  not_run="$(awk '/^The following tests did not run:/ { inside = 1; next }
                  inside && /^\t/ { count++; next }
                  { inside = 0 }
                  END { print count + 0 }' "$ctest_log")"
  if ((not_run > 0)); then
    echo "$not_run tests did not run (skipped; the list is in $ctest_log)"
  fi
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
echo "took $(strata_format_duration "$elapsed")"

if ((ctest_status != 0)) || [[ "$consumer_status" != 0 && "$consumer_status" != skipped ]]; then
  exit 1
fi
