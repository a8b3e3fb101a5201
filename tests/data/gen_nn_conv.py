"""Reference values for tests/test_nn_conv.cpp: conv1d/conv2d and pooling forward outputs and
gradients (for a fixed upstream gradient gy) from PyTorch, in float64.
Run once: /usr/bin/python3 tests/data/gen_nn_conv.py (writes tests/data/nn_conv.txt).
Each case <name> stores <name>_x, _w, _b (when used), _gy, and the results _y, _gx, _gw, _gb.
The C++ test repeats each case's parameters.
"""
import os

import torch
import torch.nn.functional as F

import fixtures

torch.manual_seed(1234)
out = {}


def rand(*shape):
    return (torch.rand(*shape, dtype=torch.float64) * 2 - 1).requires_grad_(True)


def distinct(*shape):
    # Values at least 0.05 apart, so no window has a tie for its maximum.
    n = 1
    for s in shape:
        n *= s
    values = torch.randperm(n, dtype=torch.float64) * 0.05 - n * 0.025
    return values.reshape(shape).requires_grad_(True)


def conv_case(name, fn, x, w, b, **kw):
    y = fn(x, w, b, **kw)
    gy = torch.rand_like(y) * 2 - 1
    y.backward(gy)
    out[name + "_x"] = x
    out[name + "_w"] = w
    if b is not None:
        out[name + "_b"] = b
        out[name + "_gb"] = b.grad
    out[name + "_gy"] = gy
    out[name + "_y"] = y
    out[name + "_gx"] = x.grad
    out[name + "_gw"] = w.grad


def pool_case(name, fn, x, **kw):
    y = fn(x, **kw)
    gy = torch.rand_like(y) * 2 - 1
    y.backward(gy)
    out[name + "_x"] = x
    out[name + "_gy"] = gy
    out[name + "_y"] = y
    out[name + "_gx"] = x.grad


# conv2d
conv_case("conv2d_plain", F.conv2d, rand(2, 3, 5, 6), rand(4, 3, 3, 3), rand(4))
conv_case("conv2d_strided", F.conv2d, rand(1, 4, 7, 6), rand(6, 4, 3, 2), rand(6),
          stride=(2, 1), padding=(1, 2), dilation=(1, 2))
conv_case("conv2d_groups", F.conv2d, rand(2, 4, 6, 6), rand(6, 2, 3, 3), None,
          padding=2, dilation=2, groups=2)
conv_case("conv2d_1x1", F.conv2d, rand(2, 5, 4, 3), rand(3, 5, 1, 1), rand(3))
conv_case("conv2d_depthwise", F.conv2d, rand(1, 3, 5, 5), rand(3, 1, 3, 3), rand(3),
          stride=2, padding=1, groups=3)
conv_case("conv2d_unbatched", F.conv2d, rand(3, 5, 5), rand(2, 3, 3, 3), rand(2), padding=1)
# conv1d
conv_case("conv1d_strided", F.conv1d, rand(2, 3, 10), rand(4, 3, 3), rand(4),
          stride=2, padding=1, dilation=2)
conv_case("conv1d_groups", F.conv1d, rand(2, 4, 9), rand(6, 2, 3), None, groups=2)
conv_case("conv1d_unbatched", F.conv1d, rand(3, 8), rand(2, 3, 4), rand(2), padding=2)

# pooling
pool_case("max2d_k3s2p1", F.max_pool2d, distinct(2, 2, 7, 8), kernel_size=3, stride=2, padding=1)
pool_case("max2d_k2", F.max_pool2d, distinct(2, 3, 6, 7), kernel_size=2)
pool_case("max2d_rect", F.max_pool2d, distinct(1, 2, 6, 7), kernel_size=(3, 2), stride=(1, 2),
          padding=(1, 0))
pool_case("max2d_unbatched", F.max_pool2d, distinct(2, 5, 5), kernel_size=2, stride=1)
pool_case("avg2d_incl", F.avg_pool2d, rand(1, 3, 7, 8), kernel_size=3, stride=2, padding=1,
          count_include_pad=True)
pool_case("avg2d_excl", F.avg_pool2d, rand(1, 3, 7, 8), kernel_size=3, stride=2, padding=1,
          count_include_pad=False)
pool_case("avg2d_rect", F.avg_pool2d, rand(1, 2, 6, 7), kernel_size=(2, 3), stride=(2, 1),
          padding=(1, 1), count_include_pad=False)
pool_case("max1d", F.max_pool1d, distinct(2, 3, 11), kernel_size=3, stride=2, padding=1)
pool_case("max1d_unbatched", F.max_pool1d, distinct(3, 9), kernel_size=2)
pool_case("avg1d_incl", F.avg_pool1d, rand(2, 3, 11), kernel_size=3, stride=2, padding=1,
          count_include_pad=True)
pool_case("avg1d_excl", F.avg_pool1d, rand(2, 3, 11), kernel_size=3, stride=2, padding=1,
          count_include_pad=False)
pool_case("adaptive_uneven", F.adaptive_avg_pool2d, rand(1, 3, 7, 9), output_size=(3, 4))
pool_case("adaptive_larger", F.adaptive_avg_pool2d, rand(1, 2, 3, 5), output_size=(4, 7))
pool_case("adaptive_even", F.adaptive_avg_pool2d, rand(1, 3, 6, 9), output_size=(2, 3))
pool_case("adaptive_global", F.adaptive_avg_pool2d, rand(2, 3, 5, 4), output_size=1)
pool_case("adaptive_unbatched", F.adaptive_avg_pool2d, rand(3, 5, 7), output_size=(2, 3))

fixtures.write(os.path.join(os.path.dirname(os.path.abspath(__file__)), "nn_conv.txt"), out)
