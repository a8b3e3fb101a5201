// The seam between core/ and cuda/. core/src/cuda_hooks.cpp defines these functions; they reach
// the CUDA backend through a table of its entry points (CudaHooks), which
// - a shared build loads from the plugin libstrata_cuda.so beside libstrata.so, on the first
//   CUDA request (so a CPU-only program never loads cuBLAS and cuDNN: about a second each start),
// - a static build links in directly,
// - a build without CUDA lacks (each request then says why). Nothing else in core/ knows CUDA.
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

namespace strata::detail {

// Number of CUDA devices usable; 0 with `why` set ("CUDA backend not compiled in", "no CUDA
// device found: cudaGetDeviceCount returned ...", "cannot load libstrata_cuda.so: ...") when
// there are none.
int cuda_device_count(std::string* why);

// The backend of CUDA device `index`; callers have checked 0 <= index < count.
Backend& cuda_backend(int index);

// Page-locked ("pinned") host memory, which the GPU reads by DMA without a staging copy:
// nullptr when there is no CUDA device or cudaHostAlloc fails. Free with cuda_host_free.
void* cuda_host_alloc(size_t nbytes);
void cuda_host_free(void* ptr);

// Whether the CUDA libraries are loaded in this process yet (always true in a static CUDA
// build, false in a build without CUDA); for tests of the lazy loading.
bool cuda_libraries_loaded();

// Whether the CUDA backend was built with NCCL; false with `why` set (no CUDA backend, or built
// without NCCL) otherwise.
bool cuda_nccl_built(std::string* why);

// The NCCL process group (distributed::new_nccl_group, which has checked the arguments).
std::shared_ptr<distributed::ProcessGroup> cuda_new_nccl_group(
    std::shared_ptr<distributed::ProcessGroup> bootstrap, Device device,
    const distributed::ProcessGroupOptions& options);

// The CUDA backend's entry points, as cuda/plugin.cpp fills them. kAbiVersion changes whenever
// this struct or the Backend interface (its virtual functions or what they accept) does, so a
// stale plugin is refused rather than called wrongly.
struct CudaHooks {
  static constexpr int kAbiVersion = 4;
  int abi_version = kAbiVersion;
  int (*device_count)(std::string* why) = nullptr;
  Backend& (*backend)(int index) = nullptr;
  void* (*host_alloc)(size_t nbytes) = nullptr;
  void (*host_free)(void* ptr) = nullptr;
  CudaMemoryStats (*memory_stats)(int device) = nullptr;
  void (*empty_cache)(int device) = nullptr;
  bool (*nccl_built)() = nullptr;
  std::shared_ptr<distributed::ProcessGroup> (*new_nccl_group)(
      std::shared_ptr<distributed::ProcessGroup> bootstrap, Device device,
      const distributed::ProcessGroupOptions& options) = nullptr;
};

}  // namespace strata::detail

// The plugin's one exported symbol (C linkage, so dlsym finds it by this name).
extern "C" const strata::detail::CudaHooks* strata_cuda_hooks();
