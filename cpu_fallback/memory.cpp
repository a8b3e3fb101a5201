// Host memory for the CPU backend, and the process-wide CpuBackend instance.
// Every allocation is 64-byte aligned (one cache line, a full AVX-512 vector) and its size is
// rounded up to a multiple of 64; a request for 0 bytes still returns a distinct, valid
// pointer (64 bytes), so callers never see nullptr. Copies are plain memcpy; the CPU runs
// kernels synchronously, so synchronize() has nothing to wait for.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "cpu_backend.h"
#include "strata/error.h"

namespace strata {
namespace cpu {

namespace {
constexpr size_t kAlignment = 64;
}  // namespace

Device CpuBackend::device() const { return Device(DeviceType::CPU); }

void* CpuBackend::allocate(size_t nbytes) {
  STRATA_CHECK(nbytes <= SIZE_MAX - kAlignment, "cpu: cannot allocate ", nbytes, " bytes");
  // std::aligned_alloc needs a size that is a multiple of the alignment; 0 becomes one line.
  const size_t lines = nbytes == 0 ? 1 : (nbytes + kAlignment - 1) / kAlignment;
  const size_t rounded = lines * kAlignment;
  void* ptr = std::aligned_alloc(kAlignment, rounded);
  STRATA_CHECK(ptr != nullptr, "cpu: out of memory allocating ", nbytes, " bytes");
  return ptr;
}

void CpuBackend::deallocate(void* ptr, size_t /*nbytes*/) { std::free(ptr); }

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

Backend& cpu_backend() {
  static cpu::CpuBackend backend;
  return backend;
}

}  // namespace strata
