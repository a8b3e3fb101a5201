// Shared by the CPU-vs-CUDA parity suites (test_cuda.cpp, test_cuda_nn.cpp): why CUDA is not
// usable here, and the skip every CUDA case starts with, so a machine without a GPU reports
// each case as skipped with the reason instead of failing; and the pieces of their case
// tables (random host inputs, unique case names).
#pragma once

#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "strata/detail/cuda_hooks.h"
#include "strata/strata.h"
#include "test_util.h"

namespace strata::test {

inline std::string cuda_unavailable_reason() {
  std::string why;
  detail::cuda_device_count(&why);
  return why;
}

inline const Device kCpuDevice(kCPU);
inline const Device kCudaDevice(kCUDA, 0);

// Random host tensor: floats uniform in [lo, hi); integers are those values floored; bool is
// value > 0. Seeds come from the case so every case is reproducible.
inline Tensor host_random(const Shape& shape, DType dtype, uint32_t seed, double lo, double hi) {
  std::vector<double> values = uniform_values(static_cast<size_t>(numel_of(shape)), lo, hi, seed);
  if (dtype == kInt64 || dtype == kUInt8) {
    for (double& v : values) v = std::floor(v);
  } else if (dtype == kBool) {
    for (double& v : values) v = v > 0 ? 1.0 : 0.0;
  }
  return from_vector<double>(values, shape).to(dtype);
}

// `name` made a valid, unique GoogleTest parameter name (non-alphanumerics become '_', and a
// repeat gets '_' appended) and recorded in `taken`.
inline std::string unique_case_name(std::string name, std::set<std::string>& taken) {
  for (char& ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  while (!taken.insert(name).second) name += "_";
  return name;
}

// A case's inputs: random host tensors of these shapes and dtype, made when called. Each
// tensor takes the next seed from `seed`, so every case draws its own values.
inline std::function<std::vector<Tensor>()> random_inputs(std::vector<Shape> shapes,
                                                          DType dtype, uint32_t& seed, double lo,
                                                          double hi) {
  const uint32_t base = seed;
  seed += static_cast<uint32_t>(shapes.size());
  return [=] {
    std::vector<Tensor> in;
    for (size_t i = 0; i < shapes.size(); ++i) {
      in.push_back(host_random(shapes[i], dtype, base + static_cast<uint32_t>(i), lo, hi));
    }
    return in;
  };
}

}  // namespace strata::test

#define SKIP_WITHOUT_CUDA()                                                                 \
  do {                                                                                      \
    if (!::strata::cuda_is_available()) {                                                   \
      GTEST_SKIP() << "no CUDA device: " << ::strata::test::cuda_unavailable_reason();      \
    }                                                                                       \
  } while (false)
