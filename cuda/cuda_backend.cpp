// The device side of CudaBackend: its stream and library handles, the status messages of the
// check macros, and the entry points device_count and backend (entry_points.h).
#include "cuda_backend.h"

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "entry_points.h"
#include "strata/error.h"

namespace strata::cuda {

void throw_status_error(const char* library, const char* expression, long long status,
                        const std::string& status_text, const char* function, const char* file,
                        int line) {
  detail::throw_error(detail::concat(library, " error ", status, " (", status_text, ") from `",
                                     expression, "` in ", function, " at ", file, ":", line));
}

std::string cuda_status_string(cudaError_t status) {
  return detail::concat(cudaGetErrorName(status), ": ", cudaGetErrorString(status));
}

std::string cublas_status_string(cublasStatus_t status) {
  return detail::concat(cublasGetStatusName(status), ": ", cublasGetStatusString(status));
}

std::string cudnn_status_string(cudnnStatus_t status) { return cudnnGetErrorString(status); }

CudaBackend::CudaBackend(int device_index)
    : device_index_(device_index), allocator_(device_index) {
  DeviceGuard guard(device_index_);
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  CUDA_CHECK(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device_index_));
  max_blocks_ = static_cast<int64_t>(sm_count_) * (2048 / kBlockSize);
}

// Never runs for the backends of cuda_backend() (they live until the process ends); kept
// correct for backends made by hand.
CudaBackend::~CudaBackend() {
  if (cudnn_ != nullptr) static_cast<void>(cudnnDestroy(cudnn_));
  if (cublas_ != nullptr) static_cast<void>(cublasDestroy(cublas_));
  if (stream_ != nullptr) static_cast<void>(cudaStreamDestroy(stream_));
}

Device CudaBackend::device() const { return Device(DeviceType::CUDA, device_index_); }

cublasHandle_t CudaBackend::cublas_handle() {
  std::lock_guard<std::mutex> lock(handle_mutex_);
  if (cublas_ == nullptr) {
    DeviceGuard guard(device_index_);
    CUBLAS_CHECK(cublasCreate(&cublas_));
    CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  }
  return cublas_;
}

cudnnHandle_t CudaBackend::cudnn_handle() {
  std::lock_guard<std::mutex> lock(handle_mutex_);
  if (cudnn_ == nullptr) {
    DeviceGuard guard(device_index_);
    CUDNN_CHECK(cudnnCreate(&cudnn_));
    CUDNN_CHECK(cudnnSetStream(cudnn_, stream_));
  }
  return cudnn_;
}

namespace {

struct DeviceCount {
  int count = 0;
  std::string why;
};

// cudaGetDeviceCount once per process; any error (no driver, error 35 on a machine without a
// GPU) means no device.
const DeviceCount& device_count_once() {
  static const DeviceCount result = [] {
    DeviceCount found;
    int count = 0;
    const cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess) {
      static_cast<void>(cudaGetLastError());
      found.why = detail::concat("no CUDA device found: cudaGetDeviceCount returned ",
                                 cudaGetErrorName(status), ": ", cudaGetErrorString(status));
    } else if (count <= 0) {
      found.why = "no CUDA device found: cudaGetDeviceCount returned 0 devices";
    } else {
      found.count = count;
    }
    return found;
  }();
  return result;
}

}  // namespace

int device_count(std::string* why) {
  const DeviceCount& found = device_count_once();
  if (found.count == 0 && why != nullptr) *why = found.why;
  return found.count;
}

Backend& backend(int index) {
  static std::mutex mutex;
  // NOTE: deliberately leaked, never destroyed: Storage freed by static destructors at exit
  // must still find its backend, and CUDA calls after the runtime unloads would fail.
  static auto* backends =
      new std::vector<std::unique_ptr<CudaBackend>>(static_cast<size_t>(device_count(nullptr)));
  STRATA_ASSERT(index >= 0 && static_cast<size_t>(index) < backends->size(), "cuda::backend(",
                index, ") with ", backends->size(), " device(s)");
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = (*backends)[static_cast<size_t>(index)];
  if (!slot) slot = std::make_unique<CudaBackend>(index);
  return *slot;
}

}  // namespace strata::cuda
