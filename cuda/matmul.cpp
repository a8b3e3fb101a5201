// Matrix products of the CUDA backend through cuBLAS (float32, float64, and float16 / bfloat16
// on tensor cores with float32 accumulation), batched with cublas*StridedBatched (a batch
// stride of 0 broadcasts an operand).
// cuBLAS is column-major and our tensors are row-major: out[b] = a[b] @ b[b] is computed as
// out[b]^T = b[b]^T @ a[b]^T, i.e. cuBLAS C (N x M, ldc = N) = op(b) (N x K) * op(a) (K x M).
// A row-major operand is its own transpose in column-major terms (OP_N); a column-major one
// (a transposed view) is read with OP_T. Anything else is first copied to a contiguous buffer.
// float32 uses TF32 tensor cores only when strata::allow_tf32() is on (off by default, so
// results match the CPU).
// NOTE: unlike cuDNN, cuBLAS takes operands at any element-aligned address, so views with a
// storage offset go in as they are (no aligned.h copy). The cuBLAS guide's "Tensor Core Usage"
// section (2.1.11) lists 16-byte aligned A/B/C pointers and leading dimensions only among the
// conditions "to get the most performance out of Tensor Cores": since cuBLAS 11 it picks
// another kernel when they do not hold instead of failing (cuBLASLt, which we do not call,
// is where alignment is an explicit algorithm requirement). test_cuda.cpp's misaligned
// matmul cases check this on the device.
#include <climits>
#include <cstdint>
#include <memory>

#include "common.h"
#include "cuda_backend.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cuda {
namespace {

// How cuBLAS can read one [rows, cols] matrix with strides (row_stride, col_stride).
struct MatrixLayout {
  bool usable = false;
  bool row_major = false;
  int64_t ld = 0;  // leading dimension in the column-major sense
};

MatrixLayout layout_of(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  const int64_t min_cols = cols > 1 ? cols : 1;
  const int64_t min_rows = rows > 1 ? rows : 1;
  // Row-major: each row contiguous, rows at least a row apart. Seen by cuBLAS as the
  // column-major [cols, rows] matrix with ld = row_stride.
  if ((col_stride == 1 || cols == 1) && (rows == 1 || row_stride >= min_cols)) {
    return {true, true, rows == 1 ? min_cols : row_stride};
  }
  // Column-major: each column contiguous; cuBLAS's own [rows, cols] with ld = col_stride.
  if ((row_stride == 1 || rows == 1) && (cols == 1 || col_stride >= min_rows)) {
    return {true, false, cols == 1 ? min_rows : col_stride};
  }
  return {};
}

// One operand [batch, rows, cols] as cuBLAS reads it; `storage` keeps a contiguous copy when
// the strides do not allow reading it in place.
struct GemmOperand {
  const void* data = nullptr;
  MatrixLayout layout;
  int64_t batch_stride = 0;
  std::unique_ptr<ScratchBuffer> storage;
};

GemmOperand prepare_operand(CudaBackend& backend, const Tensor& t) {
  const int64_t batch = t.size(0), rows = t.size(1), cols = t.size(2);
  GemmOperand op;
  op.data = t.raw_data();
  op.batch_stride = batch > 1 ? t.stride(0) : 0;
  op.layout = layout_of(rows, cols, t.stride(1), t.stride(2));
  if (op.layout.usable && op.batch_stride >= 0) return op;

  // A batch broadcast with stride 0 needs only one copy.
  const int64_t copies = op.batch_stride == 0 ? 1 : batch;
  op.storage = std::make_unique<ScratchBuffer>(
      backend, static_cast<size_t>(copies * rows * cols) * t.element_size());
  View src = view_of(t);
  src.shape[0] = copies;
  const View dst{op.storage->get(), t.dtype(), {copies, rows, cols}, {rows * cols, cols, 1}};
  backend.copy_view(dst, src);
  op.data = op.storage->get();
  op.batch_stride = copies == 1 ? 0 : rows * cols;
  op.layout = {true, true, cols > 1 ? cols : 1};
  return op;
}

int to_int(int64_t value, const char* what) {
  STRATA_CHECK(value >= 0 && value <= INT_MAX, "matmul: ", what, " = ", value,
               " is beyond what cuBLAS takes (", INT_MAX, ")");
  return static_cast<int>(value);
}

}  // namespace

// out: [B, M, N] contiguous; a: [B, M, K]; b: [B, K, N].
void CudaBackend::matmul(const Tensor& out, const Tensor& a, const Tensor& b, bool accumulate) {
  STRATA_ASSERT(out.dim() == 3 && a.dim() == 3 && b.dim() == 3, "cuda matmul: expects 3-D "
                "operands, got out ", shape_str(out.shape()), ", a ", shape_str(a.shape()),
                ", b ", shape_str(b.shape()));
  const int64_t batch = out.size(0), m = out.size(1), n = out.size(2), k = a.size(2);
  if (batch == 0 || m == 0 || n == 0) return;
  DeviceGuard guard(device_index_);
  if (k == 0) {  // an empty sum: out = 0, or unchanged when accumulating
    if (!accumulate) {
      CUDA_CHECK(cudaMemsetAsync(out.raw_data(), 0,
                                 static_cast<size_t>(batch * m * n) * out.element_size(), stream_));
    }
    return;
  }

  const GemmOperand lhs = prepare_operand(*this, a);  // [M, K] -> cuBLAS B (K x M)
  const GemmOperand rhs = prepare_operand(*this, b);  // [K, N] -> cuBLAS A (N x K)
  const cublasOperation_t trans_rhs = rhs.layout.row_major ? CUBLAS_OP_N : CUBLAS_OP_T;
  const cublasOperation_t trans_lhs = lhs.layout.row_major ? CUBLAS_OP_N : CUBLAS_OP_T;
  const int cm = to_int(n, "N"), cn = to_int(m, "M"), ck = to_int(k, "K");
  const int lda = to_int(rhs.layout.ld, "leading dimension of b");
  const int ldb = to_int(lhs.layout.ld, "leading dimension of a");
  const int ldc = cm;
  const int count = to_int(batch, "batch");
  const long long stride_a = rhs.batch_stride, stride_b = lhs.batch_stride, stride_c = m * n;
  cublasHandle_t handle = cublas_handle();

  if (is_reduced_floating(out.dtype())) {
    // Half-precision operands and output, float32 accumulation and alpha/beta: cuBLAS runs it
    // on tensor cores by default.
    const cudaDataType_t type = out.dtype() == DType::Float16 ? CUDA_R_16F : CUDA_R_16BF;
    const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(
        handle, trans_rhs, trans_lhs, cm, cn, ck, &alpha, rhs.data, type, lda, stride_a,
        lhs.data, type, ldb, stride_b, &beta, out.raw_data(), type, ldc, stride_c, count,
        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return;
  }
  if (out.dtype() == DType::Float32) {
    const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    const bool tf32 = allow_tf32();
    CUBLAS_CHECK(cublasSetMathMode(handle, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(
        handle, trans_rhs, trans_lhs, cm, cn, ck, &alpha, rhs.data, CUDA_R_32F, lda, stride_a,
        lhs.data, CUDA_R_32F, ldb, stride_b, &beta, out.raw_data(), CUDA_R_32F, ldc, stride_c,
        count, tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return;
  }
  STRATA_CHECK(out.dtype() == DType::Float64,
               "matmul: CUDA supports f32, f64, f16 and bf16, got ",
               dtype_name(out.dtype()));
  const double alpha = 1.0, beta = accumulate ? 1.0 : 0.0;
  CUBLAS_CHECK(cublasDgemmStridedBatched(
      handle, trans_rhs, trans_lhs, cm, cn, ck, &alpha, static_cast<const double*>(rhs.data), lda,
      stride_a, static_cast<const double*>(lhs.data), ldb, stride_b, &beta,
      static_cast<double*>(out.raw_data()), ldc, stride_c, count));
}

}  // namespace strata::cuda
