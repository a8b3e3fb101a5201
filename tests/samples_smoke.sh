#!/usr/bin/env bash
# End-to-end checks of the training samples, run by ctest (samples/CMakeLists.txt adds one test
# per case). Each case runs a sample on a small part of its data and checks what it leaves in
# --out, its output and its exit status.
#
# usage: tests/samples_smoke.sh SAMPLES_DIR CASE
#   CASE: flags | mnist_mlp | mnist_cnn | lstm_mnist | cifar_cnn | linear_models | resume |
#         determinism | distributed
# Exits 0 on success, 77 (ctest's skip) when Fashion-MNIST is not installed (or, for
# distributed, when there is no mpirun), 1 on a failure.
# environment: STRATA_FASHION_MNIST, where Fashion-MNIST is when not in the system's folder
#   (scripts/gpu_check.sh carries a copy to the GPU machine); STRATA_MPIEXEC, the mpirun of the
#   MPI Strata was built with (empty: built without MPI).
set -euo pipefail

samples="$1"
case_name="$2"
fashion_mnist="${STRATA_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

fail() {
  printf 'FAIL (%s): %s\n' "$case_name" "$*" >&2
  exit 1
}

need_fashion_mnist() {
  if [[ ! -d "$fashion_mnist" ]]; then
    echo "skipped: $fashion_mnist not found (apt-get install dataset-fashion-mnist)"
    exit 77
  fi
}

# Runs a sample, keeping its output in $work/output; fails with the output when it exits
# with another status than the one expected (0 unless given as $1 = --status N).
run() {
  local expected=0
  if [[ "$1" == --status ]]; then
    expected="$2"
    shift 2
  fi
  local status=0
  "$@" > "$work/output" 2>&1 || status=$?
  if ((status != expected)); then
    cat "$work/output" >&2
    fail "$(basename "$1") exited $status, expected $expected"
  fi
}

expect_output() {
  grep -q -- "$1" "$work/output" || { cat "$work/output" >&2; fail "no '$1' in the output"; }
}

# The files a run leaves in its --out folder.
expect_run_files() {
  local out="$1" epochs="$2"
  for file in log.csv log.jsonl report.html model.safetensors checkpoints/best.safetensors \
      "checkpoints/epoch-$(printf %04d "$epochs").safetensors"; do
    [[ -s "$out/$file" ]] || fail "$out/$file is missing or empty"
  done
  (($(wc -l < "$out/log.csv") == epochs + 1)) || fail "log.csv should have $epochs rows"
  (($(wc -l < "$out/log.jsonl") == epochs)) || fail "log.jsonl should have $epochs lines"
  grep -q '<svg' "$out/report.html" || fail "report.html has no chart"
}

# The training loss of every epoch in a log.csv, one "epoch loss" pair per line.
losses() {
  awk -F, 'NR == 1 { for (i = 1; i <= NF; ++i) if ($i == "loss") column = i; next }
           { print $1, $column }' "$1"
}

case "$case_name" in
  flags)
    for sample in mnist_mlp mnist_cnn lstm_mnist cifar_cnn linear_models; do
      run "$samples/$sample" --help
      for flag in --data --epochs --batch-size --lr --optimizer --device --out --resume; do
        expect_output "$flag"
      done
      run --status 2 "$samples/$sample" --no-such-flag
      expect_output "unknown flag '--no-such-flag'"
      run --status 2 "$samples/$sample" --epochs zero
      expect_output "--epochs expects an integer"
      run --status 2 "$samples/$sample" --optimizer adamm
      expect_output "--optimizer must be one of"
    done
    run --status 1 "$samples/mnist_mlp" --data "$work/nowhere" --out "$work/out"
    expect_output "dataset-fashion-mnist"
    ;;

  mnist_mlp | mnist_cnn | lstm_mnist)
    need_fashion_mnist
    run "$samples/$case_name" --data "$fashion_mnist" --limit 1000 --epochs 2 --batch-size 50 \
      --out "$work/out" --progress lines
    expect_output "Epoch 2/2"
    expect_output "test (10000 examples): accuracy"
    expect_run_files "$work/out" 2
    # 1000 images and 2 epochs are far from enough for a good model, but far better than
    # chance (10%); the LSTM starts slowest.
    minimum=0.5
    [[ "$case_name" == lstm_mnist ]] && minimum=0.35
    run "$samples/$case_name" --data "$fashion_mnist" --limit 1000 --epochs 2 --batch-size 50 \
      --out "$work/out" --resume --min-accuracy "$minimum"
    expect_output "nothing to train"
    ;;

  cifar_cnn)
    run --status 1 "$samples/cifar_cnn" --data "$work/none" --out "$work/out"
    expect_output "cifar-10-binary.tar.gz"
    expect_output "data_batch_1.bin"
    # Files in CIFAR-10's binary layout (a label byte, then 3072 pixel bytes per record) with
    # random pixels: the run must go through, whatever it learns.
    mkdir -p "$work/cifar/cifar-10-batches-bin"
    for name in data_batch_1 data_batch_2 data_batch_3 data_batch_4 data_batch_5 test_batch; do
      for ((record = 0; record < 40; ++record)); do
        printf "\\x0$((record % 10))"
        head -c 3072 /dev/urandom
      done > "$work/cifar/cifar-10-batches-bin/$name.bin"
    done
    run "$samples/cifar_cnn" --data "$work/cifar" --epochs 1 --batch-size 32 --out "$work/out" \
      --progress lines
    expect_output "200 training and 40 test images"
    expect_output "test (40 examples): accuracy"
    expect_run_files "$work/out" 1
    ;;

  linear_models)
    run --status 1 "$samples/linear_models" --data "$work/missing.csv" --out "$work/out"
    expect_output "missing.csv"
    # y = 3 x1 - 2 x2 + 0.5 x3 + 4 + noise (sd 0.1): linear regression must explain almost
    # all of the variance.
    awk 'BEGIN { srand(7); print "x1,x2,x3,y";
                 for (i = 0; i < 400; ++i) { a = rand(); b = rand(); c = rand();
                   noise = (rand() + rand() + rand() - 1.5) * 0.2;
                   printf "%.6f,%.6f,%.6f,%.6f\n", a, b, c, 3 * a - 2 * b + 0.5 * c + 4 + noise } }' \
      > "$work/linear.csv"
    run "$samples/linear_models" --data "$work/linear.csv" --target y --epochs 40 \
      --out "$work/linear" --progress none
    expect_output "linear regression: 320 training and 80 test rows, 3 features"
    r2="$(sed -n 's/.*R^2 \([-0-9.]*\).*/\1/p' "$work/output")"
    awk -v r2="$r2" 'BEGIN { exit !(r2 > 0.95) }' || fail "R^2 $r2 should be above 0.95"
    expect_run_files "$work/linear" 40
    # A class given by the sign of x1 + x2 - 1: logistic regression separates it.
    awk 'BEGIN { srand(11); print "x1;x2;label";
                 for (i = 0; i < 300; ++i) { a = rand(); b = rand();
                   printf "%.6f;%.6f;%d\n", a, b, (a + b > 1) ? 1 : 0 } }' > "$work/logistic.csv"
    run "$samples/linear_models" --data "$work/logistic.csv" --delimiter ';' --epochs 40 \
      --out "$work/logistic" --progress none --min-accuracy 0.9
    expect_output "logistic regression: 240 training and 60 test rows, 2 features"
    grep -q 'Confusion' "$work/logistic/report.html" || fail "the report has no confusion matrix"
    ;;

  resume)
    # Kill a run at a random moment after its first checkpoint, resume it, and compare its
    # losses with an uninterrupted run's: on the CPU they must be the same to the last digit.
    need_fashion_mnist
    common=(--data "$fashion_mnist" --limit 2000 --epochs 4 --batch-size 50 --device cpu --threads 1 --progress none)
    run "$samples/mnist_mlp" "${common[@]}" --out "$work/whole"
    "$samples/mnist_mlp" "${common[@]}" --out "$work/killed" > "$work/killed.log" 2>&1 &
    pid=$!
    for ((wait = 0; wait < 600; ++wait)); do
      [[ -e "$work/killed/checkpoints/epoch-0001.safetensors" ]] && break
      kill -0 "$pid" 2> /dev/null || break
      sleep 0.1
    done
    sleep "0.$((RANDOM % 10))"
    kill -9 "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
    [[ -e "$work/killed/checkpoints/epoch-0001.safetensors" ]] ||
      { cat "$work/killed.log" >&2; fail "the first checkpoint never appeared"; }
    run "$samples/mnist_mlp" "${common[@]}" --out "$work/killed" --resume
    expect_output "resuming from\|nothing to train"
    # Every epoch the interrupted run logged, before or after the kill, matches.
    losses "$work/whole/log.csv" | sort > "$work/whole.losses"
    losses "$work/killed/log.csv" | sort -u > "$work/killed.losses"
    diff "$work/whole.losses" "$work/killed.losses" > "$work/diff" ||
      { cat "$work/diff" >&2; fail "the resumed run's losses differ"; }
    ;;

  determinism)
    # The same seed twice, with two threads: every logged number but the times must match to
    # the last digit (shuffling, dropout, initialization and the multi-threaded CPU kernels).
    need_fashion_mnist
    common=(--data "$fashion_mnist" --limit 1500 --epochs 2 --batch-size 50 --device cpu --threads 2 --seed 11
            --progress none)
    run "$samples/mnist_cnn" "${common[@]}" --out "$work/first"
    run "$samples/mnist_cnn" "${common[@]}" --out "$work/second"
    for run_dir in first second; do
      # Every column but "seconds" (wall-clock time).
      awk -F, 'NR == 1 { for (i = 1; i <= NF; ++i) if ($i != "seconds") keep[i] = 1 }
               { line = ""; for (i = 1; i <= NF; ++i) if (i in keep) line = line $i ","
                 print line }' "$work/$run_dir/log.csv" > "$work/$run_dir.logged"
    done
    (($(wc -l < "$work/first.logged") == 3)) || fail "log.csv should have 2 epochs"
    diff "$work/first.logged" "$work/second.logged" > "$work/diff" ||
      { cat "$work/diff" >&2; fail "two runs with the same seed logged different numbers"; }
    ;;

  distributed)
    # mnist_mlp on 2 processes with 25 examples each per step logs what one process with 50
    # per step logs (to float32 rounding), prints it once, and rank 0 writes every file.
    need_fashion_mnist
    mpiexec="${STRATA_MPIEXEC:-}"
    if [[ -z "$mpiexec" ]]; then
      echo "skipped: this Strata was built without MPI"
      exit 77
    fi
    common=(--data "$fashion_mnist" --limit 2000 --epochs 2 --device cpu --threads 1 --progress lines)
    run "$samples/mnist_mlp" "${common[@]}" --batch-size 50 --out "$work/one"
    # NOTE: mpirun refuses root without these (CI containers run as root); --oversubscribe lets
    # the ranks share fewer cores.
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
      run "$mpiexec" --oversubscribe -np 2 "$samples/mnist_mlp" "${common[@]}" --batch-size 25 \
      --distributed --out "$work/two" --min-accuracy 0.5
    expect_output "data-parallel over 2 processes"
    (($(grep -c "Epoch 2/2" "$work/output") == 1)) || { cat "$work/output" >&2; fail "rank 1 printed"; }
    expect_run_files "$work/two" 2
    # Every logged number but the times, to 1e-5 relative (float32 sums in another order).
    paste -d, "$work/one/log.csv" "$work/two/log.csv" | awk -F, '
      NR == 1 { half = NF / 2; for (i = 1; i <= half; ++i) if ($i != "seconds") keep[i] = 1; next }
      { for (i in keep) { a = $i; b = $(i + half); d = a - b; if (d < 0) d = -d
                          m = a < 0 ? -a : a; if (d > 1e-5 * (m > 1 ? m : 1)) {
                            print "epoch " $1 " column " i ": " a " vs " b; bad = 1 } } }
      END { exit bad }' || fail "2 processes logged other numbers than 1 process"
    ;;

  *)
    fail "unknown case"
    ;;
esac
echo "ok: $case_name"
