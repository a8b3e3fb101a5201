"""Reference trajectories for tests/test_optim.cpp: a small model, Linear(4, 3) -> tanh ->
Linear(3, 2) with a mean-squared-error loss on a fixed batch of 8, trained 20 full-batch steps
by torch.optim in float64 under each configuration of CONFIGS, from the same initial values.
Written per configuration <c>: the loss before every step (<c>_loss, [20]) and the parameters
after steps 1, 2, 5, 10 and 20 (<c>_step<k>_<w1|b1|w2|b2>). The initial parameters, the inputs
and the targets are multiples of 1/64 (exact in float32, short in the file): init_<name>, x, y.
Every configuration (foreach aside) names only options that the C++ optimizers accept under
the same name (betas as beta1 and beta2). Three maximize cases carry weight_decay: they check
that the penalty still pulls towards zero when ascending (PyTorch negates the gradient first).
Run once: /usr/bin/python3 gen_optim.py"""
import os

import torch

import fixtures

torch.manual_seed(6)
torch.set_default_dtype(torch.float64)
STEPS = 20
RECORDED = [1, 2, 5, 10, 20]
NAMES = ["w1", "b1", "w2", "b2"]


def q(t):
    """Rounds to a multiple of 1/64: exact in float32 and short in the file."""
    return torch.round(t * 64) / 64


INIT = {"w1": q(0.5 * torch.randn(3, 4)), "b1": q(0.3 * torch.randn(3)),
        "w2": q(0.5 * torch.randn(2, 3)), "b2": q(0.3 * torch.randn(2))}
X = q(torch.randn(8, 4))
Y = q(torch.randn(8, 2))


def loss_of(p):
    hidden = torch.tanh(X @ p["w1"].t() + p["b1"])
    return torch.mean((hidden @ p["w2"].t() + p["b2"] - Y) ** 2)


# name -> (optimizer class, its options, per-group overrides or None for one group of all four
# parameters). With groups, group 0 holds w1 and b1 and group 1 holds w2 and b2.
CONFIGS = {
    "sgd": (torch.optim.SGD, dict(lr=0.1), None),
    "sgd_momentum": (torch.optim.SGD, dict(lr=0.1, momentum=0.9), None),
    "sgd_dampening": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1), None),
    "sgd_nesterov": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True), None),
    "sgd_weight_decay": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=1e-2), None),
    "sgd_maximize": (torch.optim.SGD, dict(lr=0.01, momentum=0.9, maximize=True), None),
    "adagrad": (torch.optim.Adagrad, dict(lr=0.1), None),
    "adagrad_options": (torch.optim.Adagrad, dict(lr=0.1, lr_decay=1e-2,
                                                  initial_accumulator_value=0.1), None),
    "adagrad_weight_decay": (torch.optim.Adagrad, dict(lr=0.1, lr_decay=1e-2,
                                                       initial_accumulator_value=0.1,
                                                       weight_decay=1e-2), None),
    "adagrad_maximize": (torch.optim.Adagrad, dict(lr=0.1, weight_decay=1e-2, maximize=True),
                         None),
    "adadelta": (torch.optim.Adadelta, dict(lr=1.0), None),
    "adadelta_maximize": (torch.optim.Adadelta, dict(lr=1.0, maximize=True), None),
    "adadelta_weight_decay": (torch.optim.Adadelta, dict(lr=1.0, rho=0.8, weight_decay=1e-2),
                              None),
    "rmsprop": (torch.optim.RMSprop, dict(lr=0.01), None),
    "rmsprop_centered": (torch.optim.RMSprop, dict(lr=0.01, centered=True), None),
    "rmsprop_momentum": (torch.optim.RMSprop, dict(lr=0.01, momentum=0.5), None),
    "rmsprop_centered_momentum": (torch.optim.RMSprop, dict(lr=0.01, momentum=0.5,
                                                            centered=True), None),
    "rmsprop_weight_decay": (torch.optim.RMSprop, dict(lr=0.01, alpha=0.9, weight_decay=1e-2),
                             None),
    "rmsprop_maximize": (torch.optim.RMSprop, dict(lr=0.01, momentum=0.5, centered=True,
                                                   maximize=True), None),
    "adam": (torch.optim.Adam, dict(lr=0.01), None),
    "adam_amsgrad": (torch.optim.Adam, dict(lr=0.01, amsgrad=True), None),
    "adam_weight_decay": (torch.optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), weight_decay=1e-2),
                          None),
    "adam_maximize": (torch.optim.Adam, dict(lr=0.01, weight_decay=0.1, maximize=True), None),
    "adamw": (torch.optim.AdamW, dict(lr=0.01, weight_decay=0.1), None),
    "adamw_amsgrad": (torch.optim.AdamW, dict(lr=0.01, weight_decay=0.1, amsgrad=True), None),
    "adamax": (torch.optim.Adamax, dict(lr=0.01), None),
    "adamax_weight_decay": (torch.optim.Adamax, dict(lr=0.01, weight_decay=1e-2), None),
    "adamax_maximize": (torch.optim.Adamax, dict(lr=0.01, weight_decay=1e-2, maximize=True),
                        None),
    # NOTE: foreach=True. torch 1.13's single-tensor NAdam multiplies mu into the product twice
    # for the exp_avg term (1 - mu_product * mu * mu_next); PyTorch 2.0 fixed that (pytorch#92699)
    # and its multi-tensor path, which 1.13 already computes correctly, is today's formula.
    "nadam": (torch.optim.NAdam, dict(lr=0.01, foreach=True), None),
    "nadam_weight_decay": (torch.optim.NAdam, dict(lr=0.01, weight_decay=1e-2,
                                                   momentum_decay=1e-2, foreach=True), None),
    "sgd_groups": (torch.optim.SGD, dict(lr=0.1, momentum=0.9), [{}, dict(lr=0.01)]),
    "adam_groups": (torch.optim.Adam, dict(lr=0.01), [{}, dict(lr=0.001, weight_decay=0.1)]),
}

out = {"init_" + k: v for k, v in INIT.items()}
out["x"], out["y"] = X, Y
for config, (cls, options, groups) in CONFIGS.items():
    params = {k: v.clone().requires_grad_() for k, v in INIT.items()}
    if groups is None:
        optimizer = cls([params[k] for k in NAMES], **options)
    else:
        optimizer = cls([dict(params=[params["w1"], params["b1"]], **groups[0]),
                         dict(params=[params["w2"], params["b2"]], **groups[1])], **options)
    losses = []
    for step in range(1, STEPS + 1):
        optimizer.zero_grad()
        loss = loss_of(params)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step in RECORDED:
            for k in NAMES:
                out["%s_step%d_%s" % (config, step, k)] = params[k].detach().clone()
    out[config + "_loss"] = torch.tensor(losses)

fixtures.write(os.path.join(os.path.dirname(os.path.abspath(__file__)), "optim.txt"), out)
