// backend_for(): the one place that maps a Device to its Backend. The CPU backend always
// exists; CUDA is reached through detail/cuda_hooks.h so core/ never depends on CUDA headers.
#include "strata/backend.h"

#include <atomic>
#include <string>

#include "strata/detail/cuda_hooks.h"
#include "strata/error.h"

namespace strata {

Backend& backend_for(Device device) {
  if (device.type == DeviceType::CPU) [[likely]] {
    return cpu_backend();
  }
  std::string why;
  const int count = detail::cuda_device_count(&why);
  STRATA_CHECK(count > 0, "CUDA requested (", device.str(), ") but it is not available: ", why);
  STRATA_CHECK(device.index >= 0 && device.index < count, "CUDA requested (", device.str(),
               ") but only ", count, " CUDA device(s) found");
  return detail::cuda_backend(device.index);
}

bool cuda_is_available() { return cuda_device_count() > 0; }

int cuda_device_count() {
  std::string why;
  return detail::cuda_device_count(&why);
}

namespace {
std::atomic<bool> g_allow_tf32{false};
}

void set_allow_tf32(bool allow) { g_allow_tf32.store(allow); }
bool allow_tf32() { return g_allow_tf32.load(std::memory_order_relaxed); }

namespace {
std::atomic<bool> g_deterministic{false};
}  // namespace

void set_deterministic(bool on) { g_deterministic.store(on); }
bool deterministic() { return g_deterministic.load(std::memory_order_relaxed); }

}  // namespace strata
