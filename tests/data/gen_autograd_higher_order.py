"""Reference values for tests/test_autograd_higher_order.cpp, in float64: a gradient penalty
(WGAN-GP's, on an MLP critic and on a small conv critic) with the gradients it gives the
critic's parameters, and Hessian-vector products of a classifier's cross-entropy (an MLP and a
conv net) with respect to its parameters. Names: <case>_<tensor>. Run once:
/usr/bin/python3 gen_autograd_higher_order.py"""
import os

import torch
import torch.nn.functional as F
import fixtures

torch.manual_seed(31)
torch.set_default_dtype(torch.float64)
out = {}


def mlp_params():
    return {"w1": torch.randn(5, 3) * 0.7, "b1": torch.randn(5) * 0.1,
            "w2": torch.randn(2, 5) * 0.7, "b2": torch.randn(2) * 0.1}


def mlp(p, x):
    return F.linear(torch.tanh(F.linear(x, p["w1"], p["b1"])), p["w2"], p["b2"])


def conv_params():
    return {"cw": torch.randn(3, 2, 3, 3) * 0.4, "cb": torch.randn(3) * 0.1,
            "lw": torch.randn(2, 12) * 0.4, "lb": torch.randn(2) * 0.1}


def conv_net(p, x):
    h = F.softplus(F.conv2d(x, p["cw"], p["cb"], stride=1, padding=1))
    h = F.avg_pool2d(h, 2)  # [N, 3, 2, 2]
    return F.linear(torch.sigmoid(h).flatten(1), p["lw"], p["lb"])


def store(name, tensors):
    for key, value in tensors.items():
        if value is not None:  # a bias the penalty does not reach has no gradient
            out[f"{name}_{key}"] = value.detach()


def gradient_penalty(name, net, params, x):
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    xs = x.clone().requires_grad_(True)
    score = net(leaves, xs)[:, 0].sum()
    (gx,) = torch.autograd.grad(score, xs, create_graph=True)
    penalty = ((gx.flatten(1).norm(dim=1) - 1) ** 2).mean()
    penalty.backward()
    store(name, params)
    store(name, {"x": x, "gx": gx, "penalty": penalty})
    store(name, {f"grad_{k}": v.grad for k, v in leaves.items()})


def hessian_vector(name, net, params, x, target):
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    loss = F.cross_entropy(net(leaves, x), target)
    grads = torch.autograd.grad(loss, list(leaves.values()), create_graph=True)
    vs = {k: torch.randn_like(v) for k, v in params.items()}
    dot = sum((g * v).sum() for g, v in zip(grads, vs.values()))
    hv = torch.autograd.grad(dot, list(leaves.values()))
    store(name, params)
    store(name, {"x": x, "target": target.double(), "loss": loss})
    store(name, {f"v_{k}": v for k, v in vs.items()})
    store(name, {f"g_{k}": g for k, g in zip(leaves, grads)})
    store(name, {f"hv_{k}": h for k, h in zip(leaves, hv)})


gradient_penalty("gp_mlp", mlp, mlp_params(), torch.randn(4, 3))
gradient_penalty("gp_conv", conv_net, conv_params(), torch.randn(3, 2, 4, 4))
hessian_vector("hvp_mlp", mlp, mlp_params(), torch.randn(6, 3), torch.tensor([0, 1, 1, 0, 1, 0]))
hessian_vector("hvp_conv", conv_net, conv_params(), torch.randn(4, 2, 4, 4),
               torch.tensor([1, 0, 0, 1]))

fixtures.write(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            "autograd_higher_order.txt"), out)
