// CachingAllocator: device memory for one CUDA device, kept for reuse so that a training loop
// in its steady state never calls cudaMalloc. The rules:
// - A request is rounded up: to a multiple of 512 bytes up to 1 MiB ("small"), to a multiple
//   of 2 MiB above ("large"). 0 bytes gets a 512-byte block, so every pointer is real.
// - A freed block goes to the free list of the stream it was allocated on (ordered by size).
//   Reuse on the same stream is safe without synchronization: the stream orders the old
//   kernels before the new ones.
// - A request takes the smallest free block of its stream with at least its rounded size and
//   at most 25% more; blocks are never split or merged. Otherwise cudaMalloc.
// - When cudaMalloc fails, every cached block is freed and cudaMalloc tried once more; then
//   strata::Error says how much was asked for, in use and cached. try_allocate() instead
//   returns nullptr at the first failure, leaving the cache alone (for buffers that have an
//   alternative, such as a cuDNN workspace: another algorithm).
// Thread-safe (one mutex).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <mutex>
#include <set>
#include <functional>
#include <unordered_map>

#include "strata/detail/cuda_memory.h"

namespace strata::cuda {

inline constexpr size_t kSmallRound = 512;
inline constexpr size_t kSmallLimit = size_t{1} << 20;  // 1 MiB
inline constexpr size_t kLargeRound = size_t{2} << 20;  // 2 MiB

// The size a request of `nbytes` is served with.
size_t round_allocation_size(size_t nbytes);

class CachingAllocator {
 public:
  explicit CachingAllocator(int device) : device_(device) {}
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // At least nbytes bytes (256-byte aligned, as cudaMalloc gives), to be used on `stream`.
  void* allocate(size_t nbytes, cudaStream_t stream);
  // As allocate(), but nullptr when cudaMalloc fails (no cache freed, no device synchronize).
  void* try_allocate(size_t nbytes, cudaStream_t stream);
  // `ptr` must come from allocate(); nullptr is ignored. Never calls CUDA.
  void deallocate(void* ptr);
  // cudaFree of every cached block (after the device has finished its work).
  void empty_cache();
  detail::CudaMemoryStats stats() const;

 private:
  struct Block {
    void* ptr = nullptr;
    size_t size = 0;
    cudaStream_t stream = nullptr;
  };
  struct BySize {
    bool operator()(const Block& a, const Block& b) const {
      if (a.stream != b.stream) return std::less<cudaStream_t>()(a.stream, b.stream);
      if (a.size != b.size) return a.size < b.size;
      return std::less<void*>()(a.ptr, b.ptr);
    }
  };

  // Called with mutex_ held.
  void free_cached_locked();
  // A cached block or cudaMalloc; on out of memory, frees the cache and retries (then throws)
  // when may_free_cache, else returns nullptr.
  void* allocate_locked(size_t nbytes, cudaStream_t stream, bool may_free_cache);

  int device_;
  mutable std::mutex mutex_;
  std::set<Block, BySize> free_blocks_;
  std::unordered_map<void*, Block> used_blocks_;
  size_t allocated_bytes_ = 0;
  size_t cached_bytes_ = 0;
  size_t malloc_calls_ = 0;
};

}  // namespace strata::cuda
