// 2-D pooling of the CUDA backend (float32 and float64), Strata's own kernels rather than
// cuDNN's, so that ties, NaN and the argmax follow the contract of backend.h exactly as
// cpu_fallback/pool.cpp does. x [N, C, H, W], out [N, C, P, Q], contiguous; the geometry of
// the windows is Pool2dParams' (dilation, ceil-mode sizes from out's shape).
// - Forward: one thread per output element computes its window (value, and for max pooling
//   the flat index h*W + w with PyTorch's `v > best || isnan(v)` rule from -inf).
// - Backward in gather form: one thread per input element loops over the output windows that
//   can contain it and sums their gradient (max: where indices == this position; average: the
//   window's share). No atomics: the result is deterministic, and the sum runs in the same
//   (row-major output) order as the CPU's scatter, so both backends agree bit for bit.
#include <cstdint>
#include <cuda/std/limits>
#include <cuda/std/type_traits>

#include "common.h"
#include "cuda_backend.h"
#include "strata/detail/float32_staging.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cuda {
namespace {

// Sizes and window of one pooling, as plain data for the kernels. planes = N * C.
struct PoolGeometry {
  int64_t planes, h, w, p, q;
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
};

// The in-bounds taps begin, begin + dilation, ... (< end) of the window starting at `start`.
struct Window {
  int64_t begin, end;
};

__device__ __forceinline__ Window window_at(int64_t start, int64_t kernel, int64_t dilation,
                                            int64_t size) {
  int64_t begin = start;
  if (begin < 0) begin += (-begin + dilation - 1) / dilation * dilation;
  const int64_t end = start + (kernel - 1) * dilation + 1;
  return {begin, end < size ? end : size};
}

// The outputs [first, last) along one axis whose window (taps start + a * dilation) can reach
// input position `pos`: start <= pos <= start + (kernel - 1) * dilation.
__device__ __forceinline__ Window outputs_reaching(int64_t pos, int64_t kernel, int64_t stride,
                                                   int64_t pad, int64_t dilation, int64_t out) {
  const int64_t low = pos + pad - (kernel - 1) * dilation;  // smallest start that reaches pos
  const int64_t first = low <= 0 ? 0 : (low + stride - 1) / stride;
  const int64_t last = (pos + pad) / stride + 1;  // pos + pad >= 0
  return {first, last < out ? last : out};
}

template <typename T>
__device__ __forceinline__ bool is_nan(T v) {
  return v != v;
}

// ---- kernels -------------------------------------------------------------------------------

// Index types: int64_t holds flat positions h*W + w; uint8_t holds tap numbers (row-major
// over the kernel_h x kernel_w taps of the window).
template <typename I>
inline constexpr bool kTapIndices = ::cuda::std::is_same_v<I, uint8_t>;

// out, indices [planes, P, Q] from x [planes, H, W]: one output element per iteration.
template <typename T, typename I>
__global__ void max_pool2d_forward_kernel(T* out, I* indices, const T* x, PoolGeometry g,
                                          int64_t n) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += step) {
    const int64_t ow = k % g.q, oh = (k / g.q) % g.p, plane = k / (g.p * g.q);
    const int64_t start_h = oh * g.stride_h - g.pad_h, start_w = ow * g.stride_w - g.pad_w;
    const Window hw = window_at(start_h, g.kernel_h, g.dilation_h, g.h);
    const Window ww = window_at(start_w, g.kernel_w, g.dilation_w, g.w);
    const T* x_plane = x + plane * g.h * g.w;
    T best = -::cuda::std::numeric_limits<T>::infinity();
    int64_t best_h = hw.begin, best_w = ww.begin;
    for (int64_t ih = hw.begin; ih < hw.end; ih += g.dilation_h) {
      for (int64_t iw = ww.begin; iw < ww.end; iw += g.dilation_w) {
        const T v = x_plane[ih * g.w + iw];
        if (v > best || is_nan(v)) {
          best = v;
          best_h = ih;
          best_w = iw;
        }
      }
    }
    out[k] = best;
    if constexpr (kTapIndices<I>) {
      indices[k] = static_cast<I>((best_h - start_h) / g.dilation_h * g.kernel_w +
                                  (best_w - start_w) / g.dilation_w);
    } else {
      indices[k] = best_h * g.w + best_w;
    }
  }
}

// The flat position in its plane that output o = (oh, ow) names through its index.
template <typename I>
__device__ __forceinline__ int64_t pooled_position(const I* indices, int64_t o, int64_t oh,
                                                   int64_t ow, const PoolGeometry& g) {
  if constexpr (kTapIndices<I>) {
    const int64_t tap = indices[o];
    return (oh * g.stride_h - g.pad_h + tap / g.kernel_w * g.dilation_h) * g.w + ow * g.stride_w -
           g.pad_w + tap % g.kernel_w * g.dilation_w;
  } else {
    return indices[o];
  }
}

// grad_x [planes, H, W]: one input element per iteration, the sum of grad_out over the
// windows whose index names it, in row-major output order.
template <typename T, typename I>
__global__ void max_pool2d_backward_gather_kernel(T* grad_x, const T* grad_out, const I* indices,
                                                  PoolGeometry g, int64_t n) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += step) {
    const int64_t iw = k % g.w, ih = (k / g.w) % g.h, plane = k / (g.h * g.w);
    const int64_t position = ih * g.w + iw;
    const Window rows = outputs_reaching(ih, g.kernel_h, g.stride_h, g.pad_h, g.dilation_h, g.p);
    const Window cols = outputs_reaching(iw, g.kernel_w, g.stride_w, g.pad_w, g.dilation_w, g.q);
    const int64_t plane_offset = plane * g.p * g.q;
    T sum = 0;
    for (int64_t oh = rows.begin; oh < rows.end; ++oh) {
      for (int64_t ow = cols.begin; ow < cols.end; ++ow) {
        const int64_t o = plane_offset + oh * g.q + ow;
        if (pooled_position(indices, o, oh, ow, g) == position) sum += grad_out[o];
      }
    }
    grad_x[k] = sum;
  }
}

// The divisor of the average over output (oh, ow)'s window (dilation 1).
template <typename T>
__device__ __forceinline__ T avg_divisor(const PoolGeometry& g, bool count_include_pad,
                                         Window hw, Window ww) {
  return count_include_pad ? static_cast<T>(g.kernel_h * g.kernel_w)
                           : static_cast<T>((hw.end - hw.begin) * (ww.end - ww.begin));
}

template <typename T>
__global__ void avg_pool2d_forward_kernel(T* out, const T* x, PoolGeometry g,
                                          bool count_include_pad, int64_t n) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += step) {
    const int64_t ow = k % g.q, oh = (k / g.q) % g.p, plane = k / (g.p * g.q);
    const Window hw = window_at(oh * g.stride_h - g.pad_h, g.kernel_h, 1, g.h);
    const Window ww = window_at(ow * g.stride_w - g.pad_w, g.kernel_w, 1, g.w);
    const T* x_plane = x + plane * g.h * g.w;
    T sum = 0;
    for (int64_t ih = hw.begin; ih < hw.end; ++ih) {
      for (int64_t iw = ww.begin; iw < ww.end; ++iw) sum += x_plane[ih * g.w + iw];
    }
    out[k] = sum / avg_divisor<T>(g, count_include_pad, hw, ww);
  }
}

template <typename T>
__global__ void avg_pool2d_backward_gather_kernel(T* grad_x, const T* grad_out, PoolGeometry g,
                                                  bool count_include_pad, int64_t n) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < n;
       k += step) {
    const int64_t iw = k % g.w, ih = (k / g.w) % g.h, plane = k / (g.h * g.w);
    const Window rows = outputs_reaching(ih, g.kernel_h, g.stride_h, g.pad_h, 1, g.p);
    const Window cols = outputs_reaching(iw, g.kernel_w, g.stride_w, g.pad_w, 1, g.q);
    const T* go_plane = grad_out + plane * g.p * g.q;
    T sum = 0;
    for (int64_t oh = rows.begin; oh < rows.end; ++oh) {
      const Window hw = window_at(oh * g.stride_h - g.pad_h, g.kernel_h, 1, g.h);
      for (int64_t ow = cols.begin; ow < cols.end; ++ow) {
        const Window ww = window_at(ow * g.stride_w - g.pad_w, g.kernel_w, 1, g.w);
        // As the CPU: the share grad / divisor first, then the sum.
        sum += go_plane[oh * g.q + ow] / avg_divisor<T>(g, count_include_pad, hw, ww);
      }
    }
    grad_x[k] = sum;
  }
}

// ---- launchers -----------------------------------------------------------------------------

// x_like [N, C, H, W] (x or grad_x), out_like [N, C, P, Q] (out or grad_out).
PoolGeometry pool_geometry(const Tensor& x_like, const Tensor& out_like, const Pool2dParams& p) {
  return {x_like.size(0) * x_like.size(1), x_like.size(2), x_like.size(3), out_like.size(2),
          out_like.size(3), p.kernel_h, p.kernel_w, p.stride_h, p.stride_w, p.pad_h, p.pad_w,
          p.dilation_h, p.dilation_w};
}

// f(T{}) with T = float or double.
template <typename F>
void dispatch_pool(DType dtype, const char* kernel, const F& f) {
  switch (dtype) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    default: break;
  }
  STRATA_CHECK(false, kernel, ": the CUDA backend supports float32 and float64, got ",
               dtype_name(dtype));
}

}  // namespace

// out, indices [N, C, P, Q] = max_pool(x [N, C, H, W]).
void CudaBackend::max_pool2d_forward(const Tensor& out, const Tensor& indices, const Tensor& x,
                                     const Pool2dParams& params) {
  if (detail::any_reduced_floating({&out, &x})) {
    detail::Float32Staging stage;
    max_pool2d_forward(stage.output(out), indices, stage.input(x), params);
    return stage.finish();
  }
  const int64_t n = out.numel();
  if (n == 0) return;
  DeviceGuard guard(device_index_);
  const PoolGeometry g = pool_geometry(x, out, params);
  const bool taps = indices.dtype() == DType::UInt8;
  dispatch_pool(out.dtype(), "max_pool2d_forward", [&](auto zero) {
    using T = decltype(zero);
    T* out_data = static_cast<T*>(out.raw_data());
    const T* x_data = static_cast<const T*>(x.raw_data());
    const unsigned int blocks = grid_size(n, max_blocks_);
    if (taps) {
      max_pool2d_forward_kernel<T, uint8_t><<<blocks, kBlockSize, 0, stream_>>>(
          out_data, static_cast<uint8_t*>(indices.raw_data()), x_data, g, n);
    } else {
      max_pool2d_forward_kernel<T, int64_t><<<blocks, kBlockSize, 0, stream_>>>(
          out_data, static_cast<int64_t*>(indices.raw_data()), x_data, g, n);
    }
    CUDA_KERNEL_CHECK();
  });
}

// grad_x [N, C, H, W] from grad_out and the forward's indices [N, C, P, Q].
void CudaBackend::max_pool2d_backward(const Tensor& grad_x, const Tensor& grad_out,
                                      const Tensor& indices, const Pool2dParams& params) {
  if (detail::any_reduced_floating({&grad_x, &grad_out})) {
    detail::Float32Staging stage;
    max_pool2d_backward(stage.output(grad_x), stage.input(grad_out), indices, params);
    return stage.finish();
  }
  const int64_t n = grad_x.numel();
  if (n == 0) return;
  DeviceGuard guard(device_index_);
  const PoolGeometry g = pool_geometry(grad_x, grad_out, params);
  const bool taps = indices.dtype() == DType::UInt8;
  dispatch_pool(grad_x.dtype(), "max_pool2d_backward", [&](auto zero) {
    using T = decltype(zero);
    T* gx = static_cast<T*>(grad_x.raw_data());
    const T* go = static_cast<const T*>(grad_out.raw_data());
    const unsigned int blocks = grid_size(n, max_blocks_);
    if (taps) {
      max_pool2d_backward_gather_kernel<T, uint8_t><<<blocks, kBlockSize, 0, stream_>>>(
          gx, go, static_cast<const uint8_t*>(indices.raw_data()), g, n);
    } else {
      max_pool2d_backward_gather_kernel<T, int64_t><<<blocks, kBlockSize, 0, stream_>>>(
          gx, go, static_cast<const int64_t*>(indices.raw_data()), g, n);
    }
    CUDA_KERNEL_CHECK();
  });
}

// out [N, C, P, Q] = avg_pool(x [N, C, H, W]).
void CudaBackend::avg_pool2d_forward(const Tensor& out, const Tensor& x,
                                     const Pool2dParams& params, bool count_include_pad) {
  if (detail::any_reduced_floating({&out, &x})) {
    detail::Float32Staging stage;
    avg_pool2d_forward(stage.output(out), stage.input(x), params, count_include_pad);
    return stage.finish();
  }
  const int64_t n = out.numel();
  if (n == 0) return;
  DeviceGuard guard(device_index_);
  const PoolGeometry g = pool_geometry(x, out, params);
  dispatch_pool(out.dtype(), "avg_pool2d_forward", [&](auto zero) {
    using T = decltype(zero);
    avg_pool2d_forward_kernel<T><<<grid_size(n, max_blocks_), kBlockSize, 0, stream_>>>(
        static_cast<T*>(out.raw_data()), static_cast<const T*>(x.raw_data()), g,
        count_include_pad, n);
    CUDA_KERNEL_CHECK();
  });
}

// grad_x [N, C, H, W] from grad_out [N, C, P, Q].
void CudaBackend::avg_pool2d_backward(const Tensor& grad_x, const Tensor& grad_out,
                                      const Pool2dParams& params, bool count_include_pad) {
  if (detail::any_reduced_floating({&grad_x, &grad_out})) {
    detail::Float32Staging stage;
    avg_pool2d_backward(stage.output(grad_x), stage.input(grad_out), params, count_include_pad);
    return stage.finish();
  }
  const int64_t n = grad_x.numel();
  if (n == 0) return;
  DeviceGuard guard(device_index_);
  const PoolGeometry g = pool_geometry(grad_x, grad_out, params);
  dispatch_pool(grad_x.dtype(), "avg_pool2d_backward", [&](auto zero) {
    using T = decltype(zero);
    avg_pool2d_backward_gather_kernel<T><<<grid_size(n, max_blocks_), kBlockSize, 0, stream_>>>(
        static_cast<T*>(grad_x.raw_data()), static_cast<const T*>(grad_out.raw_data()), g,
        count_include_pad, n);
    CUDA_KERNEL_CHECK();
  });
}

}  // namespace strata::cuda
