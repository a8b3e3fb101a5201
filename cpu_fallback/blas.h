// The one set of cblas GEMM wrappers of the CPU backend (float32 and float64 overloads):
// row-major C [m, n] = op(A) @ op(B), or C += op(A) @ op(B) when `accumulate`, with explicit
// leading dimensions. Sizes are int64_t on our side and checked to fit BLAS's 32-bit int.
// NOTE: the build links OpenBLAS's OpenMP variant: a call made inside an OpenMP parallel
// region runs single-threaded (see threads.cpp), one made outside uses every thread.
#pragma once

#include <cblas.h>

#include <climits>
#include <cstdint>

#include "strata/error.h"

namespace strata::cpu {

inline int blas_int(int64_t value) {
  STRATA_ASSERT(value >= 0 && value <= INT_MAX, "cpu gemm: size ", value,
                " does not fit BLAS's 32-bit int");
  return static_cast<int>(value);
}

// Row-major C [m, n] (row stride ldc) = op(A) @ op(B) (+ C when accumulate).
inline void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k,
                 const float* a, int64_t lda, const float* b, int64_t ldb, bool accumulate,
                 float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, blas_int(m), blas_int(n), blas_int(k), 1.0f, a,
              blas_int(lda), b, blas_int(ldb), accumulate ? 1.0f : 0.0f, c, blas_int(ldc));
}

inline void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k,
                 const double* a, int64_t lda, const double* b, int64_t ldb, bool accumulate,
                 double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, blas_int(m), blas_int(n), blas_int(k), 1.0, a,
              blas_int(lda), b, blas_int(ldb), accumulate ? 1.0 : 0.0, c, blas_int(ldc));
}

}  // namespace strata::cpu
