// The CUDA backend's entry points that core/ calls through the CudaHooks table
// (strata/detail/cuda_hooks.h; cuda/plugin.cpp fills it). Inside cuda/, call these directly:
// the detail:: functions of the same meaning go through core/ and back.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "strata/detail/cuda_memory.h"
#include "strata/device.h"

namespace strata {
class Backend;
}

namespace strata::distributed {
class ProcessGroup;
struct ProcessGroupOptions;
}  // namespace strata::distributed

namespace strata::cuda {

int device_count(std::string* why);           // cuda_backend.cpp
Backend& backend(int index);                  // cuda_backend.cpp
void* host_alloc(size_t nbytes);              // memory.cpp
void host_free(void* ptr);                    // memory.cpp
detail::CudaMemoryStats memory_stats(int device);  // allocator.cpp
void empty_cache(int device);                 // allocator.cpp
bool nccl_built();                            // nccl_process_group.cpp
std::shared_ptr<distributed::ProcessGroup> new_nccl_group(  // nccl_process_group.cpp
    std::shared_ptr<distributed::ProcessGroup> bootstrap, Device device,
    const distributed::ProcessGroupOptions& options);

}  // namespace strata::cuda
