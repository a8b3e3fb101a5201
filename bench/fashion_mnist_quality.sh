#!/usr/bin/env bash
# The quality bar of the MNIST samples, measured: samples/mnist_mlp and samples/mnist_cnn and
# the same models and recipe in PyTorch (bench/torch_fashion_mnist.py: Adam lr 1e-3, batch 64,
# 2 epochs, standardized pixels, the test split evaluated after each epoch) on the same data and
# the same number of CPU threads, one after the other. Prints test accuracy and training time of
# both sides, the accuracy difference in points and the time ratio (Strata / PyTorch).
#
# usage: bench/fashion_mnist_quality.sh [--build-dir DIR] [--threads N] [--epochs N]
#                                       [--data DIR] [--models mlp,cnn]
#   needs a built Strata (samples) and, for the PyTorch column, python3 with torch
#   (Debian: apt-get install python3-torch).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="$root/build"
threads="$(nproc)"
epochs=2
data=/usr/share/datasets/fashion-mnist
models=mlp,cnn
while (($# > 0)); do
  case "$1" in
    --build-dir) build_dir="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --epochs) epochs="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --models) models="$2"; shift 2 ;;
    -h | --help) sed -n '2,12s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "Fashion-MNIST, $epochs epochs, Adam 1e-3, batch 64, $threads threads," \
  "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
declare -A strata_accuracy strata_seconds torch_accuracy torch_seconds
for model in ${models//,/ }; do
  sample="$build_dir/samples/mnist_$model"
  [[ -x "$sample" ]] || { echo "no $sample: build the samples first" >&2; exit 1; }
  "$sample" --data "$data" --epochs "$epochs" --batch-size 64 --lr 1e-3 --optimizer adam \
    --threads "$threads" --device cpu --progress none --out "$work/$model" > "$work/$model.log"
  strata_seconds[$model]="$(sed -n 's/^training time \([0-9.]*\) s.*/\1/p' "$work/$model.log")"
  strata_accuracy[$model]="$(sed -n 's/^test .*accuracy \([0-9.]*\)%.*/\1/p' "$work/$model.log")"
done
torch_python=""
for candidate in python3 /usr/bin/python3; do
  if "$candidate" -c 'import torch' 2> /dev/null; then torch_python="$candidate"; break; fi
done
if [[ -n "$torch_python" ]]; then
  "$torch_python" "$root/bench/torch_fashion_mnist.py" --data "$data" --epochs "$epochs" \
    --threads "$threads" --models "$models" > "$work/torch.log"
  while read -r _ name _ accuracy _ seconds _; do
    torch_accuracy[${name#mnist_}]="$(awk -v a="$accuracy" 'BEGIN { printf "%.2f", 100 * a }')"
    torch_seconds[${name#mnist_}]="$seconds"
  done < "$work/torch.log"
else
  echo "(no python3 with torch: the PyTorch columns stay empty)"
fi

printf '\n| model | Strata accuracy | PyTorch accuracy | difference | Strata s | PyTorch s | time ratio |\n'
printf '|---|---|---|---|---|---|---|\n'
for model in ${models//,/ }; do
  sa="${strata_accuracy[$model]}" ss="${strata_seconds[$model]}"
  ta="${torch_accuracy[$model]:-}" ts="${torch_seconds[$model]:-}"
  if [[ -n "$ta" ]]; then
    awk -v m="mnist_$model" -v sa="$sa" -v ss="$ss" -v ta="$ta" -v ts="$ts" 'BEGIN {
      printf "| %s | %.2f%% | %.2f%% | %+.2f points | %.2f | %.2f | %.2fx |\n", m, sa, ta, sa - ta,
             ss, ts, ss / ts }'
  else
    printf '| mnist_%s | %s%% | | | %s | | |\n' "$model" "$sa" "$ss"
  fi
done
