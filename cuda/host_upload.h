// HostUploads: small host-to-device uploads (cuDNN's per-row sequence lengths) that neither
// read pageable memory by DMA nor make the host wait. The rules:
// - upload() copies the bytes into a page-locked block, queues cudaMemcpyAsync from it on the
//   given stream and records the block's event after it, then returns: the caller's source may
//   die at once, and the device reads the block by DMA when the stream gets there.
// - A block is reused only once its event has completed (cudaEventQuery), so new bytes never
//   overwrite ones the DMA has not read yet. A request takes the first free block that fits,
//   else a new one (cudaHostAlloc of at least kMinBlockBytes): none in the steady state.
// - At most kMaxBlocks blocks: past that, upload() waits for the oldest block's copy (only a
//   host far ahead of its device waits; memory stays bounded).
// One per device, made on first use and never destroyed, as the backends are. Thread-safe.
// NOTE: a pageable-source cudaMemcpyAsync stages through a driver buffer and returns only once
// the source is read, which in practice serializes with the stream; this class exists to avoid
// exactly that.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace strata::cuda {

class HostUploads {
 public:
  static constexpr size_t kMinBlockBytes = 4096;
  static constexpr size_t kMaxBlocks = 64;

  explicit HostUploads(int device) : device_(device) {}
  HostUploads(const HostUploads&) = delete;
  HostUploads& operator=(const HostUploads&) = delete;

  // dst (device memory of this device) = src[0, bytes), queued on `stream`.
  void upload(void* dst, const void* src, size_t bytes, cudaStream_t stream);

  // Blocks made so far (for tests: constant in the steady state).
  size_t block_count() const;

 private:
  struct Block {
    void* host = nullptr;
    size_t bytes = 0;
    cudaEvent_t done = nullptr;
    uint64_t last_use = 0;  // upload count when last used (the oldest is waited for)
  };

  // The index of a block of at least `bytes` whose last copy has completed; made or waited for
  // when there is none. Called with mutex_ held.
  size_t free_block_locked(size_t bytes);

  int device_;
  mutable std::mutex mutex_;
  std::vector<Block> blocks_;
  uint64_t uploads_ = 0;
};

// The HostUploads of CUDA device `device` (made on first use).
HostUploads& host_uploads(int device);

}  // namespace strata::cuda
