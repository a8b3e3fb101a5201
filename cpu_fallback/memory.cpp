// Host memory for the CPU backend, and the process-wide CpuBackend instance.
// Every allocation is 64-byte aligned (one cache line, a full AVX-512 vector) and its size is
// rounded up to a multiple of 64; a request for 0 bytes still returns a distinct, valid
// pointer (64 bytes), so callers never see nullptr. Copies are plain memcpy; the CPU runs
// kernels synchronously, so synchronize() has nothing to wait for.
// Large blocks are cached, as on CUDA: a training step frees and asks again for the same
// sizes every iteration, and fresh large blocks come from mmap, whose page faults and zeroing
// cost more than the kernels writing them (a quarter of an MLP step, measured). The rules:
// - blocks of at least kCacheFrom bytes are rounded up to a size class (at most 1/8 above
//   the request) and kept on a free list per class when freed;
// - an allocation takes a cached block of its class first;
// - at most kCacheLimit bytes stay cached; beyond that, freed blocks go back to the system,
//   and a failed allocation empties the cache and tries once more.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "cpu_backend.h"
#include "strata/detail/cpu_memory.h"
#include "strata/error.h"

namespace strata {
namespace cpu {

namespace {

constexpr size_t kAlignment = 64;
constexpr size_t kCacheFrom = size_t{64} << 10;    // 64 KiB: smaller blocks are malloc's job
constexpr size_t kCacheLimit = size_t{1} << 30;    // 1 GiB kept for reuse at most

// The size class of a large block: the request rounded up to the next multiple of one eighth
// of its highest power of two (so 1 MiB + 1 becomes 1.125 MiB).
size_t size_class(size_t nbytes) {
  size_t top = 1;
  while (top <= nbytes / 2) top <<= 1;
  const size_t step = std::max(top / 8, kAlignment);
  return (nbytes + step - 1) / step * step;
}

class BlockCache {
 public:
  void* take(size_t cls) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.find(cls);
    if (it == free_.end() || it->second.empty()) return nullptr;
    void* ptr = it->second.back();
    it->second.pop_back();
    cached_bytes_ -= cls;
    return ptr;
  }
  // False when the cache is full (the caller frees the block).
  bool give(void* ptr, size_t cls) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (cached_bytes_ + cls > kCacheLimit) return false;
    free_[cls].push_back(ptr);
    cached_bytes_ += cls;
    return true;
  }
  void release_all() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [cls, blocks] : free_) {
      for (void* ptr : blocks) std::free(ptr);
    }
    free_.clear();
    cached_bytes_ = 0;
  }

 private:
  std::mutex mutex_;
  std::map<size_t, std::vector<void*>> free_;
  size_t cached_bytes_ = 0;
};

// Never destroyed: tensors freed while the process exits still find it.
BlockCache& block_cache() {
  static auto* cache = new BlockCache();
  return *cache;
}

// The bytes handed out while tracking is on (detail::cpu_memory_stats).
std::atomic<bool> g_tracking{false};
std::atomic<int64_t> g_allocated{0};
std::atomic<int64_t> g_peak{0};

void count(int64_t delta) {
  const int64_t now = g_allocated.fetch_add(delta, std::memory_order_relaxed) + delta;
  int64_t peak = g_peak.load(std::memory_order_relaxed);
  while (now > peak && !g_peak.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
}

}  // namespace

Device CpuBackend::device() const { return Device(DeviceType::CPU); }

void* CpuBackend::allocate(size_t nbytes) {
  void* ptr = allocate_block(nbytes);
  if (g_tracking.load(std::memory_order_relaxed)) count(static_cast<int64_t>(nbytes));
  return ptr;
}

void* CpuBackend::allocate_block(size_t nbytes) {
  STRATA_CHECK(nbytes <= SIZE_MAX / 2, "cpu: cannot allocate ", nbytes, " bytes");
  if (nbytes >= kCacheFrom) {
    const size_t cls = size_class(nbytes);
    if (void* ptr = block_cache().take(cls)) return ptr;
    void* ptr = std::aligned_alloc(kAlignment, cls);
    if (ptr == nullptr) {
      block_cache().release_all();
      ptr = std::aligned_alloc(kAlignment, cls);
    }
    STRATA_CHECK(ptr != nullptr, "cpu: out of memory allocating ", nbytes, " bytes");
    return ptr;
  }
  // std::aligned_alloc needs a size that is a multiple of the alignment; 0 becomes one line.
  const size_t lines = nbytes == 0 ? 1 : (nbytes + kAlignment - 1) / kAlignment;
  void* ptr = std::aligned_alloc(kAlignment, lines * kAlignment);
  STRATA_CHECK(ptr != nullptr, "cpu: out of memory allocating ", nbytes, " bytes");
  return ptr;
}

void CpuBackend::deallocate(void* ptr, size_t nbytes) {
  if (ptr != nullptr && g_tracking.load(std::memory_order_relaxed)) {
    count(-static_cast<int64_t>(nbytes));
  }
  if (ptr != nullptr && nbytes >= kCacheFrom && block_cache().give(ptr, size_class(nbytes))) {
    return;
  }
  std::free(ptr);
}

void CpuBackend::copy_from_host(void* dst, const void* src, size_t nbytes) {
  if (nbytes != 0) std::memcpy(dst, src, nbytes);
}

void CpuBackend::copy_to_host(void* dst, const void* src, size_t nbytes) {
  if (nbytes != 0) std::memcpy(dst, src, nbytes);
}

void CpuBackend::copy_on_device(void* dst, const void* src, size_t nbytes) {
  // memmove: a copy within one storage may overlap.
  if (nbytes != 0) std::memmove(dst, src, nbytes);
}

void CpuBackend::synchronize() {}

}  // namespace cpu

namespace detail {

void start_cpu_memory_tracking() {
  cpu::g_allocated.store(0, std::memory_order_relaxed);
  cpu::g_peak.store(0, std::memory_order_relaxed);
  cpu::g_tracking.store(true, std::memory_order_relaxed);
}

void stop_cpu_memory_tracking() { cpu::g_tracking.store(false, std::memory_order_relaxed); }

CpuMemoryStats cpu_memory_stats() {
  return {cpu::g_allocated.load(std::memory_order_relaxed),
          cpu::g_peak.load(std::memory_order_relaxed)};
}

}  // namespace detail

Backend& cpu_backend() {
  static cpu::CpuBackend backend;
  return backend;
}

}  // namespace strata
