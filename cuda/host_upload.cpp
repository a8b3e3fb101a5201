// HostUploads (rules in host_upload.h): page-locked blocks, each with the event of its last
// copy, reused once that event has completed.
#include "host_upload.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>

#include "common.h"
#include "strata/error.h"

namespace strata::cuda {

void HostUploads::upload(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return;
  std::lock_guard<std::mutex> lock(mutex_);
  DeviceGuard guard(device_);
  const size_t index = free_block_locked(bytes);
  Block& block = blocks_[index];
  std::memcpy(block.host, src, bytes);
  CUDA_CHECK(cudaMemcpyAsync(dst, block.host, bytes, cudaMemcpyHostToDevice, stream));
  CUDA_CHECK(cudaEventRecord(block.done, stream));
  block.last_use = ++uploads_;
}

size_t HostUploads::block_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return blocks_.size();
}

size_t HostUploads::free_block_locked(size_t bytes) {
  for (size_t i = 0; i < blocks_.size(); ++i) {
    if (blocks_[i].bytes < bytes) continue;
    const cudaError_t status = cudaEventQuery(blocks_[i].done);
    if (status == cudaSuccess) return i;  // also a block whose event was never recorded
    // NOTE: "not ready" is an answer, not an error, but the runtime also leaves it as the last
    // error; clear it so that the next CUDA_KERNEL_CHECK does not report it.
    if (status == cudaErrorNotReady) {
      static_cast<void>(cudaGetLastError());
      continue;
    }
    CUDA_CHECK(status);
  }
  const size_t size = std::max(bytes, kMinBlockBytes);
  if (blocks_.size() < kMaxBlocks) {
    Block block;
    block.bytes = size;
    CUDA_CHECK(cudaHostAlloc(&block.host, size, cudaHostAllocDefault));
    const cudaError_t status = cudaEventCreateWithFlags(&block.done, cudaEventDisableTiming);
    if (status != cudaSuccess) static_cast<void>(cudaFreeHost(block.host));
    CUDA_CHECK(status);
    blocks_.push_back(block);
    return blocks_.size() - 1;
  }
  // Every block is in flight: wait for the one used longest ago, growing it if too small.
  const auto oldest = std::min_element(blocks_.begin(), blocks_.end(),
                                       [](const Block& a, const Block& b) {
                                         return a.last_use < b.last_use;
                                       });
  CUDA_CHECK(cudaEventSynchronize(oldest->done));
  if (oldest->bytes < bytes) {
    CUDA_CHECK(cudaFreeHost(oldest->host));
    oldest->host = nullptr;
    oldest->bytes = 0;
    CUDA_CHECK(cudaHostAlloc(&oldest->host, size, cudaHostAllocDefault));
    oldest->bytes = size;
  }
  return static_cast<size_t>(oldest - blocks_.begin());
}

HostUploads& host_uploads(int device) {
  // Leaked on purpose, as the backends are: uploads may run during static destruction.
  static auto* mutex = new std::mutex;
  static auto* per_device = new std::map<int, std::unique_ptr<HostUploads>>;
  std::lock_guard<std::mutex> lock(*mutex);
  std::unique_ptr<HostUploads>& uploads = (*per_device)[device];
  if (!uploads) uploads = std::make_unique<HostUploads>(device);
  return *uploads;
}

}  // namespace strata::cuda
