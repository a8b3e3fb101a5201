"""Reference values for tests/test_nn_shape.cpp: F.pad (constant with negative padding,
reflect, replicate), pixel_shuffle / pixel_unshuffle, group_norm and instance_norm (with and
without affine parameters) in float64, with the gradients of sum(out * g) for a random g.
Case <name>: inputs <name>_<k>, upstream <name>_g, output <name>_out, gradients
<name>_grad_<k>. Run once: /usr/bin/python3 gen_nn_shape.py"""
import os

import torch
import torch.nn.functional as F
import fixtures

torch.manual_seed(23)
torch.set_default_dtype(torch.float64)
out = {}


def case(name, fn, *inputs):
    fixtures.gradient_case(out, name, fn, *inputs)


x = torch.randn(2, 3, 4, 5)
case("pad_constant", lambda a: F.pad(a, (1, 2, 0, 1), value=1.5), x)
case("pad_constant_crop", lambda a: F.pad(a, (-1, 2, 1, -2)), x)
case("pad_reflect", lambda a: F.pad(a, (2, 3, 3, 1), mode="reflect"), x)
case("pad_replicate", lambda a: F.pad(a, (3, 0, 2, 4), mode="replicate"), x)
case("pad_reflect_1d", lambda a: F.pad(a, (2, 2), mode="reflect"), torch.randn(2, 3, 6))
case("pixel_shuffle", lambda a: F.pixel_shuffle(a, 2), torch.randn(2, 8, 3, 4))
case("pixel_unshuffle", lambda a: F.pixel_unshuffle(a, 2), torch.randn(2, 3, 4, 6))
case("group_norm", lambda a: F.group_norm(a, 2), torch.randn(3, 4, 5, 2))
case("group_norm_affine", lambda a, w, b: F.group_norm(a, 3, w, b, eps=1e-3),
     torch.randn(2, 6, 7), torch.randn(6), torch.randn(6))
case("instance_norm", lambda a: F.instance_norm(a), torch.randn(2, 3, 4, 5))
case("instance_norm_affine", lambda a, w, b: F.instance_norm(a, weight=w, bias=b),
     torch.randn(2, 3, 9), torch.randn(3), torch.randn(3))

fixtures.write(os.path.join(os.path.dirname(os.path.abspath(__file__)), "nn_shape.txt"), out)
