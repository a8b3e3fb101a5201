"""Reference values for tests/test_ops_rearrange.cpp: flip, roll, repeat, tril, triu,
masked_fill, scatter_add and einsum in float64, with the gradients of sum(out * g) for a random
upstream gradient g. Case <name>: inputs <name>_<k>, upstream <name>_g, output <name>_out,
gradients <name>_grad_<k>; integer arguments (masks, indices) as <name>_index / <name>_mask.
Run once: /usr/bin/python3 gen_ops_rearrange.py"""
import os

import torch
import fixtures

torch.manual_seed(19)
torch.set_default_dtype(torch.float64)
out = {}


def case(name, fn, *inputs, **extra):
    leaves = [x.clone().requires_grad_(True) for x in inputs]
    y = fn(*leaves)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    for k, x in enumerate(inputs):
        out[f"{name}_{'abcdefgh'[k]}"] = x
        out[f"{name}_grad_{'abcdefgh'[k]}"] = leaves[k].grad
    out[f"{name}_g"] = g
    out[f"{name}_out"] = y
    for key, value in extra.items():
        out[f"{name}_{key}"] = value


x = torch.randn(3, 4, 5)
case("flip_01", lambda a: torch.flip(a, [0, 2]), x)
case("flip_neg", lambda a: torch.flip(a, [-2]), x)
case("roll_dims", lambda a: torch.roll(a, [1, -3], [2, 0]), x)
case("roll_flat", lambda a: torch.roll(a, 7), x)
case("repeat_same_rank", lambda a: a.repeat(2, 1, 3), x)
case("repeat_more", lambda a: a.repeat(2, 1, 1, 2), torch.randn(2, 3))
m = torch.randn(2, 4, 5)
case("tril_0", lambda a: torch.tril(a), m)
case("tril_m1", lambda a: torch.tril(a, -1), m)
case("triu_2", lambda a: torch.triu(a, 2), m)
case("triu_0", lambda a: torch.triu(a), torch.randn(5, 3))
mask = torch.rand(4, 1) > 0.5
case("masked_fill", lambda a: a.masked_fill(mask, -2.5), torch.randn(4, 6), mask=mask.long())
index = torch.tensor([[0, 1, 2, 0], [2, 2, 1, 0]])
case("scatter_add_0", lambda a, s: a.scatter_add(0, index, s), torch.randn(3, 5),
     torch.randn(2, 4), index=index)
index1 = torch.tensor([[4, 0, 4], [1, 1, 3], [0, 2, 2]])
case("scatter_add_1", lambda a, s: a.scatter_add(1, index1, s), torch.randn(3, 5),
     torch.randn(3, 3), index=index1)

equations = [
    ("mm", "ij,jk->ik", [(3, 4), (4, 5)]),
    ("bmm", "bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("diag", "ii->i", [(4, 4)]),
    ("trace", "ii", [(4, 4)]),
    ("sum_all", "ij->", [(3, 4)]),
    ("transpose", "ij->ji", [(3, 4)]),
    ("outer", "i,j->ij", [(3,), (4,)]),
    ("implicit", "ij,jk", [(3, 4), (4, 5)]),
    ("ellipsis", "...ij,...jk->...ik", [(2, 3, 4), (4, 5)]),
    ("three", "ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("bilinear", "bn,anm,bm->ba", [(3, 4), (2, 4, 5), (3, 5)]),
    ("batch_diag", "bii->bi", [(2, 3, 3)]),
    ("contract_two", "abc,cbd->ad", [(2, 3, 4), (4, 3, 5)]),
    ("summed_label", "ij,k->i", [(3, 4), (5,)]),
    ("upper", "Ab,bC->AC", [(2, 3), (3, 4)]),
]
for name, eq, shapes in equations:
    ops = [torch.randn(*s) for s in shapes]
    case("einsum_" + name, lambda *a, eq=eq: torch.einsum(eq, *a), *ops)

fixtures.write(os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops_rearrange.txt"), out)
