// How CPU kernels use threads: work below kParallelThreshold elements runs on the calling
// thread, larger work is split over OpenMP's threads (as many as set_num_threads allows).
// NOTE: write `parallel_for(n, parallel, body)`, not `#pragma omp parallel for if (parallel)`:
// with the condition false the pragma still enters the OpenMP runtime, about a microsecond,
// which is 50 times the cost of a one-element kernel.
#pragma once

#include <omp.h>

#include <cstdint>

namespace strata::cpu {

// Below this many elements a kernel runs on the calling thread: starting an OpenMP team costs
// more than the work.
inline constexpr int64_t kParallelThreshold = 32768;

// True when work of `elements` elements should be split over threads.
inline bool worth_threads(int64_t elements, int64_t threshold = kParallelThreshold) {
  return elements >= threshold && omp_get_max_threads() > 1;
}

// body(i) for i in [0, n): statically split over OpenMP threads when `parallel`, else in order
// on the calling thread.
template <typename Body>
void parallel_for(int64_t n, bool parallel, const Body& body) {
  if (parallel) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) body(i);
  } else {
    for (int64_t i = 0; i < n; ++i) body(i);
  }
}

}  // namespace strata::cpu
