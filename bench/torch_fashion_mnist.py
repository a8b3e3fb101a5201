#!/usr/bin/env python3
"""PyTorch's side of bench/fashion_mnist_quality.sh: trains the models of samples/mnist_mlp and
samples/mnist_cnn with the same recipe (Adam lr 1e-3, batch 64, shuffled, 2 epochs, pixels / 255
standardized with the training set's mean and std; the test split evaluated after every epoch,
as the samples do) and prints one line per model:

    torch mnist_mlp accuracy 0.8712 train_s 14.41

usage: torch_fashion_mnist.py [--data DIR] [--epochs N] [--threads N] [--models mlp,cnn]
"""
import argparse
import gzip
import os
import struct
import sys
import time

import numpy as np
import torch
from torch import nn


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, dims = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        sys.exit(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(folder, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return read_idx(path)
    sys.exit(f"no {stem}[.gz] in {folder}")


def models():
    return {
        "mlp": (lambda: nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256),
                                      nn.ReLU(), nn.Linear(256, 10)), (784,)),
        "cnn": (lambda: nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Flatten(), nn.Linear(400, 120), nn.ReLU(),
                                      nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10)),
                (1, 28, 28)),
    }


def evaluate(model, x, y):
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(x), 500):
            correct += (model(x[start:start + 500]).argmax(1) == y[start:start + 500]).sum().item()
    model.train()
    return correct / len(x)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    train_x = load(args.data, "train-images-idx3-ubyte").astype(np.float32) / 255.0
    train_y = load(args.data, "train-labels-idx1-ubyte").astype(np.int64)
    test_x = load(args.data, "t10k-images-idx3-ubyte").astype(np.float32) / 255.0
    test_y = load(args.data, "t10k-labels-idx1-ubyte").astype(np.int64)
    mean, std = train_x.mean(), train_x.std()
    train_x = (train_x - mean) / std
    test_x = (test_x - mean) / std

    for name in args.models.split(","):
        make, shape = models()[name]
        torch.manual_seed(args.seed)
        model = make()
        x = torch.from_numpy(train_x).reshape(-1, *shape)
        y = torch.from_numpy(train_y)
        tx = torch.from_numpy(test_x).reshape(-1, *shape)
        ty = torch.from_numpy(test_y)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()
        start = time.perf_counter()
        for _ in range(args.epochs):
            order = torch.randperm(len(x))
            for first in range(0, len(x), 64):
                index = order[first:first + 64]
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(x[index]), y[index])
                loss.backward()
                optimizer.step()
            accuracy = evaluate(model, tx, ty)
        seconds = time.perf_counter() - start
        print(f"torch mnist_{name} accuracy {accuracy:.4f} train_s {seconds:.2f} "
              f"threads {torch.get_num_threads()}", flush=True)


if __name__ == "__main__":
    main()
