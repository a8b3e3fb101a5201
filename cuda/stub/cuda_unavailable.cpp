// Built instead of the CUDA backend when Strata is configured without it (STRATA_CUDA=OFF, or
// AUTO without nvcc, cuBLAS or cuDNN): every CUDA request explains why it cannot be served.
#include "strata/backend.h"
#include "strata/detail/cuda_hooks.h"
#include "strata/detail/cuda_memory.h"
#include "strata/error.h"

namespace strata::detail {

int cuda_device_count(std::string* why) {
  if (why != nullptr) {
    *why = "this Strata was built without the CUDA backend (configure with -DSTRATA_CUDA=ON "
           "on a machine with nvcc, cuBLAS and cuDNN)";
  }
  return 0;
}

Backend& cuda_backend(int index) {
  STRATA_ASSERT(false, "cuda_backend(", index, ") called in a build without CUDA");
  __builtin_unreachable();
}

void* cuda_host_alloc(size_t /*nbytes*/) { return nullptr; }

void cuda_host_free(void* /*ptr*/) {}

CudaMemoryStats cuda_memory_stats(int /*device*/) { return {}; }

void cuda_empty_cache(int /*device*/) {}

}  // namespace strata::detail
