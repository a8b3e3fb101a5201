// What the CUDA caching allocator holds on one device, for tests and memory reports. Served by
// cuda/allocator.cpp through core/src/cuda_hooks.cpp (all zeros when CUDA is not available).
#pragma once

#include <cstddef>

namespace strata::detail {

struct CudaMemoryStats {
  size_t allocated_bytes = 0;  // in blocks handed out and not yet freed (rounded sizes)
  size_t cached_bytes = 0;     // in freed blocks kept for reuse
  size_t malloc_calls = 0;     // cudaMalloc calls since the start
};

// Zeros for a device that does not exist.
CudaMemoryStats cuda_memory_stats(int device);

// Returns the cached blocks of `device` to CUDA (cudaFree); blocks in use stay.
void cuda_empty_cache(int device);

}  // namespace strata::detail
