// bfloat16 matrix products on the CPU through oneDNN (Debian's libdnnl-dev), where the CPU
// multiplies bf16 itself (AVX512-BF16): products of bf16 inputs accumulated in float32, rounded
// once to bf16. Elsewhere (no oneDNN at build time, or a CPU without the instructions) the
// product widens its operands to float32 for OpenBLAS instead (Float32Staging).
#pragma once

#include "strata/tensor.h"

namespace strata::cpu {

// Whether onednn_bf16_matmul runs here: built with oneDNN and the CPU has AVX512-BF16 (and
// STRATA_CPU_BF16_GEMM is not "0" in the environment, for comparing the two paths).
bool onednn_bf16_matmul_available();

// out [B, M, N] (contiguous bf16) = a [B, M, K] @ b [B, K, N] (+ out when accumulate), with a
// and b bf16 of any strides (a batch stride of 0 broadcasts).
void onednn_bf16_matmul(const Tensor& out, const Tensor& a, const Tensor& b, bool accumulate);

}  // namespace strata::cpu
