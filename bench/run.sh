#!/usr/bin/env bash
# Builds strata_bench (Release, build-bench/), runs it and, when a Python with PyTorch is found,
# bench/torch_bench.py, with one thread count and one OPENBLAS_CORETYPE for both, then prints
# the ratio table (bench/ratio_table.py) with the targets.
#
# usage: bench/run.sh [--threads N] [--cuda] [--quick] [--no-build]
#   --threads N  threads for Strata, OpenBLAS and PyTorch alike (default: nproc)
#   --cuda       also the CUDA workloads (a skip line when no device); configures the build
#                with STRATA_CUDA=AUTO unless STRATA_CUDA is set in the environment
#   --quick      fewer iterations (a smoke run; the numbers are noisier)
#   --no-build   use the strata_bench already in the build folder
#   --only G     one group of workloads: ops (small ops, max pooling, matmul), train (training
#                steps) or dist (data-parallel: strata_bench under mpirun -np 1 and 2 beside
#                torch_dist_bench.py over gloo, one thread per rank)
# environment: STRATA_CUDA (OFF/AUTO/ON; default OFF, AUTO with --cuda), BUILD_DIR (default
#   build-bench), JOBS (build parallelism, default 2), TORCH_PYTHON (the Python to run
#   torch_bench.py with; default: the first of /usr/bin/python3 and python3 that imports
#   torch, preferring one with CUDA under --cuda), OPENBLAS_CORETYPE (passed to both as is).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BUILD_DIR:-$root/build-bench}"
threads="$(nproc)"
cuda=0
build=1
only=""
bench_args=()

while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) threads="$2"; shift 2 ;;
    --threads=*) threads="${1#*=}"; shift ;;
    --cuda) cuda=1; shift ;;
    --quick) bench_args+=(--reps 3 --small-iters 100000 --backward-iters 20000); shift ;;
    --no-build) build=0; shift ;;
    --only) bench_args+=(--only "$2"); only="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
bench_args+=(--threads "$threads")
if [[ $cuda == 1 ]]; then
  bench_args+=(--cuda)
fi

# ---- build -------------------------------------------------------------------------------
if [[ $build == 1 ]]; then
  strata_cuda="${STRATA_CUDA:-$([[ $cuda == 1 ]] && echo AUTO || echo OFF)}"
  generator=()
  if command -v ninja >/dev/null 2>&1 && [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
    generator=(-G Ninja)
  fi
  mkdir -p "$build_dir"
  cmake -S "$root" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DSTRATA_CUDA="$strata_cuda" -DSTRATA_BUILD_TESTS=OFF -DSTRATA_BUILD_SAMPLES=OFF \
    -DSTRATA_BUILD_BENCH=ON >"$build_dir/configure.log" 2>&1 \
    || { cat "$build_dir/configure.log" >&2; exit 1; }
  cmake --build "$build_dir" --target strata_bench -j "${JOBS:-2}"
fi
bench_bin="$build_dir/bench/strata_bench"
[[ -x "$bench_bin" ]] || { echo "run.sh: $bench_bin not found (build first)" >&2; exit 1; }

# ---- the Python with PyTorch -------------------------------------------------------------
torch_python="${TORCH_PYTHON:-}"
if [[ -z "$torch_python" ]]; then
  candidates=(/usr/bin/python3 python3)
  if [[ $cuda == 1 ]]; then
    for py in "${candidates[@]}"; do
      if "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
          >/dev/null 2>&1; then
        torch_python="$py"; break
      fi
    done
  fi
  if [[ -z "$torch_python" ]]; then
    for py in "${candidates[@]}"; do
      if "$py" -c 'import torch' >/dev/null 2>&1; then torch_python="$py"; break; fi
    done
  fi
fi
# Any python3 formats the table (it needs no torch).
table_python="$(command -v python3 || echo /usr/bin/python3)"

# ---- run ---------------------------------------------------------------------------------
out_dir="$build_dir/bench-results"
mkdir -p "$out_dir"
echo "== machine: $(nproc) cores, threads $threads, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)}, load average $(cut -d' ' -f1-3 /proc/loadavg) (numbers are only comparable on an idle machine)"
if [[ $only == dist ]]; then
  # One thread per rank; mpirun as root needs the two variables (containers run as root).
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  : >"$out_dir/strata.txt"
  : >"$out_dir/torch.txt"
  outputs=("$out_dir/strata.txt")
  for ranks in 1 2; do
    echo "== mpirun -np $ranks strata_bench --only dist --threads 1"
    mpirun --oversubscribe -np "$ranks" -x OMP_NUM_THREADS=1 "$bench_bin" --only dist \
      --threads 1 | grep -v '^#' | tee -a "$out_dir/strata.txt"
    if [[ -n "$torch_python" ]]; then
      echo "== $torch_python bench/torch_dist_bench.py --ranks $ranks"
      OMP_NUM_THREADS=1 "$torch_python" "$root/bench/torch_dist_bench.py" --ranks "$ranks" \
        2>/dev/null | tee -a "$out_dir/torch.txt"
    fi
  done
  [[ -n "$torch_python" ]] && outputs+=("$out_dir/torch.txt")
  echo
  "$table_python" "$root/bench/ratio_table.py" "${outputs[@]}"
  exit 0
fi
echo "== strata_bench ${bench_args[*]}"
"$bench_bin" "${bench_args[@]}" | tee "$out_dir/strata.txt"
outputs=("$out_dir/strata.txt")
if [[ -n "$torch_python" ]]; then
  echo "== $torch_python bench/torch_bench.py ${bench_args[*]}"
  "$torch_python" "$root/bench/torch_bench.py" "${bench_args[@]}" | tee "$out_dir/torch.txt"
  outputs+=("$out_dir/torch.txt")
else
  echo "== skip PyTorch: no Python here imports torch (install python3-torch, or set TORCH_PYTHON)"
fi

echo
echo "== Strata vs PyTorch vs OpenBLAS (threads $threads, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)})"
"$table_python" "$root/bench/ratio_table.py" "${outputs[@]}"
