// matmul with torch.matmul's rules: 1-D operands gain a dimension that is dropped again,
// batch dimensions broadcast, and every case reaches the backend as one batched product
// [B, M, K] @ [B, K, N] over strided views (transposed operands are not copied here).
#include <algorithm>

#include "strata/amp/autocast.h"
#include "internal.h"

namespace strata {

namespace {

using autograd::needs_grad;
using autograd::record;
using autograd::sum_to;
using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

// `t` ([batch..., R, C], already broadcast to `batch`) as a [B, R, C] view, copying only when
// its batch dimensions cannot be folded into one stride.
Tensor as_batched(const Tensor& t, const Shape& batch) {
  Shape full = batch;
  full.push_back(t.size(-2));
  full.push_back(t.size(-1));
  Tensor expanded = detail::broadcast_view(t, full);
  const int64_t rows = expanded.size(-2), cols = expanded.size(-1);
  Shape folded{numel_of(batch), rows, cols};
  Strides strides;
  if (detail::compute_view_strides(expanded.shape(), expanded.strides(), folded, strides)) {
    return detail::make_view(expanded, folded, strides, expanded.offset());
  }
  // Batch dims that cannot share one stride (say, one of them broadcast): materialize.
  Tensor copy = Tensor::empty(expanded.shape(), expanded.options());
  detail::backend_of(copy).copy(copy, expanded);
  return copy.detach().view(folded);
}

Tensor matmul_forward(const Tensor& a, const Tensor& b) {
  detail::check_defined(a, "matmul", "first operand");
  detail::check_defined(b, "matmul", "second operand");
  STRATA_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: both operands need at least one dimension, got ",
               detail::describe(a), " and ", detail::describe(b));
  detail::check_same_device(a, b, "matmul");
  STRATA_CHECK(a.dtype() == b.dtype() && is_floating(a.dtype()),
               "matmul: expected two floating operands of one dtype, got ", detail::describe(a),
               " and ", detail::describe(b));
  const Tensor a2 = a.dim() == 1 ? a.detach().unsqueeze(0) : a.detach();
  const Tensor b2 = b.dim() == 1 ? b.detach().unsqueeze(1) : b.detach();
  const int64_t m = a2.size(-2), k = a2.size(-1), k2 = b2.size(-2), n = b2.size(-1);
  STRATA_CHECK(k == k2, "matmul: shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()),
               " cannot be multiplied (", k, " != ", k2, ")");
  const Shape batch_a(a2.shape().begin(), a2.shape().end() - 2);
  const Shape batch_b(b2.shape().begin(), b2.shape().end() - 2);
  const bool batches_match = [&] {
    for (size_t i = 0; i < std::min(batch_a.size(), batch_b.size()); ++i) {
      const int64_t x = batch_a[batch_a.size() - 1 - i], y = batch_b[batch_b.size() - 1 - i];
      if (x != y && x != 1 && y != 1) return false;
    }
    return true;
  }();
  STRATA_CHECK(batches_match, "matmul: the batch dimensions of ", shape_str(a.shape()), " and ",
               shape_str(b.shape()), " cannot be broadcast together (", shape_str(batch_a),
               " vs ", shape_str(batch_b), ")");
  const Shape batch = broadcast_shapes(batch_a, batch_b, "matmul");

  Shape out_shape = batch;
  if (a.dim() > 1) out_shape.push_back(m);
  if (b.dim() > 1) out_shape.push_back(n);
  Tensor out = Tensor::empty(out_shape, a.options());
  if (out.numel() == 0) return out;
  if (k == 0) {
    out.fill_(0.0);
    return out;
  }
  const Tensor out3 = detail::make_view(out, {numel_of(batch), m, n},
                                        contiguous_strides({numel_of(batch), m, n}), 0);
  detail::backend_of(out).matmul(out3, as_batched(a2, batch), as_batched(b2, batch), false);
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  if (amp::needs_low_precision({&a, &b})) {
    return matmul(amp::cast_to_low_precision(a), amp::cast_to_low_precision(b));
  }
  Tensor out = matmul_forward(a, b);
  if (needs_grad({&a, &b})) {
    record("matmul", {a, b}, out, [a, b](const Tensor& g, const Needs& n) {
      // With a2 = a as a matrix and b2 = b as a matrix: g2 = g with the dropped dims restored,
      // grad a2 = g2 @ b2^T and grad b2 = a2^T @ g2, summed over broadcast batch dims.
      const Tensor a2 = a.dim() == 1 ? a.unsqueeze(0) : a;
      const Tensor b2 = b.dim() == 1 ? b.unsqueeze(1) : b;
      Tensor g2 = g;
      if (a.dim() == 1) g2 = g2.unsqueeze(b.dim() == 1 ? 0 : -2);
      if (b.dim() == 1) g2 = g2.unsqueeze(-1);
      Grads grads(2);
      if (n[0]) grads[0] = sum_to(matmul(g2, b2.transpose(-1, -2)), a2.shape()).reshape(a.shape());
      if (n[1]) grads[1] = sum_to(matmul(a2.transpose(-1, -2), g2), b2.shape()).reshape(b.shape());
      return grads;
    });
  }
  return out;
}

Tensor Tensor::matmul(const Tensor& other) const { return strata::matmul(*this, other); }

}  // namespace strata
