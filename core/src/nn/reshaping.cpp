// Padding and pixel shuffling, composed of differentiable ops (cat, narrow, index_select,
// reshape, permute): their gradients and every backend come with them. Arguments are checked
// here, naming the op, before any of those ops sees them.
#include <algorithm>
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

}  // namespace strata::nn::functional
