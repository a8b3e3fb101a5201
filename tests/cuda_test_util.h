// Shared by the CPU-vs-CUDA parity suites (test_cuda.cpp, test_cuda_nn.cpp): why CUDA is not
// usable here, and the skip every CUDA case starts with, so a machine without a GPU reports
// each case as skipped with the reason instead of failing.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "strata/detail/cuda_hooks.h"
#include "strata/strata.h"

namespace strata::test {

inline std::string cuda_unavailable_reason() {
  std::string why;
  detail::cuda_device_count(&why);
  return why;
}

inline const Device kCpuDevice(kCPU);
inline const Device kCudaDevice(kCUDA, 0);

}  // namespace strata::test

#define SKIP_WITHOUT_CUDA()                                                                 \
  do {                                                                                      \
    if (!::strata::cuda_is_available()) {                                                   \
      GTEST_SKIP() << "no CUDA device: " << ::strata::test::cuda_unavailable_reason();      \
    }                                                                                       \
  } while (false)
