// Random fills of the CUDA backend, following the rule in strata/philox.h exactly as the CPU
// does: element i of a fill with (seed, offset) uses philox4x32_10(offset + i, seed) and the
// same conversion, so both backends draw the same numbers (normal() may differ in the last
// bits of double: CUDA's log and cos are not glibc's).
// NOTE: the final `low + (high - low) * u` uses __dadd_rn/__dmul_rn, so nvcc cannot fuse it
// into an fma that the CPU code does not use.
#include <cstdint>
#include <type_traits>

#include "common.h"
#include "cuda_backend.h"
#include "strata/detail/float32_staging.h"
#include "strata/error.h"
#include "strata/philox.h"
#include "strata/tensor.h"

namespace strata::cuda {
namespace {

// ---- kernels -------------------------------------------------------------------------------

template <typename T>
__global__ void random_uniform_kernel(T* out, int64_t n, double low, double high, uint64_t seed,
                                      uint64_t offset) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const philox::Block b = philox::philox4x32_10(offset + static_cast<uint64_t>(i), seed);
    if constexpr (std::is_same_v<T, float>) {
      out[i] = static_cast<float>(
          __dadd_rn(low, __dmul_rn(high - low, static_cast<double>(philox::uniform_float(b)))));
    } else {
      out[i] = __dadd_rn(low, __dmul_rn(high - low, philox::uniform_double(b)));
    }
  }
}

template <typename T>
__global__ void random_normal_kernel(T* out, int64_t n, double mean, double std, uint64_t seed,
                                     uint64_t offset) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const philox::Block b = philox::philox4x32_10(offset + static_cast<uint64_t>(i), seed);
    out[i] = static_cast<T>(__dadd_rn(mean, __dmul_rn(std, philox::normal_double(b))));
  }
}

template <typename T>
__global__ void random_int_kernel(T* out, int64_t n, int64_t low, int64_t high, uint64_t seed,
                                  uint64_t offset) {
  const int64_t step = static_cast<int64_t>(blockDim.x) * gridDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
    const philox::Block b = philox::philox4x32_10(offset + static_cast<uint64_t>(i), seed);
    out[i] = static_cast<T>(philox::uniform_int(b, low, high));
  }
}

}  // namespace

// ---- launchers -----------------------------------------------------------------------------

void CudaBackend::random_uniform(const Tensor& out, double low, double high, uint64_t seed,
                                 uint64_t offset) {
  if (detail::any_reduced_floating({&out})) {
    detail::Float32Staging stage;
    random_uniform(stage.output(out), low, high, seed, offset);
    return stage.finish();
  }
  const int64_t n = out.numel();
  if (n == 0) return;
  DeviceGuard guard(device_index_);
  STRATA_DISPATCH_FLOATING(out.dtype(), "random_uniform", [&] {
    random_uniform_kernel<scalar_t><<<grid_size(n, max_blocks_), kBlockSize, 0, stream_>>>(
        static_cast<scalar_t*>(out.raw_data()), n, low, high, seed, offset);
    CUDA_KERNEL_CHECK();
  });
}

void CudaBackend::random_normal(const Tensor& out, double mean, double std, uint64_t seed,
                                uint64_t offset) {
  if (detail::any_reduced_floating({&out})) {
    detail::Float32Staging stage;
    random_normal(stage.output(out), mean, std, seed, offset);
    return stage.finish();
  }
  const int64_t n = out.numel();
  if (n == 0) return;
  DeviceGuard guard(device_index_);
  STRATA_DISPATCH_FLOATING(out.dtype(), "random_normal", [&] {
    random_normal_kernel<scalar_t><<<grid_size(n, max_blocks_), kBlockSize, 0, stream_>>>(
        static_cast<scalar_t*>(out.raw_data()), n, mean, std, seed, offset);
    CUDA_KERNEL_CHECK();
  });
}

void CudaBackend::random_int(const Tensor& out, int64_t low, int64_t high, uint64_t seed,
                             uint64_t offset) {
  if (detail::any_reduced_floating({&out})) {
    detail::Float32Staging stage;
    random_int(stage.output(out), low, high, seed, offset);
    return stage.finish();
  }
  const int64_t n = out.numel();
  if (n == 0) return;
  DeviceGuard guard(device_index_);
  STRATA_DISPATCH_NUMERIC(out.dtype(), "random_int", [&] {
    random_int_kernel<scalar_t><<<grid_size(n, max_blocks_), kBlockSize, 0, stream_>>>(
        static_cast<scalar_t*>(out.raw_data()), n, low, high, seed, offset);
    CUDA_KERNEL_CHECK();
  });
}

}  // namespace strata::cuda
