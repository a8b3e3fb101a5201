#!/usr/bin/env bash
# Sets up, builds and runs Strata's main sample; README command 1.
#   1. installs the Debian packages that are missing (as root; otherwise lists them and stops),
#      Fashion-MNIST (dataset-fashion-mnist, in /usr/share/datasets/fashion-mnist) among them
#   2. builds a Release Strata and its samples in build-release/ (CUDA backend when nvcc is found)
#   3. runs samples/mnist_cnn, which trains LeNet-5 on Fashion-MNIST (on the GPU when there is
#      one, else on the CPU), then prints the test accuracy and where its HTML report, logs and
#      checkpoints are (runs/mnist_cnn/); exits with the sample's exit status
#
# usage: scripts/demo.sh [--build-dir DIR] [-- SAMPLE_ARGS...]
#   SAMPLE_ARGS go to the sample (see `build-release/samples/mnist_cnn --help`).
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
cmake --build "$build_dir" -j "$(strata_jobs)" --target mnist_cnn

sample="$build_dir/samples/mnist_cnn"
[[ -x "$sample" ]] || strata_die "the build did not produce $sample"
strata_log "running $sample ${sample_args[*]}"
status=0
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
"$sample" "${sample_args[@]}" | tee "$log" || status=$?
if ((status == 0)); then
  # The sample's last lines say it already; repeat them where a reader of this script looks.
  strata_log "$(grep -m1 '^test ' "$log" || echo 'no test line in the output')"
  strata_log "$(grep -m1 '^report: ' "$log" || echo 'no report written')"
fi
exit "$status"
