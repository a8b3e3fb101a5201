// 2-D pooling of the CPU backend (float32 and float64): max, and average with or without the
// zero padding in the divisor. x [N, C, H, W], out [N, C, P, Q], contiguous. Each (n, c) plane
// is independent, so planes are split over OpenMP threads; the backward of a plane runs on one
// thread, so overlapping windows (stride < kernel) add into grad_x without races. The max
// backward finds each window's first maximum again from x (the contract passes no indices).
// Because pad <= kernel / 2 (checked in core/), every window holds an in-bounds element and
// never reaches past the padded input, so the include-pad divisor is always kernel_h * kernel_w.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "cpu_backend.h"
#include "parallel.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cpu {
namespace {

// The in-bounds part [begin, end) of the window starting at `start` (may be negative).
struct Window {
  int64_t begin, end;
};

inline Window window_at(int64_t start, int64_t kernel, int64_t size) {
  return {std::max<int64_t>(start, 0), std::min(start + kernel, size)};
}

// Flat index (within the plane) of the window's first maximum; a NaN wins, as PyTorch's
// `v > best || isnan(v)` rule (which keeps the last NaN).
template <typename T>
inline int64_t argmax_with_nan(const T* plane, int64_t width, Window hw, Window ww) {
  int64_t best_index = hw.begin * width + ww.begin;
  T best = plane[best_index];
  for (int64_t ih = hw.begin; ih < hw.end; ++ih) {
    for (int64_t iw = ww.begin; iw < ww.end; ++iw) {
      const T v = plane[ih * width + iw];
      if (v > best || std::isnan(v)) {
        best = v;
        best_index = ih * width + iw;
      }
    }
  }
  return best_index;
}

// The window's maximum, NaN when it holds one.
// NOTE: written branch-free (selects, not ifs): on real data each comparison is a coin flip,
// and mispredicted branches made pooling several times slower.
template <typename T>
inline T max_in(const T* plane, int64_t width, Window hw, Window ww) {
  T best = plane[hw.begin * width + ww.begin];
  bool nan = false;
  for (int64_t ih = hw.begin; ih < hw.end; ++ih) {
    for (int64_t iw = ww.begin; iw < ww.end; ++iw) {
      const T v = plane[ih * width + iw];
      best = v > best ? v : best;
      nan |= std::isnan(v);
    }
  }
  return nan ? std::numeric_limits<T>::quiet_NaN() : best;
}

// The index of the window's first maximum, given that maximum (branch-free, as max_in: a
// backward scan whose integer select compiles to a conditional move).
template <typename T>
inline int64_t argmax_in(const T* plane, int64_t width, Window hw, Window ww) {
  const T best = max_in(plane, width, hw, ww);
  if (std::isnan(best)) [[unlikely]] return argmax_with_nan(plane, width, hw, ww);
  int64_t best_index = 0;
  for (int64_t ih = hw.end; ih-- > hw.begin;) {
    for (int64_t iw = ww.end; iw-- > ww.begin;) {
      const int64_t index = ih * width + iw;
      best_index = plane[index] == best ? index : best_index;
    }
  }
  return best_index;
}

// The most common pooling, 2x2 windows at stride 2 without padding, has a path of its own:
// the same results (the first maximum; NaN when the window holds one, the first NaN's position
// for the gradient) without the general window bookkeeping.
inline bool is_max_pool_2x2(const Pool2dParams& pp) {
  return pp.kernel_h == 2 && pp.kernel_w == 2 && pp.stride_h == 2 && pp.stride_w == 2 &&
         pp.pad_h == 0 && pp.pad_w == 0;
}

template <typename T>
struct WindowMax {
  T value;
  int index;  // 0 top left, 1 top right, 2 bottom left, 3 bottom right
};

// The window top[0], top[1], bottom[0], bottom[1], scanned in that (row-major) order: a value
// replaces the best when it is larger, or NaN over a number.
template <typename T>
inline WindowMax<T> window_2x2(const T* top, const T* bottom) {
  WindowMax<T> best{top[0], 0};
  const T rest[3] = {top[1], bottom[0], bottom[1]};
  for (int j = 0; j < 3; ++j) {
    const T v = rest[j];
    const bool take = v > best.value || (std::isnan(v) && !std::isnan(best.value));
    best.value = take ? v : best.value;
    best.index = take ? j + 1 : best.index;
  }
  return best;
}

struct PoolShape {
  int64_t planes, h, w, p, q;
};

PoolShape pool_shape(const Tensor& x, const Tensor& out) {
  return {x.shape()[0] * x.shape()[1], x.shape()[2], x.shape()[3], out.shape()[2],
          out.shape()[3]};
}

template <typename T>
void pool2d_forward_typed(PoolMode mode, const Tensor& out, const Tensor& x,
                          const Pool2dParams& pp) {
  const PoolShape g = pool_shape(x, out);
  const T* x_data = static_cast<const T*>(x.raw_data());
  T* out_data = static_cast<T*>(out.raw_data());
  const T full_area = static_cast<T>(pp.kernel_h * pp.kernel_w);
  if (mode == PoolMode::Max && is_max_pool_2x2(pp)) {
    parallel_for(g.planes, worth_threads(g.planes * g.h * g.w), [&](int64_t plane_index) {
      const T* plane = x_data + plane_index * g.h * g.w;
      T* out_plane = out_data + plane_index * g.p * g.q;
      for (int64_t oh = 0; oh < g.p; ++oh) {
        const T* top = plane + 2 * oh * g.w;
        const T* bottom = top + g.w;
        for (int64_t ow = 0; ow < g.q; ++ow) {
          out_plane[oh * g.q + ow] = window_2x2(top + 2 * ow, bottom + 2 * ow).value;
        }
      }
    });
    return;
  }
  parallel_for(g.planes, worth_threads(g.planes * g.h * g.w), [&](int64_t plane_index) {
    const T* plane = x_data + plane_index * g.h * g.w;
    T* out_plane = out_data + plane_index * g.p * g.q;
    for (int64_t oh = 0; oh < g.p; ++oh) {
      const Window hw = window_at(oh * pp.stride_h - pp.pad_h, pp.kernel_h, g.h);
      for (int64_t ow = 0; ow < g.q; ++ow) {
        const Window ww = window_at(ow * pp.stride_w - pp.pad_w, pp.kernel_w, g.w);
        T result;
        if (mode == PoolMode::Max) {
          result = max_in(plane, g.w, hw, ww);
        } else {
          T sum = 0;
          for (int64_t ih = hw.begin; ih < hw.end; ++ih) {
            for (int64_t iw = ww.begin; iw < ww.end; ++iw) sum += plane[ih * g.w + iw];
          }
          const T area = mode == PoolMode::AvgIncludePad
                             ? full_area
                             : static_cast<T>((hw.end - hw.begin) * (ww.end - ww.begin));
          result = sum / area;
        }
        out_plane[oh * g.q + ow] = result;
      }
    }
  });
}

template <typename T>
void pool2d_backward_typed(PoolMode mode, const Tensor& grad_x, const Tensor& grad_out,
                           const Tensor& x, const Pool2dParams& pp) {
  const PoolShape g = pool_shape(x, grad_out);
  const T* x_data = static_cast<const T*>(x.raw_data());
  const T* go_data = static_cast<const T*>(grad_out.raw_data());
  T* gx_data = static_cast<T*>(grad_x.raw_data());
  const T full_area = static_cast<T>(pp.kernel_h * pp.kernel_w);
  if (mode == PoolMode::Max && is_max_pool_2x2(pp)) {
    parallel_for(g.planes, worth_threads(g.planes * g.h * g.w), [&](int64_t plane_index) {
      const T* plane = x_data + plane_index * g.h * g.w;
      const T* go_plane = go_data + plane_index * g.p * g.q;
      T* gx_plane = gx_data + plane_index * g.h * g.w;
      std::fill(gx_plane, gx_plane + g.h * g.w, T(0));
      for (int64_t oh = 0; oh < g.p; ++oh) {
        const T* top = plane + 2 * oh * g.w;
        const T* bottom = top + g.w;
        T* gx_top = gx_plane + 2 * oh * g.w;
        for (int64_t ow = 0; ow < g.q; ++ow) {
          const int index = window_2x2(top + 2 * ow, bottom + 2 * ow).index;
          // The windows do not overlap: each input gets at most one gradient.
          gx_top[(index >> 1) * g.w + 2 * ow + (index & 1)] = go_plane[oh * g.q + ow];
        }
      }
    });
    return;
  }
  parallel_for(g.planes, worth_threads(g.planes * g.h * g.w), [&](int64_t plane_index) {
    const T* plane = x_data + plane_index * g.h * g.w;
    const T* go_plane = go_data + plane_index * g.p * g.q;
    T* gx_plane = gx_data + plane_index * g.h * g.w;
    std::fill(gx_plane, gx_plane + g.h * g.w, T(0));
    for (int64_t oh = 0; oh < g.p; ++oh) {
      const Window hw = window_at(oh * pp.stride_h - pp.pad_h, pp.kernel_h, g.h);
      for (int64_t ow = 0; ow < g.q; ++ow) {
        const Window ww = window_at(ow * pp.stride_w - pp.pad_w, pp.kernel_w, g.w);
        const T grad = go_plane[oh * g.q + ow];
        if (mode == PoolMode::Max) {
          gx_plane[argmax_in(plane, g.w, hw, ww)] += grad;
        } else {
          const T area = mode == PoolMode::AvgIncludePad
                             ? full_area
                             : static_cast<T>((hw.end - hw.begin) * (ww.end - ww.begin));
          const T share = grad / area;
          for (int64_t ih = hw.begin; ih < hw.end; ++ih) {
            for (int64_t iw = ww.begin; iw < ww.end; ++iw) gx_plane[ih * g.w + iw] += share;
          }
        }
      }
    }
  });
}

}  // namespace

void CpuBackend::pool2d_forward(PoolMode mode, const Tensor& out, const Tensor& x,
                                const Pool2dParams& params) {
  STRATA_DISPATCH_FLOATING(out.dtype(), "pool2d_forward",
                           [&] { pool2d_forward_typed<scalar_t>(mode, out, x, params); });
}

void CpuBackend::pool2d_backward(PoolMode mode, const Tensor& grad_x, const Tensor& grad_out,
                                 const Tensor& x, const Tensor& out, const Pool2dParams& params) {
  (void)out;  // max pooling recomputes each window's first maximum from x
  STRATA_DISPATCH_FLOATING(grad_x.dtype(), "pool2d_backward", [&] {
    pool2d_backward_typed<scalar_t>(mode, grad_x, grad_out, x, params);
  });
}

}  // namespace strata::cpu
