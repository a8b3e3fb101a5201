"""Reference values for tests/test_ops_sort_scan.cpp: sort, argsort, topk, kthvalue, cumsum,
cumprod, floor_divide, remainder, scatter, nonzero, masked_select, index and index_put in
float64, with the gradients of sum(out * g) for a random upstream gradient g, and the indices.
Case <name>: inputs <name>_<k>, upstream <name>_g, output <name>_out, gradients
<name>_grad_<k>; integer results and arguments as <name>_indices / <name>_index. Every sort is
stable=True (Strata's sort always is), and the topk / kthvalue inputs have no ties (PyTorch's
are not stable there). Each section seeds its own generator, so adding one leaves the others'
values alone. Run once: /usr/bin/python3 gen_ops_sort_scan.py"""
import os

import torch
import fixtures

torch.set_default_dtype(torch.float64)
out = {}


def case(name, fn, *inputs, **extra):
    """fn returns a tensor, or (values, indices): the indices are stored as <name>_indices."""
    leaves = [x.clone().requires_grad_(True) for x in inputs]
    y = fn(*leaves)
    if isinstance(y, tuple):
        y, indices = y
        out[f"{name}_indices"] = indices
    g = torch.randn_like(y)
    (y * g).sum().backward()
    for k, x in enumerate(inputs):
        out[f"{name}_{'abcdefgh'[k]}"] = x
        out[f"{name}_grad_{'abcdefgh'[k]}"] = leaves[k].grad
    out[f"{name}_g"] = g
    out[f"{name}_out"] = y
    for key, value in extra.items():
        out[f"{name}_{key}"] = value


def values(name, fn, *inputs):
    """A case without gradients (integer inputs or outputs): <name>_<k> in, <name>_out out."""
    y = fn(*inputs)
    if isinstance(y, tuple):
        y, indices = y
        out[f"{name}_indices"] = indices
    for k, x in enumerate(inputs):
        out[f"{name}_{'abcdefgh'[k]}"] = x
    out[f"{name}_out"] = y


def pair(result):
    return result.values, result.indices


# ---- sorting and selection ----------------------------------------------------------------
torch.manual_seed(1)
x = torch.randn(3, 7)
case("sort_last", lambda a: pair(torch.sort(a, stable=True)), x)
case("sort_desc_dim0", lambda a: pair(torch.sort(a, dim=0, descending=True, stable=True)),
     torch.randn(5, 3, 4))
case("sort_mid", lambda a: pair(torch.sort(a, dim=1, stable=True)), torch.randn(2, 6, 3))
nan, inf = float("nan"), float("inf")
special = torch.tensor([[1.5, nan, -0.0, inf, 0.0, -inf, nan, -2.0],
                        [0.0, -0.0, 3.0, 3.0, nan, 1.0, -1.0, 0.0]])
case("sort_special", lambda a: pair(torch.sort(a, stable=True)), special)
case("sort_special_desc", lambda a: pair(torch.sort(a, descending=True, stable=True)), special)
ties = torch.randint(-3, 4, (4, 9))
values("sort_int_ties", lambda a: pair(torch.sort(a, stable=True)), ties)
values("sort_int_ties_desc",
       lambda a: pair(torch.sort(a, dim=0, descending=True, stable=True)), ties)
values("argsort_int", lambda a: torch.sort(a, dim=1, stable=True).indices, ties)
case("topk_largest", lambda a: pair(torch.topk(a, 3, 1)), torch.randn(4, 6, 3))
case("topk_smallest", lambda a: pair(torch.topk(a, 2, largest=False)), torch.randn(3, 5))
case("topk_nan", lambda a: pair(torch.topk(a, 3)), torch.tensor([[0.5, nan, -1.0, 2.0, 1.0]]))
case("kthvalue_dim1", lambda a: pair(torch.kthvalue(a, 3, 1)), torch.randn(4, 6, 2))
case("kthvalue_keepdim", lambda a: pair(torch.kthvalue(a, 2, 0, keepdim=True)), torch.randn(5, 3))

# ---- running sums and products -------------------------------------------------------------
torch.manual_seed(2)
case("cumsum_last", lambda a: torch.cumsum(a, -1), torch.randn(3, 7))
case("cumsum_dim0", lambda a: torch.cumsum(a, 0), torch.randn(4, 3, 5))
case("cumprod_mid", lambda a: torch.cumprod(a, 1), torch.randn(2, 6, 3))
one_zero = torch.randn(3, 6)
one_zero[0, 2] = one_zero[1, 0] = one_zero[2, 5] = 0.0
case("cumprod_one_zero", lambda a: torch.cumprod(a, 1), one_zero)
two_zeros = torch.randn(3, 6)
two_zeros[0, 1] = two_zeros[0, 4] = two_zeros[1, 2] = two_zeros[1, 3] = 0.0
two_zeros[2, 0] = two_zeros[2, 5] = 0.0
case("cumprod_two_zeros", lambda a: torch.cumprod(a, 1), two_zeros)
case("cumprod_zero_dim0", lambda a: torch.cumprod(a, 0), one_zero.t().contiguous())
values("cumsum_int", lambda a: torch.cumsum(a, 1), torch.randint(-5, 5, (3, 8)))
values("cumprod_int", lambda a: torch.cumprod(a, 0), torch.randint(-3, 4, (5, 4)))
values("cumsum_bool", lambda a: torch.cumsum(a, 0), torch.rand(9) > 0.5)
values("cumsum_bf16", lambda a: torch.cumsum(a, 1),
       torch.randn(3, 300).to(torch.bfloat16))

# ---- floor division and remainder ------------------------------------------------------------
torch.manual_seed(3)
dividend = torch.randn(4, 5) * 4
divisor = (torch.rand(5) * 2 + 0.5) * torch.where(torch.rand(5) > 0.5, 1.0, -1.0)
case("remainder_tt", lambda x, y: torch.remainder(x, y), dividend, divisor)
case("remainder_ts", lambda x: torch.remainder(x, -1.5), dividend)
values("floor_divide_tt", lambda x, y: torch.floor_divide(x, y), dividend, divisor)
values("floor_divide_ts", lambda x: torch.floor_divide(x, 0.75), dividend)
int_dividend = torch.randint(-20, 20, (4, 6))
int_divisor = torch.randint(1, 8, (4, 6)) * torch.where(torch.rand(4, 6) > 0.5, 1, -1)
values("floor_divide_int", lambda x, y: torch.floor_divide(x, y), int_dividend, int_divisor)
values("remainder_int", lambda x, y: torch.remainder(x, y), int_dividend, int_divisor)
values("floor_divide_int_scalar", lambda x: torch.floor_divide(x, -3), int_dividend)
values("remainder_int_scalar", lambda x: torch.remainder(x, 4), int_dividend)
special = torch.tensor([5.0, -5.0, 5.0, -5.0, 0.0, -0.0, 7.5, inf, -inf, nan, 1.0, -1.0, 3.0])
special_divisor = torch.tensor([3.0, 3.0, -3.0, -3.0, 2.0, 2.0, 0.0, 2.0, 2.0, 2.0, inf, inf,
                                -inf])
values("floor_divide_special", lambda x, y: torch.floor_divide(x, y), special, special_divisor)
values("remainder_special", lambda x, y: torch.remainder(x, y), special, special_divisor)

# ---- scatter (no index repeats a destination: PyTorch leaves those unspecified) ---------------
torch.manual_seed(4)
index0 = torch.tensor([[0, 1, 2, 0], [2, 0, 1, 1]])
case("scatter_0", lambda a, s: a.scatter(0, index0, s), torch.randn(3, 5), torch.randn(2, 4),
     index=index0)
index1 = torch.tensor([[4, 0, 2], [1, 3, 0], [0, 2, 4]])
case("scatter_1", lambda a, s: a.scatter(1, index1, s), torch.randn(3, 5), torch.randn(3, 3),
     index=index1)
case("scatter_value", lambda a: a.scatter(1, index1, 2.5), torch.randn(3, 5), index=index1)

# ---- nonzero and masked_select ---------------------------------------------------------------
torch.manual_seed(5)
sparse = torch.randn(3, 4, 5)
sparse[sparse.abs() < 0.7] = 0.0
values("nonzero", lambda a: torch.nonzero(a), sparse)
select_mask = torch.rand(4, 5) > 0.5
case("masked_select", lambda a: torch.masked_select(a, select_mask), torch.randn(3, 4, 5),
     mask=select_mask)
column_mask = torch.rand(3, 1) > 0.4
case("masked_select_broadcast", lambda a: torch.masked_select(a, column_mask), torch.randn(1, 5),
     mask=column_mask)

# ---- advanced indexing (index_put cases write each position once unless they accumulate) ----
torch.manual_seed(6)
block = torch.randn(4, 5, 3)
rows = torch.tensor([[0, 3], [-1, 1]])
columns = torch.tensor([4, -2])
case("index_two", lambda a: a[rows, columns], block, index0=rows, index1=columns)
repeated = torch.tensor([1, 1, 3, 0, 1])
case("index_repeat", lambda a: a[repeated], block, index0=repeated)
index_mask = torch.rand(4, 5) > 0.5
case("index_mask", lambda a: a[index_mask], block, mask=index_mask)
row_mask = torch.tensor([True, False, True, True])
picks = torch.tensor([0, 2, 4])
case("index_mask_int", lambda a: a[row_mask, picks], block, mask=row_mask, index1=picks)
case("index_put", lambda a, v: a.index_put((rows, columns), v), block, torch.randn(2, 2, 3),
     index0=rows, index1=columns)
case("index_put_accumulate", lambda a, v: a.index_put((repeated,), v, accumulate=True), block,
     torch.randn(5, 5, 3), index0=repeated)
case("index_put_mask", lambda a, v: a.index_put((index_mask,), v), block, torch.randn(3),
     mask=index_mask)

fixtures.write(os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops_sort_scan.txt"), out)
