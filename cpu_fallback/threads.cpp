// The thread count CPU kernels use: OpenMP for our own kernels and OpenBLAS for GEMM, always
// set together to one number so the two pools never oversubscribe the cores. Until
// set_num_threads is called both keep their defaults (one thread per core).
// NOTE: our kernels never call BLAS from inside an OpenMP parallel region, so at most one of
// the two pools is busy at a time.
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
