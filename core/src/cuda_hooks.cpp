// The functions of strata/detail/cuda_hooks.h and cuda_memory.h: each asks cuda_hooks_table()
// for the CUDA backend's entry points and forwards, or answers "no CUDA" with the reason.
// - STRATA_CUDA_PLUGIN: the table comes from libstrata_cuda.so, loaded (dlopen) on the first
//   call from the folder libstrata.so was loaded from (STRATA_CUDA_PLUGIN_PATH overrides).
// - STRATA_WITH_CUDA without the plugin (a static build): the table is linked in.
// - neither: there is no table.
// NOTE: the plugin is never unloaded: backends and their storage live until the process ends.
#include "strata/detail/cuda_hooks.h"

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "strata/backend.h"
#include "strata/error.h"

#if defined(STRATA_CUDA_PLUGIN)
#include <dlfcn.h>
#endif

namespace strata::detail {

namespace {

struct LoadedHooks {
  const CudaHooks* table = nullptr;
  std::string why;  // when table is null
};

#if defined(STRATA_CUDA_PLUGIN)
std::atomic<bool> g_plugin_loaded{false};

// libstrata_cuda.so in the folder of the libstrata.so that holds this function.
std::string plugin_path() {
  if (const char* path = std::getenv("STRATA_CUDA_PLUGIN_PATH"); path != nullptr && *path) {
    return path;
  }
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&cuda_libraries_loaded), &info) != 0 &&
      info.dli_fname != nullptr) {
    const std::string library = info.dli_fname;
    const size_t slash = library.find_last_of('/');
    if (slash != std::string::npos) return library.substr(0, slash + 1) + "libstrata_cuda.so";
  }
  return "libstrata_cuda.so";  // the loader's search path
}

LoadedHooks load_hooks() {
  LoadedHooks loaded;
  const std::string path = plugin_path();
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* error = dlerror();
    loaded.why = concat("cannot load the CUDA backend ", path, ": ", error ? error : "?");
    return loaded;
  }
  g_plugin_loaded.store(true);
  using Entry = const CudaHooks* (*)();
  auto entry = reinterpret_cast<Entry>(dlsym(handle, "strata_cuda_hooks"));
  if (entry == nullptr) {
    loaded.why = concat("cannot load the CUDA backend ", path, ": it has no strata_cuda_hooks");
    return loaded;
  }
  const CudaHooks* table = entry();
  if (table == nullptr || table->abi_version != CudaHooks::kAbiVersion) {
    loaded.why = concat("cannot load the CUDA backend ", path, ": it was built for another ",
                        "version of libstrata (hook ABI ", table ? table->abi_version : -1,
                        ", expected ", CudaHooks::kAbiVersion, ")");
    return loaded;
  }
  loaded.table = table;
  return loaded;
}
#elif defined(STRATA_WITH_CUDA)
LoadedHooks load_hooks() { return {strata_cuda_hooks(), {}}; }
#else
LoadedHooks load_hooks() {
  return {nullptr, "this Strata was built without the CUDA backend (configure with "
                   "-DSTRATA_CUDA=ON on a machine with nvcc, cuBLAS and cuDNN)"};
}
#endif

const LoadedHooks& cuda_hooks_table() {
  static const LoadedHooks loaded = load_hooks();
  return loaded;
}

const CudaHooks* hooks() { return cuda_hooks_table().table; }

}  // namespace

int cuda_device_count(std::string* why) {
  if (const CudaHooks* table = hooks()) return table->device_count(why);
  if (why != nullptr) *why = cuda_hooks_table().why;
  return 0;
}

Backend& cuda_backend(int index) {
  const CudaHooks* table = hooks();
  STRATA_ASSERT(table != nullptr, "cuda_backend(", index, ") without a CUDA backend: ",
                cuda_hooks_table().why);
  return table->backend(index);
}

void* cuda_host_alloc(size_t nbytes) {
  const CudaHooks* table = hooks();
  return table != nullptr ? table->host_alloc(nbytes) : nullptr;
}

void cuda_host_free(void* ptr) {
  if (const CudaHooks* table = hooks()) table->host_free(ptr);
}

CudaMemoryStats cuda_memory_stats(int device) {
  const CudaHooks* table = hooks();
  return table != nullptr ? table->memory_stats(device) : CudaMemoryStats{};
}

void cuda_empty_cache(int device) {
  if (const CudaHooks* table = hooks()) table->empty_cache(device);
}

bool cuda_nccl_built(std::string* why) {
  const CudaHooks* table = hooks();
  if (table == nullptr) {
    if (why != nullptr) *why = cuda_hooks_table().why;
    return false;
  }
  if (table->nccl_built()) return true;
  if (why != nullptr) {
    *why =
        "this Strata was built without NCCL (nccl.h not found in the CUDA toolkit; install NCCL "
        "and reconfigure with -DSTRATA_NCCL=ON, or point NCCL_ROOT at it)";
  }
  return false;
}

std::shared_ptr<distributed::ProcessGroup> cuda_new_nccl_group(
    std::shared_ptr<distributed::ProcessGroup> bootstrap, Device device,
    const distributed::ProcessGroupOptions& options) {
  const CudaHooks* table = hooks();
  STRATA_ASSERT(table != nullptr,
                "cuda_new_nccl_group without a CUDA backend: ", cuda_hooks_table().why);
  return table->new_nccl_group(std::move(bootstrap), device, options);
}

bool cuda_libraries_loaded() {
#if defined(STRATA_CUDA_PLUGIN)
  return g_plugin_loaded.load();
#elif defined(STRATA_WITH_CUDA)
  return true;
#else
  return false;
#endif
}

}  // namespace strata::detail
