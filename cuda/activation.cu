// Pointwise activations of the CUDA backend, float32 and float64: one grid-stride kernel per
// direction over contiguous tensors, with the activation a runtime switch (uniform over the
// grid, so it costs nothing next to the memory traffic), as elementwise.cu does for its ops.
// Own kernels rather than cudnnActivationForward/Backward: cuDNN has only four of the seven
// (no LeakyRelu, Softplus with PyTorch's threshold, or exact Gelu), so using it would still
// need these kernels; one code path keeps every activation's formula in one place, matching
// cpu_fallback/activation.cpp, and the kernels are memory-bound either way.
// Formulas (as PyTorch's): relu max(x, 0) (NaN stays NaN); sigmoid 1 / (1 + e^-x); tanh;
// leaky_relu x > 0 ? x : alpha x; elu x > 0 ? x : alpha (e^x - 1); softplus
// log(1 + e^(beta x)) / beta, or x where beta x > 20; gelu x Phi(x) with Phi via erf.
// NOTE: every derivative at a kink takes the left side (relu'(0) = 0, leaky_relu'(0) = alpha,
// elu'(0) = alpha), as PyTorch's `x > 0` tests do.
#include <cstdint>

#include "common.h"
#include "cuda_backend.h"
#include "strata/detail/float32_staging.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cuda {
namespace {

// ---- scalar math in T (float functions for float, double for double) ----------------------

template <typename T>
__device__ T exp_of(T x) {
  if constexpr (sizeof(T) == 4) return expf(x); else return exp(x);
}
template <typename T>
__device__ T expm1_of(T x) {
  if constexpr (sizeof(T) == 4) return expm1f(x); else return expm1(x);
}
template <typename T>
__device__ T log1p_of(T x) {
  if constexpr (sizeof(T) == 4) return log1pf(x); else return log1p(x);
}
template <typename T>
__device__ T tanh_of(T x) {
  if constexpr (sizeof(T) == 4) return tanhf(x); else return tanh(x);
}
template <typename T>
__device__ T erf_of(T x) {
  if constexpr (sizeof(T) == 4) return erff(x); else return erf(x);
}

constexpr double kSqrtHalf = 0.70710678118654752440;      // 1 / sqrt(2)
constexpr double kInvSqrt2Pi = 0.39894228040143267794;    // 1 / sqrt(2 pi)
constexpr double kSoftplusThreshold = 20.0;               // PyTorch's default

template <typename T>
__device__ T activation_value(Activation act, T x, T alpha) {
  switch (act) {
    case Activation::Relu: return (x > T(0) || x != x) ? x : T(0);
    case Activation::Sigmoid: return T(1) / (T(1) + exp_of(-x));
    case Activation::Tanh: return tanh_of(x);
    case Activation::LeakyRelu: return x > T(0) ? x : alpha * x;
    case Activation::Elu: return x > T(0) ? x : alpha * expm1_of(x);
    case Activation::Softplus: {
      const T bx = alpha * x;
      return bx > T(kSoftplusThreshold) ? x : log1p_of(exp_of(bx)) / alpha;
    }
    case Activation::Gelu: return T(0.5) * x * (T(1) + erf_of(x * T(kSqrtHalf)));
  }
  return x;
}

// f'(x) from x and y = f(x).
template <typename T>
__device__ T activation_derivative(Activation act, T x, T y, T alpha) {
  switch (act) {
    case Activation::Relu:
      return y > T(0) ? T(1) : T(0);  // y > 0 exactly where x > 0
    case Activation::Sigmoid: return y * (T(1) - y);
    case Activation::Tanh: return T(1) - y * y;
    case Activation::LeakyRelu: return x > T(0) ? T(1) : alpha;
    case Activation::Elu: return x > T(0) ? T(1) : alpha * exp_of(x);
    case Activation::Softplus: {
      const T bx = alpha * x;
      if (bx > T(kSoftplusThreshold)) return T(1);
      const T z = exp_of(bx);
      return z / (z + T(1));
    }
    case Activation::Gelu: {
      const T cdf = T(0.5) * (T(1) + erf_of(x * T(kSqrtHalf)));
      const T pdf = T(kInvSqrt2Pi) * exp_of(T(-0.5) * x * x);
      return cdf + x * pdf;
    }
  }
  return T(0);
}

// ---- kernels ---------------------------------------------------------------------------------

// out[i] = f(in[i]); out may be in.
template <typename T>
__global__ void activation_forward_grid_stride_kernel(Activation act, T* out, const T* in,
                                                      T alpha, int64_t n) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    out[i] = activation_value(act, in[i], alpha);
  }
}

// grad_in[i] = f'(in[i]) * grad_out[i]; grad_in may be grad_out. Relu, sigmoid and tanh get
// `out` (f(in)) and `in` null; the others get `in`, and `out` may be null: y is then
// recomputed from x.
template <typename T>
__global__ void activation_backward_grid_stride_kernel(Activation act, T* grad_in,
                                                       const T* grad_out, const T* in,
                                                       const T* out, T alpha, int64_t n) {
  const int64_t step = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const T x = in != nullptr ? in[i] : T(0);
    const T y = out != nullptr ? out[i] : activation_value(act, x, alpha);
    grad_in[i] = activation_derivative(act, x, y, alpha) * grad_out[i];
  }
}

// ---- launchers -------------------------------------------------------------------------------

template <typename T>
void launch_activation_forward(CudaBackend& backend, Activation act, const Tensor& out,
                               const Tensor& in, double alpha) {
  const int64_t n = out.numel();
  activation_forward_grid_stride_kernel<T><<<grid_size(n, backend.max_blocks()), kBlockSize, 0,
                                             backend.stream()>>>(
      act, static_cast<T*>(out.raw_data()), static_cast<const T*>(in.raw_data()),
      static_cast<T>(alpha), n);
  CUDA_KERNEL_CHECK();
}

template <typename T>
void launch_activation_backward(CudaBackend& backend, Activation act, const Tensor& grad_in,
                                const Tensor& grad_out, const Tensor& in, const Tensor& out,
                                double alpha) {
  const int64_t n = grad_in.numel();
  activation_backward_grid_stride_kernel<T>
      <<<grid_size(n, backend.max_blocks()), kBlockSize, 0, backend.stream()>>>(
          act, static_cast<T*>(grad_in.raw_data()), static_cast<const T*>(grad_out.raw_data()),
          in.defined() ? static_cast<const T*>(in.raw_data()) : nullptr,
          out.defined() ? static_cast<const T*>(out.raw_data()) : nullptr, static_cast<T>(alpha),
          n);
  CUDA_KERNEL_CHECK();
}

}  // namespace

void CudaBackend::activation_forward(Activation act, const Tensor& out, const Tensor& in,
                                     double alpha) {
  if (detail::any_reduced_floating({&out, &in})) {
    detail::Float32Staging stage;
    activation_forward(act, stage.output(out), stage.input(in), alpha);
    return stage.finish();
  }
  if (out.numel() == 0) return;
  DeviceGuard guard(device_index_);
  switch (out.dtype()) {
    case DType::Float32: return launch_activation_forward<float>(*this, act, out, in, alpha);
    case DType::Float64: return launch_activation_forward<double>(*this, act, out, in, alpha);
    default: break;
  }
  STRATA_CHECK(false, "activation_forward: the CUDA backend supports float32 and float64, got ",
               dtype_name(out.dtype()));
}

void CudaBackend::activation_backward(Activation act, const Tensor& grad_in,
                                      const Tensor& grad_out, const Tensor& in, const Tensor& out,
                                      double alpha) {
  if (detail::any_reduced_floating({&grad_in, &grad_out, &in, &out})) {
    detail::Float32Staging stage;
    activation_backward(act, stage.output(grad_in), stage.input(grad_out), stage.input(in),
                        stage.input(out), alpha);
    return stage.finish();
  }
  if (grad_in.numel() == 0) return;
  DeviceGuard guard(device_index_);
  switch (grad_in.dtype()) {
    case DType::Float32:
      return launch_activation_backward<float>(*this, act, grad_in, grad_out, in, out, alpha);
    case DType::Float64:
      return launch_activation_backward<double>(*this, act, grad_in, grad_out, in, out, alpha);
    default: break;
  }
  STRATA_CHECK(false, "activation_backward: the CUDA backend supports float32 and float64, got ",
               dtype_name(grad_in.dtype()));
}

}  // namespace strata::cuda
