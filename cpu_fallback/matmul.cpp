// Batched matrix product of the CPU backend through OpenBLAS GEMM (float32 and float64; bf16
// through oneDNN where the CPU has bf16 instructions, see onednn_matmul.h).
// out is contiguous [B, M, N]; a [B, M, K] and b [B, K, N] have any strides. An operand whose
// matrix is row-major (unit column stride) or column-major (unit row stride) goes to BLAS in
// place, as NoTrans or Trans with its stride as leading dimension; any other operand (a
// broadcast or sliced inner dim) is first copied to a contiguous temporary. When b is shared
// by every batch (batch stride 0) and a's batches stack into one matrix, the whole batch is a
// single [B*M, K] x [K, N] GEMM.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "blas.h"
#include "cpu_backend.h"
#include "onednn_matmul.h"
#include "strata/detail/float32_staging.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cpu {
namespace {

// How BLAS reads one rows x cols matrix in place, if it can.
struct MatrixLayout {
  bool in_place = false;  // false: copy it to a row-major temporary first
  CBLAS_TRANSPOSE trans = CblasNoTrans;
  int64_t ld = 1;
};

// NOTE: the stride of a dim of size 1 is never used, so it is free to take any value; BLAS
// still requires ld >= max(1, cols) for NoTrans and ld >= max(1, rows) for Trans.
MatrixLayout layout_of(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  const int64_t min_row_major_ld = std::max<int64_t>(1, cols);
  const int64_t min_col_major_ld = std::max<int64_t>(1, rows);
  if ((cols <= 1 || col_stride == 1) && (rows <= 1 || row_stride >= min_row_major_ld)) {
    return {true, CblasNoTrans, rows <= 1 ? min_row_major_ld : row_stride};
  }
  if ((rows <= 1 || row_stride == 1) && (cols <= 1 || col_stride >= min_col_major_ld)) {
    return {true, CblasTrans, cols <= 1 ? min_col_major_ld : col_stride};
  }
  return {false, CblasNoTrans, min_row_major_ld};
}

// Copies the rows x cols matrix at src (strides in elements) to row-major dst.
template <typename T>
void copy_matrix(T* dst, const T* src, int64_t rows, int64_t cols, int64_t row_stride,
                 int64_t col_stride) {
  for (int64_t i = 0; i < rows; ++i) {
    const T* row = src + i * row_stride;
    for (int64_t j = 0; j < cols; ++j) dst[i * cols + j] = row[j * col_stride];
  }
}

template <typename T>
void matmul_typed(const Tensor& out, const Tensor& a, const Tensor& b, bool accumulate) {
  const int64_t batch = out.shape()[0], m = out.shape()[1], n = out.shape()[2];
  const int64_t k = a.shape()[2];
  T* c = static_cast<T*>(out.raw_data());
  if (batch == 0 || m == 0 || n == 0) return;
  if (k == 0) {  // an empty sum: zeros, or out unchanged when accumulating
    if (!accumulate) std::memset(c, 0, static_cast<size_t>(batch * m * n) * sizeof(T));
    return;
  }
  const T* a_data = static_cast<const T*>(a.raw_data());
  const T* b_data = static_cast<const T*>(b.raw_data());
  const Strides& sa = a.strides();
  const Strides& sb = b.strides();
  const MatrixLayout b_layout = layout_of(k, n, sb[1], sb[2]);

  // One GEMM for the whole batch: b shared by all batches, a's batches stacked rows.
  if (b_layout.in_place && (batch == 1 || sb[0] == 0)) {
    const int64_t stacked_row_stride = m == 1 ? sa[0] : sa[1];
    if (batch == 1 || m == 1 || sa[0] == m * sa[1]) {
      const MatrixLayout stacked = layout_of(batch * m, k, stacked_row_stride, sa[2]);
      if (stacked.in_place) {
        gemm(stacked.trans, b_layout.trans, batch * m, n, k, a_data, stacked.ld, b_data,
             b_layout.ld, accumulate, c, n);
        return;
      }
    }
  }

  const MatrixLayout a_layout = layout_of(m, k, sa[1], sa[2]);
  std::vector<T> a_copy(a_layout.in_place ? 0 : static_cast<size_t>(m * k));
  std::vector<T> b_copy(b_layout.in_place ? 0 : static_cast<size_t>(k * n));
  for (int64_t i = 0; i < batch; ++i) {
    const T* a_matrix = a_data + i * sa[0];
    const T* b_matrix = b_data + i * sb[0];
    if (!a_layout.in_place) {
      copy_matrix(a_copy.data(), a_matrix, m, k, sa[1], sa[2]);
      a_matrix = a_copy.data();
    }
    if (!b_layout.in_place) {
      copy_matrix(b_copy.data(), b_matrix, k, n, sb[1], sb[2]);
      b_matrix = b_copy.data();
    }
    gemm(a_layout.trans, b_layout.trans, m, n, k, a_matrix, a_layout.ld, b_matrix, b_layout.ld,
         accumulate, c + i * m * n, n);
  }
}

}  // namespace

void CpuBackend::matmul(const Tensor& out, const Tensor& a, const Tensor& b, bool accumulate) {
  if (out.dtype() == DType::BFloat16 && onednn_bf16_matmul_available() && out.numel() > 0 &&
      a.size(2) > 0) {
    return onednn_bf16_matmul(out, a, b, accumulate);
  }
  if (detail::any_reduced_floating({&out, &a, &b})) {
    detail::Float32Staging stage;
    matmul(stage.output(out), stage.input(a), stage.input(b), accumulate);
    return stage.finish();
  }
  STRATA_ASSERT(out.dim() == 3 && a.dim() == 3 && b.dim() == 3,
                "cpu matmul: expected 3-D out, a and b, got ", shape_str(out.shape()), ", ",
                shape_str(a.shape()), ", ", shape_str(b.shape()));
  STRATA_DISPATCH_FLOATING(out.dtype(), "matmul",
                           [&] { matmul_typed<scalar_t>(out, a, b, accumulate); });
}

}  // namespace strata::cpu
