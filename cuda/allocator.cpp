// The caching allocator (rules in allocator.h) and the memory-stats hooks of
// strata/detail/cuda_memory.h.
#include "allocator.h"

#include <string>

#include "common.h"
#include "cuda_backend.h"
#include "entry_points.h"
#include "strata/error.h"

namespace strata::cuda {

size_t round_allocation_size(size_t nbytes) {
  if (nbytes == 0) return kSmallRound;
  if (nbytes <= kSmallLimit) return (nbytes + kSmallRound - 1) / kSmallRound * kSmallRound;
  return (nbytes + kLargeRound - 1) / kLargeRound * kLargeRound;
}

void* CachingAllocator::allocate(size_t nbytes, cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(mutex_);
  return allocate_locked(nbytes, stream, true);
}

void* CachingAllocator::try_allocate(size_t nbytes, cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(mutex_);
  return allocate_locked(nbytes, stream, false);
}

void* CachingAllocator::allocate_locked(size_t nbytes, cudaStream_t stream, bool may_free_cache) {
  const size_t size = round_allocation_size(nbytes);

  // Smallest cached block of this stream that fits, if it is at most 25% too big.
  auto it = free_blocks_.lower_bound(Block{nullptr, size, stream});
  if (it != free_blocks_.end() && it->stream == stream && it->size <= size + size / 4) {
    const Block block = *it;
    free_blocks_.erase(it);
    cached_bytes_ -= block.size;
    allocated_bytes_ += block.size;
    used_blocks_.emplace(block.ptr, block);
    return block.ptr;
  }

  DeviceGuard guard(device_);
  void* ptr = nullptr;
  cudaError_t status = cudaMalloc(&ptr, size);
  ++malloc_calls_;
  if (status == cudaErrorMemoryAllocation) {
    static_cast<void>(cudaGetLastError());  // clear it: out of memory is not sticky
    if (!may_free_cache) return nullptr;
    const size_t cached_before = cached_bytes_;
    free_cached_locked();
    status = cudaMalloc(&ptr, size);
    ++malloc_calls_;
    if (status == cudaErrorMemoryAllocation) {
      static_cast<void>(cudaGetLastError());
      size_t free_bytes = 0, total_bytes = 0;
      static_cast<void>(cudaMemGetInfo(&free_bytes, &total_bytes));
      static_cast<void>(cudaGetLastError());
      STRATA_CHECK(false, "CUDA out of memory on cuda:", device_, ": tried to allocate ", nbytes,
                   " bytes (", size, " rounded); ", allocated_bytes_, " bytes in use by Strata, ",
                   cached_before, " bytes were cached (freed and retried); the device has ",
                   free_bytes, " of ", total_bytes, " bytes free");
    }
  }
  CUDA_CHECK(status);
  const Block block{ptr, size, stream};
  used_blocks_.emplace(ptr, block);
  allocated_bytes_ += size;
  return ptr;
}

void CachingAllocator::deallocate(void* ptr) {
  if (ptr == nullptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = used_blocks_.find(ptr);
  STRATA_ASSERT(it != used_blocks_.end(), "CUDA deallocate of a pointer this allocator (cuda:",
                device_, ") did not hand out");
  const Block block = it->second;
  used_blocks_.erase(it);
  allocated_bytes_ -= block.size;
  cached_bytes_ += block.size;
  free_blocks_.insert(block);
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  DeviceGuard guard(device_);
  free_cached_locked();
}

void CachingAllocator::free_cached_locked() {
  if (free_blocks_.empty()) return;
  // A cached block may still be read by queued kernels of its stream: let them finish.
  CUDA_CHECK(cudaDeviceSynchronize());
  for (const Block& block : free_blocks_) {
    CUDA_CHECK(cudaFree(block.ptr));
  }
  free_blocks_.clear();
  cached_bytes_ = 0;
}

detail::CudaMemoryStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  detail::CudaMemoryStats stats;
  stats.allocated_bytes = allocated_bytes_;
  stats.cached_bytes = cached_bytes_;
  stats.malloc_calls = malloc_calls_;
  return stats;
}

detail::CudaMemoryStats memory_stats(int device) {
  std::string why;
  if (device < 0 || device >= device_count(&why)) return {};
  return static_cast<CudaBackend&>(backend(device)).allocator().stats();
}

void empty_cache(int device) {
  std::string why;
  if (device < 0 || device >= device_count(&why)) return;
  static_cast<CudaBackend&>(backend(device)).allocator().empty_cache();
}

}  // namespace strata::cuda
