// Rearranging ops built from the differentiable primitives (index_select, cat, expand, where):
// flip, roll, repeat, tril, triu, masked_fill. Each checks its arguments here, naming itself,
// so the primitives it calls never see bad input; their tape nodes give the gradients, and
// their kernels give every backend the op.
#include <algorithm>
#include <string>
#include <vector>

#include "internal.h"

namespace strata {

namespace {

// The distinct axes of `dims` mapped into [0, rank); throws naming `op` on a repeat.
std::vector<int64_t> distinct_axes(const std::vector<int64_t>& dims, int64_t rank,
                                   const char* op, const Tensor& x) {
  std::vector<int64_t> axes;
  for (int64_t d : dims) {
    const int64_t axis = normalize_axis(d, std::max<int64_t>(rank, 1), op);
    STRATA_CHECK(std::find(axes.begin(), axes.end(), axis) == axes.end(), op, ": dimension ", d,
                 " appears more than once in the dims of ", detail::describe(x));
    axes.push_back(axis);
  }
  return axes;
}

// The lower (tril) or upper (triu) triangle of the last two dimensions; the rest zero.
Tensor triangle(const Tensor& x, int64_t diagonal, bool lower, const char* op) {
  detail::check_defined(x, op);
  STRATA_CHECK(x.dim() >= 2, op, ": the input must have at least 2 dimensions (a matrix or a ",
               "batch of them), got ", detail::describe(x));
  const int64_t rows = x.size(-2), columns = x.size(-1);
  Tensor keep;
  {
    NoGradGuard no_grad;
    const TensorOptions index = TensorOptions(DType::Int64).device(x.device());
    // column - row for every entry: 0 on the main diagonal, k on the k-th above it.
    const Tensor offset = sub(arange(static_cast<double>(columns), index).reshape({1, columns}),
                              arange(static_cast<double>(rows), index).reshape({rows, 1}));
    keep = lower ? le(offset, static_cast<double>(diagonal))
                 : ge(offset, static_cast<double>(diagonal));
  }
  return where(keep, x, scalar_tensor(0.0, TensorOptions(x.dtype()).device(x.device())));
}

}  // namespace

Tensor flip(const Tensor& x, const std::vector<int64_t>& dims) {
  detail::check_defined(x, "flip");
  Tensor out = x;
  for (int64_t axis : distinct_axes(dims, x.dim(), "flip", x)) {
    if (x.dim() == 0) break;
    const int64_t size = x.size(axis);
    const Tensor reversed =
        arange(static_cast<double>(size - 1), -1.0, -1.0,
               TensorOptions(DType::Int64).device(x.device()));
    out = index_select(out, axis, reversed);
  }
  // A copy even when nothing moves, as PyTorch's flip.
  return out.is_same(x) ? x.clone() : out;
}

Tensor roll(const Tensor& x, const std::vector<int64_t>& shifts, const std::vector<int64_t>& dims) {
  detail::check_defined(x, "roll");
  if (dims.empty()) {
    // Rolls the flattened tensor, then restores the shape.
    STRATA_CHECK(shifts.size() == 1, "roll: without dims, give one shift (for the flattened ",
                 "tensor), got ", shifts.size(), " for ", detail::describe(x));
    return roll(x.reshape({-1}), shifts, {0}).reshape(x.shape());
  }
  STRATA_CHECK(shifts.size() == dims.size(), "roll: ", shifts.size(), " shifts for ",
               dims.size(), " dims; give one shift per dimension (", detail::describe(x), ")");
  STRATA_CHECK(x.dim() > 0, "roll: a 0-dimensional tensor has no dimension to roll");
  Tensor out = x;
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t axis = normalize_axis(dims[i], x.dim(), "roll");
    const int64_t size = x.size(axis);
    if (size == 0) continue;
    const int64_t shift = ((shifts[i] % size) + size) % size;  // in [0, size)
    if (shift == 0) continue;
    // The last `shift` entries move to the front.
    out = cat({out.narrow(axis, size - shift, shift), out.narrow(axis, 0, size - shift)}, axis);
  }
  return out.is_same(x) ? x.clone() : out;
}

Tensor repeat(const Tensor& x, const std::vector<int64_t>& repeats) {
  detail::check_defined(x, "repeat");
  const int64_t rank = static_cast<int64_t>(repeats.size());
  STRATA_CHECK(rank >= x.dim(), "repeat: ", rank, " repeat counts for ", detail::describe(x),
               "; give at least one per dimension (extra ones add leading dimensions)");
  for (int64_t r : repeats) {
    STRATA_CHECK(r >= 0, "repeat: repeat counts must be at least 0, got ", r, " for ",
                 detail::describe(x));
  }
  // x as [1, s0, 1, s1, ...] (leading dimensions of size 1 added), expanded to
  // [r0, s0, r1, s1, ...] and merged pairwise to [r0 * s0, r1 * s1, ...].
  Shape padded(static_cast<size_t>(rank - x.dim()), 1);
  padded.insert(padded.end(), x.shape().begin(), x.shape().end());
  Shape interleaved, expanded, merged;
  for (int64_t d = 0; d < rank; ++d) {
    const int64_t size = padded[static_cast<size_t>(d)], times = repeats[static_cast<size_t>(d)];
    interleaved.insert(interleaved.end(), {1, size});
    expanded.insert(expanded.end(), {times, size});
    merged.push_back(times * size);
  }
  const Tensor out = x.reshape(interleaved).expand(expanded).reshape(merged);
  // A copy even when every count is 1 (reshape then only views x), as PyTorch's repeat.
  return out.storage() == x.storage() ? out.clone() : out;
}

Tensor tril(const Tensor& x, int64_t diagonal) { return triangle(x, diagonal, true, "tril"); }
Tensor triu(const Tensor& x, int64_t diagonal) { return triangle(x, diagonal, false, "triu"); }

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  detail::check_defined(x, "masked_fill");
  detail::check_defined(mask, "masked_fill", "mask");
  STRATA_CHECK(mask.dtype() == DType::Bool, "masked_fill: the mask must be bool, got ",
               detail::describe(mask));
  detail::check_same_device(x, mask, "masked_fill");
  // The mask broadcasts to x; x does not grow to the mask.
  STRATA_CHECK(broadcast_shapes(x.shape(), mask.shape(), "masked_fill") == x.shape(),
               "masked_fill: the mask ", detail::describe(mask), " does not broadcast to ",
               detail::describe(x));
  return where(mask, scalar_tensor(value, TensorOptions(x.dtype()).device(x.device())), x);
}

Tensor Tensor::flip(const std::vector<int64_t>& dims) const { return strata::flip(*this, dims); }
Tensor Tensor::repeat(const std::vector<int64_t>& repeats) const {
  return strata::repeat(*this, repeats);
}
Tensor Tensor::masked_fill(const Tensor& mask, double value) const {
  return strata::masked_fill(*this, mask, value);
}

}  // namespace strata
