// Mixed-precision kernels of the CUDA backend: GradScaler's fused non-finite check and unscale
// (see Backend::non_finite_check_and_unscale), as the CPU's cpu_fallback/amp.cpp computes it.
// The gradients of one dtype go in launches of up to kTensorsPerLaunch tensors: the pointers
// and sizes travel as one kernel parameter, blockIdx.y picks the tensor, and each block
// strides over it. A thread that meets an infinite or NaN element writes 1 to found_inf (all
// writers write the same value, so the race is benign).
#include <cstdint>
#include <type_traits>
#include <vector>

#include "common.h"
#include "cuda_backend.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cuda {
namespace {

constexpr int kTensorsPerLaunch = 64;

template <typename T>
struct GradList {
  T* data[kTensorsPerLaunch];
  int64_t numel[kTensorsPerLaunch];
};

template <typename T>
__global__ void non_finite_check_and_unscale_kernel(GradList<T> grads, float* found_inf,
                                                    float inv_scale) {
  // float32 arithmetic, float64 for float64 gradients (as the CPU).
  using Math = std::conditional_t<std::is_same_v<T, double>, double, float>;
  T* g = grads.data[blockIdx.y];
  const int64_t n = grads.numel[blockIdx.y];
  const auto inv = static_cast<Math>(inv_scale);
  bool found = false;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const auto v = static_cast<Math>(g[i]);
    found |= !isfinite(v);
    if (inv != Math(1)) g[i] = static_cast<T>(v * inv);
  }
  if (found) *found_inf = 1.0f;
}

template <typename T>
void launch_for_dtype(CudaBackend& backend, const std::vector<const Tensor*>& grads,
                      float* found_inf, float inv_scale) {
  for (size_t start = 0; start < grads.size(); start += kTensorsPerLaunch) {
    GradList<T> list{};
    const size_t count = std::min(grads.size() - start, static_cast<size_t>(kTensorsPerLaunch));
    int64_t largest = 0;
    for (size_t i = 0; i < count; ++i) {
      const Tensor& grad = *grads[start + i];
      list.data[i] = static_cast<T*>(grad.raw_data());
      list.numel[i] = grad.numel();
      largest = std::max(largest, grad.numel());
    }
    if (largest == 0) continue;
    const dim3 grid(static_cast<unsigned>(grid_size(largest, backend.max_blocks())),
                    static_cast<unsigned>(count));
    non_finite_check_and_unscale_kernel<T>
        <<<grid, kBlockSize, 0, backend.stream()>>>(list, found_inf, inv_scale);
    CUDA_KERNEL_CHECK();
  }
}

}  // namespace

void CudaBackend::non_finite_check_and_unscale(const std::vector<Tensor>& grads,
                                               const Tensor& found_inf, double inv_scale) {
  DeviceGuard guard(device_index_);
  std::vector<const Tensor*> by_dtype[4];  // f32, f64, f16, bf16
  for (const Tensor& grad : grads) {
    switch (grad.dtype()) {
      case DType::Float32: by_dtype[0].push_back(&grad); break;
      case DType::Float64: by_dtype[1].push_back(&grad); break;
      case DType::Float16: by_dtype[2].push_back(&grad); break;
      case DType::BFloat16: by_dtype[3].push_back(&grad); break;
      default:
        STRATA_ASSERT(false, "cuda non_finite_check_and_unscale: a ", dtype_name(grad.dtype()),
                      " gradient");
    }
  }
  auto* flag = static_cast<float*>(found_inf.raw_data());
  const auto inv = static_cast<float>(inv_scale);
  launch_for_dtype<float>(*this, by_dtype[0], flag, inv);
  launch_for_dtype<double>(*this, by_dtype[1], flag, inv);
  launch_for_dtype<Half>(*this, by_dtype[2], flag, inv);
  launch_for_dtype<BFloat16>(*this, by_dtype[3], flag, inv);
}

}  // namespace strata::cuda
