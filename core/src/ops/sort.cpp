// Sorting and selection: sort, argsort, topk and kthvalue. Each runs the backend's one stable
// sort along an axis (the input seen as a contiguous [outer, size, inner]) and keeps all or
// part of its result, so ties resolve alike on every backend: equal values keep their order.
// NaN counts as the largest value, as in PyTorch. The values are differentiable: the gradient
// goes back to the position each value came from (scatter_add's kernel onto zeros).
#include <algorithm>

#include "internal.h"

namespace strata {

namespace {

using autograd::needs_grad;
using autograd::record;
using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

// x (at least 1-D) sorted along `axis`; values and indices shaped as x. Records nothing.
ValuesAndIndices sort_along(const Tensor& x, int64_t axis, bool descending) {
  ValuesAndIndices result{Tensor::empty(x.shape(), x.options()),
                          Tensor::empty(x.shape(), TensorOptions(kInt64).device(x.device()))};
  if (x.numel() == 0) return result;
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.size(d);
  for (int64_t d = axis + 1; d < x.dim(); ++d) inner *= x.size(d);
  detail::backend_of(x).sort(result.values, result.indices, x.detach().contiguous(), outer,
                             x.size(axis), inner, descending);
  return result;
}

// Makes `values` (x's entries at `indices` along `axis`; both of x's rank) differentiable: the
// gradient lands where each value came from, and every position not picked gets zero.
void record_picked(const char* name, const Tensor& x, Tensor& values, const Tensor& indices,
                   int64_t axis) {
  if (!needs_grad({&x})) return;
  record(name, {x}, values, [shape = x.shape(), axis, indices](const Tensor& g, const Needs&) {
    Tensor grad = zeros(shape, g.options());
    if (g.numel() > 0) {
      detail::backend_of(grad).scatter_add(grad, axis, indices,
                                           g.reshape(indices.shape()).contiguous());
    }
    // Linear in g: its own gradient gathers at the same indices.
    return Grads{autograd::linear_in_grad("sort_backward", g, grad,
                                          [axis, indices, g_shape = g.shape()](const Tensor& h) {
                                            return gather(h, axis, indices).reshape(g_shape);
                                          })};
  });
}

// A 0-dim x is sorted as [1] (PyTorch allows dim 0 or -1 for it) and its results are reshaped
// back: these give the 1-D view and the axis.
Tensor at_least_1d(const Tensor& x) { return x.dim() == 0 ? x.reshape({1}) : x; }

ValuesAndIndices restore_0d(const Tensor& x, ValuesAndIndices result) {
  if (x.dim() != 0 || result.values.numel() != 1) return result;
  return {result.values.reshape({}), result.indices.reshape({})};
}

}  // namespace

ValuesAndIndices sort(const Tensor& x, int64_t dim, bool descending) {
  detail::check_defined(x, "sort");
  const Tensor input = at_least_1d(x);
  const int64_t axis = normalize_axis(dim, x.dim(), "sort");
  ValuesAndIndices result = sort_along(input, axis, descending);
  record_picked("sort", input, result.values, result.indices, axis);
  return restore_0d(x, result);
}

Tensor argsort(const Tensor& x, int64_t dim, bool descending) {
  detail::check_defined(x, "argsort");
  const Tensor input = at_least_1d(x.detach());
  const int64_t axis = normalize_axis(dim, x.dim(), "argsort");
  Tensor indices = sort_along(input, axis, descending).indices;
  return x.dim() == 0 ? indices.reshape({}) : indices;
}

ValuesAndIndices topk(const Tensor& x, int64_t k, int64_t dim, bool largest, bool sorted) {
  static_cast<void>(sorted);  // always sorted (see ops.h)
  detail::check_defined(x, "topk");
  const Tensor input = at_least_1d(x);
  const int64_t axis = normalize_axis(dim, x.dim(), "topk");
  const int64_t size = input.size(axis);
  STRATA_CHECK(k >= 0 && k <= size, "topk: k = ", k, " is out of range for dimension ", axis,
               " of size ", size, " in ", detail::describe(x), " (expected 0 to ", size, ")");
  const ValuesAndIndices all = sort_along(input, axis, largest);
  ValuesAndIndices result{all.values.narrow(axis, 0, k).contiguous(),
                          all.indices.narrow(axis, 0, k).contiguous()};
  record_picked("topk", input, result.values, result.indices, axis);
  return restore_0d(x, result);
}

ValuesAndIndices kthvalue(const Tensor& x, int64_t k, int64_t dim, bool keepdim) {
  detail::check_defined(x, "kthvalue");
  const Tensor input = at_least_1d(x);
  const int64_t axis = normalize_axis(dim, x.dim(), "kthvalue");
  const int64_t size = input.size(axis);
  STRATA_CHECK(k >= 1 && k <= size, "kthvalue: k = ", k, " is out of range for dimension ", axis,
               " of size ", size, " in ", detail::describe(x), " (k counts from 1 to ", size, ")");
  const ValuesAndIndices all = sort_along(input, axis, false);
  ValuesAndIndices result{all.values.narrow(axis, k - 1, 1).contiguous(),
                          all.indices.narrow(axis, k - 1, 1).contiguous()};
  record_picked("kthvalue", input, result.values, result.indices, axis);
  if (x.dim() == 0) return restore_0d(x, result);
  if (keepdim) return result;
  return {result.values.squeeze(axis), result.indices.squeeze(axis)};
}

ValuesAndIndices Tensor::sort(int64_t dim, bool descending) const {
  return strata::sort(*this, dim, descending);
}
Tensor Tensor::argsort(int64_t dim, bool descending) const {
  return strata::argsort(*this, dim, descending);
}
ValuesAndIndices Tensor::topk(int64_t k, int64_t dim, bool largest, bool sorted) const {
  return strata::topk(*this, k, dim, largest, sorted);
}
ValuesAndIndices Tensor::kthvalue(int64_t k, int64_t dim, bool keepdim) const {
  return strata::kthvalue(*this, k, dim, keepdim);
}

}  // namespace strata
