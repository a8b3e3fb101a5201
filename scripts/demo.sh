#!/usr/bin/env bash
# Sets up, builds and runs Strata's main sample; README command 1.
#   1. installs the Debian packages that are missing (as root; otherwise lists them and stops),
#      Fashion-MNIST (dataset-fashion-mnist, in /usr/share/datasets/fashion-mnist) among them
#   2. builds a Release Strata and its samples in build-release/ (CUDA backend when nvcc is found)
#   3. runs samples/train_fashion_mnist, which trains a classifier on Fashion-MNIST on the GPU
#      when there is one and on the CPU otherwise, and exits with the sample's exit status
#
# usage: scripts/demo.sh [--build-dir DIR] [-- SAMPLE_ARGS...]
#   SAMPLE_ARGS go to the sample (see `build-release/samples/train_fashion_mnist --help`).
#   environment: STRATA_CUDA=AUTO|ON|OFF (default AUTO) picks the CUDA backend.
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  sed -n '2,11s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

build_dir="build-release"
sample_args=()
while (($# > 0)); do
  case "$1" in
    --build-dir) [[ $# -ge 2 ]] || strata_die "--build-dir needs a directory"; build_dir="$2"; shift 2 ;;
    --build-dir=*) build_dir="${1#*=}"; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; sample_args=("$@"); break ;;
    *) usage >&2; strata_die "unknown argument: $1" ;;
  esac
done
[[ "$build_dir" = /* ]] || build_dir="$PWD/$build_dir"

strata_log "checking packages"
strata_ensure_packages "${STRATA_BUILD_PACKAGES[@]}" dataset-fashion-mnist
strata_add_cuda_to_path

cd "$STRATA_ROOT"
export CCACHE_BASEDIR="$STRATA_ROOT"

strata_log "configuring $build_dir"
strata_configure "$build_dir" \
  -DCMAKE_BUILD_TYPE=Release \
  -DSTRATA_CUDA="${STRATA_CUDA:-AUTO}" \
  -DSTRATA_BUILD_TESTS=OFF \
  -DSTRATA_BUILD_SAMPLES=ON \
  -DSTRATA_BUILD_BENCH=OFF

strata_log "building the sample"
cmake --build "$build_dir" -j "$(strata_jobs)" --target train_fashion_mnist

sample="$build_dir/samples/train_fashion_mnist"
[[ -x "$sample" ]] || strata_die "the build did not produce $sample"
strata_log "running $sample ${sample_args[*]}"
status=0
"$sample" "${sample_args[@]}" || status=$?
exit "$status"
