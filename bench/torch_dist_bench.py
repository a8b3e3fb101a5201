"""PyTorch's side of strata_bench --only dist: DistributedDataParallel over gloo on this machine,
with the same workloads and row names (torch.cpu.ddpN_*): a 16 MB float32 all-reduce, and the
data-parallel training steps of the MLP (global batch 128) and LeNet-5 (global batch 64), each
rank taking global_batch / N examples, one thread per rank.

usage: torch_dist_bench.py --ranks N [--reps R]
"""
import argparse
import os
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn


def timed(reps, count, body):
    """Median seconds per call over `reps` repetitions of `count` calls, barriers around each."""
    body()
    times = []
    for _ in range(reps):
        dist.barrier()
        start = time.perf_counter()
        for _ in range(count):
            body()
        dist.barrier()
        times.append((time.perf_counter() - start) / count)
    return statistics.median(times)


def ddp_step(rank, ranks, reps, name, model, shape):
    shape = (shape[0] // ranks,) + tuple(shape[1:])
    ddp = nn.parallel.DistributedDataParallel(model)
    generator = torch.Generator().manual_seed(7 + rank)
    x = torch.randn(shape, generator=generator)
    y = torch.randint(0, 10, (shape[0],), generator=generator)
    sgd = torch.optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9)

    def step():
        sgd.zero_grad()
        nn.functional.cross_entropy(ddp(x), y).backward()
        sgd.step()

    seconds = timed(reps, 50, step)
    if rank == 0:
        print(f"torch.cpu.ddp{ranks}_{name} {seconds * 1e3:.6g} ms", flush=True)


def run(rank, ranks, reps, port):
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=ranks)
    buffer = torch.ones(4 * 1024 * 1024)
    seconds = timed(reps, 20, lambda: dist.all_reduce(buffer))
    if rank == 0:
        print(f"torch.cpu.ddp{ranks}_allreduce_16mb {buffer.numel() * 4 / seconds / 1e9:.6g} GB/s",
              flush=True)
    torch.manual_seed(5)
    mlp = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                        nn.Linear(256, 10))
    ddp_step(rank, ranks, reps, "train_mlp_b128", mlp, (128, 784))
    torch.manual_seed(5)
    lenet = nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5),
                          nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 4 * 4, 120),
                          nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
    ddp_step(rank, ranks, reps, "train_lenet_b64", lenet, (64, 1, 28, 28))
    dist.destroy_process_group()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--port", type=int, default=29517)
    args = parser.parse_args()
    print(f"# PyTorch {torch.__version__}, DDP over gloo, {args.ranks} rank(s), 1 thread each",
          flush=True)
    mp.spawn(run, args=(args.ranks, args.reps, args.port), nprocs=args.ranks, join=True)


if __name__ == "__main__":
    main()
