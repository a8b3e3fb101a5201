"""Reference values for tests/test_nn_volume.cpp: conv3d (stride, padding, dilation, groups),
max_pool3d and avg_pool3d (with and without counting the padding) in float64, with the
gradients of sum(out * g) for a random g.
Case <name>: inputs <name>_<k>, upstream <name>_g, output <name>_out, gradients
<name>_grad_<k>. Run once: /usr/bin/python3 gen_nn_volume.py"""
import os

import torch
import torch.nn.functional as F
import fixtures

torch.manual_seed(37)
torch.set_default_dtype(torch.float64)
out = {}


def case(name, fn, *inputs):
    fixtures.gradient_case(out, name, fn, *inputs)


x = torch.randn(2, 4, 5, 6, 5)
case("conv3d", lambda a, w, b: F.conv3d(a, w, b), x, torch.randn(3, 4, 2, 3, 2), torch.randn(3))
case("conv3d_strided",
     lambda a, w: F.conv3d(a, w, stride=(2, 1, 2), padding=(1, 2, 0), dilation=(2, 1, 1),
                           groups=2),
     x, torch.randn(6, 2, 2, 2, 3))
case("max_pool3d", lambda a: F.max_pool3d(a, (2, 3, 2), stride=(1, 2, 2), padding=(1, 1, 0)),
     torch.randn(2, 3, 4, 6, 5))
case("max_pool3d_dilated", lambda a: F.max_pool3d(a, 2, dilation=(2, 1, 2)),
     torch.randn(1, 2, 6, 4, 6))
case("avg_pool3d", lambda a: F.avg_pool3d(a, (3, 2, 2), stride=2, padding=(1, 1, 0)),
     torch.randn(2, 3, 5, 6, 4))
case("avg_pool3d_exclusive",
     lambda a: F.avg_pool3d(a, 3, stride=(1, 2, 2), padding=1, count_include_pad=False),
     torch.randn(1, 2, 4, 5, 5))

fixtures.write(os.path.join(os.path.dirname(os.path.abspath(__file__)), "nn_volume.txt"), out)
