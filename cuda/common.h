// Shared by every file of the CUDA backend: the one status-check macro behind CUDA_CHECK,
// CUBLAS_CHECK and CUDNN_CHECK (it throws strata::Error naming the expression, the function,
// the file and the line: a library never exits), the check that follows every kernel launch,
// the launch-shape helpers, and View, a tensor's geometry as plain host data.
// NOTE: CUDA_KERNEL_CHECK() after a launch only catches launch errors (bad configuration); a
// fault inside a kernel surfaces at the next synchronizing call, which CUDA_CHECK reports.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "strata/dtype.h"
#include "strata/error.h"
#include "strata/shape.h"
#include "strata/tensor.h"

namespace strata::cuda {

[[noreturn]] void throw_status_error(const char* library, const char* expression,
                                     long long status, const std::string& status_text,
                                     const char* function, const char* file, int line);

std::string cuda_status_string(cudaError_t status);      // "cudaErrorX: description"
std::string cublas_status_string(cublasStatus_t status);  // "CUBLAS_STATUS_X: description"
std::string cudnn_status_string(cudnnStatus_t status);    // "CUDNN_STATUS_X"

}  // namespace strata::cuda

// The generic check: `success` is the library's success value, `to_string` maps a status to
// text. Evaluates `expr` once.
#define STRATA_STATUS_CHECK(library, expr, success, to_string)                                \
  do {                                                                                        \
    const auto strata_status_ = (expr);                                                       \
    if (strata_status_ != (success)) [[unlikely]] {                                           \
      ::strata::cuda::throw_status_error(library, #expr,                                      \
                                         static_cast<long long>(strata_status_),              \
                                         to_string(strata_status_), __func__, __FILE__,       \
                                         __LINE__);                                           \
    }                                                                                         \
  } while (false)

#define CUDA_CHECK(expr) \
  STRATA_STATUS_CHECK("CUDA", expr, cudaSuccess, ::strata::cuda::cuda_status_string)
#define CUBLAS_CHECK(expr) \
  STRATA_STATUS_CHECK("cuBLAS", expr, CUBLAS_STATUS_SUCCESS, ::strata::cuda::cublas_status_string)
#define CUDNN_CHECK(expr) \
  STRATA_STATUS_CHECK("cuDNN", expr, CUDNN_STATUS_SUCCESS, ::strata::cuda::cudnn_status_string)

// After every kernel launch.
#define CUDA_KERNEL_CHECK() CUDA_CHECK(cudaGetLastError())

namespace strata::cuda {

// Threads per block of the elementwise-style kernels.
inline constexpr int kBlockSize = 256;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Blocks for a grid-stride loop over n items: enough to fill the device once (max_blocks,
// from the backend), never more than the work needs, at least one.
inline unsigned int grid_size(int64_t n, int64_t max_blocks, int block = kBlockSize) {
  const int64_t blocks = ceil_div(n, block);
  return static_cast<unsigned int>(blocks < 1 ? 1 : (blocks < max_blocks ? blocks : max_blocks));
}

// The unsigned type of an element's size, for kernels that only move bits (copy of one dtype,
// fill, where, index_select, gather).
template <size_t Bytes> struct BitsOf;
template <> struct BitsOf<1> { using type = uint8_t; };
template <> struct BitsOf<2> { using type = uint16_t; };
template <> struct BitsOf<4> { using type = uint32_t; };
template <> struct BitsOf<8> { using type = uint64_t; };

// Calls f(E{}) with E = BitsOf<bytes>::type.
template <typename F>
void dispatch_element_size(size_t bytes, const char* kernel, const F& f) {
  switch (bytes) {
    case 1: return f(uint8_t{});
    case 2: return f(uint16_t{});
    case 4: return f(uint32_t{});
    case 8: return f(uint64_t{});
    default: break;
  }
  STRATA_ASSERT(false, "cuda ", kernel, ": element size ", bytes);
}

// Makes `device` current for its scope and restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) : device_(device) {
    CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device_) CUDA_CHECK(cudaSetDevice(device_));
  }
  ~DeviceGuard() {
    if (previous_ != device_) static_cast<void>(cudaSetDevice(previous_));
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int device_;
  int previous_ = 0;
};

// A tensor's geometry as plain host data, so launchers can also run on temporary buffers
// that are not Tensors (matmul's contiguous copies).
struct View {
  void* data = nullptr;
  DType dtype = DType::Float32;
  Shape shape;
  Strides strides;  // in elements
};

inline View view_of(const Tensor& t) { return {t.raw_data(), t.dtype(), t.shape(), t.strides()}; }

}  // namespace strata::cuda
