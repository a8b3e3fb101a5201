// nn::functional pooling: max_pool1d/2d (with or without indices), max_unpool1d/2d,
// avg_pool1d/2d and adaptive_avg_pool2d. Validate, run the backend's pooling kernels, record
// the backward. The 1-D forms pool [N, C, 1, L]; unbatched inputs ([C, L] / [C, H, W]) run as
// a batch of one, as PyTorch's. Output sizes (ceil_mode included) are decided here; the
// kernels read them from out's shape. Max pooling's backward needs only the saved indices.
// max_unpool is composed from scatter_add / gather, so it has no kernel of its own.
// adaptive_avg_pool2d uses the pooling kernel when the output size divides the input size, and
// otherwise the separable form out = A_h @ x @ A_w^T with constant averaging matrices, which
// matmul differentiates.
#include <string>
#include <utility>
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

// What pooling and unpooling ask of their input: a floating [N, C, *] (or unbatched [C, *])
// tensor with `spatial` trailing axes.
void check_input(const char* op, int64_t spatial, const Tensor& x) {
  detail::check_defined(x, op, "input");
  const int64_t rank = spatial + 2;
  STRATA_CHECK(x.dim() == rank || x.dim() == rank - 1, op, ": expected a ", rank - 1,
               "-D (unbatched) or ", rank, "-D (batched) input, got ", detail::describe(x));
  STRATA_CHECK(is_floating(x.dtype()), op,
               ": expected a floating input (f32, f64, f16 or bf16), got ", detail::describe(x));
}

// The window settings pooling and unpooling share: kernel and stride >= 1, padding >= 0.
void check_window(const char* op, int64_t spatial, const Tensor& x, const Pool2dParams& p) {
  STRATA_CHECK(p.kernel_h >= 1 && p.kernel_w >= 1, op, ": kernel_size must be >= 1, got ",
               pair_str(spatial, p.kernel_h, p.kernel_w), " (input ", detail::describe(x), ")");
  STRATA_CHECK(p.stride_h >= 1 && p.stride_w >= 1, op, ": stride must be >= 1, got ",
               pair_str(spatial, p.stride_h, p.stride_w), " (input ", detail::describe(x), ")");
  STRATA_CHECK(p.pad_h >= 0 && p.pad_w >= 0, op, ": padding must be >= 0, got ",
               pair_str(spatial, p.pad_h, p.pad_w), " (input ", detail::describe(x), ")");
}

// floor(a / b) for b > 0 (C++ division truncates toward zero).
int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// PyTorch's pooling_output_shape: floor((size + 2 pad - dilation (kernel - 1) - 1) / stride) + 1,
// or the ceiling with ceil_mode, where a last window starting beyond the input and its left
// padding is dropped.
int64_t pooled_size(int64_t size, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation,
                    bool ceil_mode) {
  const int64_t span = size + 2 * pad - dilation * (kernel - 1) - 1;
  int64_t out = floor_div(span + (ceil_mode ? stride - 1 : 0), stride) + 1;
  if (ceil_mode && (out - 1) * stride >= size + pad) --out;
  return out;
}

// The first output position along one axis whose window has no in-bounds tap, or -1. Only a
// window starting in the padding can miss the input: with dilation > pad it may step over it.
int64_t empty_window(int64_t size, int64_t out, int64_t kernel, int64_t stride, int64_t pad,
                     int64_t dilation) {
  for (int64_t i = 0; i < out && i * stride - pad < 0; ++i) {
    const int64_t start = i * stride - pad;
    const int64_t first = start + (-start + dilation - 1) / dilation * dilation;
    if (first >= size || first > start + (kernel - 1) * dilation) return i;
  }
  return -1;
}

// Checks a pooling call and returns its output size {P, Q}; for the 1-D forms the params'
// height entries are the identity (P = 1).
std::pair<int64_t, int64_t> check_pool(const char* op, int64_t spatial, const Tensor& x,
                                       const Pool2dParams& p, bool ceil_mode) {
  check_input(op, spatial, x);
  check_window(op, spatial, x, p);
  STRATA_CHECK(p.dilation_h >= 1 && p.dilation_w >= 1, op, ": dilation must be >= 1, got ",
               pair_str(spatial, p.dilation_h, p.dilation_w), " (input ", detail::describe(x),
               ")");
  STRATA_CHECK(p.pad_h <= p.kernel_h / 2 && p.pad_w <= p.kernel_w / 2, op, ": padding ",
               pair_str(spatial, p.pad_h, p.pad_w), " must be at most half the kernel size ",
               pair_str(spatial, p.kernel_h, p.kernel_w), " (input ", detail::describe(x), ")");
  const int64_t in_w = x.size(-1), in_h = spatial == 2 ? x.size(-2) : 1;
  const int64_t out_h = pooled_size(in_h, p.kernel_h, p.stride_h, p.pad_h, p.dilation_h, ceil_mode);
  const int64_t out_w = pooled_size(in_w, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w, ceil_mode);
  const bool dilated = p.dilation_h != 1 || p.dilation_w != 1;
  // An output size below 1 means the (dilated) kernel is wider than the padded input.
  STRATA_CHECK(out_h >= 1 && out_w >= 1, op, ": kernel ",
               pair_str(spatial, p.kernel_h, p.kernel_w),
               dilated ? " (" + pair_str(spatial, p.dilation_h * (p.kernel_h - 1) + 1,
                                         p.dilation_w * (p.kernel_w - 1) + 1) + " dilated)"
                       : std::string(),
               " is larger than the padded input ",
               pair_str(spatial, in_h + 2 * p.pad_h, in_w + 2 * p.pad_w), " (input ",
               detail::describe(x), ")");
  // NOTE: PyTorch returns -inf there, with an index outside the plane that its backward then
  // writes through; Strata refuses the configuration instead.
  const int64_t empty_h = empty_window(in_h, out_h, p.kernel_h, p.stride_h, p.pad_h, p.dilation_h);
  const int64_t empty_w = empty_window(in_w, out_w, p.kernel_w, p.stride_w, p.pad_w, p.dilation_w);
  STRATA_CHECK(empty_h < 0 && empty_w < 0, op, ": the window of output ",
               empty_h >= 0 ? "row " + std::to_string(empty_h)
                            : (spatial == 2 ? "column " : "position ") + std::to_string(empty_w),
               " holds only padding (kernel ", pair_str(spatial, p.kernel_h, p.kernel_w),
               ", dilation ", pair_str(spatial, p.dilation_h, p.dilation_w), ", padding ",
               pair_str(spatial, p.pad_h, p.pad_w), ", input ", detail::describe(x), ")");
  return {out_h, out_w};
}

// ---- max pooling --------------------------------------------------------------------------

// What the indices of a max pooling hold: the flat positions the caller asked for (int64,
// PyTorch's), or, when only the tape reads them, each maximum's tap number in its window
// (uint8, an eighth of the memory; windows of at most 256 taps).
enum class PoolIndices { Positions, TapeOnly };

DType index_dtype(PoolIndices form, const Pool2dParams& p) {
  const bool taps = form == PoolIndices::TapeOnly && p.kernel_h * p.kernel_w <= 256;
  return taps ? DType::UInt8 : DType::Int64;
}

// Max-pools validated 4-D x [N, C, H, W] to values and indices [N, C, out_h, out_w].
std::pair<Tensor, Tensor> max_pool2d_4d(const Tensor& x, const Pool2dParams& p, int64_t out_h,
                                        int64_t out_w, PoolIndices form) {
  const Tensor xc = x.detach().contiguous();
  Tensor out = Tensor::empty({x.size(0), x.size(1), out_h, out_w}, x.options());
  Tensor indices = Tensor::empty(out.shape(), x.options().dtype(index_dtype(form, p)));
  if (out.numel() == 0) return {out, indices};
  detail::backend_of(out).max_pool2d_forward(out, indices, xc, p);
  if (needs_grad({&x})) {
    // The saved indices route the gradient; x itself is not kept.
    record("max_pool2d", {x}, out,
           [indices, x_shape = x.shape(), p](const Tensor& g, const Needs&) {
             const Tensor gc = g.contiguous();
             Tensor grad_x = Tensor::empty(x_shape, gc.options());
             detail::backend_of(gc).max_pool2d_backward(grad_x, gc, indices, p);
             return Grads{grad_x};
           });
    autograd::mark_once_differentiable(out);
  }
  return {out, indices};
}

std::pair<Tensor, Tensor> max_pool2d_impl(const char* op, const Tensor& x, Size2 kernel,
                                          std::optional<Size2> stride, Size2 padding,
                                          Size2 dilation, bool ceil_mode, PoolIndices form) {
  const Size2 st = stride.value_or(kernel);
  const Pool2dParams p{kernel.h, kernel.w, st.h, st.w, padding.h, padding.w, dilation.h,
                       dilation.w};
  const auto [out_h, out_w] = check_pool(op, 2, x, p, ceil_mode);
  if (x.dim() == 3) {
    auto [out, indices] = max_pool2d_4d(x.unsqueeze(0), p, out_h, out_w, form);
    return {out.squeeze(0), indices.squeeze(0)};
  }
  return max_pool2d_4d(x, p, out_h, out_w, form);
}

std::pair<Tensor, Tensor> max_pool1d_impl(const char* op, const Tensor& x, int64_t kernel,
                                          std::optional<int64_t> stride, int64_t padding,
                                          int64_t dilation, bool ceil_mode, PoolIndices form) {
  const Pool2dParams p{1, kernel, 1, stride.value_or(kernel), 0, padding, 1, dilation};
  const auto [out_h, out_w] = check_pool(op, 1, x, p, ceil_mode);
  // [N, C, L] -> [N, C, 1, L]; a plane's flat index h * L + w is then the position w along L.
  const Tensor x4 = x.dim() == 2 ? x.unsqueeze(0).unsqueeze(2) : x.unsqueeze(2);
  auto [out, indices] = max_pool2d_4d(x4, p, out_h, out_w, form);
  out = out.squeeze(2);
  indices = indices.squeeze(2);
  if (x.dim() == 2) return {out.squeeze(0), indices.squeeze(0)};
  return {out, indices};
}

// ---- max unpooling ------------------------------------------------------------------------

// The unpooled size along one axis: `requested` when given (within stride of the default, as
// PyTorch's _unpool_output_size), else (in - 1) * stride - 2 * pad + kernel.
int64_t unpooled_size(const char* op, const char* axis, int64_t in, int64_t kernel,
                      int64_t stride, int64_t pad, std::optional<int64_t> requested,
                      const Tensor& x) {
  const int64_t fallback = (in - 1) * stride - 2 * pad + kernel;
  if (!requested) {
    STRATA_CHECK(fallback >= 1, op, ": the default output ", axis, " (", in, " - 1) * ", stride,
                 " - 2 * ", pad, " + ", kernel, " = ", fallback, " is below 1 (input ",
                 detail::describe(x), ")");
    return fallback;
  }
  STRATA_CHECK(*requested > fallback - stride && *requested < fallback + stride &&
                   *requested >= 1,
               op, ": output_size ", axis, " ", *requested, " must lie strictly between ",
               fallback - stride, " and ", fallback + stride, " (input ", detail::describe(x),
               ", kernel ", kernel, ", stride ", stride, ", padding ", pad, ")");
  return *requested;
}

// Checks what every max_unpool call shares: x [N, C, *] (or unbatched) and its indices.
void check_unpool(const char* op, int64_t spatial, const Tensor& x, const Tensor& indices,
                  const Pool2dParams& p) {
  check_input(op, spatial, x);
  detail::check_defined(indices, op, "indices");
  STRATA_CHECK(indices.dtype() == DType::Int64, op, ": indices must be int64, got ",
               detail::describe(indices));
  STRATA_CHECK(indices.shape() == x.shape(), op, ": indices ", detail::describe(indices),
               " must have the input's shape ", detail::describe(x));
  detail::check_same_device(x, indices, op);
  check_window(op, spatial, x, p);
}

// x, indices [N, C, P, Q] -> out [N, C, out_h, out_w] with out.plane[indices] = x.
// NOTE: PyTorch leaves repeated indices within a plane undefined (its CPU keeps the last
// write, its CUDA any one); here they get the mean of their values — the value itself for
// the repeats that overlapping max-pool windows make, which all carry one element's value.
// The backward is PyTorch's: each input gets the gradient of the position it went to.
Tensor max_unpool2d_4d(const char* op, int64_t spatial, const Tensor& x, const Tensor& indices,
                       int64_t out_h, int64_t out_w) {
  const int64_t n = x.size(0), c = x.size(1), plane = out_h * out_w;
  // [N, C, P * Q]: gather / scatter_add along dim 2 address one plane per (n, c).
  const Tensor index3 = indices.reshape({n, c, -1}).contiguous();
  if (index3.numel() > 0) {
    NoGradGuard no_grad;
    const int64_t lo = min(index3).item<int64_t>(), hi = max(index3).item<int64_t>();
    STRATA_CHECK(lo >= 0 && hi < plane, op, ": index ", lo < 0 ? lo : hi,
                 " is out of range for an output plane of ",
                 spatial == 2 ? pair_str(2, out_h, out_w) + " = " : std::string(), plane,
                 " elements (input ", detail::describe(x), ", indices ",
                 detail::describe(indices), ")");
  }
  Tensor out;
  {
    NoGradGuard no_grad;
    Tensor sums = zeros({n, c, plane}, x.options());
    Tensor counts = zeros({n, c, plane}, x.options());
    if (index3.numel() > 0) {
      const Tensor x3 = x.detach().reshape({n, c, -1}).contiguous();
      Backend& backend = detail::backend_of(x);
      backend.scatter_add(sums, 2, index3, x3);
      backend.scatter_add(counts, 2, index3, ones(x3.shape(), x.options()));
    }
    out = div(sums, clamp(counts, 1.0, std::nullopt)).reshape({n, c, out_h, out_w});
  }
  if (needs_grad({&x})) {
    record(spatial == 2 ? "max_unpool2d" : "max_unpool1d", {x}, out,
           [index3, x_shape = x.shape()](const Tensor& g, const Needs&) {
             // grad_x [N, C, P * Q] = grad_out [N, C, plane] at index3, along dim 2.
             const Tensor g3 = g.reshape({g.size(0), g.size(1), -1}).contiguous();
             Tensor grad_x = Tensor::empty(index3.shape(), g.options());
             if (grad_x.numel() > 0) detail::backend_of(g3).gather(grad_x, g3, 2, index3);
             return Grads{grad_x.reshape(x_shape)};
           });
    autograd::mark_once_differentiable(out);
  }
  return out;
}

// ---- average pooling ----------------------------------------------------------------------

// Average-pools validated 4-D x [N, C, H, W] (dilation 1, floor mode).
Tensor avg_pool2d_4d(const Tensor& x, const Pool2dParams& p, bool count_include_pad) {
  const int64_t out_h = pooled_size(x.size(2), p.kernel_h, p.stride_h, p.pad_h, 1, false);
  const int64_t out_w = pooled_size(x.size(3), p.kernel_w, p.stride_w, p.pad_w, 1, false);
  const Tensor xc = x.detach().contiguous();
  Tensor out = Tensor::empty({x.size(0), x.size(1), out_h, out_w}, x.options());
  if (out.numel() == 0) return out;
  detail::backend_of(out).avg_pool2d_forward(out, xc, p, count_include_pad);
  if (needs_grad({&x})) {
    record("avg_pool2d", {x}, out,
           [x_shape = x.shape(), p, count_include_pad](const Tensor& g, const Needs&) {
             const Tensor gc = g.contiguous();
             Tensor grad_x = Tensor::empty(x_shape, gc.options());
             detail::backend_of(gc).avg_pool2d_backward(grad_x, gc, p, count_include_pad);
             // Linear in g: its own gradient is the pooling itself.
             return Grads{autograd::linear_in_grad("avg_pool2d_backward", g, grad_x,
                                                   [p, count_include_pad](const Tensor& h) {
                                                     return avg_pool2d_4d(h, p, count_include_pad);
                                                   })};
           });
  }
  return out;
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

std::pair<Tensor, Tensor> max_pool1d_with_indices(const Tensor& x, int64_t kernel_size,
                                                  std::optional<int64_t> stride,
                                                  int64_t padding, int64_t dilation,
                                                  bool ceil_mode) {
  return max_pool1d_impl("max_pool1d_with_indices", x, kernel_size, stride, padding, dilation,
                         ceil_mode, PoolIndices::Positions);
}

std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x, Size2 kernel_size,
                                                  std::optional<Size2> stride, Size2 padding,
                                                  Size2 dilation, bool ceil_mode) {
  return max_pool2d_impl("max_pool2d_with_indices", x, kernel_size, stride, padding, dilation,
                         ceil_mode, PoolIndices::Positions);
}

Tensor max_pool1d(const Tensor& x, int64_t kernel_size, std::optional<int64_t> stride,
                  int64_t padding, int64_t dilation, bool ceil_mode) {
  return max_pool1d_impl("max_pool1d", x, kernel_size, stride, padding, dilation, ceil_mode,
                         PoolIndices::TapeOnly)
      .first;
}

Tensor max_pool2d(const Tensor& x, Size2 kernel_size, std::optional<Size2> stride,
                  Size2 padding, Size2 dilation, bool ceil_mode) {
  return max_pool2d_impl("max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode,
                         PoolIndices::TapeOnly)
      .first;
}

Tensor max_unpool1d(const Tensor& x, const Tensor& indices, int64_t kernel_size,
                    std::optional<int64_t> stride, int64_t padding,
                    std::optional<int64_t> output_size) {
  const char* op = "max_unpool1d";
  const Pool2dParams p{1, kernel_size, 1, stride.value_or(kernel_size), 0, padding, 1, 1};
  check_unpool(op, 1, x, indices, p);
  const int64_t out_l =
      unpooled_size(op, "length", x.size(-1), p.kernel_w, p.stride_w, p.pad_w, output_size, x);
  // [N, C, L] -> [N, C, 1, L], unbatched [C, L] -> [1, C, 1, L].
  const auto as4 = [&](const Tensor& t) {
    return t.dim() == 2 ? t.unsqueeze(0).unsqueeze(2) : t.unsqueeze(2);
  };
  const Tensor out = max_unpool2d_4d(op, 1, as4(x), as4(indices), 1, out_l).squeeze(2);
  return x.dim() == 2 ? out.squeeze(0) : out;
}

Tensor max_unpool2d(const Tensor& x, const Tensor& indices, Size2 kernel_size,
                    std::optional<Size2> stride, Size2 padding,
                    std::optional<Size2> output_size) {
  const char* op = "max_unpool2d";
  const Size2 st = stride.value_or(kernel_size);
  const Pool2dParams p{kernel_size.h, kernel_size.w, st.h, st.w, padding.h, padding.w, 1, 1};
  check_unpool(op, 2, x, indices, p);
  const auto requested = [&](bool height) -> std::optional<int64_t> {
    if (!output_size) return std::nullopt;
    return height ? output_size->h : output_size->w;
  };
  const int64_t out_h = unpooled_size(op, "height", x.size(-2), p.kernel_h, p.stride_h, p.pad_h,
                                      requested(true), x);
  const int64_t out_w = unpooled_size(op, "width", x.size(-1), p.kernel_w, p.stride_w, p.pad_w,
                                      requested(false), x);
  if (x.dim() == 3) {
    return max_unpool2d_4d(op, 2, x.unsqueeze(0), indices.unsqueeze(0), out_h, out_w).squeeze(0);
  }
  return max_unpool2d_4d(op, 2, x, indices, out_h, out_w);
}

Tensor avg_pool1d(const Tensor& x, int64_t kernel_size, std::optional<int64_t> stride,
                  int64_t padding, bool count_include_pad) {
  const Pool2dParams p{1, kernel_size, 1, stride.value_or(kernel_size), 0, padding, 1, 1};
  check_pool("avg_pool1d", 1, x, p, false);
  // [N, C, L] -> [N, C, 1, L]
  const Tensor x4 = x.dim() == 2 ? x.unsqueeze(0).unsqueeze(2) : x.unsqueeze(2);
  const Tensor out = avg_pool2d_4d(x4, p, count_include_pad).squeeze(2);
  return x.dim() == 2 ? out.squeeze(0) : out;
}

Tensor avg_pool2d(const Tensor& x, Size2 kernel_size, std::optional<Size2> stride,
                  Size2 padding, bool count_include_pad) {
  const Size2 st = stride.value_or(kernel_size);
  const Pool2dParams p{kernel_size.h, kernel_size.w, st.h, st.w, padding.h, padding.w, 1, 1};
  check_pool("avg_pool2d", 2, x, p, false);
  if (x.dim() == 3) return avg_pool2d_4d(x.unsqueeze(0), p, count_include_pad).squeeze(0);
  return avg_pool2d_4d(x, p, count_include_pad);
}

namespace {

// What adaptive pooling asks: a floating 3-D or 4-D input with a non-empty spatial size, and
// an output size of at least 1x1.
void check_adaptive(const char* op, const Tensor& x, Size2 output_size) {
  detail::check_defined(x, op, "input");
  STRATA_CHECK(x.dim() == 3 || x.dim() == 4, op,
               ": expected a 3-D (unbatched) or 4-D (batched) input, got ", detail::describe(x));
  STRATA_CHECK(is_floating(x.dtype()), op,
               ": expected a floating input (f32, f64, f16 or bf16), got ", detail::describe(x));
  STRATA_CHECK(output_size.h >= 1 && output_size.w >= 1, op, ": output_size must be >= 1, got ",
               output_size.h, "x", output_size.w, " (input ", detail::describe(x), ")");
  STRATA_CHECK(x.size(-2) >= 1 && x.size(-1) >= 1, op, ": expected a non-empty spatial size, got ",
               detail::describe(x));
}

}  // namespace

Tensor adaptive_avg_pool2d(const Tensor& x, Size2 output_size) {
  check_adaptive("adaptive_avg_pool2d", x, output_size);
  const int64_t in_h = x.size(-2), in_w = x.size(-1);
  if (in_h % output_size.h == 0 && in_w % output_size.w == 0) {
    // Equal windows that tile the input: plain average pooling.
    const int64_t kh = in_h / output_size.h, kw = in_w / output_size.w;
    const Pool2dParams p{kh, kw, kh, kw, 0, 0, 1, 1};
    if (x.dim() == 3) return avg_pool2d_4d(x.unsqueeze(0), p, true).squeeze(0);
    return avg_pool2d_4d(x, p, true);
  }
  // x [..., H, W]: A_h [out_h, H] @ x @ A_w^T [W, out_w].
  const Tensor a_h = adaptive_matrix(output_size.h, in_h, x);
  const Tensor a_w_t = adaptive_matrix(output_size.w, in_w, x).t();
  return matmul(matmul(a_h, x), a_w_t);
}

Tensor adaptive_max_pool2d(const Tensor& x, Size2 output_size) {
  check_adaptive("adaptive_max_pool2d", x, output_size);
  const int64_t in_h = x.size(-2), in_w = x.size(-1);
  if (in_h % output_size.h == 0 && in_w % output_size.w == 0) {
    // Equal windows that tile the input: plain max pooling.
    const Size2 window{in_h / output_size.h, in_w / output_size.w};
    return max_pool2d(x, window, window);
  }
  // Window i along an axis: [floor(i * size / out), ceil((i + 1) * size / out)).
  const auto window = [](int64_t i, int64_t out, int64_t size) {
    const int64_t begin = i * size / out;
    return std::pair<int64_t, int64_t>{begin, ((i + 1) * size + out - 1) / out - begin};
  };
  const int64_t h_axis = x.dim() - 2;
  std::vector<Tensor> rows;
  for (int64_t i = 0; i < output_size.h; ++i) {
    const auto [top, height] = window(i, output_size.h, in_h);
    const Tensor band = max(x.narrow(h_axis, top, height), {h_axis});  // [..., W]
    std::vector<Tensor> cells;
    for (int64_t j = 0; j < output_size.w; ++j) {
      const auto [left, width] = window(j, output_size.w, in_w);
      cells.push_back(max(band.narrow(h_axis, left, width), {h_axis}, /*keepdim=*/true));
    }
    rows.push_back(cat(cells, h_axis).unsqueeze(h_axis));  // [..., 1, out_w]
  }
  return cat(rows, h_axis);
}

}  // namespace strata::nn::functional
