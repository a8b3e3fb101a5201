// The functional API. Each op validates its inputs (throwing strata::Error naming the op, the
// shapes, dtypes and devices), allocates its output on the inputs' device, runs the backend
// kernel, and records a tape node when grad mode is on and an input requires grad.
// Binary ops broadcast as NumPy does and promote dtypes (bool < uint8 < int64 < f32 < f64).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "strata/tensor.h"

namespace strata {

// ---- elementwise ------------------------------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);  // true division: integers give float32
Tensor add(const Tensor& a, double b);
Tensor sub(const Tensor& a, double b);
Tensor mul(const Tensor& a, double b);
Tensor div(const Tensor& a, double b);
Tensor rsub(const Tensor& a, double b);  // b - a
Tensor rdiv(const Tensor& a, double b);  // b / a
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
// Python's a // b and a % b (torch.floor_divide, torch.remainder): the quotient rounds toward
// -inf and the remainder has the sign of the divisor, for integers and floats alike (integers
// stay integers). Integer division by zero throws strata::Error (checked on the host, a small
// read on CUDA); a floating zero divisor gives +-inf / NaN. remainder is differentiable
// (d/da = 1, d/db = -floor_divide(a, b)); floor_divide is piecewise constant and records
// nothing (PyTorch 1.13 records a node whose backward throws).
Tensor floor_divide(const Tensor& a, const Tensor& b);
Tensor floor_divide(const Tensor& a, double b);
Tensor remainder(const Tensor& a, const Tensor& b);
Tensor remainder(const Tensor& a, double b);

Tensor neg(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sign(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor reciprocal(const Tensor& x);
Tensor pow(const Tensor& x, double exponent);
Tensor pow(const Tensor& x, const Tensor& exponent);
// NOTE: at a boundary (x == min or x == max) the gradient passes through, as in PyTorch.
Tensor clamp(const Tensor& x, std::optional<double> min, std::optional<double> max);

// Comparisons give bool tensors and are not differentiable.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, double b);
Tensor ne(const Tensor& a, double b);
Tensor lt(const Tensor& a, double b);
Tensor le(const Tensor& a, double b);
Tensor gt(const Tensor& a, double b);
Tensor ge(const Tensor& a, double b);

// Element tests as bool tensors (not differentiable); integer and bool inputs are always finite.
Tensor isnan(const Tensor& x);
Tensor isinf(const Tensor& x);     // +inf or -inf
Tensor isfinite(const Tensor& x);  // neither NaN nor infinite

// cond ? a : b, all three broadcast together; cond must be bool.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);

// ---- reductions (dims may be negative; an empty dims list means every axis) ---------------
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// NOTE: where several elements tie for the max/min, the gradient is shared evenly among them.
Tensor max(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor min(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Index of the first max/min along `dim`, or into the flattened tensor when dim is absent.
Tensor argmax(const Tensor& x, std::optional<int64_t> dim = std::nullopt, bool keepdim = false);
Tensor argmin(const Tensor& x, std::optional<int64_t> dim = std::nullopt, bool keepdim = false);

// ---- linear algebra -----------------------------------------------------------------------
// As torch.matmul: 1-D·1-D dot, 2-D product, and batched products with broadcast batch dims.
Tensor matmul(const Tensor& a, const Tensor& b);

// ---- joining and indexing -----------------------------------------------------------------
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);
// Picks entries of `x` along `dim` at the int64 positions in 1-D `index`.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// out[i][j] = x[index[i][j]][j] for dim 0 (and so on): index has x's rank.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// int64 tensor of shape index.shape + [num_classes]; num_classes < 0 means max(index) + 1.
Tensor one_hot(const Tensor& index, int64_t num_classes = -1);
// A copy of x with src added at the positions `index` names along `dim`:
// out[index[i][j]][j] += src[i][j] for dim 0 (and so on), repeated indices accumulating.
// index has x's rank and is no larger than src anywhere, nor than x off `dim`.
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
// A copy of x with src written at the positions `index` names along `dim`:
// out[index[i][j]][j] = src[i][j] for dim 0 (and so on); the value overload writes `value`
// there. Where indices repeat (PyTorch leaves the result unspecified) the CPU keeps the value
// last in index's row-major order; CUDA keeps any one of them. Shapes as scatter_add's.
// Differentiable: x's gradient is zero at the written positions, src's is gathered from them.
Tensor scatter(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
Tensor scatter(const Tensor& x, int64_t dim, const Tensor& index, double value);
// x where mask (bool, broadcast to x's shape) is false, `value` where it is true.
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);

// ---- sorting and selection ----------------------------------------------------------------
// What sort, topk and kthvalue return (PyTorch's torch.return_types): the values and their
// int64 positions along the dimension, `auto [values, indices] = sort(x);`.
struct ValuesAndIndices {
  Tensor values;
  Tensor indices;
};
// x sorted along `dim`, ascending or descending, and where each value came from. The sort is
// always stable (PyTorch's stable=True): equal values keep their order, so ties give the same
// indices on every backend. NaN sorts as the largest value (last ascending, first descending);
// -0.0 ties with 0.0. Any dtype. The values are differentiable: the gradient goes back to the
// position each came from.
ValuesAndIndices sort(const Tensor& x, int64_t dim = -1, bool descending = false);
// sort(x, dim, descending).indices; not differentiable.
Tensor argsort(const Tensor& x, int64_t dim = -1, bool descending = false);
// The k largest (or, with largest=false, smallest) entries along `dim` and their indices,
// largest (smallest) first; of equal values the earlier position comes first, and NaN counts as
// the largest. The result is always sorted: `sorted` is there for PyTorch's signature. Runs a
// full sort of the dimension.
ValuesAndIndices topk(const Tensor& x, int64_t k, int64_t dim = -1, bool largest = true,
                      bool sorted = true);
// The k-th smallest entry along `dim` (k counts from 1, as PyTorch) and its index: entry k - 1
// of the stable ascending sort, so of equal values the earlier position is picked first.
ValuesAndIndices kthvalue(const Tensor& x, int64_t k, int64_t dim = -1, bool keepdim = false);

// ---- selection by a mask ---------------------------------------------------------------------
// The coordinates of x's non-zero entries (NaN counts; bool: the true ones) in row-major
// order: int64 [count, x.dim()]. Not differentiable. Reads the count back to the host (one
// small device-to-host copy on CUDA), as PyTorch's does.
Tensor nonzero(const Tensor& x);
// The entries of x where the bool mask is true, in row-major order, as a 1-D tensor; x and mask
// broadcast together. Differentiable for x. Reads the count back as nonzero does.
Tensor masked_select(const Tensor& x, const Tensor& mask);

// ---- advanced indexing (PyTorch's x[i, j], x[mask], x.index_put_) ---------------------------
// x indexed along its leading dimensions: `indices` holds int64 position tensors (negative ones
// count from the end), which broadcast together to a shape B, and bool masks, each standing for
// the coordinates of its true entries over as many dimensions as it has (x[mask] when the mask
// covers x's leading dims). The result is B + x's remaining dims, as PyTorch's when the indexed
// dims are adjacent and leading. Not supported: indices after a skipped dim (x[:, i]: use
// index_select or transpose first), None / ellipsis / slices in the list, uint8 masks.
// Differentiable (repeated positions add their gradients). Range checks read the indices' min
// and max back (small device-to-host copies on CUDA).
Tensor index(const Tensor& x, const std::vector<Tensor>& indices);
// A copy of x with `values` (x's dtype, broadcast to index(x, indices)'s shape) written at the
// indexed positions, or added there with accumulate (repeated positions adding up). Without
// accumulate, where positions repeat the CPU keeps the value last in order and CUDA any one.
// Differentiable for x and values. In place: Tensor::index_put_ (not recorded on the tape).
Tensor index_put(const Tensor& x, const std::vector<Tensor>& indices, const Tensor& values,
                 bool accumulate = false);

// ---- running sums and products ------------------------------------------------------------
// The inclusive running sum / product along `dim`: out[..., i, ...] = x[..., 0, ...] + ... +
// x[..., i, ...]. Integer and bool inputs give int64 (as PyTorch); floats keep their dtype and
// accumulate wider (float64 for float32, as PyTorch's CPU kernel; float32 for f16 / bf16), each
// output rounded once. Differentiable; cumprod's gradient is right where x has zeros (the first
// zero of a row gets the product of the others, later positions zero). Under autocast both run
// in float32.
Tensor cumsum(const Tensor& x, int64_t dim);
Tensor cumprod(const Tensor& x, int64_t dim);

// ---- rearranging (copies, as PyTorch's) ---------------------------------------------------
// x reversed along each of `dims`.
Tensor flip(const Tensor& x, const std::vector<int64_t>& dims);
// x shifted cyclically by shifts[i] along dims[i] (entries pushed off the end come back at
// the start); with no dims, the flattened tensor is rolled by the single shift.
Tensor roll(const Tensor& x, const std::vector<int64_t>& shifts,
            const std::vector<int64_t>& dims = {});
// x tiled repeats[d] times along dimension d (torch.Tensor.repeat); more counts than x has
// dimensions add leading ones.
Tensor repeat(const Tensor& x, const std::vector<int64_t>& repeats);
// The lower / upper triangle of the last two dimensions (entries with column - row <= /
// >= diagonal), the others zero; diagonal 1 starts above the main diagonal.
Tensor tril(const Tensor& x, int64_t diagonal = 0);
Tensor triu(const Tensor& x, int64_t diagonal = 0);

// ---- Einstein summation -------------------------------------------------------------------
// torch.einsum: "ij,jk->ik" (matrix product), "bij,bjk->bik", "ii->i" (a diagonal), "ij->"
// (a sum), "i,j->ij" (an outer product), "...ij,...jk->...ik" (broadcast batch dimensions).
// Without "->" the output takes the labels that appear once, in alphabetical order. Labels
// are letters; each operand names each of its dimensions once, or "..." for several.
Tensor einsum(const std::string& equation, const std::vector<Tensor>& operands);

// ---- operators ----------------------------------------------------------------------------
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator+(const Tensor& a, double b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, double b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, double b) { return div(a, b); }
inline Tensor operator+(double a, const Tensor& b) { return add(b, a); }
inline Tensor operator-(double a, const Tensor& b) { return rsub(b, a); }
inline Tensor operator*(double a, const Tensor& b) { return mul(b, a); }
inline Tensor operator/(double a, const Tensor& b) { return rdiv(b, a); }
inline Tensor operator-(const Tensor& x) { return neg(x); }
inline Tensor operator==(const Tensor& a, const Tensor& b) { return eq(a, b); }
inline Tensor operator!=(const Tensor& a, const Tensor& b) { return ne(a, b); }
inline Tensor operator<(const Tensor& a, const Tensor& b) { return lt(a, b); }
inline Tensor operator<=(const Tensor& a, const Tensor& b) { return le(a, b); }
inline Tensor operator>(const Tensor& a, const Tensor& b) { return gt(a, b); }
inline Tensor operator>=(const Tensor& a, const Tensor& b) { return ge(a, b); }
inline Tensor operator==(const Tensor& a, double b) { return eq(a, b); }
inline Tensor operator!=(const Tensor& a, double b) { return ne(a, b); }
inline Tensor operator<(const Tensor& a, double b) { return lt(a, b); }
inline Tensor operator<=(const Tensor& a, double b) { return le(a, b); }
inline Tensor operator>(const Tensor& a, double b) { return gt(a, b); }
inline Tensor operator>=(const Tensor& a, double b) { return ge(a, b); }

// True when every element of a and b (same shape) is within atol + rtol * |b|.
bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-8);

}  // namespace strata
