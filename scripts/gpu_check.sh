#!/usr/bin/env bash
# Everything a lent GPU machine should check, in one call of about 8 minutes on 16 cores and one
# H100: builds Strata with the CUDA backend, runs the whole test suite (the CUDA cases must run,
# not skip), the benchmark beside PyTorch on CUDA, and each training sample with --device cuda
# for one short epoch; ends with a one-screen summary (tests by suite, bench ratios, sample
# accuracies), also written to BUILD_DIR/gpu_check_summary.txt and, when $OUT is set, to
# $OUT/gpu_check_summary.txt with the logs beside it.
# On a machine without a GPU it goes as far as it can and the summary says where it stopped
# and why.
#   1. machine: nvidia-smi, nvcc, the GPU's architecture, cuDNN (system, or the one in
#      PyTorch's pip wheel), GoogleTest (installed, or sources in .deps/googletest)
#   2. configures BUILD_DIR (default build-gpu: Ninja, Release, -DSTRATA_CUDA=ON), builds it
#   3. ctest (one process per suite), case counts by suite; checks a CUDA case really ran, and
#      that the NCCL group's cases ran on one rank (or says that no NCCL was found: optional)
#   4. bench/run.sh --cuda --quick (Strata and PyTorch side by side, the ratio table)
#   5. mnist_mlp, mnist_cnn, lstm_mnist (Fashion-MNIST, first --sample-limit images), cifar_cnn
#      (random images in CIFAR-10's layout) and linear_models (a generated CSV) on cuda
# Exits non-zero when a step fails or the CUDA cases skip.
#
# usage: scripts/gpu_check.sh [--build-dir DIR] [--no-bench] [--no-samples]
#                             [--sample-limit N] [-- EXTRA_CMAKE_ARGS...]
#        scripts/gpu_check.sh --prepare
#   --prepare (on the development machine) copies GoogleTest's sources (GTEST_SOURCE, default
#   /usr/src/googletest) to .deps/googletest and Fashion-MNIST to .deps/fashion-mnist, and exits:
#   the GPU machine may lack both and has no network. .deps/ is git-ignored, so carry it there
#   explicitly (device tool: carry [".deps"]).
#   environment: CUDNN_ROOT (a cuDNN folder with include/ and lib/) skips the search, and
#   NCCL_ROOT the same for NCCL (else the toolkit's, or the one in PyTorch's pip wheel);
#   STRATA_CUDA_ARCHITECTURES overrides the architecture read from nvidia-smi.
set -uo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  sed -n '2,28s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

build_dir="build-gpu"
run_bench=1
run_samples=1
sample_limit=10000
prepare=0
extra_cmake_args=()
while (($# > 0)); do
  case "$1" in
    --prepare) prepare=1; shift ;;
    --build-dir) [[ $# -ge 2 ]] || strata_die "--build-dir needs a directory"; build_dir="$2"; shift 2 ;;
    --build-dir=*) build_dir="${1#*=}"; shift ;;
    --no-bench) run_bench=0; shift ;;
    --no-samples) run_samples=0; shift ;;
    --sample-limit) [[ $# -ge 2 ]] || strata_die "--sample-limit needs a number"; sample_limit="$2"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    --) shift; extra_cmake_args=("$@"); break ;;
    *) usage >&2; strata_die "unknown argument: $1" ;;
  esac
done

gtest_copy="$STRATA_ROOT/.deps/googletest"
fashion_copy="$STRATA_ROOT/.deps/fashion-mnist"
fashion_system=/usr/share/datasets/fashion-mnist

# ---- --prepare: runs on the development machine ------------------------------------------------
if ((prepare)); then
  set -e
  source_dir="${GTEST_SOURCE:-/usr/src/googletest}"
  [[ -f "$source_dir/CMakeLists.txt" ]] ||
    strata_die "no GoogleTest sources at $source_dir (Debian: apt-get install googletest, or set GTEST_SOURCE)"
  rm -rf "$gtest_copy" "$fashion_copy"
  mkdir -p "$(dirname "$gtest_copy")"
  cp -a "$source_dir/." "$gtest_copy/"
  if [[ -d "$fashion_system" ]]; then
    cp -a "$fashion_system/." "$fashion_copy/"
  else
    strata_log "no $fashion_system (apt-get install dataset-fashion-mnist): the MNIST samples will be skipped there"
  fi
  strata_log "prepared .deps ($(du -sh "$STRATA_ROOT/.deps" | cut -f1)); carry .deps to the GPU machine"
  exit 0
fi

[[ "$build_dir" = /* ]] || build_dir="$PWD/$build_dir"
start_seconds=$SECONDS
jobs="$(strata_jobs)"
cd "$STRATA_ROOT"
mkdir -p "$build_dir"
logs="${OUT:-$build_dir}"
summary="$build_dir/gpu_check_summary.txt"

# ---- the summary: one line per step, printed at the end ----------------------------------------
summary_lines=()
failed_steps=0
step_started=$SECONDS
# step_result NAME STATUS DETAIL: STATUS is ok, FAILED or skipped.
step_result() {
  local seconds=$((SECONDS - step_started))
  summary_lines+=("$(printf '%-10s %-7s %5ss  %s' "$1" "$2" "$seconds" "$3")")
  [[ "$2" == FAILED ]] && failed_steps=$((failed_steps + 1))
  step_started=$SECONDS
}
finish() {
  local stopped="$1"
  {
    echo "== gpu_check: $(date -u '+%Y-%m-%d %H:%M UTC'), $(strata_format_duration $((SECONDS - start_seconds)))"
    echo "machine: $gpu_name; $(nproc) cores"
    printf '%s\n' "${summary_lines[@]}"
    [[ -n "$stopped" ]] && echo "stopped: $stopped"
    if [[ -f "$build_dir/test-summary.txt" ]]; then
      echo
      cat "$build_dir/test-summary.txt"
    fi
    if [[ -f "$build_dir/bench-table.txt" ]]; then
      echo
      cat "$build_dir/bench-table.txt"
    fi
    if [[ -f "$build_dir/samples.txt" ]]; then
      echo
      cat "$build_dir/samples.txt"
    fi
  } > "$summary"
  [[ "$logs" != "$build_dir" ]] && cp "$summary" "$logs/"
  echo
  cat "$summary"
  if [[ -n "$stopped" ]] || ((failed_steps > 0)); then
    exit 1
  fi
  exit 0
}

# ---- 1. the machine ----------------------------------------------------------------------------
gpu_name="no GPU found"
strata_log "nvidia-smi"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi; then
  gpu_name="$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -n 1)"
else
  strata_log "nvidia-smi missing or failing: not a GPU machine, or a driver problem; going on"
fi

strata_add_cuda_to_path
if ! command -v nvcc >/dev/null 2>&1; then
  step_result machine FAILED "nvcc not found (set CUDA_HOME or put the CUDA toolkit's bin/ on PATH)"
  finish "no CUDA toolkit"
fi
nvcc --version | tail -n 2

architectures="${STRATA_CUDA_ARCHITECTURES:-}"
if [[ -z "$architectures" ]] && command -v nvidia-smi >/dev/null 2>&1; then
  # "9.0" -> 90 for the first GPU.
  capability="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .' || true)"
  [[ "$capability" =~ ^[0-9]+$ ]] && architectures="$capability"
fi
architectures="${architectures:-90}"
strata_log "CUDA architectures: $architectures"

# cuDNN: CUDNN_ROOT, the system, or PyTorch's wheel.
cudnn_args=()
has_cudnn_header() {
  [[ -f "$1/include/cudnn.h" ]]
}
cudnn_root=""
cudnn_where="system"
if [[ -n "${CUDNN_ROOT:-}" ]]; then
  cudnn_root="$CUDNN_ROOT"
  cudnn_where="$CUDNN_ROOT"
elif [[ -f /usr/include/cudnn.h || -f /usr/include/x86_64-linux-gnu/cudnn.h ]] ||
     has_cudnn_header "$(dirname "$(dirname "$(command -v nvcc)")")"; then
  cudnn_root=""  # FindCUDNN.cmake finds it on its own
else
  cudnn_root="$(python3 -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__))' 2>/dev/null || true)"
  if [[ -z "$cudnn_root" ]] || ! has_cudnn_header "$cudnn_root"; then
    step_result machine FAILED "cuDNN not found: no system cudnn.h and no nvidia.cudnn wheel in python3 (set CUDNN_ROOT)"
    finish "no cuDNN"
  fi
  cudnn_where="PyTorch's wheel at $cudnn_root"
fi
if [[ -n "$cudnn_root" ]]; then
  cudnn_args=(-DCUDNN_ROOT="$cudnn_root")
  # The wheel may hold only libcudnn.so.9 (FindCUDNN.cmake looks for it); cuDNN loads its
  # sub-libraries (libcudnn_ops.so.9, ...) at run time from the loader's path.
  export LD_LIBRARY_PATH="$cudnn_root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

# NCCL (optional: without it the NCCL process group's cases skip): NCCL_ROOT, the toolkit's,
# or PyTorch's wheel.
nccl_args=()
nccl_where="not found"
if [[ -n "${NCCL_ROOT:-}" ]]; then
  nccl_args=(-DNCCL_ROOT="$NCCL_ROOT")
  nccl_where="$NCCL_ROOT"
elif [[ -f "$(dirname "$(dirname "$(command -v nvcc)")")/include/nccl.h" || -f /usr/include/nccl.h ]]; then
  nccl_where="system"
else
  nccl_root="$(python3 -c 'import nvidia.nccl as m; print(list(m.__path__)[0])' 2>/dev/null || true)"
  if [[ -n "$nccl_root" && -f "$nccl_root/include/nccl.h" ]]; then
    nccl_args=(-DNCCL_ROOT="$nccl_root")
    nccl_where="PyTorch's wheel at $nccl_root"
    export LD_LIBRARY_PATH="$nccl_root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
fi

# GoogleTest: installed, or sources.
gtest_args=()
if [[ -f "$gtest_copy/CMakeLists.txt" ]]; then
  gtest_args=(-DSTRATA_GTEST_SOURCE_DIR="$gtest_copy")  # used only when no installed one is found
elif [[ -f /usr/src/googletest/CMakeLists.txt ]]; then
  gtest_args=(-DSTRATA_GTEST_SOURCE_DIR=/usr/src/googletest)
elif [[ ! -f /usr/include/gtest/gtest.h && ! -f /usr/local/include/gtest/gtest.h ]]; then
  step_result machine FAILED "GoogleTest not found: run scripts/gpu_check.sh --prepare on the development machine and carry .deps"
  finish "no GoogleTest"
fi
step_result machine ok "sm_$architectures, nvcc $(nvcc --version | grep -o 'release [0-9.]*' | cut -d' ' -f2), cuDNN: $cudnn_where, NCCL: $nccl_where"

# ---- 2. configure, build -----------------------------------------------------------------------
strata_log "configuring and building $build_dir with $jobs jobs"
if ! strata_configure "$build_dir" \
    -DCMAKE_BUILD_TYPE=Release \
    -DSTRATA_CUDA=ON \
    -DSTRATA_CUDA_ARCHITECTURES="$architectures" \
    -DCMAKE_CUDA_ARCHITECTURES="$architectures" \
    -DSTRATA_BUILD_TESTS=ON \
    -DSTRATA_BUILD_SAMPLES=ON \
    -DSTRATA_BUILD_BENCH=ON \
    "${cudnn_args[@]}" "${nccl_args[@]}" "${gtest_args[@]}" "${extra_cmake_args[@]}" > "$logs/configure.log" 2>&1; then
  tail -n 30 "$logs/configure.log"
  step_result configure FAILED "see configure.log"
  finish "the configure step failed"
fi
if ! cmake --build "$build_dir" -j "$jobs" > "$logs/build.log" 2>&1; then
  grep -E -A5 "error|FAILED" "$logs/build.log" | head -n 60
  step_result build FAILED "see build.log"
  finish "the build failed"
fi
step_result build ok "$(grep -c -E '^\[[0-9]+/' "$logs/build.log") steps"

# ---- 3. tests ----------------------------------------------------------------------------------
strata_log "running the tests"
# The samples' smoke tests find Fashion-MNIST here when the system has none.
[[ -d "$fashion_system" ]] || export STRATA_FASHION_MNIST="$fashion_copy"
# Half the cores' worth of suites at a time, two OpenMP threads each: the CPU kernels would
# otherwise start a thread per core in every process at once.
ctest_status=0
OMP_NUM_THREADS=2 ctest --test-dir "$build_dir" --output-on-failure --no-tests=error \
  -j "$(((jobs + 1) / 2))" > "$logs/ctest.log" 2>&1 || ctest_status=$?
# The summary names only the suites with failed or skipped cases; every suite is in the log.
python3 scripts/test_summary.py "$build_dir/test-results" --notable --out "$build_dir/test-summary.txt" \
  > /dev/null || true
python3 scripts/test_summary.py "$build_dir/test-results" --by-suite > "$logs/tests-by-suite.txt" || true
entries="$(grep -E "tests passed, " "$logs/ctest.log" | sed 's/tests passed/ctest entries passed/')"
if ((ctest_status != 0)); then
  sed -n '/^The following tests FAILED:/,$p' "$logs/ctest.log" | head -n 20
  step_result tests FAILED "$entries"
else
  step_result tests ok "$entries"
fi

# On a GPU machine the CUDA cases must run: a skip here means the device was not found.
probe="$("$build_dir/tests/strata_tests" --gtest_filter='CudaBackend.DeviceIndexAndSynchronize' 2>&1)"
if grep -q "SKIPPED \]" <<<"$probe" || ! grep -q "PASSED \].*1 test" <<<"$probe"; then
  step_result cuda FAILED "the CUDA cases did not run: $(grep -m1 -o 'no CUDA.*\|cannot load.*' <<<"$probe")"
  cuda_ok=0
else
  step_result cuda ok "CUDA cases ran"
  cuda_ok=1
fi

# The NCCL process group on one rank (tests/test_distributed_nccl.cpp, also in the ctest run
# above): NCCL is optional, so a build without it is reported, not failed.
if ((cuda_ok)); then
  nccl_probe="$("$build_dir/tests/strata_tests" --gtest_filter='DistributedNccl.AllReduceOnOneRankKeepsTheValues' 2>&1)"
  if grep -q "PASSED \].*1 test" <<<"$nccl_probe"; then
    step_result nccl ok "NCCL cases ran (one rank on cuda:0); configure: $(grep -m1 -o 'NCCL process group: [A-Z]*' "$logs/configure.log")"
  elif grep -q "SKIPPED \]" <<<"$nccl_probe"; then
    step_result nccl skipped "$(grep -m1 -o 'this Strata was built without NCCL' <<<"$nccl_probe" || echo "the NCCL cases skipped"); NCCL: $nccl_where"
  else
    step_result nccl FAILED "the NCCL cases failed: see DistributedNccl in ctest.log"
  fi
fi

# ---- 4. bench ----------------------------------------------------------------------------------
if ((run_bench)); then
  strata_log "bench/run.sh --cuda --quick"
  bench_status=0
  BUILD_DIR="$build_dir" bash bench/run.sh --cuda --quick --no-build --threads "$(nproc)" \
    > "$logs/bench.log" 2>&1 || bench_status=$?
  sed -n '/^== Strata vs PyTorch/,$p' "$logs/bench.log" > "$build_dir/bench-table.txt"
  if ((bench_status != 0)); then
    tail -n 20 "$logs/bench.log"
    step_result bench FAILED "exit status $bench_status; see bench.log"
  else
    step_result bench ok "$(grep -m1 -o 'skip PyTorch.*' "$logs/bench.log" || echo "beside PyTorch")"
  fi
else
  step_result bench skipped "--no-bench"
fi

# ---- 5. samples on cuda ------------------------------------------------------------------------
if ((run_samples)) && ((cuda_ok)); then
  strata_log "samples on cuda"
  work="$build_dir/gpu-samples"
  rm -rf "$work"
  mkdir -p "$work"
  fashion="$fashion_system"
  [[ -d "$fashion" ]] || fashion="$fashion_copy"
  samples_failed=0
  : > "$build_dir/samples.txt"
  # run_sample NAME ARGS...: one line of the samples table from its output.
  run_sample() {
    local name="$1" status=0 started=$SECONDS
    shift
    "$build_dir/samples/$name" --device cuda --epochs 1 --out "$work/$name" --progress lines "$@" \
      > "$logs/sample-$name.log" 2>&1 || status=$?
    local result
    result="$(grep -m1 -E '^test \(' "$logs/sample-$name.log" || tail -n 1 "$logs/sample-$name.log")"
    local timing
    timing="$(grep -m1 -o 'training time [0-9.]* s' "$logs/sample-$name.log" || true)"
    printf '%-14s %-6s %4ss  %s; %s\n' "$name" "$( ((status == 0)) && echo ok || echo FAILED)" \
      "$((SECONDS - started))" "$result" "$timing" >> "$build_dir/samples.txt"
    ((status == 0)) || samples_failed=$((samples_failed + 1))
  }
  if [[ -d "$fashion" ]]; then
    for name in mnist_mlp mnist_cnn lstm_mnist; do
      run_sample "$name" --data "$fashion" --limit "$sample_limit"
    done
  else
    echo "mnist_mlp, mnist_cnn, lstm_mnist: skipped, no Fashion-MNIST (run --prepare and carry .deps)" \
      >> "$build_dir/samples.txt"
  fi
  # Random images in CIFAR-10's binary layout (a label byte, then 3072 pixel bytes).
  mkdir -p "$work/cifar/cifar-10-batches-bin"
  for batch in data_batch_1 data_batch_2 data_batch_3 data_batch_4 data_batch_5 test_batch; do
    python3 -c 'import os, sys
for r in range(200): sys.stdout.buffer.write(bytes([r % 10]) + os.urandom(3072))' \
      > "$work/cifar/cifar-10-batches-bin/$batch.bin"
  done
  run_sample cifar_cnn --data "$work/cifar"
  python3 -c 'import random
random.seed(1)
print("x1,x2,x3,y")
for _ in range(2000):
    x = [random.uniform(-1, 1) for _ in range(3)]
    print(",".join(f"{v:.5f}" for v in x) + f",{2*x[0]-x[1]+0.5*x[2]+0.1+random.gauss(0, 0.01):.5f}")' \
    > "$work/linear.csv"
  run_sample linear_models --data "$work/linear.csv" --target y
  if ((samples_failed > 0)); then
    step_result samples FAILED "$samples_failed sample(s) failed; see sample-*.log"
  else
    step_result samples ok "see the table below"
  fi
elif ((run_samples)); then
  step_result samples skipped "no CUDA device"
else
  step_result samples skipped "--no-samples"
fi

finish ""
