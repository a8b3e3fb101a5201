// 2-D pooling of the CPU backend (float32 and float64). x [N, C, H, W], out [N, C, P, Q],
// contiguous. Each (n, c) plane is independent, so planes are split over OpenMP threads; a
// plane's backward runs on one thread, so overlapping windows add into grad_x without races.
// Max pooling writes each window's maximum and where it was with PyTorch's rule (backend.h:
// `v > best || isnan(v)` from -inf), vectorized across the windows of an output row (2x2
// windows in one pass; otherwise tap by tap over the windows that lie inside the input, the
// border windows one at a time). Where it was is the flat position h*W + w (int64 indices) or
// the tap's number in the window (uint8 indices, the tape's compact form); the backward
// scatter-adds grad_out through either and never looks at x again. Average pooling has dilation 1
// and floor-mode windows within the padded input (checked in core/), so the include-pad divisor is
// always kernel_h * kernel_w.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "cpu_backend.h"
#include "parallel.h"
#include "strata/detail/float32_staging.h"
#include "strata/error.h"
#include "strata/tensor.h"
#include "vec_math.h"  // STRATA_VECTOR_CLONES

namespace strata::cpu {
namespace {

// The in-bounds positions begin, begin + step, ... (< end) of the window that starts at
// `start` (may be negative) with `kernel` taps `dilation` apart, over an axis of `size`.
struct Window {
  int64_t begin, end;
};

inline Window window_at(int64_t start, int64_t kernel, int64_t dilation, int64_t size) {
  int64_t begin = start;
  // The first tap at or after 0: skip whole dilation steps of padding.
  if (begin < 0) begin += (-begin + dilation - 1) / dilation * dilation;
  return {begin, std::min(start + (kernel - 1) * dilation + 1, size)};
}

struct PoolShape {
  int64_t planes, h, w, p, q;
};

PoolShape pool_shape(const Tensor& x, const Tensor& out) {
  return {x.shape()[0] * x.shape()[1], x.shape()[2], x.shape()[3], out.shape()[2],
          out.shape()[3]};
}

// ---- max pooling --------------------------------------------------------------------------

// PyTorch's update: a larger value, or any NaN (so the last NaN of a window is kept).
// NOTE: `|`, not `||`, and selects rather than ifs, in loops across windows: on real data
// each comparison is a coin flip, and a scalar scan (`||` and `if` become branches, and GCC
// turns even selects back into them) was mispredicted so often that max pooling ran 5 to 20
// times slower than these vectorized compares and blends.
template <typename T>
inline bool takes_over(T v, T best) {
  return (v > best) | std::isnan(v);
}

// Index types: int64_t holds flat positions h*W + w; uint8_t holds tap numbers (row-major
// over the kernel_h x kernel_w taps of the window).
template <typename I>
inline constexpr bool kTapIndices = std::is_same_v<I, uint8_t>;

// The most common pooling, 2x2 windows at stride 2 without padding or dilation, has a path
// of its own: the same values and indices, in one vectorized pass per output row.
// NOTE: only when every window lies inside the input: with ceil_mode the last row or column
// of windows may hang over the edge, and this path reads all four elements.
inline bool is_max_pool_2x2(const Pool2dParams& pp, const PoolShape& g) {
  return pp.kernel_h == 2 && pp.kernel_w == 2 && pp.stride_h == 2 && pp.stride_w == 2 &&
         pp.pad_h == 0 && pp.pad_w == 0 && pp.dilation_h == 1 && pp.dilation_w == 1 &&
         2 * g.p <= g.h && 2 * g.q <= g.w;
}

// One plane of 2x2 pooling, row by row: window ow of output row oh is top[2ow], top[2ow + 1],
// bottom[2ow], bottom[2ow + 1], scanned in that (row-major) order. Starting from top[2ow]
// instead of -inf picks the same element: it beats -inf unless it is -inf, and then both keep
// it.
template <typename T, typename I>
STRATA_VECTOR_CLONES void max_pool_plane_2x2(const T* __restrict plane, T* __restrict out,
                                             I* __restrict indices, const PoolShape& g) {
  // The taps' positions relative to top[2ow] (flat) or their numbers 0..3.
  const int64_t tap_b = 1, tap_c = kTapIndices<I> ? 2 : g.w, tap_d = kTapIndices<I> ? 3 : g.w + 1;
  for (int64_t oh = 0; oh < g.p; ++oh) {
    const int64_t first = 2 * oh * g.w;  // flat index of the row's top[0]
    const T* top = plane + first;
    const T* bottom = top + g.w;
    T* out_row = out + oh * g.q;
    I* index_row = indices + oh * g.q;
    for (int64_t ow = 0; ow < g.q; ++ow) {
      const T a = top[2 * ow], b = top[2 * ow + 1], c = bottom[2 * ow], d = bottom[2 * ow + 1];
      T best = a;
      int64_t offset = 0;
      bool take = takes_over(b, best);
      best = take ? b : best;
      offset = take ? tap_b : offset;
      take = takes_over(c, best);
      best = take ? c : best;
      offset = take ? tap_c : offset;
      take = takes_over(d, best);
      best = take ? d : best;
      offset = take ? tap_d : offset;
      out_row[ow] = best;
      index_row[ow] = static_cast<I>(kTapIndices<I> ? offset : first + 2 * ow + offset);
    }
  }
}

// The number of the window's tap at (ih, iw), the window starting at (start_h, start_w).
inline int64_t tap_number(int64_t ih, int64_t iw, int64_t start_h, int64_t start_w,
                          const Pool2dParams& pp) {
  return (ih - start_h) / pp.dilation_h * pp.kernel_w + (iw - start_w) / pp.dilation_w;
}

// One output of general pooling: scans the window's in-bounds taps row-major from -inf.
template <typename T, typename I>
inline void max_window(const T* plane, int64_t width, Window hw, Window ww, int64_t start_h,
                       int64_t start_w, const Pool2dParams& pp, T* out, I* index) {
  T best = -std::numeric_limits<T>::infinity();
  int64_t best_ih = hw.begin, best_iw = ww.begin;
  for (int64_t ih = hw.begin; ih < hw.end; ih += pp.dilation_h) {
    for (int64_t iw = ww.begin; iw < ww.end; iw += pp.dilation_w) {
      const T v = plane[ih * width + iw];
      const bool take = takes_over(v, best);
      best = take ? v : best;
      best_ih = take ? ih : best_ih;
      best_iw = take ? iw : best_iw;
    }
  }
  *out = best;
  *index = static_cast<I>(kTapIndices<I> ? tap_number(best_ih, best_iw, start_h, start_w, pp)
                                         : best_ih * width + best_iw);
}

// One tap for `count` neighbouring windows of a row: window j compares row[j * stride] (flat
// index first + j * stride, tap number `tap` in every window) with its best so far.
// kStride > 0 fixes the stride at compile time (the common 1 and 2 vectorize with plain
// loads); 0 reads `stride`.
template <typename T, typename I, int64_t kStride>
inline void max_pool_tap(const T* __restrict row, T* __restrict best, I* __restrict best_index,
                         int64_t count, int64_t stride, int64_t first, int64_t tap) {
  const int64_t step = kStride > 0 ? kStride : stride;
  for (int64_t j = 0; j < count; ++j) {
    const T v = row[j * step];
    const T b = best[j];
    const bool take = takes_over(v, b);
    best[j] = take ? v : b;
    best_index[j] = take ? static_cast<I>(kTapIndices<I> ? tap : first + j * step) : best_index[j];
  }
}

// One plane of general pooling. Per output row, the windows whose columns all lie inside the
// input, [lo, hi), run tap by tap over the whole row (vectorized across windows; each window
// still sees its taps in row-major order, as PyTorch's scan); the few border windows run one
// at a time. out and indices hold the running best until the last tap.
template <typename T, typename I>
STRATA_VECTOR_CLONES void max_pool_plane(const T* __restrict plane, T* __restrict out,
                                         I* __restrict indices, const PoolShape& g,
                                         const Pool2dParams& pp) {
  // Window ow is interior when ow * stride - pad >= 0 and its last tap
  // ow * stride - pad + (kernel - 1) * dilation <= W - 1.
  const int64_t lo = std::min(g.q, (pp.pad_w + pp.stride_w - 1) / pp.stride_w);
  const int64_t last_start = g.w - 1 - (pp.kernel_w - 1) * pp.dilation_w + pp.pad_w;
  const int64_t hi =
      std::max(lo, last_start < 0 ? 0 : std::min(g.q, last_start / pp.stride_w + 1));
  for (int64_t oh = 0; oh < g.p; ++oh) {
    const int64_t start_h = oh * pp.stride_h - pp.pad_h;
    const Window hw = window_at(start_h, pp.kernel_h, pp.dilation_h, g.h);
    T* out_row = out + oh * g.q;
    I* index_row = indices + oh * g.q;
    const auto border_window = [&](int64_t ow) {
      const int64_t start_w = ow * pp.stride_w - pp.pad_w;
      const Window ww = window_at(start_w, pp.kernel_w, pp.dilation_w, g.w);
      max_window(plane, g.w, hw, ww, start_h, start_w, pp, out_row + ow, index_row + ow);
    };
    for (int64_t ow = 0; ow < lo; ++ow) border_window(ow);
    for (int64_t ow = hi; ow < g.q; ++ow) border_window(ow);
    // An interior window's first in-bounds tap: its row hw.begin, its first column.
    const int64_t first_row_tap = (hw.begin - start_h) / pp.dilation_h * pp.kernel_w;
    for (int64_t ow = lo; ow < hi; ++ow) {
      out_row[ow] = -std::numeric_limits<T>::infinity();
      index_row[ow] = static_cast<I>(kTapIndices<I> ? first_row_tap
                                                    : hw.begin * g.w + ow * pp.stride_w - pp.pad_w);
    }
    for (int64_t ih = hw.begin; ih < hw.end; ih += pp.dilation_h) {
      const int64_t row_tap = (ih - start_h) / pp.dilation_h * pp.kernel_w;
      for (int64_t a = 0; a < pp.kernel_w; ++a) {
        const int64_t first = ih * g.w + lo * pp.stride_w - pp.pad_w + a * pp.dilation_w;
        const T* row = plane + first;
        const int64_t tap = row_tap + a;
        if (pp.stride_w == 1) {
          max_pool_tap<T, I, 1>(row, out_row + lo, index_row + lo, hi - lo, 1, first, tap);
        } else if (pp.stride_w == 2) {
          max_pool_tap<T, I, 2>(row, out_row + lo, index_row + lo, hi - lo, 2, first, tap);
        } else {
          max_pool_tap<T, I, 0>(row, out_row + lo, index_row + lo, hi - lo, pp.stride_w, first,
                                tap);
        }
      }
    }
  }
}

template <typename T, typename I>
void max_pool2d_forward_typed(const Tensor& out, const Tensor& indices, const Tensor& x,
                              const Pool2dParams& pp) {
  const PoolShape g = pool_shape(x, out);
  const T* x_data = static_cast<const T*>(x.raw_data());
  T* out_data = static_cast<T*>(out.raw_data());
  I* index_data = static_cast<I*>(indices.raw_data());
  const bool fast_2x2 = is_max_pool_2x2(pp, g);
  parallel_for(g.planes, worth_threads(g.planes * g.h * g.w), [&](int64_t plane_index) {
    const T* plane = x_data + plane_index * g.h * g.w;
    T* out_plane = out_data + plane_index * g.p * g.q;
    I* index_plane = index_data + plane_index * g.p * g.q;
    if (fast_2x2) {
      max_pool_plane_2x2(plane, out_plane, index_plane, g);
    } else {
      max_pool_plane(plane, out_plane, index_plane, g, pp);
    }
  });
}

// grad_x plane = 0, then grad_x[position] += grad_out for every output of the plane, the
// position read from int64 indices or found from a uint8 tap number and the window's start.
template <typename T, typename I>
void max_pool2d_backward_typed(const Tensor& grad_x, const Tensor& grad_out, const Tensor& indices,
                               const Pool2dParams& pp) {
  const PoolShape g = pool_shape(grad_x, grad_out);
  const T* go_data = static_cast<const T*>(grad_out.raw_data());
  const I* index_data = static_cast<const I*>(indices.raw_data());
  T* gx_data = static_cast<T*>(grad_x.raw_data());
  // Tap t of a window sits tap_offset[t] after the window's start (its top-left tap).
  std::vector<int64_t> tap_offset;
  if constexpr (kTapIndices<I>) {
    for (int64_t t = 0; t < pp.kernel_h * pp.kernel_w; ++t) {
      tap_offset.push_back(t / pp.kernel_w * pp.dilation_h * g.w + t % pp.kernel_w * pp.dilation_w);
    }
  }
  parallel_for(g.planes, worth_threads(g.planes * g.h * g.w), [&](int64_t plane_index) {
    const T* go_plane = go_data + plane_index * g.p * g.q;
    const I* index_plane = index_data + plane_index * g.p * g.q;
    T* gx_plane = gx_data + plane_index * g.h * g.w;
    std::fill(gx_plane, gx_plane + g.h * g.w, T(0));
    if constexpr (kTapIndices<I>) {
      for (int64_t oh = 0; oh < g.p; ++oh) {
        const int64_t row_start = (oh * pp.stride_h - pp.pad_h) * g.w - pp.pad_w;
        for (int64_t ow = 0; ow < g.q; ++ow) {
          const int64_t k = oh * g.q + ow;
          gx_plane[row_start + ow * pp.stride_w + tap_offset[index_plane[k]]] += go_plane[k];
        }
      }
    } else {
      for (int64_t k = 0; k < g.p * g.q; ++k) gx_plane[index_plane[k]] += go_plane[k];
    }
  });
}

// ---- average pooling ----------------------------------------------------------------------

template <typename T>
inline T avg_divisor(const Pool2dParams& pp, bool count_include_pad, Window hw, Window ww) {
  return count_include_pad ? static_cast<T>(pp.kernel_h * pp.kernel_w)
                           : static_cast<T>((hw.end - hw.begin) * (ww.end - ww.begin));
}

template <typename T>
void avg_pool2d_forward_typed(const Tensor& out, const Tensor& x, const Pool2dParams& pp,
                              bool count_include_pad) {
  const PoolShape g = pool_shape(x, out);
  const T* x_data = static_cast<const T*>(x.raw_data());
  T* out_data = static_cast<T*>(out.raw_data());
  parallel_for(g.planes, worth_threads(g.planes * g.h * g.w), [&](int64_t plane_index) {
    const T* plane = x_data + plane_index * g.h * g.w;
    T* out_plane = out_data + plane_index * g.p * g.q;
    for (int64_t oh = 0; oh < g.p; ++oh) {
      const Window hw = window_at(oh * pp.stride_h - pp.pad_h, pp.kernel_h, 1, g.h);
      for (int64_t ow = 0; ow < g.q; ++ow) {
        const Window ww = window_at(ow * pp.stride_w - pp.pad_w, pp.kernel_w, 1, g.w);
        T sum = 0;
        for (int64_t ih = hw.begin; ih < hw.end; ++ih) {
          for (int64_t iw = ww.begin; iw < ww.end; ++iw) sum += plane[ih * g.w + iw];
        }
        out_plane[oh * g.q + ow] = sum / avg_divisor<T>(pp, count_include_pad, hw, ww);
      }
    }
  });
}

template <typename T>
void avg_pool2d_backward_typed(const Tensor& grad_x, const Tensor& grad_out,
                               const Pool2dParams& pp, bool count_include_pad) {
  const PoolShape g = pool_shape(grad_x, grad_out);
  const T* go_data = static_cast<const T*>(grad_out.raw_data());
  T* gx_data = static_cast<T*>(grad_x.raw_data());
  parallel_for(g.planes, worth_threads(g.planes * g.h * g.w), [&](int64_t plane_index) {
    const T* go_plane = go_data + plane_index * g.p * g.q;
    T* gx_plane = gx_data + plane_index * g.h * g.w;
    std::fill(gx_plane, gx_plane + g.h * g.w, T(0));
    for (int64_t oh = 0; oh < g.p; ++oh) {
      const Window hw = window_at(oh * pp.stride_h - pp.pad_h, pp.kernel_h, 1, g.h);
      for (int64_t ow = 0; ow < g.q; ++ow) {
        const Window ww = window_at(ow * pp.stride_w - pp.pad_w, pp.kernel_w, 1, g.w);
        const T share =
            go_plane[oh * g.q + ow] / avg_divisor<T>(pp, count_include_pad, hw, ww);
        for (int64_t ih = hw.begin; ih < hw.end; ++ih) {
          for (int64_t iw = ww.begin; iw < ww.end; ++iw) gx_plane[ih * g.w + iw] += share;
        }
      }
    }
  });
}

}  // namespace

void CpuBackend::max_pool2d_forward(const Tensor& out, const Tensor& indices, const Tensor& x,
                                    const Pool2dParams& params) {
  if (detail::any_reduced_floating({&out, &x})) {
    return detail::stage_in_pieces({out}, {x, indices}, 1, [&](const auto& outs, const auto& ins) {
      max_pool2d_forward(outs[0], ins[1], ins[0], params);
    });
  }
  STRATA_DISPATCH_FLOATING(out.dtype(), "max_pool2d_forward", [&] {
    if (indices.dtype() == DType::UInt8) {
      max_pool2d_forward_typed<scalar_t, uint8_t>(out, indices, x, params);
    } else {
      max_pool2d_forward_typed<scalar_t, int64_t>(out, indices, x, params);
    }
  });
}

void CpuBackend::max_pool2d_backward(const Tensor& grad_x, const Tensor& grad_out,
                                     const Tensor& indices, const Pool2dParams& params) {
  if (detail::any_reduced_floating({&grad_x, &grad_out})) {
    return detail::stage_in_pieces({grad_x}, {grad_out, indices}, 1,
                                   [&](const auto& outs, const auto& ins) {
                                     max_pool2d_backward(outs[0], ins[0], ins[1], params);
                                   });
  }
  STRATA_DISPATCH_FLOATING(grad_x.dtype(), "max_pool2d_backward", [&] {
    if (indices.dtype() == DType::UInt8) {
      max_pool2d_backward_typed<scalar_t, uint8_t>(grad_x, grad_out, indices, params);
    } else {
      max_pool2d_backward_typed<scalar_t, int64_t>(grad_x, grad_out, indices, params);
    }
  });
}

void CpuBackend::avg_pool2d_forward(const Tensor& out, const Tensor& x,
                                    const Pool2dParams& params, bool count_include_pad) {
  if (detail::any_reduced_floating({&out, &x})) {
    return detail::stage_in_pieces({out}, {x}, 1, [&](const auto& outs, const auto& ins) {
      avg_pool2d_forward(outs[0], ins[0], params, count_include_pad);
    });
  }
  STRATA_DISPATCH_FLOATING(out.dtype(), "avg_pool2d_forward", [&] {
    avg_pool2d_forward_typed<scalar_t>(out, x, params, count_include_pad);
  });
}

void CpuBackend::avg_pool2d_backward(const Tensor& grad_x, const Tensor& grad_out,
                                     const Pool2dParams& params, bool count_include_pad) {
  if (detail::any_reduced_floating({&grad_x, &grad_out})) {
    return detail::stage_in_pieces({grad_x}, {grad_out}, 1, [&](const auto& outs, const auto& ins) {
      avg_pool2d_backward(outs[0], ins[0], params, count_include_pad);
    });
  }
  STRATA_DISPATCH_FLOATING(grad_x.dtype(), "avg_pool2d_backward", [&] {
    avg_pool2d_backward_typed<scalar_t>(grad_x, grad_out, params, count_include_pad);
  });
}

}  // namespace strata::cpu
