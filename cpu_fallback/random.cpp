// Random fills of the CPU backend, following the rule in philox.h so that CUDA draws the same
// numbers: element i of a fill with (seed, offset) uses block = philox4x32_10(offset + i, seed),
//   uniform: static_cast<T>(low + (high - low) * u), u = uniform_float(block) (float32, as
//            double) or uniform_double(block) (float64), computed in double;
//   normal:  static_cast<T>(mean + std * normal_double(block));
//   int:     static_cast<T>(uniform_int(block, low, high)).
// Each element depends only on its own index, so OpenMP may split the range any way.
// NOTE: <cmath> before philox.h, which calls sqrt/log/cos without including it.
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "cpu_backend.h"
#include "parallel.h"
#include "strata/detail/float32_staging.h"
#include "strata/error.h"
#include "strata/philox.h"
#include "strata/tensor.h"

namespace strata::cpu {
namespace {

// Philox is a few dozen integer operations per element, so threads pay off early.
constexpr int64_t kRandomParallelThreshold = 4096;

// out[i] = value_of(philox4x32_10(offset + i, seed)) for the n contiguous elements of out.
template <typename T, typename ValueFn>
void fill_random(const Tensor& out, uint64_t seed, uint64_t offset, const ValueFn& value_of) {
  T* o = static_cast<T*>(out.raw_data());
  const int64_t n = out.numel();
  parallel_for(n, worth_threads(n, kRandomParallelThreshold), [&](int64_t i) {
    o[i] = value_of(philox::philox4x32_10(offset + static_cast<uint64_t>(i), seed));
  });
}

}  // namespace

void CpuBackend::random_uniform(const Tensor& out, double low, double high, uint64_t seed,
                                uint64_t offset) {
  if (detail::any_reduced_floating({&out})) {
    detail::Float32Staging stage;
    random_uniform(stage.output(out), low, high, seed, offset);
    return stage.finish();
  }
  STRATA_DISPATCH_FLOATING(out.dtype(), "random_uniform", [&] {
    using T = scalar_t;
    fill_random<T>(out, seed, offset, [=](const philox::Block& block) {
      double u;
      if constexpr (std::is_same_v<T, float>) u = static_cast<double>(philox::uniform_float(block));
      else u = philox::uniform_double(block);
      return static_cast<T>(low + (high - low) * u);
    });
  });
}

void CpuBackend::random_normal(const Tensor& out, double mean, double std, uint64_t seed,
                               uint64_t offset) {
  if (detail::any_reduced_floating({&out})) {
    detail::Float32Staging stage;
    random_normal(stage.output(out), mean, std, seed, offset);
    return stage.finish();
  }
  STRATA_DISPATCH_FLOATING(out.dtype(), "random_normal", [&] {
    using T = scalar_t;
    fill_random<T>(out, seed, offset, [=](const philox::Block& block) {
      return static_cast<T>(mean + std * philox::normal_double(block));
    });
  });
}

void CpuBackend::random_int(const Tensor& out, int64_t low, int64_t high, uint64_t seed,
                            uint64_t offset) {
  if (detail::any_reduced_floating({&out})) {
    detail::Float32Staging stage;
    random_int(stage.output(out), low, high, seed, offset);
    return stage.finish();
  }
  STRATA_DISPATCH_NUMERIC(out.dtype(), "random_int", [&] {
    using T = scalar_t;
    fill_random<T>(out, seed, offset, [=](const philox::Block& block) {
      return static_cast<T>(philox::uniform_int(block, low, high));
    });
  });
}

}  // namespace strata::cpu
