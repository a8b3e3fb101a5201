"""Reference values for tests/test_nn_loss.cpp and tests/test_nn_linear.cpp: every loss of
nn::functional, linear and embedding, computed by PyTorch in float64, with the gradient of each
input that requires grad.

Inputs are drawn in float32 and widened, so the C++ float32 runs see exactly these values.
For a loss with reduction 'none' the gradient is that of sum(loss * gout) with the stored gout.
Inputs stay away from the kinks (|d| = delta, margins at 0) so every gradient is defined.
Run once: /usr/bin/python3 tests/data/gen_nn_loss.py (writes tests/data/nn_loss.txt).
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixtures  # noqa: E402

torch.manual_seed(1234)
out = {}


def f32(*shape, lo=-2.0, hi=2.0):
    return (torch.rand(*shape, dtype=torch.float32) * (hi - lo) + lo).double()


def avoiding(shape, lo, hi, points, margin):
    """Values in [lo, hi) at least `margin` from each of `points`, float32-exact."""
    t = f32(*shape, lo=lo, hi=hi)
    for p in points:
        while True:
            bad = (t - p).abs() < margin
            if not bad.any():
                break
            t[bad] = f32(int(bad.sum()), lo=lo, hi=hi)
    return t


def run(name, fn, inputs, grad_inputs):
    """Stores fn(*inputs) as <name>.out and d/d input for the names in grad_inputs."""
    leaves = {k: v.clone().requires_grad_(k in grad_inputs) for k, v in inputs.items()}
    y = fn(**leaves)
    out[name + ".out"] = y
    if y.dim() == 0:
        y.backward()
    else:
        gout = f32(*y.shape)
        out[name + ".gout"] = gout
        (y * gout).sum().backward()
    for k in grad_inputs:
        out[name + ".grad_" + k] = leaves[k].grad


RED = {"mean": "mean", "sum": "sum", "none": "none"}

# ---- cross_entropy / nll_loss on [N, C] -------------------------------------------------
N, C = 6, 4
out["ce.logits"] = logits = f32(N, C, lo=-3, hi=3)
out["ce.target"] = target = torch.tensor([0, 3, 1, 2, 3, 1])
out["ce.target_ignore"] = target_ignore = torch.tensor([0, -100, 1, 2, 3, -100])
out["ce.weight"] = weight = f32(C, lo=0.2, hi=2.0)
out["ce.soft"] = soft = torch.softmax(f32(N, C), 1).float().double()
out["ce.onehot"] = onehot = F.one_hot(target, C).double()
out["nll.lp"] = lp = torch.log_softmax(logits, 1)

for r in RED:
    run("ce.plain." + r, lambda logits: F.cross_entropy(logits, target, reduction=r),
        {"logits": logits}, ["logits"])
    run("ce.weighted." + r, lambda logits: F.cross_entropy(logits, target, weight=weight,
                                                           reduction=r),
        {"logits": logits}, ["logits"])
    run("ce.ignore." + r, lambda logits: F.cross_entropy(logits, target_ignore, weight=weight,
                                                         reduction=r),
        {"logits": logits}, ["logits"])
    run("ce.smooth." + r, lambda logits: F.cross_entropy(logits, target_ignore, weight=weight,
                                                         label_smoothing=0.2, reduction=r),
        {"logits": logits}, ["logits"])
    run("ce.soft." + r, lambda logits: F.cross_entropy(logits, soft, weight=weight,
                                                       label_smoothing=0.1, reduction=r),
        {"logits": logits}, ["logits"])
    run("nll." + r, lambda lp: F.nll_loss(lp, target_ignore, weight=weight, reduction=r),
        {"lp": lp}, ["lp"])
run("ce.smooth_noweight.mean", lambda logits: F.cross_entropy(logits, target_ignore,
                                                              label_smoothing=0.3),
    {"logits": logits}, ["logits"])
run("ce.soft_noweight.mean", lambda logits: F.cross_entropy(logits, soft), {"logits": logits},
    ["logits"])
run("ce.onehot.mean", lambda logits: F.cross_entropy(logits, onehot), {"logits": logits},
    ["logits"])
# ignore_index naming a real class (1): those targets count for nothing.
run("ce.ignore1.mean", lambda logits: F.cross_entropy(logits, target, ignore_index=1),
    {"logits": logits}, ["logits"])

# ---- cross_entropy on [N, C, d1, d2] ------------------------------------------------------
out["ce_nd.logits"] = logits_nd = f32(3, C, 2, 3, lo=-3, hi=3)
t_nd = torch.randint(0, C, (3, 2, 3))
t_nd[0, 1, 2] = -100
t_nd[2, 0, 0] = -100
out["ce_nd.target"] = t_nd
out["ce_nd.soft"] = soft_nd = torch.softmax(f32(3, C, 2, 3), 1).float().double()
for r in RED:
    run("ce_nd." + r, lambda logits: F.cross_entropy(logits, t_nd, weight=weight,
                                                     label_smoothing=0.15, reduction=r),
        {"logits": logits_nd}, ["logits"])
    run("ce_nd_soft." + r, lambda logits: F.cross_entropy(logits, soft_nd, weight=weight,
                                                          reduction=r),
        {"logits": logits_nd}, ["logits"])
out["nll_nd.lp"] = lp_nd = torch.log_softmax(logits_nd, 1)
run("nll_nd.mean", lambda lp: F.nll_loss(lp, t_nd, weight=weight), {"lp": lp_nd}, ["lp"])

# ---- binary cross-entropy ------------------------------------------------------------------
out["bce.probs"] = probs = f32(N, C, lo=0.05, hi=0.95)
out["bce.target"] = btarget = f32(N, C, lo=0.0, hi=1.0)
out["bce.logits"] = blogits = f32(N, C, lo=-4, hi=4)
out["bce.weight"] = bweight = f32(C, lo=0.2, hi=2.0)
out["bce.pos_weight"] = pos_weight = f32(C, lo=0.5, hi=3.0)
for r in RED:
    run("bce." + r, lambda p, y: F.binary_cross_entropy(p, y, weight=bweight, reduction=r),
        {"p": probs, "y": btarget}, ["p", "y"])
    run("bcel." + r, lambda x, y: F.binary_cross_entropy_with_logits(
        x, y, weight=bweight, pos_weight=pos_weight, reduction=r),
        {"x": blogits, "y": btarget}, ["x", "y"])
run("bce_plain.mean", lambda p, y: F.binary_cross_entropy(p, y), {"p": probs, "y": btarget},
    ["p"])
run("bcel_plain.mean", lambda x, y: F.binary_cross_entropy_with_logits(x, y),
    {"x": blogits, "y": btarget}, ["x"])
# Saturated probabilities: log clamped at -100, gradient bounded (p exactly 0 and 1).
out["bce_edge.probs"] = edge_p = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.5], dtype=torch.float64)
out["bce_edge.target"] = edge_y = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0], dtype=torch.float64)
run("bce_edge.sum", lambda p: F.binary_cross_entropy(p, edge_y, reduction="sum"), {"p": edge_p},
    ["p"])
# Large logits: the stable form stays finite.
out["bcel_big.logits"] = big = torch.tensor([-200.0, -30.0, 0.0, 30.0, 200.0],
                                            dtype=torch.float64)
out["bcel_big.target"] = big_y = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0], dtype=torch.float64)
run("bcel_big.none", lambda x: F.binary_cross_entropy_with_logits(x, big_y, reduction="none"),
    {"x": big}, ["x"])

# ---- regression ----------------------------------------------------------------------------
out["reg.input"] = rin = f32(N, C, lo=-3, hi=3)
# Differences kept away from 0, +-0.5 and +-1 (the kinks of l1, huber and smooth_l1).
diff = avoiding((N, C), -3, 3, [0.0, 0.5, -0.5, 1.0, -1.0], 0.05)
out["reg.target"] = rtarget = (rin - diff).float().double()
assert ((rin - rtarget).abs() - torch.tensor([0.0, 0.5, 1.0]).view(3, 1, 1)).abs().min() > 0.04
for r in RED:
    run("mse." + r, lambda x, y: F.mse_loss(x, y, reduction=r), {"x": rin, "y": rtarget},
        ["x", "y"])
    run("l1." + r, lambda x, y: F.l1_loss(x, y, reduction=r), {"x": rin, "y": rtarget},
        ["x", "y"])
    run("huber." + r, lambda x, y: F.huber_loss(x, y, reduction=r), {"x": rin, "y": rtarget},
        ["x", "y"])
    run("smooth_l1." + r, lambda x, y: F.smooth_l1_loss(x, y, reduction=r),
        {"x": rin, "y": rtarget}, ["x", "y"])
run("huber_d05.mean", lambda x, y: F.huber_loss(x, y, delta=0.5), {"x": rin, "y": rtarget},
    ["x", "y"])
run("smooth_l1_b05.mean", lambda x, y: F.smooth_l1_loss(x, y, beta=0.5),
    {"x": rin, "y": rtarget}, ["x", "y"])

# ---- margin losses (targets in {-1, +1}) ---------------------------------------------------
out["margin.y"] = ysign = (torch.randint(0, 2, (N, C)) * 2 - 1).double()
# y f kept away from 0 and 1 (perceptron's and hinge's kinks at margin 1), and from 0.5
# (hinge at margin 0.5).
yf = avoiding((N, C), -2.5, 2.5, [0.0, 0.5, 1.0], 0.05)
out["margin.f"] = fscore = (yf * ysign).float().double()
def reduce(t, r):
    return t.mean() if r == "mean" else (t.sum() if r == "sum" else t)


for r in RED:
    run("hinge." + r, lambda f: reduce(torch.clamp(1.0 - ysign * f, min=0), r), {"f": fscore},
        ["f"])
    run("exp." + r, lambda f: reduce(torch.exp(-ysign * f), r), {"f": fscore}, ["f"])
    run("perceptron." + r, lambda f: reduce(torch.clamp(-ysign * f, min=0), r), {"f": fscore},
        ["f"])
run("hinge_m05.sum", lambda f: torch.clamp(0.5 - ysign * f, min=0).sum(), {"f": fscore}, ["f"])

# multi_margin_loss: every margin - f_y + f_j kept away from 0.
while True:
    mscore = f32(N, C, lo=-2, hi=2)
    fy = mscore.gather(1, target.view(-1, 1))
    z = 1.0 - fy + mscore
    mask = torch.ones_like(z, dtype=torch.bool)
    mask[torch.arange(N), target] = False
    if z[mask].abs().min() > 0.05 and (0.7 - fy + mscore)[mask].abs().min() > 0.05:
        break
out["mm.scores"] = mscore
for r in RED:
    run("mm." + r, lambda s: F.multi_margin_loss(s, target, reduction=r), {"s": mscore}, ["s"])
    run("mm_w." + r, lambda s: F.multi_margin_loss(s, target, margin=0.7, weight=weight,
                                                   reduction=r), {"s": mscore}, ["s"])

# ---- zero-one error ------------------------------------------------------------------------
out["zo.scores"] = zs = f32(8, 3)
out["zo.target"] = zt = torch.randint(0, 3, (8,))
out["zo.out"] = (zs.argmax(1) != zt).double().mean()
out["zo1.scores"] = z1 = torch.tensor([0.5, -1.0, 0.0, 2.0, -0.25, 0.0], dtype=torch.float64)
out["zo1.target"] = z1y = torch.tensor([1, 1, 1, -1, -1, -1])
out["zo1.out"] = ((z1 * z1y) <= 0).double().mean()

# ---- linear and embedding (tests/test_nn_linear.cpp) ---------------------------------------
out["lin.w"] = lw = f32(4, 3)
out["lin.b"] = lb = f32(4)
out["lin.x1"] = lx1 = f32(3)
out["lin.x2"] = lx2 = f32(5, 3)
out["lin.x3"] = lx3 = f32(2, 3, 3)
run("lin2", lambda x, w, b: F.linear(x, w, b), {"x": lx2, "w": lw, "b": lb}, ["x", "w", "b"])
run("lin3", lambda x, w, b: F.linear(x, w, b), {"x": lx3, "w": lw, "b": lb}, ["x", "w", "b"])
run("lin1_nobias", lambda x, w: F.linear(x, w), {"x": lx1, "w": lw}, ["x", "w"])
run("lin3_nobias", lambda x, w: F.linear(x, w), {"x": lx3, "w": lw}, ["x", "w"])
out["emb.weight"] = ew = f32(6, 3)
out["emb.idx"] = eidx = torch.tensor([[0, 2, 5, 2], [1, 1, 4, 2]])
run("emb", lambda w: F.embedding(eidx, w), {"w": ew}, ["w"])
run("emb_pad", lambda w: F.embedding(eidx, w, padding_idx=2), {"w": ew}, ["w"])

fixtures.write(os.path.join(os.path.dirname(os.path.abspath(__file__)), "nn_loss.txt"), out)
