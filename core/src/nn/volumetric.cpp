// conv3d, max_pool3d and avg_pool3d, composed of their 2-D forms: a volume [N, C, D, H, W]
// is a stack of images along D, and a 3-D window is a 2-D window over each of the depth
// slices it covers. For output depth j and kernel depth t, the slice read is input depth
// j * stride + t * dilation (of the depth-padded input); all the j for one t form one strided
// view, which the 2-D op takes as a batch of N * D' images. The 2-D ops bring the kernels of
// both backends and the gradients.
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "internal.h"
#include "strata/nn/functional.h"

namespace strata::nn::functional {

namespace {

// NOTE: a stream, not a chain of std::string operator+ (GCC 12's false -Wrestrict at -O3).
std::string size3_str(const Size3& s) {
  std::ostringstream text;
  text << "(" << s.d << ", " << s.h << ", " << s.w << ")";
  return text.str();
}

// x as a batched 5-D floating volume; 4-D inputs are unbatched.
void check_volume(const char* op, const Tensor& x) {
  detail::check_defined(x, op, "input");
  STRATA_CHECK(x.dim() == 4 || x.dim() == 5, op,
               ": expected a 4-D (unbatched) or 5-D (batched) input [N, C, D, H, W], got ",
               detail::describe(x));
  STRATA_CHECK(is_floating(x.dtype()), op,
               ": expected a floating input (f32, f64, f16 or bf16), got ", detail::describe(x));
}

// The output depth of a window of `kernel` taps spread by `dilation` over `depth` positions
// (padding already added), or an error naming the op.
int64_t out_depth(const char* op, int64_t depth, int64_t kernel, int64_t stride, int64_t dilation,
                  const Tensor& x) {
  STRATA_CHECK(kernel >= 1 && stride >= 1 && dilation >= 1, op,
               ": kernel, stride and dilation must be positive (input ", detail::describe(x), ")");
  const int64_t extent = dilation * (kernel - 1) + 1;
  STRATA_CHECK(depth >= extent, op, ": the kernel's depth extent ", extent,
               " is larger than the padded input depth ", depth, " (input ", detail::describe(x),
               ")");
  return (depth - extent) / stride + 1;
}

// Depth slices t * dilation + j * stride (j < count) of the 5-D x, as a batch of images
// [N * count, C, H, W].
Tensor depth_slices(const Tensor& x, int64_t t, int64_t dilation, int64_t stride, int64_t count) {
  const int64_t start = t * dilation;
  const Tensor picked = x.slice(2, start, start + stride * (count - 1) + 1, stride);
  return picked.permute({0, 2, 1, 3, 4})
      .reshape({x.size(0) * count, x.size(1), x.size(3), x.size(4)});
}

// [N * count, K, P, Q] images back to the volume [N, K, count, P, Q].
Tensor to_volume(const Tensor& images, int64_t n, int64_t count) {
  return images.reshape({n, count, images.size(1), images.size(2), images.size(3)})
      .permute({0, 2, 1, 3, 4});
}

Tensor batched(const Tensor& x) { return x.dim() == 4 ? x.unsqueeze(0) : x; }
Tensor unbatched_like(const Tensor& out, const Tensor& x) {
  return x.dim() == 4 ? out.squeeze(0) : out;
}

}  // namespace

Tensor conv3d(const Tensor& x, const Tensor& weight, const Tensor& bias, Size3 stride,
              Size3 padding, Size3 dilation, int64_t groups) {
  const char* op = "conv3d";
  check_volume(op, x);
  detail::check_defined(weight, op, "weight");
  STRATA_CHECK(weight.dim() == 5, op, ": expected a 5-D weight [K, C / groups, T, R, S], got ",
               detail::describe(weight), " for input ", detail::describe(x));
  STRATA_CHECK(padding.d >= 0, op, ": padding must be non-negative, got ", size3_str(padding));
  const Tensor x5 = batched(x);
  const Tensor padded = padding.d > 0 ? pad(x5, {0, 0, 0, 0, padding.d, padding.d}) : x5;
  const int64_t depth = out_depth(op, padded.size(2), weight.size(2), stride.d, dilation.d, x);
  Tensor sum;
  for (int64_t t = 0; t < weight.size(2); ++t) {
    // conv2d checks channels, groups, dtypes, devices and the 2-D sizes, naming conv2d.
    const Tensor images =
        conv2d(depth_slices(padded, t, dilation.d, stride.d, depth), weight.select(2, t), Tensor(),
               {stride.h, stride.w}, {padding.h, padding.w}, {dilation.h, dilation.w}, groups);
    sum = sum.defined() ? add(sum, images) : images;
  }
  Tensor out = to_volume(sum, x5.size(0), depth);
  if (bias.defined()) {
    STRATA_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), op,
                 ": expected a bias of shape [", weight.size(0), "], got ", detail::describe(bias));
    out = add(out, bias.reshape({1, weight.size(0), 1, 1, 1}));
  }
  return unbatched_like(out.contiguous(), x);
}

Tensor max_pool3d(const Tensor& x, Size3 kernel_size, std::optional<Size3> stride, Size3 padding,
                  Size3 dilation) {
  const char* op = "max_pool3d";
  check_volume(op, x);
  const Size3 step = stride.value_or(kernel_size);
  STRATA_CHECK(padding.d >= 0 && 2 * padding.d <= kernel_size.d, op,
               ": padding must be at most half the kernel, got padding ", size3_str(padding),
               " for kernel ", size3_str(kernel_size));
  const Tensor x5 = batched(x);
  // Depth padding never wins a max: -inf, as PyTorch's implicit padding.
  const Tensor padded = padding.d > 0
                            ? pad(x5, {0, 0, 0, 0, padding.d, padding.d}, PadMode::Constant,
                                  -std::numeric_limits<double>::infinity())
                            : x5;
  const int64_t depth = out_depth(op, padded.size(2), kernel_size.d, step.d, dilation.d, x);
  Tensor best;
  for (int64_t t = 0; t < kernel_size.d; ++t) {
    const Tensor images = max_pool2d(depth_slices(padded, t, dilation.d, step.d, depth),
                                     {kernel_size.h, kernel_size.w}, Size2(step.h, step.w),
                                     {padding.h, padding.w}, {dilation.h, dilation.w});
    best = best.defined() ? maximum(best, images) : images;
  }
  return unbatched_like(to_volume(best, x5.size(0), depth).contiguous(), x);
}

Tensor avg_pool3d(const Tensor& x, Size3 kernel_size, std::optional<Size3> stride, Size3 padding,
                  bool count_include_pad) {
  const char* op = "avg_pool3d";
  check_volume(op, x);
  const Size3 step = stride.value_or(kernel_size);
  STRATA_CHECK(padding.d >= 0 && padding.h >= 0 && padding.w >= 0 &&
                   2 * padding.d <= kernel_size.d && 2 * padding.h <= kernel_size.h &&
                   2 * padding.w <= kernel_size.w,
               op, ": padding must be non-negative and at most half the kernel, got padding ",
               size3_str(padding), " for kernel ", size3_str(kernel_size));
  const Tensor x5 = batched(x);
  // The mean over each window with the padding counted as zeros: explicit zero padding, then
  // 2-D means over (h, w) averaged over the kernel's depth slices.
  const std::vector<int64_t> pads = {padding.w, padding.w, padding.h,
                                     padding.h, padding.d, padding.d};
  const auto mean_with_zeros = [&](const Tensor& volume) {
    const Tensor padded = pad(volume, pads);
    const int64_t depth = out_depth(op, padded.size(2), kernel_size.d, step.d, 1, x);
    Tensor total;
    for (int64_t t = 0; t < kernel_size.d; ++t) {
      const Tensor images = avg_pool2d(depth_slices(padded, t, 1, step.d, depth),
                                       {kernel_size.h, kernel_size.w}, Size2(step.h, step.w));
      total = total.defined() ? add(total, images) : images;
    }
    return to_volume(div(total, static_cast<double>(kernel_size.d)), x5.size(0), depth);
  };
  Tensor out = mean_with_zeros(x5);
  const bool padded = padding.d > 0 || padding.h > 0 || padding.w > 0;
  if (!count_include_pad && padded) {
    // Divide by the share of each window inside the input instead of by its full size.
    out = div(out, mean_with_zeros(ones({1, 1, x5.size(2), x5.size(3), x5.size(4)}, x5.options())));
  }
  return unbatched_like(out.contiguous(), x);
}

}  // namespace strata::nn::functional
