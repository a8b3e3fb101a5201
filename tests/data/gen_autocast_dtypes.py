"""Output dtypes of ~50 ops under autocast, for the C++ autocast policy tests. Writes
tests/data/autocast_dtypes.txt, plain text, one line per (device, op, case):
    <device> <op> <case> <dtype>
device: cpu  = measured here under torch.autocast('cpu', dtype=torch.bfloat16), PyTorch 1.13;
        cuda = what torch.autocast('cuda') (float16) gives, derived (no GPU here) from the
               CUDA op lists of the AMP docs (pytorch.org/docs/stable/amp.html), checked against
               the AutocastCUDA kernels registered in this torch build's dispatcher
               (torch._C._dispatch_get_registrations_for_dispatch_key('AutocastCUDA')).
case:   the dtypes of the op's floating inputs (integer inputs such as targets and indices are
        i64): f32 = all f32; bf16 = all bf16; f32_bf16 = the first floating input (the data /
        left operand) f32 and all others bf16; bf16_f32 = the reverse. Module ops (lstm, gru,
        rnn_cell) have two "inputs": the data and the module's parameters (module.to(dtype)).
        cuda lines also have f16, f32_f16 and f16_f32.
dtype:  f32 f64 f16 bf16 i64 i32, or `error` when the op raises (the exception is in a `#`
        comment line just above).
cuda lines exist only for ops that either autocast registers (CPU or CUDA lists); ops in
neither list run in their input types on both devices, so their cpu lines apply to CUDA too.
CUDA rules: ops in the "autocast to float16" list cast every floating non-f64 input (f32, bf16,
f16) to f16 -> f16; "autocast to float32" ops -> f32; binary_cross_entropy is banned (raises);
ops in no CUDA list (cat, stack) use ordinary type promotion. nn.LSTM / nn.GRU are in no docs
list: on CUDA they run through cuDNN's _cudnn_rnn, whose autocast wrapper (registered by the
CUDA library, so not visible in this CPU build) casts to f16 -> f16 (only with cuDNN enabled).
cross_entropy is not itself registered for CUDA; it decomposes into log_softmax and nll_loss,
both float32-list ops -> f32 (the docs list it under float32).
CPU notes (1.13): rnn_tanh_cell, lstm and gru are in no CPU list but are composite: RNNCell's
linear calls hit the bf16 list, so its output is bf16 even for f32 inputs; nn.LSTM / nn.GRU
also run their gate matmuls in bf16 (outputs differ from the non-autocast run by ~1e-3) but
return f32 for f32 inputs, because the bf16 gates meet the f32 cell state (type promotion).
Run once: /usr/bin/python3 tests/data/gen_autocast_dtypes.py
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
f32, bf16, f16 = torch.float32, torch.bfloat16, torch.float16
SHORT = {torch.float32: "f32", torch.float64: "f64", torch.float16: "f16",
         torch.bfloat16: "bf16", torch.int64: "i64", torch.int32: "i32", torch.bool: "bool"}


def r(*shape, seed, positive=False, prob=False):
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(shape, generator=g) if (positive or prob) else torch.randn(shape, generator=g)
    return t * 0.8 + 0.1 if prob else (t + 0.5 if positive else t)


def mod(cls, *args, seed):
    torch.manual_seed(seed)
    return cls(*args)


def idx(*shape, high, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, high, shape, generator=g)


# op name -> (number of floating inputs, fn(list of dtypes) -> tensor or tuple)
OPS = {}


def op(name, n):
    def deco(fn):
        OPS[name] = (n, fn)
        return fn
    return deco


op("matmul", 2)(lambda d: torch.matmul(r(4, 3, seed=1).to(d[0]), r(3, 5, seed=2).to(d[1])))
op("mm", 2)(lambda d: torch.mm(r(4, 3, seed=1).to(d[0]), r(3, 5, seed=2).to(d[1])))
op("bmm", 2)(lambda d: torch.bmm(r(2, 4, 3, seed=1).to(d[0]), r(2, 3, 5, seed=2).to(d[1])))
op("linear", 3)(lambda d: F.linear(r(4, 3, seed=1).to(d[0]), r(5, 3, seed=2).to(d[1]),
                                   r(5, seed=3).to(d[2])))
op("conv1d", 3)(lambda d: F.conv1d(r(1, 2, 8, seed=1).to(d[0]), r(3, 2, 3, seed=2).to(d[1]),
                                   r(3, seed=3).to(d[2])))
op("conv2d", 3)(lambda d: F.conv2d(r(1, 2, 6, 6, seed=1).to(d[0]),
                                   r(3, 2, 3, 3, seed=2).to(d[1]), r(3, seed=3).to(d[2])))
op("conv_transpose2d", 3)(lambda d: F.conv_transpose2d(
    r(1, 2, 5, 5, seed=1).to(d[0]), r(2, 3, 3, 3, seed=2).to(d[1]), r(3, seed=3).to(d[2])))
op("lstm", 2)(lambda d: mod(nn.LSTM, 3, 4, seed=4).to(d[1])(r(5, 2, 3, seed=1).to(d[0]))[0])
op("gru", 2)(lambda d: mod(nn.GRU, 3, 4, seed=4).to(d[1])(r(5, 2, 3, seed=1).to(d[0]))[0])
op("rnn_cell", 2)(lambda d: mod(nn.RNNCell, 3, 4, seed=4).to(d[1])(r(2, 3, seed=1).to(d[0])))
op("addmm", 3)(lambda d: torch.addmm(r(4, 5, seed=3).to(d[0]), r(4, 3, seed=1).to(d[1]),
                                     r(3, 5, seed=2).to(d[2])))
op("baddbmm", 3)(lambda d: torch.baddbmm(r(2, 4, 5, seed=3).to(d[0]),
                                         r(2, 4, 3, seed=1).to(d[1]),
                                         r(2, 3, 5, seed=2).to(d[2])))
op("softmax", 1)(lambda d: F.softmax(r(4, 5, seed=1).to(d[0]), dim=-1))
op("log_softmax", 1)(lambda d: F.log_softmax(r(4, 5, seed=1).to(d[0]), dim=-1))
op("cross_entropy", 1)(lambda d: F.cross_entropy(r(4, 5, seed=1).to(d[0]), idx(4, high=5, seed=2)))
op("nll_loss", 1)(lambda d: F.nll_loss(F.log_softmax(r(4, 5, seed=1), -1).to(d[0]),
                                       idx(4, high=5, seed=2)))
op("mse_loss", 2)(lambda d: F.mse_loss(r(4, 5, seed=1).to(d[0]), r(4, 5, seed=2).to(d[1])))
op("l1_loss", 2)(lambda d: F.l1_loss(r(4, 5, seed=1).to(d[0]), r(4, 5, seed=2).to(d[1])))
op("binary_cross_entropy_with_logits", 2)(lambda d: F.binary_cross_entropy_with_logits(
    r(4, 5, seed=1).to(d[0]), r(4, 5, seed=2, prob=True).to(d[1])))
op("binary_cross_entropy", 2)(lambda d: F.binary_cross_entropy(
    r(4, 5, seed=1, prob=True).to(d[0]), r(4, 5, seed=2, prob=True).to(d[1])))
op("smooth_l1_loss", 2)(lambda d: F.smooth_l1_loss(r(4, 5, seed=1).to(d[0]),
                                                   r(4, 5, seed=2).to(d[1])))
op("kl_div", 2)(lambda d: F.kl_div(F.log_softmax(r(4, 5, seed=1), -1).to(d[0]),
                                   F.softmax(r(4, 5, seed=2), -1).to(d[1]),
                                   reduction="batchmean"))
op("layer_norm", 3)(lambda d: F.layer_norm(r(4, 5, seed=1).to(d[0]), [5],
                                           r(5, seed=2).to(d[1]), r(5, seed=3).to(d[2])))
op("batch_norm", 5)(lambda d: F.batch_norm(
    r(4, 3, 2, seed=1).to(d[0]), torch.zeros(3).to(d[1]), torch.ones(3).to(d[2]),
    r(3, seed=2).to(d[3]), r(3, seed=3).to(d[4]), training=True))
op("group_norm", 3)(lambda d: F.group_norm(r(2, 4, 3, seed=1).to(d[0]), 2,
                                           r(4, seed=2).to(d[1]), r(4, seed=3).to(d[2])))
op("exp", 1)(lambda d: torch.exp(r(4, 5, seed=1).to(d[0])))
op("log", 1)(lambda d: torch.log(r(4, 5, seed=1, positive=True).to(d[0])))
op("pow_scalar", 1)(lambda d: torch.pow(r(4, 5, seed=1, positive=True).to(d[0]), 2.5))
op("pow_tensor", 2)(lambda d: torch.pow(r(4, 5, seed=1, positive=True).to(d[0]),
                                        r(4, 5, seed=2).to(d[1])))
op("sum", 1)(lambda d: torch.sum(r(4, 5, seed=1).to(d[0])))
op("mean", 1)(lambda d: torch.mean(r(4, 5, seed=1).to(d[0])))
op("prod", 1)(lambda d: torch.prod(r(4, 5, seed=1).to(d[0])))
op("cumsum", 1)(lambda d: torch.cumsum(r(4, 5, seed=1).to(d[0]), dim=0))
op("add", 2)(lambda d: torch.add(r(4, 5, seed=1).to(d[0]), r(4, 5, seed=2).to(d[1])))
op("mul", 2)(lambda d: torch.mul(r(4, 5, seed=1).to(d[0]), r(4, 5, seed=2).to(d[1])))
op("cat", 2)(lambda d: torch.cat([r(4, 5, seed=1).to(d[0]), r(4, 5, seed=2).to(d[1])]))
op("stack", 2)(lambda d: torch.stack([r(4, 5, seed=1).to(d[0]), r(4, 5, seed=2).to(d[1])]))
op("relu", 1)(lambda d: F.relu(r(4, 5, seed=1).to(d[0])))
op("gelu", 1)(lambda d: F.gelu(r(4, 5, seed=1).to(d[0])))
op("sigmoid", 1)(lambda d: torch.sigmoid(r(4, 5, seed=1).to(d[0])))
op("tanh", 1)(lambda d: torch.tanh(r(4, 5, seed=1).to(d[0])))
op("dropout", 1)(lambda d: F.dropout(r(4, 5, seed=1).to(d[0]), 0.5, training=True))
op("max_pool2d", 1)(lambda d: F.max_pool2d(r(1, 2, 4, 4, seed=1).to(d[0]), 2))
op("avg_pool2d", 1)(lambda d: F.avg_pool2d(r(1, 2, 4, 4, seed=1).to(d[0]), 2))
op("embedding", 1)(lambda d: F.embedding(idx(3, high=6, seed=2), r(6, 4, seed=1).to(d[0])))
op("norm", 1)(lambda d: torch.norm(r(4, 5, seed=1).to(d[0])))
op("dist", 2)(lambda d: torch.dist(r(4, 5, seed=1).to(d[0]), r(4, 5, seed=2).to(d[1])))
op("sqrt", 1)(lambda d: torch.sqrt(r(4, 5, seed=1, positive=True).to(d[0])))
op("where", 2)(lambda d: torch.where(r(4, 5, seed=3) > 0, r(4, 5, seed=1).to(d[0]),
                                     r(4, 5, seed=2).to(d[1])))

# aten operators each op reaches, to check list membership in this build's dispatcher
ATEN = {"matmul": ["matmul"], "mm": ["mm"], "bmm": ["bmm"], "linear": ["linear"],
        "conv1d": ["conv1d"], "conv2d": ["conv2d"], "conv_transpose2d": ["conv_transpose2d.input"],
        "lstm": ["lstm.input"], "gru": ["gru.input"], "rnn_cell": ["rnn_tanh_cell"],
        "addmm": ["addmm"], "baddbmm": ["baddbmm"], "softmax": ["softmax.int"],
        "log_softmax": ["log_softmax.int"], "cross_entropy": ["cross_entropy_loss"],
        "nll_loss": ["nll_loss"], "mse_loss": ["mse_loss"], "l1_loss": ["l1_loss"],
        "binary_cross_entropy_with_logits": ["binary_cross_entropy_with_logits"],
        "binary_cross_entropy": ["binary_cross_entropy"], "smooth_l1_loss": ["smooth_l1_loss"],
        "kl_div": ["kl_div"], "layer_norm": ["layer_norm"], "batch_norm": ["batch_norm"],
        "group_norm": ["group_norm"], "exp": ["exp"], "log": ["log"],
        "pow_scalar": ["pow.Tensor_Scalar"], "pow_tensor": ["pow.Tensor_Tensor"],
        "sum": ["sum"], "mean": ["mean"], "prod": ["prod"], "cumsum": ["cumsum"],
        "add": ["add.Tensor"], "mul": ["mul.Tensor"], "cat": ["cat"], "stack": ["stack"],
        "relu": ["relu"], "gelu": ["gelu"], "sigmoid": ["sigmoid"], "tanh": ["tanh"],
        "dropout": ["dropout"], "max_pool2d": ["max_pool2d"], "avg_pool2d": ["avg_pool2d"],
        "embedding": ["embedding"], "norm": ["norm.Scalar"], "dist": ["dist"],
        "sqrt": ["sqrt"], "where": ["where.self"]}

# CUDA policy per op, from the AMP docs' CUDA lists (see the module docstring)
CUDA = {}
for n in ("matmul mm bmm linear conv1d conv2d conv_transpose2d rnn_cell addmm baddbmm").split():
    CUDA[n] = "f16"
for n in ("lstm gru").split():
    CUDA[n] = "f16_cudnn"
for n in ("softmax log_softmax cross_entropy nll_loss mse_loss l1_loss "
          "binary_cross_entropy_with_logits smooth_l1_loss kl_div layer_norm group_norm exp log "
          "pow_scalar pow_tensor sum prod cumsum norm dist").split():
    CUDA[n] = "f32"
CUDA["binary_cross_entropy"] = "banned"
for n in ("cat stack").split():
    CUDA[n] = "promote_builtin"

reg = {k: set(torch._C._dispatch_get_registrations_for_dispatch_key(k))
       for k in ("AutocastCPU", "AutocastCUDA")}
for name, atens in ATEN.items():
    in_cuda = any("aten::" + a in reg["AutocastCUDA"] for a in atens)
    expect = CUDA.get(name) in ("f16", "f32", "banned") and name != "cross_entropy"
    assert in_cuda == expect, (name, in_cuda, CUDA.get(name))
in_cpu = {name: any("aten::" + a in reg["AutocastCPU"] for a in atens)
          for name, atens in ATEN.items()}
assert set(OPS) == set(ATEN)


def cases(n, low):
    c = [("f32", [f32] * n), (SHORT[low], [low] * n)]
    if n > 1:
        c += [("f32_" + SHORT[low], [f32] + [low] * (n - 1)),
              (SHORT[low] + "_f32", [low] + [f32] * (n - 1))]
    return c


def out_dtype(res):
    while isinstance(res, (tuple, list)):
        res = res[0]
    return SHORT[res.dtype]


lines = ["# generated by gen_autocast_dtypes.py with torch %s; do not edit" % torch.__version__,
         "# columns: device op case dtype   (see gen_autocast_dtypes.py for the cases)"]
cpu_result = {}
for name, (n, fn) in OPS.items():
    for case, d in cases(n, bf16):
        torch.manual_seed(0)
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                dt = out_dtype(fn(d))
        except Exception as e:  # noqa: BLE001 - recorded as `error`
            msg = str(e).strip().splitlines()[0][:150]
            lines.append("# cpu %s %s raises %s: %s" % (name, case, type(e).__name__, msg))
            dt = "error"
        cpu_result[(name, case)] = dt
        lines.append("cpu %s %s %s" % (name, case, dt))


def cuda_dtype(policy, d):
    if policy in ("f16", "f16_cudnn"):
        return "f16"
    if policy == "f32":
        return "f32"
    if policy == "banned":
        return "error"
    assert policy == "promote_builtin"
    return "f32" if f32 in d else SHORT[d[0]]


cuda_result = {}
for name, (n, fn) in OPS.items():
    if name not in CUDA and not in_cpu[name]:
        continue
    for low in (bf16, f16):
        for case, d in cases(n, low):
            if low == f16 and case == "f32":
                continue
            if (name, case) in cuda_result:
                continue
            if CUDA.get(name) == "banned":
                lines.append("# cuda %s %s raises RuntimeError: the banned-op message "
                             "(unsafe to autocast; use binary_cross_entropy_with_logits)"
                             % (name, case))
            dt = cuda_dtype(CUDA[name], d)
            cuda_result[(name, case)] = dt
            lines.append("cuda %s %s %s" % (name, case, dt))

with open(os.path.join(HERE, "autocast_dtypes.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")

# summary for the person running this: where CPU and CUDA differ
print("%-34s %-10s %-24s %s" % ("op", "cpu list", "cpu f32/bf16/f32_bf16/bf16_f32",
                                "cuda f32/bf16/f32_bf16/bf16_f32"))
for name, (n, fn) in OPS.items():
    cs = [c for c, _ in cases(n, bf16)]
    cpu = "/".join(cpu_result[(name, c)] for c in cs)
    cuda = "/".join(cuda_result.get((name, c), "-") for c in cs) if (name, "f32") in cuda_result \
        else "(same as cpu)"
    print("%-34s %-10s %-24s %s" % (name, "yes" if in_cpu[name] else "no", cpu, cuda))
