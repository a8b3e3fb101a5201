// Mixed-precision kernels of the CPU backend: GradScaler's fused non-finite check and unscale
// (see Backend::non_finite_check_and_unscale). One pass per gradient, branch-free, so the
// float32 loop vectorizes; large gradients split over OpenMP's threads.
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "cpu_backend.h"
#include "parallel.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cpu {
namespace {

// Scales g[begin, end) in place; returns whether any element was infinite or NaN.
template <typename T>
bool check_and_unscale(T* g, int64_t begin, int64_t end, double inv_scale) {
  // The arithmetic type: float32, or float64 for float64 gradients (as PyTorch's kernel).
  using Math = std::conditional_t<std::is_same_v<T, double>, double, float>;
  const auto inv = static_cast<Math>(static_cast<float>(inv_scale));
  const bool scale = inv != Math(1);
  bool found = false;
  for (int64_t i = begin; i < end; ++i) {
    const auto v = static_cast<Math>(g[i]);
    found |= !std::isfinite(v);
    if (scale) g[i] = static_cast<T>(v * inv);
  }
  return found;
}

template <typename T>
bool check_and_unscale_tensor(const Tensor& grad, double inv_scale) {
  T* g = static_cast<T*>(grad.raw_data());
  const int64_t n = grad.numel();
  if (!worth_threads(n)) return check_and_unscale(g, 0, n, inv_scale);
  bool found = false;
#pragma omp parallel reduction(|| : found)
  {
    const int64_t threads = omp_get_num_threads(), thread = omp_get_thread_num();
    found = check_and_unscale(g, n * thread / threads, n * (thread + 1) / threads, inv_scale);
  }
  return found;
}

}  // namespace

void CpuBackend::non_finite_check_and_unscale(const std::vector<Tensor>& grads,
                                              const Tensor& found_inf, double inv_scale) {
  bool found = false;
  for (const Tensor& grad : grads) {
    bool found_here = false;
    switch (grad.dtype()) {
      case DType::Float32: found_here = check_and_unscale_tensor<float>(grad, inv_scale); break;
      case DType::Float64: found_here = check_and_unscale_tensor<double>(grad, inv_scale); break;
      case DType::Float16: found_here = check_and_unscale_tensor<Half>(grad, inv_scale); break;
      case DType::BFloat16:
        found_here = check_and_unscale_tensor<BFloat16>(grad, inv_scale);
        break;
      default:
        STRATA_ASSERT(false, "cpu non_finite_check_and_unscale: a ", dtype_name(grad.dtype()),
                      " gradient");
    }
    found = found || found_here;
  }
  if (found) *static_cast<float*>(found_inf.raw_data()) = 1.0f;
}

}  // namespace strata::cpu
