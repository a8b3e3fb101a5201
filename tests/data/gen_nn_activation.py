"""Reference values for tests/test_nn_activation.cpp and tests/test_nn_norm.cpp: activations,
softmax / log_softmax, maxout, batch_norm (training with running statistics over two steps,
and eval), layer_norm. Every case stores its inputs, the upstream gradient `g`, the output and
the gradients of sum(out * g), all in float64.

Run once by hand:  cd tests/data && /usr/bin/python3 gen_nn_activation.py
"""
import torch
import torch.nn.functional as F

import fixtures

torch.manual_seed(20261125)
torch.set_default_dtype(torch.float64)
T = {}


def away_from(values, points, margin):
    """Pushes entries closer than margin to any of points out to margin (keeps kinks away)."""
    v = values.clone()
    for p in points:
        close = (v - p).abs() < margin
        v[close] = p + margin * torch.where(v[close] >= p, 1.0, -1.0)
    return v


def case(name, fn, inputs, grad_of):
    """Stores inputs, g, out and d(sum(out * g))/d(input) for the inputs named in grad_of."""
    leaves = {k: v.clone().requires_grad_(k in grad_of) for k, v in inputs.items()}
    out = fn(**leaves)
    g = torch.randn(out.shape)
    wanted = [leaves[k] for k in grad_of]
    grads = torch.autograd.grad(out, wanted, g) if wanted else []
    for k, v in inputs.items():
        T["%s_%s" % (name, k)] = v
    T[name + "_g"] = g
    T[name + "_out"] = out
    for k, gr in zip(grad_of, grads):
        T["%s_grad_%s" % (name, k)] = gr


# ---- pointwise activations: x [3, 5] in [-3, 3], away from 0 -----------------------------------
x = away_from(torch.rand(3, 5) * 6 - 3, [0.0], 0.05)
case("relu", lambda x: F.relu(x), {"x": x}, ["x"])
case("sigmoid", lambda x: torch.sigmoid(x), {"x": x}, ["x"])
case("tanh", lambda x: torch.tanh(x), {"x": x}, ["x"])
case("leaky_relu", lambda x: F.leaky_relu(x, 0.2), {"x": x}, ["x"])
case("elu", lambda x: F.elu(x, 0.7), {"x": x}, ["x"])
case("gelu", lambda x: F.gelu(x), {"x": x}, ["x"])
# softplus with beta = 2 on [-3, 12]: beta * x crosses the threshold 20 (kept off x = 10).
xs = away_from(torch.rand(3, 5) * 15 - 3, [10.0], 0.1)
case("softplus", lambda x: F.softplus(x, beta=2.0), {"x": xs}, ["x"])

# ---- softmax / log_softmax over every dim of [2, 3, 4] ------------------------------------------
xsm = torch.randn(2, 3, 4) * 2
for d in [0, 1, 2]:
    case("softmax_d%d" % d, lambda x, d=d: F.softmax(x, d), {"x": xsm}, ["x"])
    case("log_softmax_d%d" % d, lambda x, d=d: F.log_softmax(x, d), {"x": xsm}, ["x"])
# Large logits: naive exp overflows; the stable form stays finite.
xl = torch.tensor([[1000.0, 999.0, 1001.0, -1000.0], [-1000.0, -1001.0, -999.5, -1000.0]])
case("softmax_large", lambda x: F.softmax(x, 1), {"x": xl}, ["x"])
case("log_softmax_large", lambda x: F.log_softmax(x, 1), {"x": xl}, ["x"])

# ---- maxout (no torch op: view + max); distinct values so the winner is unique -----------------
xm = torch.randperm(36).double().reshape(2, 6, 3) / 7 - 2.5
case("maxout_d1", lambda x: x.view(2, 2, 3, 3).max(dim=2).values, {"x": xm}, ["x"])
xm2 = torch.randperm(24).double().reshape(4, 6) / 5 - 2
case("maxout_last", lambda x: x.view(4, 3, 2).max(dim=2).values, {"x": xm2}, ["x"])

# ---- batch_norm in training: two steps, running statistics after each ---------------------------
def bn_train(name, shape, affine, momentum):
    c = shape[1]
    rm0 = torch.randn(c) * 0.5
    rv0 = torch.rand(c) + 0.5
    w = torch.rand(c) + 0.5
    b = torch.randn(c)
    x1 = torch.randn(*shape) * 1.5 + 0.7
    x2 = torch.randn(*shape) * 0.8 - 0.3
    T[name + "_rm0"], T[name + "_rv0"] = rm0, rv0
    rm, rv = rm0.clone(), rv0.clone()
    for step, xs_ in [(1, x1), (2, x2)]:
        inputs = {"x": xs_}
        grad_of = ["x"]
        if affine:
            inputs.update({"w": w, "b": b})
            grad_of += ["w", "b"]
        case("%s_s%d" % (name, step),
             lambda x, w=None, b=None: F.batch_norm(x, rm, rv, w, b, training=True,
                                                    momentum=momentum, eps=1e-5),
             inputs, grad_of)
        T["%s_rm%d" % (name, step)] = rm.clone()
        T["%s_rv%d" % (name, step)] = rv.clone()


bn_train("bn1d", (6, 3), True, 0.1)
bn_train("bn1d_noaffine", (5, 4), False, 0.1)
bn_train("bn2d", (3, 2, 3, 4), True, 0.3)
bn_train("bn2d_noaffine", (2, 3, 2, 2), False, 0.1)

# ---- batch_norm in eval: running statistics normalize, gradients for x, w, b -------------------
c = 3
case("bn_eval",
     lambda x, rm, rv, w, b: F.batch_norm(x, rm, rv, w, b, training=False, eps=1e-3),
     {"x": torch.randn(4, c, 2), "rm": torch.randn(c), "rv": torch.rand(c) + 0.5,
      "w": torch.rand(c) + 0.5, "b": torch.randn(c)},
     ["x", "w", "b"])

# ---- layer_norm -------------------------------------------------------------------------------
xln = torch.randn(2, 3, 4) * 2 + 1
case("ln_last", lambda x, w, b: F.layer_norm(x, [4], w, b, eps=1e-5),
     {"x": xln, "w": torch.rand(4) + 0.5, "b": torch.randn(4)}, ["x", "w", "b"])
case("ln_two", lambda x, w, b: F.layer_norm(x, [3, 4], w, b, eps=1e-5),
     {"x": xln, "w": torch.rand(3, 4) + 0.5, "b": torch.randn(3, 4)}, ["x", "w", "b"])
case("ln_noaffine", lambda x: F.layer_norm(x, [4], eps=1e-5), {"x": xln}, ["x"])

fixtures.write("nn_activation.txt", T)
