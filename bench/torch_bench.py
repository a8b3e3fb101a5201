#!/usr/bin/env python3
"""The workloads of strata_bench, in PyTorch: same names, same output format.

One machine-readable line per result, `torch.<device>.<workload> <value> <unit>`; every other
line starts with '#'. Warm-up first, then the median of several timed repetitions, with
torch.set_num_threads set explicitly (Debian's PyTorch defaults to 1 thread) and, on CUDA,
torch.cuda.synchronize() before the clock stops. TF32 is off, as in Strata by default.
"""
import argparse
import os
import statistics
import sys
import time

import torch


def report(results, name, value, unit):
    print(f"{name} {value:.6g} {unit}", flush=True)
    results.append((name, value, unit))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_per_iteration(body, reps, target_s, max_count):
    """body(count) runs count iterations; returns the median seconds per iteration."""
    start = time.perf_counter()
    body(1)
    single = time.perf_counter() - start
    start = time.perf_counter()
    body(1)
    single = min(single, time.perf_counter() - start)
    count = int(target_s / single) if single > 0 else 1
    count = max(1, min(count, max_count))
    per_iteration = []
    for _ in range(reps):
        start = time.perf_counter()
        body(count)
        per_iteration.append((time.perf_counter() - start) / count)
    return statistics.median(per_iteration)


def time_fixed(body, reps, total):
    count = max(1, total // reps)
    body(max(1, count // 4))  # warm-up
    per_iteration = []
    for _ in range(reps):
        start = time.perf_counter()
        body(count)
        per_iteration.append((time.perf_counter() - start) / count)
    return statistics.median(per_iteration)


def bench_matmul(args, device, results):
    dev = device.type
    for n in args.sizes:
        gen = torch.Generator().manual_seed(1234 + n)
        a = torch.randn(n, n, generator=gen).to(device)
        b = torch.randn(n, n, generator=gen).to(device)

        def body(count):
            for _ in range(count):
                torch.matmul(a, b)
            sync(device)

        s = time_per_iteration(body, args.reps, 0.25, 1000)
        report(results, f"torch.{dev}.matmul_f32_{n}", 2.0 * n * n * n / s * 1e-9, "GFLOP/s")


def bench_small_add(args, device, results):
    a = torch.full((1,), 1.5, device=device)
    b = torch.full((1,), 2.5, device=device)

    def body(count):
        for _ in range(count):
            a + b
        sync(device)

    s = time_fixed(body, args.reps, args.small_iters)
    report(results, f"torch.{device.type}.add_f32_1elem", s * 1e9, "ns")


def bench_two_ops_backward(args, device, results):
    a = torch.full((1,), 3.0, device=device, requires_grad=True)
    b = torch.full((1,), 2.0, device=device, requires_grad=True)

    def body(count):
        for _ in range(count):
            a.grad = None
            b.grad = None
            y = (a * b + a).sum()
            y.backward()
        sync(device)

    s = time_fixed(body, args.reps, args.backward_iters)
    if a.grad.item() != 3.0 or b.grad.item() != 3.0:
        print(f"# check mul_add_sum_backward_f32_1elem: grads {a.grad.item()} {b.grad.item()}, "
              "expected 3 3  MISMATCH")
    report(results, f"torch.{device.type}.mul_add_sum_backward_f32_1elem", s * 1e6, "us")


def bench_max_pool(args, device, results):
    """Forward and backward (timed alone, graph retained) of two max poolings, float32, as
    strata_bench's max_pool2d_fwd/bwd workloads."""
    workloads = [("k2s2_64x32x32x32", (64, 32, 32, 32), 2, 2, 0),
                 ("k3s2p1_64x16x28x28", (64, 16, 28, 28), 3, 2, 1)]
    for name, shape, kernel, stride, padding in workloads:
        gen = torch.Generator().manual_seed(11)
        x = torch.randn(*shape, generator=gen).to(device)

        def forward(count):
            for _ in range(count):
                torch.nn.functional.max_pool2d(x, kernel, stride, padding)
            sync(device)

        s = time_per_iteration(forward, args.reps, 0.25, 10000)
        report(results, f"torch.{device.type}.max_pool2d_fwd_f32_{name}", s * 1e6, "us")

        x.requires_grad_(True)
        y = torch.nn.functional.max_pool2d(x, kernel, stride, padding)
        g = torch.randn(y.shape, generator=gen).to(device)

        def backward(count):
            for _ in range(count):
                x.grad = None
                y.backward(g, retain_graph=True)
            sync(device)

        s = time_per_iteration(backward, args.reps, 0.25, 10000)
        report(results, f"torch.{device.type}.max_pool2d_bwd_f32_{name}", s * 1e6, "us")


def bench_train_step(args, device, results, name, net, input_shape, classes, batch_dim=0,
                     precision="f32"):
    """One step: forward, cross-entropy, backward, SGD momentum 0.9 lr 0.01 (as strata_bench).
    batch_dim: the input axis holding the batch (one label per row); 1 for time-major sequences.
    precision: "bf16" runs forward and loss under torch.autocast with bf16; "f16" with f16 and
    a GradScaler (AMP); the workload's name gets the suffix."""
    net = net.to(device).train()
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(*input_shape, generator=gen).to(device)
    y = torch.randint(0, classes, (input_shape[batch_dim],), generator=gen).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    low = {"bf16": torch.bfloat16, "f16": torch.float16}.get(precision)
    scaler = torch.cuda.amp.GradScaler() if precision == "f16" else None
    if precision != "f32":
        name = f"{name}_{precision}"

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=low, enabled=low is not None):
            loss = torch.nn.functional.cross_entropy(net(x), y)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        return loss

    first = step().item()

    def body(count):
        for _ in range(count):
            step()
        sync(device)

    s = time_per_iteration(body, args.reps, 1.0, 1000)
    last = step().item()
    print(f"# check {name}: loss {first:.4f} -> {last:.4f}"
          + ("" if last < first else "  MISMATCH (loss did not fall)"))
    report(results, f"torch.{device.type}.{name}", s * 1e3, "ms")


class LstmClassifier(torch.nn.Module):
    """A one-layer LSTM over a time-major [T, B, 64] sequence; the last layer's h_n [B, 256]
    goes through Linear(256, 10) (as strata_bench's LstmClassifier)."""

    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(64, 256)
        self.fc = torch.nn.Linear(256, 10)

    def forward(self, x):
        _, (h_n, _) = self.lstm(x)
        return self.fc(h_n[-1])


def bench_adam_step(args, device, results):
    """One Adam step (the update alone) over the MLP 784-512-256-10's parameters, gradients
    fixed (as strata_bench's adam_step_mlp)."""
    nn = torch.nn
    mlp = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                        nn.Linear(256, 10)).to(device)
    gen = torch.Generator().manual_seed(11)
    for p in mlp.parameters():
        p.grad = torch.randn(p.shape, generator=gen).to(device)
    opt = torch.optim.Adam(mlp.parameters(), lr=1e-3)

    def body(count):
        for _ in range(count):
            opt.step()
        sync(device)

    s = time_per_iteration(body, args.reps, 0.5, 100000)
    report(results, f"torch.{device.type}.adam_step_mlp", s * 1e6, "us")


def bench_train(args, device, results):
    """Each step in float32, then in mixed precision: bf16 autocast on the CPU, f16 AMP (autocast
    and GradScaler) on CUDA, each model built anew from one seed (as strata_bench)."""
    nn = torch.nn
    precisions = ["f32", "bf16" if device.type == "cpu" else "f16"]
    for precision in precisions:
        torch.manual_seed(5)
        mlp = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                            nn.Linear(256, 10))
        bench_train_step(args, device, results, "train_mlp_b128", mlp, (128, 784), 10,
                         precision=precision)
    for precision in precisions:
        torch.manual_seed(5)
        lenet = nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Linear(16 * 4 * 4, 120), nn.ReLU(), nn.Linear(120, 84),
                              nn.ReLU(), nn.Linear(84, 10))
        bench_train_step(args, device, results, "train_lenet_b64", lenet, (64, 1, 28, 28), 10,
                         precision=precision)
    for precision in precisions:
        torch.manual_seed(5)
        cifar = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),
                              nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
                              nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(64 * 8 * 8, 512), nn.ReLU(),
                              nn.Linear(512, 10))
        bench_train_step(args, device, results, "train_cifar_cnn_b64", cifar, (64, 3, 32, 32),
                         10, precision=precision)
    for precision in precisions:
        torch.manual_seed(5)
        # seq 32, batch 32, input 64, hidden 256
        bench_train_step(args, device, results, "train_lstm_b32", LstmClassifier(),
                         (32, 32, 64), 10, batch_dim=1, precision=precision)


def run_all(args, device, results):
    if args.only in ("", "ops"):
        bench_small_add(args, device, results)
        bench_two_ops_backward(args, device, results)
        bench_max_pool(args, device, results)
        bench_matmul(args, device, results)
    if args.only in ("", "train"):
        bench_adam_step(args, device, results)
        bench_train(args, device, results)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cuda", action="store_true")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--small-iters", type=int, default=1000000)
    parser.add_argument("--backward-iters", type=int, default=200000)
    parser.add_argument("--sizes", default="512,1024,2048")
    parser.add_argument("--only", default="", choices=["", "ops", "train"])
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    args.reps = max(1, args.reps)

    torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"# PyTorch {torch.__version__} ({sys.executable}), threads {torch.get_num_threads()}")
    print(f"# OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    # Which BLAS this PyTorch was built against (Debian's: "generic", the system libblas).
    settings = torch.__config__.show().replace(",", " ").split()
    blas = [s for s in settings if s.startswith(("BLAS_INFO=", "USE_MKLDNN=", "USE_CUDA="))]
    if blas:
        print("# " + " ".join(blas))

    results = []
    run_all(args, torch.device("cpu"), results)
    if args.cuda:
        if torch.cuda.is_available():
            print(f"# CUDA: {torch.cuda.get_device_name(0)}; benchmarking cuda:0")
            run_all(args, torch.device("cuda", 0), results)
        else:
            print("# skip cuda: torch.cuda.is_available() is false")

    print("#")
    print(f"# {'result':<44} {'value':>14}  unit")
    for name, value, unit in results:
        print(f"# {name:<44} {value:>14.2f}  {unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
