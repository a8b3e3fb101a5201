"""Reference values for tests/test_nn_utils.cpp: torch.nn.utils.clip_grad_norm_ (2-, 1-, 3- and
inf-norm, clipping and not) and clip_grad_value_ on three parameters' gradients in float64.
Run once: /usr/bin/python3 gen_nn_utils.py"""
import math
import os

import torch
import fixtures

torch.manual_seed(5)
torch.set_default_dtype(torch.float64)
out = {}
shapes = [(3, 4), (5,), (2, 3, 2)]
grads = [torch.randn(*s) * 2 for s in shapes]
for i, g in enumerate(grads):
    out[f"grad{i}"] = g

cases = [("l2", 2.0, 1.5), ("l1", 1.0, 4.0), ("l3", 3.0, 2.0), ("linf", math.inf, 1.0),
         ("l2_noclip", 2.0, 100.0)]
for name, norm_type, max_norm in cases:
    params = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    total = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type)
    out[f"{name}_total"] = total.reshape(())
    for i, p in enumerate(params):
        out[f"{name}_grad{i}"] = p.grad

params = [torch.zeros_like(g, requires_grad=True) for g in grads]
for p, g in zip(params, grads):
    p.grad = g.clone()
torch.nn.utils.clip_grad_value_(params, 1.25)
for i, p in enumerate(params):
    out[f"value_grad{i}"] = p.grad

fixtures.write(os.path.join(os.path.dirname(os.path.abspath(__file__)), "nn_utils.txt"), out)
