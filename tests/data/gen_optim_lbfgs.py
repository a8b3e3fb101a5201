"""Reference trajectories for tests/test_optim_lbfgs.cpp: torch.optim.LBFGS in float64, with
and without the strong-Wolfe line search, on three problems:
  rosen2     Rosenbrock in 2-D, f(x) = 100 (x1 - x0^2)^2 + (1 - x0)^2, from (-1.5, 2)
  rosen10    its 10-D sum form, sum_i 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2
  logistic   logistic regression (weight [4], bias [1]) on a fixed batch of 32, mean binary
             cross-entropy with logits plus 0.005 |weight|^2
For each case <c>: the initial parameters (<c>_init_<p>), then per step() call k = 1..STEPS
the parameters after it (<c>_step<k>_<p>), and per call the loss step() returned (<c>_loss),
the closure calls and iterations counted so far (<c>_func_evals, <c>_n_iter: PyTorch's
state["func_evals"] and state["n_iter"]). The data and starting points are multiples of 1/64.
Run once: /usr/bin/python3 gen_optim_lbfgs.py"""
import os

import torch
import torch.nn.functional as F

import fixtures

torch.manual_seed(7)
torch.set_default_dtype(torch.float64)


def q(t):
    """Rounds to a multiple of 1/64: exact in float32 and short in the file."""
    return torch.round(t * 64) / 64


def rosenbrock(x):
    head, tail = x[:-1], x[1:]
    return torch.sum(100 * (tail - head * head) * (tail - head * head) + (1 - head) * (1 - head))


X = q(torch.randn(32, 4))
Y = (X @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.3 + 0.5 * torch.randn(32) > 0).double()


def logistic(weight, bias):
    return (F.binary_cross_entropy_with_logits(X @ weight + bias, Y)
            + 0.005 * torch.sum(weight * weight))


ROSEN10_INIT = q(torch.rand(10) * 2 - 1)
# name -> (initial parameters by name, loss of the parameters, LBFGS options, step() calls)
CASES = {
    "rosen2_wolfe": ({"x": torch.tensor([-1.5, 2.0])}, rosenbrock,
                     dict(line_search_fn="strong_wolfe"), 4),
    "rosen2_plain": ({"x": torch.tensor([-1.5, 2.0])}, rosenbrock,
                     dict(lr=0.05, max_iter=10), 4),
    "rosen10_wolfe": ({"x": ROSEN10_INIT}, rosenbrock,
                      dict(line_search_fn="strong_wolfe", max_iter=10, history_size=3), 5),
    "rosen10_plain": ({"x": ROSEN10_INIT}, rosenbrock,
                      dict(lr=0.02, max_iter=8, history_size=4, max_eval=6), 5),
    "logistic_wolfe": ({"weight": q(0.5 * torch.randn(4)), "bias": torch.tensor([0.25])},
                       logistic, dict(line_search_fn="strong_wolfe", max_iter=5), 4),
    "logistic_plain": ({"weight": q(0.5 * torch.randn(4)), "bias": torch.tensor([0.25])},
                       logistic, dict(max_iter=7, history_size=3), 4),
}


def run(init, loss_fn, options, steps, record=None):
    """Runs a case; returns the parameters after each step() (and fills `record` if given)."""
    params = {k: v.clone().requires_grad_() for k, v in init.items()}
    optimizer = torch.optim.LBFGS(list(params.values()), **options)

    def closure():
        optimizer.zero_grad()
        loss = loss_fn(*params.values())
        loss.backward()
        return loss

    losses, evals, iters, trajectory = [], [], [], []
    for step in range(1, steps + 1):
        losses.append(optimizer.step(closure).item())
        state = optimizer.state[params[next(iter(params))]]
        evals.append(state["func_evals"])
        iters.append(state["n_iter"])
        trajectory.append({k: v.detach().clone() for k, v in params.items()})
    if record is not None:
        for step, values in enumerate(trajectory, 1):
            for k, v in values.items():
                record["%s_step%d_%s" % (name, step, k)] = v
        record[name + "_loss"] = torch.tensor(losses)
        record[name + "_func_evals"] = torch.tensor(evals, dtype=torch.int64)
        record[name + "_n_iter"] = torch.tensor(iters, dtype=torch.int64)
        print("%-16s final loss %.3e, %d evaluations, %d iterations"
              % (name, loss_fn(*params.values()).item(), evals[-1], iters[-1]))
    return trajectory


out = {"logistic_x": X, "logistic_y": Y}
for name, (init, loss_fn, options, steps) in CASES.items():
    for k, v in init.items():
        out["%s_init_%s" % (name, k)] = v
    trajectory = run(init, loss_fn, options, steps, record=out)
    # L-BFGS can amplify rounding (Rosenbrock's valley is ill-conditioned): the test compares
    # at rtol 1e-8, so a case must not move by more than 1e-10 when its start moves by 1e-15.
    nudged = run({k: v * (1 + 1e-15) for k, v in init.items()}, loss_fn, options, steps)
    spread = max(((a[k] - b[k]).abs() / a[k].abs().clamp(min=1e-3)).max().item()
                 for a, b in zip(trajectory, nudged) for k in a)
    print("%-16s moves by %.1e relative when its start moves by 1e-15" % ("", spread))
    assert spread < 1e-10, name

fixtures.write(os.path.join(os.path.dirname(os.path.abspath(__file__)), "optim_lbfgs.txt"), out)
