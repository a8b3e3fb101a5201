// The table of the CUDA backend's entry points that core/src/cuda_hooks.cpp calls: the one
// symbol libstrata_cuda.so exports for dlopen (or, in a static build, linked in directly).
#include "entry_points.h"
#include "strata/detail/cuda_hooks.h"

extern "C" const strata::detail::CudaHooks* strata_cuda_hooks() {
  namespace cuda = strata::cuda;
  static const strata::detail::CudaHooks table = [] {
    strata::detail::CudaHooks hooks;
    hooks.device_count = &cuda::device_count;
    hooks.backend = &cuda::backend;
    hooks.host_alloc = &cuda::host_alloc;
    hooks.host_free = &cuda::host_free;
    hooks.memory_stats = &cuda::memory_stats;
    hooks.empty_cache = &cuda::empty_cache;
    hooks.nccl_built = &cuda::nccl_built;
    hooks.new_nccl_group = &cuda::new_nccl_group;
    return hooks;
  }();
  return &table;
}
