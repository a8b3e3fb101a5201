// Padding, pixel shuffling and resizing (interpolate), composed of differentiable ops (cat,
// narrow, index_select, reshape, permute, matmul): their gradients and every backend come with
// them. Arguments are checked here, naming the op, before any of those ops sees them.
#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "internal.h"
#include "strata/nn/functional.h"

namespace strata::nn::functional {

namespace {

// The source position of every output position of a dimension of `size` padded by
// (before, after) in `mode` (reflect or replicate).
Tensor source_positions(int64_t size, int64_t before, int64_t after, PadMode mode,
                        Device device) {
  std::vector<int64_t> from;
  for (int64_t i = -before; i < size + after; ++i) {
    int64_t j = i;
    if (mode == PadMode::Reflect) {
      j = i < 0 ? -i : i >= size ? 2 * (size - 1) - i : i;
    } else {
      j = i < 0 ? 0 : i >= size ? size - 1 : i;
    }
    from.push_back(j);
  }
  return from_vector(from).to(device);
}

}  // namespace

Tensor pad(const Tensor& x, const std::vector<int64_t>& pad, PadMode mode, double value) {
  detail::check_defined(x, "pad");
  const auto pairs = static_cast<int64_t>(pad.size() / 2);
  STRATA_CHECK(pad.size() % 2 == 0 && pairs <= x.dim(), "pad: ", pad.size(),
               " paddings for ", detail::describe(x), "; give (before, after) pairs, at most one ",
               "per dimension, from the last dimension backwards");
  const char* mode_name = mode == PadMode::Constant  ? "constant"
                          : mode == PadMode::Reflect ? "reflect"
                                                     : "replicate";
  Tensor out = x;
  for (int64_t k = 0; k < pairs; ++k) {
    const int64_t dim = x.dim() - 1 - k;
    const int64_t before = pad[static_cast<size_t>(2 * k)];
    const int64_t after = pad[static_cast<size_t>(2 * k + 1)];
    const int64_t size = out.size(dim);
    if (mode == PadMode::Constant) {
      STRATA_CHECK(size + before + after >= 0, "pad: paddings (", before, ", ", after,
                   ") leave a negative size of dimension ", dim, " of ", detail::describe(x));
      // Negative paddings crop first; positive ones add blocks of `value`.
      const int64_t start = before < 0 ? -before : 0;
      const int64_t kept = size - start - (after < 0 ? -after : 0);
      if (start > 0 || kept < size) out = out.narrow(dim, start, std::max<int64_t>(kept, 0));
      std::vector<Tensor> parts;
      Shape block = out.shape();
      const TensorOptions options = TensorOptions(x.dtype()).device(x.device());
      if (before > 0) {
        block[static_cast<size_t>(dim)] = before;
        parts.push_back(full(block, value, options));
      }
      parts.push_back(out);
      if (after > 0) {
        block[static_cast<size_t>(dim)] = after;
        parts.push_back(full(block, value, options));
      }
      if (parts.size() > 1) out = cat(parts, dim);
      continue;
    }
    STRATA_CHECK(before >= 0 && after >= 0, "pad: ", mode_name, " padding must be non-negative,",
                 " got (", before, ", ", after, ") for dimension ", dim, " of ",
                 detail::describe(x));
    STRATA_CHECK(size > 0, "pad: ", mode_name, " padding of the empty dimension ", dim, " of ",
                 detail::describe(x));
    STRATA_CHECK(mode != PadMode::Reflect || (before < size && after < size), "pad: reflect ",
                 "padding (", before, ", ", after, ") must be smaller than dimension ", dim,
                 " of size ", size, " in ", detail::describe(x));
    if (before == 0 && after == 0) continue;
    out = index_select(out, dim, source_positions(size, before, after, mode, x.device()));
  }
  return out.is_same(x) ? x.clone() : out;
}

namespace {

// x [N, C, H, W] as a 4-D tensor with a positive factor, or an error naming `op`.
void check_pixel_shuffle(const Tensor& x, int64_t factor, const char* op) {
  detail::check_defined(x, op);
  STRATA_CHECK(x.dim() == 4, op, ": expected an input [N, C, H, W], got ", detail::describe(x));
  STRATA_CHECK(factor >= 1, op, ": the factor must be at least 1, got ", factor);
}

}  // namespace

Tensor pixel_shuffle(const Tensor& x, int64_t r) {
  check_pixel_shuffle(x, r, "pixel_shuffle");
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  STRATA_CHECK(c % (r * r) == 0, "pixel_shuffle: ", c, " channels are not a multiple of ",
               r * r, " (the upscale factor ", r, " squared) in ", detail::describe(x));
  // [N, C, r, r, H, W] -> [N, C, H, r, W, r] -> [N, C, H r, W r]
  return x.reshape({n, c / (r * r), r, r, h, w})
      .permute({0, 1, 4, 2, 5, 3})
      .reshape({n, c / (r * r), h * r, w * r});
}

Tensor pixel_unshuffle(const Tensor& x, int64_t r) {
  check_pixel_shuffle(x, r, "pixel_unshuffle");
  const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  STRATA_CHECK(h % r == 0 && w % r == 0, "pixel_unshuffle: height ", h, " and width ", w,
               " must be multiples of the downscale factor ", r, " in ", detail::describe(x));
  // [N, C, H/r, r, W/r, r] -> [N, C, r, r, H/r, W/r] -> [N, C r r, H/r, W/r]
  return x.reshape({n, c, h / r, r, w / r, r})
      .permute({0, 1, 3, 5, 2, 4})
      .reshape({n, c * r * r, h / r, w / r});
}

namespace {

// Where output position i of `out` samples an axis of `size` (PyTorch's
// area_pixel_compute_source_index): pixel centers mapped by `scale`, or corners lined up.
double source_position(int64_t i, int64_t out, int64_t size, std::optional<double> scale,
                       bool align_corners) {
  if (align_corners) {
    return out > 1 ? static_cast<double>(i) * static_cast<double>(size - 1) /
                         static_cast<double>(out - 1)
                   : 0.0;
  }
  const double step = scale ? 1.0 / *scale : static_cast<double>(size) / static_cast<double>(out);
  return std::max((static_cast<double>(i) + 0.5) * step - 0.5, 0.0);
}

// The [out, size] matrix of bilinear interpolation along one axis: row i mixes the two
// neighbours of its source position.
Tensor linear_matrix(int64_t out, int64_t size, std::optional<double> scale, bool align_corners,
                     const Tensor& like) {
  std::vector<double> values(static_cast<size_t>(out * size), 0.0);
  for (int64_t i = 0; i < out; ++i) {
    const double src = source_position(i, out, size, scale, align_corners);
    const auto lo = std::min(static_cast<int64_t>(src), size - 1);
    const int64_t hi = std::min(lo + 1, size - 1);
    const double frac = src - static_cast<double>(lo);
    values[static_cast<size_t>(i * size + lo)] += 1.0 - frac;
    values[static_cast<size_t>(i * size + hi)] += frac;
  }
  return from_vector(values, {out, size}).to(like.dtype()).to(like.device());
}

// The source row of each output row for nearest: floor(i * size / out), or floor(i / scale)
// when a scale was given, as PyTorch's "nearest".
Tensor nearest_rows(int64_t out, int64_t size, std::optional<double> scale, const Tensor& like) {
  std::vector<int64_t> rows(static_cast<size_t>(out));
  const double step = scale ? 1.0 / *scale : static_cast<double>(size) / static_cast<double>(out);
  for (int64_t i = 0; i < out; ++i) {
    rows[static_cast<size_t>(i)] =
        std::min(static_cast<int64_t>(std::floor(static_cast<double>(i) * step)), size - 1);
  }
  return from_vector(rows).to(like.device());
}

}  // namespace

Tensor interpolate(const Tensor& x, const InterpolateOptions& options) {
  const char* op = "interpolate";
  detail::check_defined(x, op, "input");
  STRATA_CHECK(x.dim() == 3 || x.dim() == 4, op,
               ": expected a 3-D (unbatched) or 4-D (batched) input [N, C, H, W], got ",
               detail::describe(x));
  STRATA_CHECK(is_floating(x.dtype()), op,
               ": expected a floating input (f32, f64, f16 or bf16), got ", detail::describe(x));
  STRATA_CHECK(options.size.has_value() != options.scale_factor.has_value(), op,
               ": give exactly one of size and scale_factor");
  STRATA_CHECK(!options.align_corners || options.mode == InterpolateMode::Bilinear, op,
               ": align_corners applies to bilinear only");
  const int64_t in_h = x.size(-2), in_w = x.size(-1);
  std::optional<double> scale_h, scale_w;
  int64_t out_h = 0, out_w = 0;
  if (options.size) {
    out_h = options.size->h;
    out_w = options.size->w;
  } else {
    scale_h = options.scale_factor->h;
    scale_w = options.scale_factor->w;
    STRATA_CHECK(*scale_h > 0.0 && *scale_w > 0.0, op, ": scale_factor must be positive, got (",
                 *scale_h, ", ", *scale_w, ")");
    out_h = static_cast<int64_t>(std::floor(static_cast<double>(in_h) * *scale_h));
    out_w = static_cast<int64_t>(std::floor(static_cast<double>(in_w) * *scale_w));
  }
  STRATA_CHECK(out_h >= 1 && out_w >= 1 && in_h >= 1 && in_w >= 1, op, ": cannot resize ",
               detail::describe(x), " to ", out_h, "x", out_w);
  const int64_t h_axis = x.dim() - 2, w_axis = x.dim() - 1;
  if (options.mode == InterpolateMode::Nearest) {
    return index_select(index_select(x, h_axis, nearest_rows(out_h, in_h, scale_h, x)), w_axis,
                        nearest_rows(out_w, in_w, scale_w, x));
  }
  // PyTorch lines corners up from the sizes alone, whatever the scale.
  if (options.align_corners) scale_h = scale_w = std::nullopt;
  const Tensor a_h = linear_matrix(out_h, in_h, scale_h, options.align_corners, x);
  const Tensor a_w_t = linear_matrix(out_w, in_w, scale_w, options.align_corners, x).t();
  return matmul(matmul(a_h, x), a_w_t);
}

}  // namespace strata::nn::functional
