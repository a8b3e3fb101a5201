// The thread count CPU kernels use: OpenMP for our own kernels and OpenBLAS for GEMM, always
// set together to one number. Until set_num_threads is called both keep their defaults (one
// thread per core).
// NOTE: the build links OpenBLAS's OpenMP variant (see CMakeLists.txt), so OpenBLAS shares
// OpenMP's thread pool and runs single-threaded when called inside one of our parallel
// regions — which the batch-parallel convolution does (cpu_fallback/conv.cpp checks
// openblas_get_parallel() before relying on it).
#include <cblas.h>
#include <omp.h>

#include "strata/backend.h"
#include "strata/error.h"

namespace strata {

void set_num_threads(int threads) {
  STRATA_CHECK(threads >= 1, "set_num_threads: expected a thread count >= 1, got ", threads);
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
}

int get_num_threads() { return omp_get_max_threads(); }

}  // namespace strata
