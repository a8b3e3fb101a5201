"""Reference values for tests/test_optim_scheduler.cpp: the learning rate of every parameter
group after constructing each torch.optim.lr_scheduler scheduler (row 0) and after each of
STEPS steps (rows 1..STEPS), stored as <case>_lr [STEPS + 1, groups]. The optimizer is SGD with
two groups (lr 0.1 and 0.05, momentum 0.9), or Adam for one OneCycleLR case. OneCycleLR cases
also store the cycled momentum (SGD's momentum, Adam's beta1) as <case>_momentum;
ReduceLROnPlateau cases store their metric sequence as <case>_metrics [STEPS];
the fractional-epoch CosineAnnealingWarmRestarts case stores its epochs as <case>_epochs.
Run once: /usr/bin/python3 gen_optim_scheduler.py"""
import os
import warnings

import torch
from torch.optim import lr_scheduler as S

import fixtures

warnings.simplefilter("ignore")  # "lr_scheduler.step() before optimizer.step()": no training here
torch.set_default_dtype(torch.float64)
STEPS = 30
out = {}


def sgd():
    return torch.optim.SGD([{"params": [torch.zeros(2, requires_grad=True)], "lr": 0.1},
                            {"params": [torch.zeros(3, requires_grad=True)], "lr": 0.05}],
                           lr=0.1, momentum=0.9)


def adam():
    return torch.optim.Adam([{"params": [torch.zeros(2, requires_grad=True)], "lr": 1e-3},
                             {"params": [torch.zeros(3, requires_grad=True)], "lr": 5e-4}],
                            lr=1e-3)


def lrs(optimizer):
    return [g["lr"] for g in optimizer.param_groups]


def momenta(optimizer):
    return [g["betas"][0] if "betas" in g else g["momentum"] for g in optimizer.param_groups]


def record(name, make, optimizer=None, momentum=False):
    """make(optimizer) -> list of schedulers stepped together (in order) each step."""
    optimizer = optimizer or sgd()
    schedulers = make(optimizer)
    rows, moms = [lrs(optimizer)], [momenta(optimizer)]
    for _ in range(STEPS):
        for s in schedulers:
            s.step()
        rows.append(lrs(optimizer))
        moms.append(momenta(optimizer))
    out[name + "_lr"] = torch.tensor(rows)
    if momentum:
        out[name + "_momentum"] = torch.tensor(moms)


record("step", lambda o: [S.StepLR(o, step_size=4, gamma=0.5)])
record("multistep", lambda o: [S.MultiStepLR(o, milestones=[15, 3, 8, 8], gamma=0.3)])
record("exponential", lambda o: [S.ExponentialLR(o, gamma=0.9)])
record("cosine", lambda o: [S.CosineAnnealingLR(o, T_max=10, eta_min=0.001)])
record("cosine_default", lambda o: [S.CosineAnnealingLR(o, T_max=7)])
record("warm_restarts", lambda o: [S.CosineAnnealingWarmRestarts(o, T_0=5, eta_min=0.001)])
record("warm_restarts_mult", lambda o: [S.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2)])
record("linear", lambda o: [S.LinearLR(o)])
record("linear_decay", lambda o: [S.LinearLR(o, start_factor=1.0, end_factor=0.25,
                                              total_iters=8)])
record("onecycle", lambda o: [S.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=STEPS)],
       momentum=True)
record("onecycle_linear3",
       lambda o: [S.OneCycleLR(o, max_lr=0.8, total_steps=STEPS, pct_start=0.25,
                               anneal_strategy="linear", div_factor=10.0,
                               final_div_factor=100.0, three_phase=True)],
       momentum=True)
record("onecycle_adam", lambda o: [S.OneCycleLR(o, max_lr=0.01, total_steps=STEPS + 5)],
       optimizer=adam(), momentum=True)
record("onecycle_fixed_momentum",
       lambda o: [S.OneCycleLR(o, max_lr=0.4, total_steps=STEPS, cycle_momentum=False)],
       momentum=True)
# Two chainable schedulers stepped together: linear warm-up times exponential decay.
record("chained", lambda o: [S.LinearLR(o, start_factor=0.1, total_iters=5),
                             S.ExponentialLR(o, gamma=0.9)])


def plateau(name, metrics, **kw):
    assert len(metrics) == STEPS
    o = sgd()
    s = S.ReduceLROnPlateau(o, **kw)
    rows = [lrs(o)]
    for m in metrics:
        s.step(m)
        rows.append(lrs(o))
    out[name + "_lr"] = torch.tensor(rows)
    out[name + "_metrics"] = torch.tensor(metrics)


# A loss that improves, stalls (0.69995 is within the relative threshold of 0.7), improves
# once more and then flattens out.
plateau("plateau_min",
        [1.0, 0.8, 0.7, 0.7, 0.69995, 0.7, 0.71, 0.6, 0.6, 0.6, 0.6, 0.6, 0.5, 0.5, 0.5,
         0.5, 0.5, 0.5, 0.5, 0.5, 0.45, 0.45, 0.45, 0.45, 0.45, 0.45, 0.45, 0.45, 0.45, 0.45],
        factor=0.5, patience=2, cooldown=1, min_lr=0.004)
# An accuracy, with an absolute threshold and a floor per group.
plateau("plateau_max_abs",
        [0.1, 0.2, 0.22, 0.3, 0.3, 0.31, 0.36, 0.36, 0.36, 0.4, 0.42, 0.44, 0.46, 0.5, 0.5,
         0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
        mode="max", threshold_mode="abs", threshold=0.05, factor=0.3, patience=1,
        min_lr=[0.01, 0.001])

# CosineAnnealingWarmRestarts stepped to fractional epochs (within-epoch use), then plain
# steps from there.
o = sgd()
s = S.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.002)
epochs = [0.5, 1.25, 2.9, 3.0, 7.5, 8.999, 9.0, 21.7, 45.0, 2.0]
rows = [lrs(o)]
for e in epochs:
    s.step(e)
    rows.append(lrs(o))
for _ in range(5):
    s.step()
    rows.append(lrs(o))
out["warm_fractional_lr"] = torch.tensor(rows)
out["warm_fractional_epochs"] = torch.tensor(epochs)

fixtures.write(os.path.join(os.path.dirname(os.path.abspath(__file__)), "optim_scheduler.txt"),
               out)
