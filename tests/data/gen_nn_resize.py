"""Reference values for tests/test_nn_resize.cpp: conv_transpose2d (stride, padding,
output_padding, dilation, groups), interpolate (nearest and bilinear, by size and by scale,
both corner rules) and adaptive_max_pool2d in float64, with the gradients of sum(out * g) for a
random g; and BatchNorm's cumulative running statistics (momentum=None).
Case <name>: inputs <name>_<k>, upstream <name>_g, output <name>_out, gradients
<name>_grad_<k>. Run once: /usr/bin/python3 gen_nn_resize.py"""
import os

import torch
import torch.nn.functional as F
import fixtures

torch.manual_seed(29)
torch.set_default_dtype(torch.float64)
out = {}


def case(name, fn, *inputs):
    fixtures.gradient_case(out, name, fn, *inputs)


x = torch.randn(2, 4, 5, 6)
case("conv_transpose", lambda a, w, b: F.conv_transpose2d(a, w, b), x, torch.randn(4, 3, 3, 2),
     torch.randn(3))
case("conv_transpose_strided",
     lambda a, w, b: F.conv_transpose2d(a, w, b, stride=(2, 3), padding=(1, 0),
                                        output_padding=(1, 2), groups=2, dilation=(1, 2)),
     x, torch.randn(4, 3, 3, 3), torch.randn(6))
case("conv_transpose_unbatched", lambda a, w: F.conv_transpose2d(a, w, stride=2, padding=1),
     torch.randn(3, 4, 4), torch.randn(3, 2, 4, 4))

y = torch.randn(2, 3, 4, 5)
case("nearest_scale", lambda a: F.interpolate(a, scale_factor=2, mode="nearest"), y)
case("nearest_size", lambda a: F.interpolate(a, size=(7, 3), mode="nearest"), y)
case("bilinear_scale", lambda a: F.interpolate(a, scale_factor=(1.5, 2.0), mode="bilinear",
                                               align_corners=False), y)
case("bilinear_size", lambda a: F.interpolate(a, size=(6, 9), mode="bilinear",
                                              align_corners=False), y)
case("bilinear_corners", lambda a: F.interpolate(a, size=(7, 3), mode="bilinear",
                                                 align_corners=True), y)
case("bilinear_down", lambda a: F.interpolate(a, size=(3, 2), mode="bilinear"), y)

case("adaptive_max", lambda a: F.adaptive_max_pool2d(a, (3, 4)), torch.randn(2, 3, 7, 9))
case("adaptive_max_tiled", lambda a: F.adaptive_max_pool2d(a, (2, 3)), torch.randn(2, 3, 4, 6))

# BatchNorm2d(momentum=None): the running statistics are the average of every batch so far.
bn = torch.nn.BatchNorm2d(3, momentum=None)
batches = [torch.randn(4, 3, 2, 2) * (k + 1) + k for k in range(3)]
for k, b in enumerate(batches):
    out[f"bn_cumulative_batch{k}"] = b
    bn(b)
out["bn_cumulative_running_mean"] = bn.running_mean
out["bn_cumulative_running_var"] = bn.running_var

fixtures.write(os.path.join(os.path.dirname(os.path.abspath(__file__)), "nn_resize.txt"), out)
