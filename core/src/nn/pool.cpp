// nn::functional pooling: max_pool1d/2d, avg_pool1d/2d and adaptive_avg_pool2d. Validate, run
// the backend's pool2d kernels, record the backward (pool2d_backward). The 1-D forms pool
// [N, C, 1, L]; unbatched inputs ([C, L] / [C, H, W]) run as a batch of one, as PyTorch's.
// adaptive_avg_pool2d uses the pooling kernel when the output size divides the input size, and
// otherwise the separable form out = A_h @ x @ A_w^T with constant averaging matrices, which
// matmul differentiates.
#include <string>
#include <vector>

#include "internal.h"
#include "strata/nn/functional.h"

namespace strata::nn::functional {

namespace {

using autograd::needs_grad;
using autograd::record;
using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

// "3x3" for 2-D pooling, "3" for 1-D.
std::string pair_str(int64_t spatial, int64_t h, int64_t w) {
  return spatial == 2 ? std::to_string(h) + "x" + std::to_string(w) : std::to_string(w);
}

// Checks a pooling call; for the 1-D forms the params' height entries are the identity.
void check_pool(const char* op, int64_t spatial, const Tensor& x, const Pool2dParams& p) {
  detail::check_defined(x, op, "input");
  const int64_t rank = spatial + 2;
  STRATA_CHECK(x.dim() == rank || x.dim() == rank - 1, op, ": expected a ", rank - 1,
               "-D (unbatched) or ", rank, "-D (batched) input, got ", detail::describe(x));
  STRATA_CHECK(is_floating(x.dtype()), op, ": expected an f32 or f64 input, got ",
               detail::describe(x));
  STRATA_CHECK(p.kernel_h >= 1 && p.kernel_w >= 1, op, ": kernel_size must be >= 1, got ",
               pair_str(spatial, p.kernel_h, p.kernel_w), " (input ", detail::describe(x), ")");
  STRATA_CHECK(p.stride_h >= 1 && p.stride_w >= 1, op, ": stride must be >= 1, got ",
               pair_str(spatial, p.stride_h, p.stride_w), " (input ", detail::describe(x), ")");
  STRATA_CHECK(p.pad_h >= 0 && p.pad_w >= 0, op, ": padding must be >= 0, got ",
               pair_str(spatial, p.pad_h, p.pad_w), " (input ", detail::describe(x), ")");
  STRATA_CHECK(p.pad_h <= p.kernel_h / 2 && p.pad_w <= p.kernel_w / 2, op, ": padding ",
               pair_str(spatial, p.pad_h, p.pad_w), " must be at most half the kernel size ",
               pair_str(spatial, p.kernel_h, p.kernel_w), " (input ", detail::describe(x), ")");
  const int64_t in_w = x.size(-1), in_h = spatial == 2 ? x.size(-2) : 1;
  STRATA_CHECK(in_h + 2 * p.pad_h >= p.kernel_h && in_w + 2 * p.pad_w >= p.kernel_w, op,
               ": kernel ", pair_str(spatial, p.kernel_h, p.kernel_w),
               " is larger than the padded input ",
               pair_str(spatial, in_h + 2 * p.pad_h, in_w + 2 * p.pad_w), " (input ",
               detail::describe(x), ")");
}

const char* record_name(PoolMode mode) {
  return mode == PoolMode::Max ? "max_pool2d" : "avg_pool2d";
}

// Pools validated 4-D x [N, C, H, W].
Tensor pool2d_4d(PoolMode mode, const Tensor& x, const Pool2dParams& p) {
  const int64_t out_h = (x.size(2) + 2 * p.pad_h - p.kernel_h) / p.stride_h + 1;
  const int64_t out_w = (x.size(3) + 2 * p.pad_w - p.kernel_w) / p.stride_w + 1;
  const Tensor xc = x.detach().contiguous();
  Tensor out = Tensor::empty({x.size(0), x.size(1), out_h, out_w}, x.options());
  if (out.numel() == 0) return out;
  detail::backend_of(out).pool2d_forward(mode, out, xc, p);
  if (needs_grad({&x})) {
    record(record_name(mode), {x}, out,
           [mode, xc, out_saved = out.detach(), p](const Tensor& g, const Needs&) {
             const Tensor gc = g.contiguous();
             Tensor grad_x = Tensor::empty(xc.shape(), xc.options());
             detail::backend_of(gc).pool2d_backward(mode, grad_x, gc, xc, out_saved, p);
             return Grads{grad_x};
           });
  }
  return out;
}

Tensor pool2d(const char* op, PoolMode mode, const Tensor& x, Size2 kernel,
              std::optional<Size2> stride, Size2 padding) {
  const Size2 st = stride.value_or(kernel);
  const Pool2dParams p{kernel.h, kernel.w, st.h, st.w, padding.h, padding.w};
  check_pool(op, 2, x, p);
  if (x.dim() == 3) return pool2d_4d(mode, x.unsqueeze(0), p).squeeze(0);
  return pool2d_4d(mode, x, p);
}

Tensor pool1d(const char* op, PoolMode mode, const Tensor& x, int64_t kernel,
              std::optional<int64_t> stride, int64_t padding) {
  const Pool2dParams p{1, kernel, 1, stride.value_or(kernel), 0, padding};
  check_pool(op, 1, x, p);
  // [N, C, L] -> [N, C, 1, L]
  const Tensor x4 = x.dim() == 2 ? x.unsqueeze(0).unsqueeze(2) : x.unsqueeze(2);
  const Tensor out = pool2d_4d(mode, x4, p).squeeze(2);
  return x.dim() == 2 ? out.squeeze(0) : out;
}

PoolMode avg_mode(bool count_include_pad) {
  return count_include_pad ? PoolMode::AvgIncludePad : PoolMode::AvgExcludePad;
}

// [out, size] averaging matrix of adaptive pooling along one axis: row i averages the window
// [floor(i * size / out), ceil((i + 1) * size / out)).
Tensor adaptive_matrix(int64_t out, int64_t size, const Tensor& like) {
  std::vector<double> values(static_cast<size_t>(out * size), 0.0);
  for (int64_t i = 0; i < out; ++i) {
    const int64_t begin = i * size / out;
    const int64_t end = ((i + 1) * size + out - 1) / out;
    for (int64_t j = begin; j < end; ++j) {
      values[static_cast<size_t>(i * size + j)] = 1.0 / static_cast<double>(end - begin);
    }
  }
  return from_vector<double>(values, {out, size}).to(like.dtype()).to(like.device());
}

}  // namespace

Tensor max_pool1d(const Tensor& x, int64_t kernel_size, std::optional<int64_t> stride,
                  int64_t padding) {
  return pool1d("max_pool1d", PoolMode::Max, x, kernel_size, stride, padding);
}

Tensor max_pool2d(const Tensor& x, Size2 kernel_size, std::optional<Size2> stride,
                  Size2 padding) {
  return pool2d("max_pool2d", PoolMode::Max, x, kernel_size, stride, padding);
}

Tensor avg_pool1d(const Tensor& x, int64_t kernel_size, std::optional<int64_t> stride,
                  int64_t padding, bool count_include_pad) {
  return pool1d("avg_pool1d", avg_mode(count_include_pad), x, kernel_size, stride, padding);
}

Tensor avg_pool2d(const Tensor& x, Size2 kernel_size, std::optional<Size2> stride,
                  Size2 padding, bool count_include_pad) {
  return pool2d("avg_pool2d", avg_mode(count_include_pad), x, kernel_size, stride, padding);
}

Tensor adaptive_avg_pool2d(const Tensor& x, Size2 output_size) {
  const char* op = "adaptive_avg_pool2d";
  detail::check_defined(x, op, "input");
  STRATA_CHECK(x.dim() == 3 || x.dim() == 4, op,
               ": expected a 3-D (unbatched) or 4-D (batched) input, got ", detail::describe(x));
  STRATA_CHECK(is_floating(x.dtype()), op, ": expected an f32 or f64 input, got ",
               detail::describe(x));
  STRATA_CHECK(output_size.h >= 1 && output_size.w >= 1, op, ": output_size must be >= 1, got ",
               output_size.h, "x", output_size.w, " (input ", detail::describe(x), ")");
  const int64_t in_h = x.size(-2), in_w = x.size(-1);
  STRATA_CHECK(in_h >= 1 && in_w >= 1, op, ": expected a non-empty spatial size, got ",
               detail::describe(x));
  if (in_h % output_size.h == 0 && in_w % output_size.w == 0) {
    // Equal windows that tile the input: plain average pooling.
    const int64_t kh = in_h / output_size.h, kw = in_w / output_size.w;
    const Pool2dParams p{kh, kw, kh, kw, 0, 0};
    if (x.dim() == 3) return pool2d_4d(PoolMode::AvgIncludePad, x.unsqueeze(0), p).squeeze(0);
    return pool2d_4d(PoolMode::AvgIncludePad, x, p);
  }
  // x [..., H, W]: A_h [out_h, H] @ x @ A_w^T [W, out_w].
  const Tensor a_h = adaptive_matrix(output_size.h, in_h, x);
  const Tensor a_w_t = adaptive_matrix(output_size.w, in_w, x).t();
  return matmul(matmul(a_h, x), a_w_t);
}

}  // namespace strata::nn::functional
