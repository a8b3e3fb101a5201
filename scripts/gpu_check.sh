#!/usr/bin/env bash
# Builds Strata with the CUDA backend on a GPU machine, runs the whole test suite (the CUDA
# tests must run there, not skip), then the benchmark with --cuda when it was built.
#   1. prints nvidia-smi, finds nvcc, the GPU's architecture, cuDNN (system, or the one in
#      PyTorch's pip wheel) and GoogleTest (installed, or sources in .deps/googletest)
#   2. configures BUILD_DIR (default build-gpu: Ninja, Release, -DSTRATA_CUDA=ON), builds it
#   3. runs ctest, checks that a CUDA test really ran, runs BUILD_DIR/bench/strata_bench --cuda
# Exits non-zero when the build, a test or the bench fails, or when the CUDA tests skip.
#
# usage: scripts/gpu_check.sh [--build-dir DIR] [--no-bench] [-- EXTRA_CMAKE_ARGS...]
#        scripts/gpu_check.sh --prepare
#   --prepare (on the development machine) copies GoogleTest's sources (GTEST_SOURCE, default
#   /usr/src/googletest) to .deps/googletest and exits: the GPU machine may lack GoogleTest and
#   has no network. .deps/ is git-ignored, so carry it there explicitly (device tool: carry
#   [".deps/googletest"]).
#   environment: CUDNN_ROOT (a cuDNN folder with include/ and lib/) skips the search;
#   STRATA_CUDA_ARCHITECTURES overrides the architecture read from nvidia-smi.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  sed -n '2,18s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

build_dir="build-gpu"
run_bench=1
prepare=0
extra_cmake_args=()
while (($# > 0)); do
  case "$1" in
    --prepare) prepare=1; shift ;;
    --build-dir) [[ $# -ge 2 ]] || strata_die "--build-dir needs a directory"; build_dir="$2"; shift 2 ;;
    --build-dir=*) build_dir="${1#*=}"; shift ;;
    --no-bench) run_bench=0; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; extra_cmake_args=("$@"); break ;;
    *) usage >&2; strata_die "unknown argument: $1" ;;
  esac
done

gtest_copy="$STRATA_ROOT/.deps/googletest"

# ---- --prepare: runs on the development machine ------------------------------------------------
if ((prepare)); then
  source_dir="${GTEST_SOURCE:-/usr/src/googletest}"
  [[ -f "$source_dir/CMakeLists.txt" ]] ||
    strata_die "no GoogleTest sources at $source_dir (Debian: apt-get install googletest, or set GTEST_SOURCE)"
  rm -rf "$gtest_copy"
  mkdir -p "$(dirname "$gtest_copy")"
  cp -a "$source_dir/." "$gtest_copy/"
  strata_log "copied $source_dir to $gtest_copy ($(du -sh "$gtest_copy" | cut -f1)); carry .deps/googletest to the GPU machine"
  exit 0
fi

[[ "$build_dir" = /* ]] || build_dir="$PWD/$build_dir"
start_seconds=$SECONDS
jobs="$(strata_jobs)"
cd "$STRATA_ROOT"

# ---- the machine -------------------------------------------------------------------------------
strata_log "nvidia-smi"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi || strata_log "nvidia-smi failed (driver problem?); going on"
else
  strata_log "nvidia-smi not found: is this a GPU machine?"
fi

strata_add_cuda_to_path
command -v nvcc >/dev/null 2>&1 || strata_die "nvcc not found (set CUDA_HOME or put the CUDA toolkit's bin/ on PATH)"
nvcc --version | tail -n 2

architectures="${STRATA_CUDA_ARCHITECTURES:-}"
if [[ -z "$architectures" ]] && command -v nvidia-smi >/dev/null 2>&1; then
  # "9.0" -> 90 for the first GPU.
  capability="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .' || true)"
  [[ "$capability" =~ ^[0-9]+$ ]] && architectures="$capability"
fi
architectures="${architectures:-90}"
strata_log "CUDA architectures: $architectures"

# ---- cuDNN: CUDNN_ROOT, the system, or PyTorch's wheel ------------------------------------------
cudnn_args=()
has_cudnn_header() {
  [[ -f "$1/include/cudnn.h" ]]
}
if [[ -n "${CUDNN_ROOT:-}" ]]; then
  cudnn_root="$CUDNN_ROOT"
elif [[ -f /usr/include/cudnn.h || -f /usr/include/x86_64-linux-gnu/cudnn.h ]] ||
     has_cudnn_header "$(dirname "$(dirname "$(command -v nvcc)")")"; then
  cudnn_root=""  # FindCUDNN.cmake finds it on its own
  strata_log "cuDNN: system installation"
else
  cudnn_root="$(python3 -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__))' 2>/dev/null || true)"
  if [[ -z "$cudnn_root" ]] || ! has_cudnn_header "$cudnn_root"; then
    strata_die "cuDNN not found: no system cudnn.h and no nvidia.cudnn wheel in python3 (set CUDNN_ROOT)"
  fi
  strata_log "cuDNN: PyTorch's wheel at $cudnn_root"
fi
if [[ -n "$cudnn_root" ]]; then
  cudnn_args=(-DCUDNN_ROOT="$cudnn_root")
  # The wheel may hold only libcudnn.so.9 (FindCUDNN.cmake looks for it); cuDNN loads its
  # sub-libraries (libcudnn_ops.so.9, ...) at run time from the loader's path.
  export LD_LIBRARY_PATH="$cudnn_root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  ls "$cudnn_root/lib" >&2 || true
fi

# ---- GoogleTest: installed, or sources -----------------------------------------------------------
gtest_args=()
if [[ -f "$gtest_copy/CMakeLists.txt" ]]; then
  gtest_args=(-DSTRATA_GTEST_SOURCE_DIR="$gtest_copy")  # used only when no installed one is found
  strata_log "GoogleTest: installed if found, else the sources in $gtest_copy"
elif [[ -f /usr/src/googletest/CMakeLists.txt ]]; then
  gtest_args=(-DSTRATA_GTEST_SOURCE_DIR=/usr/src/googletest)
  strata_log "GoogleTest: installed if found, else /usr/src/googletest"
elif [[ -f /usr/include/gtest/gtest.h || -f /usr/local/include/gtest/gtest.h ]]; then
  strata_log "GoogleTest: installed"
else
  strata_die "GoogleTest not found: run scripts/gpu_check.sh --prepare on the development machine and carry .deps/googletest here"
fi

# ---- configure, build -----------------------------------------------------------------------------
strata_log "configuring $build_dir"
mkdir -p "$build_dir"
strata_configure "$build_dir" \
  -DCMAKE_BUILD_TYPE=Release \
  -DSTRATA_CUDA=ON \
  -DSTRATA_CUDA_ARCHITECTURES="$architectures" \
  -DCMAKE_CUDA_ARCHITECTURES="$architectures" \
  -DSTRATA_BUILD_TESTS=ON \
  -DSTRATA_BUILD_SAMPLES=OFF \
  -DSTRATA_BUILD_BENCH=ON \
  "${cudnn_args[@]}" "${gtest_args[@]}" "${extra_cmake_args[@]}" 2>&1 | tee "$build_dir/configure.log"

strata_log "building with $jobs jobs"
cmake --build "$build_dir" -j "$jobs"

# ---- tests ----------------------------------------------------------------------------------------
strata_log "running the tests"
ctest_status=0
ctest --test-dir "$build_dir" --output-on-failure --no-tests=error -j "$jobs" 2>&1 |
  tee "$build_dir/ctest.log" || ctest_status=$?

# On a GPU machine the CUDA tests must run: a skip here means the device was not found.
cuda_status=0
tests_binary="$build_dir/tests/strata_tests"
if [[ -x "$tests_binary" ]]; then
  probe="$("$tests_binary" --gtest_filter='CudaBackend.DeviceIndexAndSynchronize' 2>&1 || true)"
  if grep -q "SKIPPED \]" <<<"$probe" || ! grep -q "PASSED \].*1 test" <<<"$probe"; then
    printf '%s\n' "$probe" >&2
    strata_log "the CUDA tests did not run on this machine (see the reason above)"
    cuda_status=1
  fi
else
  strata_log "no $tests_binary"
  cuda_status=1
fi

# ---- bench ----------------------------------------------------------------------------------------
bench_status=0
if ((run_bench)); then
  bench="$build_dir/bench/strata_bench"
  if [[ -x "$bench" ]]; then
    strata_log "running $bench --cuda"
    "$bench" --cuda 2>&1 | tee "$build_dir/bench.log" || bench_status=$?
  else
    strata_log "no bench binary at $bench: skipped"
  fi
fi

strata_log "done in $(strata_format_duration $((SECONDS - start_seconds))): ctest $ctest_status, CUDA tests ran $((cuda_status == 0)), bench $bench_status"
if ((ctest_status != 0 || cuda_status != 0 || bench_status != 0)); then
  exit 1
fi
