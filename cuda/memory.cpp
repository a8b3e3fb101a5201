// CudaBackend memory: allocation through the caching allocator, and byte copies on the
// backend's stream. The host waits where the contract needs it: copy_to_host returns with the
// data in place, and copy_from_host returns when the source buffer may be freed (a pinned
// source would otherwise still be read by the DMA after return).
#include "cuda_backend.h"
#include "entry_points.h"

namespace strata::cuda {

void* CudaBackend::allocate(size_t nbytes) { return allocator_.allocate(nbytes, stream_); }

void CudaBackend::deallocate(void* ptr, size_t /*nbytes*/) { allocator_.deallocate(ptr); }

void CudaBackend::copy_from_host(void* dst, const void* src, size_t nbytes) {
  if (nbytes == 0) return;
  DeviceGuard guard(device_index_);
  CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::copy_to_host(void* dst, const void* src, size_t nbytes) {
  if (nbytes == 0) return;
  DeviceGuard guard(device_index_);
  CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::copy_on_device(void* dst, const void* src, size_t nbytes) {
  if (nbytes == 0) return;
  DeviceGuard guard(device_index_);
  CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice, stream_));
}

void CudaBackend::synchronize() {
  DeviceGuard guard(device_index_);
  CUDA_CHECK(cudaDeviceSynchronize());
}

void* host_alloc(size_t nbytes) {
  if (device_count(nullptr) == 0) return nullptr;
  void* ptr = nullptr;
  // NOTE: cudaHostAlloc of 0 bytes may give nullptr; one byte keeps every pointer distinct.
  if (cudaHostAlloc(&ptr, nbytes == 0 ? 1 : nbytes, cudaHostAllocDefault) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the error so that later calls do not report it
    return nullptr;
  }
  return ptr;
}

void host_free(void* ptr) {
  if (ptr != nullptr) (void)cudaFreeHost(ptr);
}

}  // namespace strata::cuda
