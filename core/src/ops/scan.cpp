// Running sums and products: cumsum and cumprod along one dimension, through the backend's
// scan of a contiguous [outer, size, inner] view. Integer and bool inputs give int64, as
// PyTorch's do; floats keep their dtype (the kernels accumulate in a wider type). The
// backward of each is below its forward; cumprod's stays right where the input has zeros.
#include "internal.h"
#include "strata/amp/autocast.h"

namespace strata {

namespace {

using autograd::needs_grad;
using autograd::record;
using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

// The forward of both, without recording; axis is in [0, max(rank, 1)).
Tensor scan_forward(ScanOp op, const Tensor& x, int64_t axis) {
  const DType dtype = is_floating(x.dtype()) ? x.dtype() : DType::Int64;
  Tensor out = Tensor::empty(x.shape(), TensorOptions(dtype).device(x.device()));
  if (out.numel() == 0) return out;
  int64_t outer = 1, size = 1, inner = 1;
  if (x.dim() > 0) {
    for (int64_t d = 0; d < axis; ++d) outer *= x.size(d);
    size = x.size(axis);
    for (int64_t d = axis + 1; d < x.dim(); ++d) inner *= x.size(d);
  }
  detail::backend_of(out).scan(op, out, detail::convert(x.detach(), dtype).contiguous(), outer,
                               size, inner);
  return out;
}

// The sums from each position to the end of `axis`: sum over j >= i of t[j].
Tensor reverse_cumsum(const Tensor& t, int64_t axis) {
  if (t.dim() == 0) return t;
  return flip(cumsum(flip(t, {axis}), axis), {axis});
}

Tensor scalar_like(double value, const Tensor& like) {
  return scalar_tensor(value, TensorOptions(like.dtype()).device(like.device()));
}

// d(cumprod x)/dx applied to g. With out_j = prod_{i <= j} x_i, the gradient at k is
// sum_{j >= k} g_j prod_{i <= j, i != k} x_i. Let z be the first zero of the row:
// - k < z: the product is out_j / x_k (x_k != 0), so grad_k = reverse_cumsum(g out)_k / x_k
//   (out_j = 0 for j >= z, so the terms past z vanish as they should);
// - k = z: the product is cumprod of x with x_z replaced by 1, so grad_z is the reverse
//   cumsum of g times that, at z (later zeros in it zero the later terms, as they should);
// - k > z: every product holds x_z = 0, so grad_k = 0.
// Rows without zeros take the first case everywhere: PyTorch's formula for them.
Tensor cumprod_backward(const Tensor& g, const Tensor& x, const Tensor& out, int64_t axis) {
  if (x.dim() == 0) return g;
  const Tensor is_zero = eq(x, 0.0);
  const Tensor zeros_so_far = cumsum(is_zero, axis);  // int64
  const Tensor before_first_zero = eq(zeros_so_far, 0.0);
  const Tensor first_zero = where(is_zero, eq(zeros_so_far, 1.0), is_zero);
  const Tensor zero = scalar_like(0.0, g), one = scalar_like(1.0, x);
  const Tensor safe_x = where(before_first_zero, x, one);
  const Tensor before = div(reverse_cumsum(mul(g, out), axis), safe_x);
  const Tensor x_without_first_zero = where(first_zero, one, x);
  const Tensor at = reverse_cumsum(mul(g, cumprod(x_without_first_zero, axis)), axis);
  return add(where(before_first_zero, before, zero), where(first_zero, at, zero));
}

}  // namespace

Tensor cumsum(const Tensor& x, int64_t dim) {
  if (amp::needs_float32({&x})) {
    return cumsum(amp::cast_to_float32(x), dim);
  }
  detail::check_defined(x, "cumsum");
  const int64_t axis = normalize_axis(dim, x.dim(), "cumsum");
  Tensor out = scan_forward(ScanOp::Sum, x, axis);
  if (needs_grad({&x})) {
    record("cumsum", {x}, out,
           [axis](const Tensor& g, const Needs&) { return Grads{reverse_cumsum(g, axis)}; });
  }
  return out;
}

Tensor cumprod(const Tensor& x, int64_t dim) {
  if (amp::needs_float32({&x})) {
    return cumprod(amp::cast_to_float32(x), dim);
  }
  detail::check_defined(x, "cumprod");
  const int64_t axis = normalize_axis(dim, x.dim(), "cumprod");
  Tensor out = scan_forward(ScanOp::Prod, x, axis);
  if (needs_grad({&x})) {
    record("cumprod", {x}, out, [x, out = out.detach(), axis](const Tensor& g, const Needs&) {
      return Grads{cumprod_backward(g, x, out, axis)};
    });
    autograd::mark_once_differentiable(out);
  }
  return out;
}

Tensor Tensor::cumsum(int64_t dim) const { return strata::cumsum(*this, dim); }
Tensor Tensor::cumprod(int64_t dim) const { return strata::cumprod(*this, dim); }

}  // namespace strata
