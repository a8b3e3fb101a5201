"""Reference values for the max-pooling tests of tests/test_nn_conv.cpp: max_pool1d/2d values,
indices (return_indices=True) and input gradients, and max_unpool1d/2d values and gradients,
from PyTorch in float64.
Run once: /usr/bin/python3 tests/data/gen_nn_pool.py (writes tests/data/nn_pool.txt).
Each pooling case <name> stores <name>_x, _g (the upstream gradient), _out, _idx and _grad_x;
each unpooling case stores <name>_x, _idx (its input indices), _g, _out and _grad_x. The C++
test repeats each case's parameters.
Inputs and gradients are multiples of 1/8 (exact in float32), so float32 runs must match the
float64 values and indices exactly. Ties come from small integers, NaN and -inf are placed by
hand: PyTorch's CPU kernel takes a value when `v > best || isnan(v)`, starting from -inf at
the window's first in-bounds position.
"""
import os

import torch
import torch.nn.functional as F

import fixtures

torch.manual_seed(2024)
out = {}
nan, inf = float("nan"), float("inf")


def eighths(*shape, low=-16, high=16):
    """Distinct-ish multiples of 1/8 in [low/8, high/8)."""
    return torch.randint(low, high, shape, dtype=torch.int64).double() / 8


def distinct(*shape):
    """Distinct multiples of 1/8: no ties, so gradients are smooth (gradcheck-like)."""
    n = 1
    for s in shape:
        n *= s
    return (torch.randperm(n, dtype=torch.float64) - n // 2).reshape(shape) / 8


def integers(*shape, count=3):
    """Values in {0, .., count-1}: windows full of ties."""
    return torch.randint(0, count, shape, dtype=torch.int64).double()


def pool_case(name, fn, x, **kw):
    x = x.clone().requires_grad_(True)
    y, idx = fn(x, return_indices=True, **kw)
    g = eighths(*y.shape)
    y.backward(g)
    out[name + "_x"] = x
    out[name + "_g"] = g
    out[name + "_out"] = y
    out[name + "_idx"] = idx
    out[name + "_grad_x"] = x.grad


def unpool_case(name, fn, x, idx, **kw):
    x = x.clone().requires_grad_(True)
    y = fn(x, idx, **kw)
    g = eighths(*y.shape)
    y.backward(g)
    out[name + "_x"] = x
    out[name + "_idx"] = idx
    out[name + "_g"] = g
    out[name + "_out"] = y
    out[name + "_grad_x"] = x.grad


# ---- 2-D max pooling ----------------------------------------------------------------------
pool_case("max2d_ties_k3s2p1", F.max_pool2d, integers(2, 3, 7, 8), kernel_size=3, stride=2,
          padding=1)
pool_case("max2d_ties_k2s1", F.max_pool2d, integers(1, 2, 5, 6, count=2), kernel_size=2,
          stride=1)
# The 2x2 stride-2 path of the CPU: ties, odd sizes (last row and column left out).
pool_case("max2d_ties_2x2", F.max_pool2d, integers(2, 2, 7, 9), kernel_size=2)

# NaN: one NaN per window wins; two NaNs in one window, the last one is kept (index and
# gradient); NaN beside -inf.
x = eighths(1, 2, 6, 6)
x[0, 0, 0, 1] = nan
x[0, 0, 2, 2] = nan
x[0, 0, 3, 3] = nan
x[0, 1, 4, 0] = nan
x[0, 1, 4, 1] = -inf
x[0, 1, 5, 5] = nan
x[0, 1, 5, 4] = nan
pool_case("max2d_nan_k3s1p1", F.max_pool2d, x, kernel_size=3, stride=1, padding=1)
pool_case("max2d_nan_2x2", F.max_pool2d, x, kernel_size=2)
pool_case("max2d_nan_k2s2p1", F.max_pool2d, x, kernel_size=2, stride=2, padding=1)

# -inf windows: every element -inf in a region, so windows there keep their first in-bounds
# position (padded windows included).
x = eighths(1, 1, 6, 7)
x[0, 0, :4, :4] = -inf
pool_case("max2d_neginf_k3s2p1", F.max_pool2d, x, kernel_size=3, stride=2, padding=1)
pool_case("max2d_neginf_2x2", F.max_pool2d, x, kernel_size=2)
pool_case("max2d_neginf_k2s1p1", F.max_pool2d, x, kernel_size=2, stride=1, padding=1)

# ceil_mode: extra windows over the right and bottom edges; the last one dropped when it
# would start in the right padding.
pool_case("max2d_ceil_k3s2", F.max_pool2d, distinct(1, 2, 7, 8), kernel_size=3, stride=2,
          ceil_mode=True)
pool_case("max2d_ceil_2x2_odd", F.max_pool2d, distinct(2, 2, 5, 7), kernel_size=2,
          ceil_mode=True)
pool_case("max2d_ceil_k3s2p1", F.max_pool2d, distinct(1, 2, 6, 6), kernel_size=3, stride=2,
          padding=1, ceil_mode=True)
pool_case("max2d_ceil_k4s2_small", F.max_pool2d, distinct(1, 1, 3, 3), kernel_size=4, stride=2,
          ceil_mode=True)
pool_case("max2d_ceil_ties", F.max_pool2d, integers(1, 2, 7, 7), kernel_size=3, stride=2,
          padding=1, ceil_mode=True)

# dilation
pool_case("max2d_dil2_k3s1p1", F.max_pool2d, distinct(2, 2, 9, 8), kernel_size=3, stride=1,
          padding=1, dilation=2)
pool_case("max2d_dil_rect_ceil", F.max_pool2d, distinct(1, 2, 10, 11), kernel_size=(3, 2),
          stride=(2, 1), padding=(1, 1), dilation=(2, 3), ceil_mode=True)
pool_case("max2d_dil_ties", F.max_pool2d, integers(1, 2, 8, 9, count=2), kernel_size=2,
          stride=1, padding=1, dilation=2)

# stride != kernel, rectangular windows and padding
pool_case("max2d_rect", F.max_pool2d, distinct(2, 2, 6, 7), kernel_size=(3, 2), stride=(1, 2),
          padding=(1, 0))
pool_case("max2d_k2s3", F.max_pool2d, distinct(1, 3, 8, 8), kernel_size=2, stride=3)

# unbatched [C, H, W]
pool_case("max2d_unbatched", F.max_pool2d, integers(3, 5, 6), kernel_size=2, stride=1,
          padding=1)

# ---- 1-D max pooling ----------------------------------------------------------------------
x = integers(2, 3, 11)
x[0, 0, 3] = nan
x[0, 0, 4] = nan
x[1, 2, 0:4] = -inf
pool_case("max1d_ties_nan", F.max_pool1d, x, kernel_size=3, stride=2, padding=1)
pool_case("max1d_dil_ceil", F.max_pool1d, distinct(2, 2, 12), kernel_size=3, stride=2,
          padding=1, dilation=2, ceil_mode=True)
pool_case("max1d_unbatched", F.max_pool1d, integers(3, 9), kernel_size=2)

# ---- max unpooling ------------------------------------------------------------------------
# Indices from non-overlapping pooling (no repeats), values not the pooled ones.
src = distinct(2, 2, 6, 8)
_, idx = F.max_pool2d(src, 2, return_indices=True)
unpool_case("unpool2d_k2", F.max_unpool2d, eighths(2, 2, 3, 4), idx, kernel_size=2)
src = distinct(2, 2, 7, 9)
_, idx = F.max_pool2d(src, 2, return_indices=True)
unpool_case("unpool2d_k2_size", F.max_unpool2d, eighths(2, 2, 3, 4), idx, kernel_size=2,
            output_size=(7, 9))
# Overlapping windows (kernel 3, stride 1): repeated indices, all carrying one element's value.
src = integers(1, 2, 6, 6)
pooled, idx = F.max_pool2d(src, 3, stride=1, padding=1, return_indices=True)
unpool_case("unpool2d_overlap", F.max_unpool2d, pooled, idx, kernel_size=3, stride=1,
            padding=1)
# ceil_mode pooling undone with output_size. Its windows overlap: the values are the pooled
# ones, so repeated indices carry one value (PyTorch leaves repeats with different values
# undefined).
src = distinct(1, 2, 7, 7)
pooled, idx = F.max_pool2d(src, 3, stride=2, ceil_mode=True, return_indices=True)
unpool_case("unpool2d_ceil", F.max_unpool2d, pooled, idx, kernel_size=3, stride=2,
            output_size=(7, 7))
# unbatched
src = distinct(3, 4, 6)
_, idx = F.max_pool2d(src, 2, return_indices=True)
unpool_case("unpool2d_unbatched", F.max_unpool2d, eighths(3, 2, 3), idx, kernel_size=2)
# 1-D
src = distinct(2, 3, 11)
_, idx = F.max_pool1d(src, 2, return_indices=True)
unpool_case("unpool1d_k2", F.max_unpool1d, eighths(2, 3, 5), idx, kernel_size=2)
unpool_case("unpool1d_k2_size", F.max_unpool1d, eighths(2, 3, 5), idx, kernel_size=2,
            output_size=[11])
src = distinct(2, 9)
pooled, idx = F.max_pool1d(src, 3, stride=2, padding=1, return_indices=True)
unpool_case("unpool1d_unbatched", F.max_unpool1d, pooled, idx, kernel_size=3, stride=2,
            padding=1)

fixtures.write(os.path.join(os.path.dirname(os.path.abspath(__file__)), "nn_pool.txt"), out)
