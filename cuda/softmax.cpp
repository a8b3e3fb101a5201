// Softmax and log-softmax of the CUDA backend through cuDNN (float32 and float64): the input,
// read as [outer, size, inner], is described to cuDNN as the packed NCHW tensor
// [outer, size, inner, 1], and CUDNN_SOFTMAX_MODE_CHANNEL normalizes over C for every (n, h, w)
// — exactly the middle axis. CUDNN_SOFTMAX_ACCURATE subtracts the maximum first (the contract's
// stable form); CUDNN_SOFTMAX_LOG computes log-softmax, also max-subtracted.
// Backward from the forward's output y, as backend.h's contract: softmax
// dx = y * (dy - sum(dy * y)); log-softmax dx = dy - exp(y) * sum(dy) — which is what cuDNN's
// ACCURATE/FAST and LOG backward compute from y (for LOG, y is the log-probabilities).
// Data pointers reach cuDNN 16-byte aligned (aligned.h).
#include <cstdint>

#include "aligned.h"
#include "common.h"
#include "cuda_backend.h"
#include "cudnn_utils.h"
#include "strata/detail/float32_staging.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cuda {

// out [outer, size, inner] = softmax or log-softmax of in along size.
void CudaBackend::softmax_forward(const Tensor& out, const Tensor& in, int64_t outer,
                                  int64_t size, int64_t inner, bool log) {
  if (detail::any_reduced_floating({&out, &in})) {
    detail::Float32Staging stage;
    softmax_forward(stage.output(out), stage.input(in), outer, size, inner, log);
    return stage.finish();
  }
  if (outer == 0 || size == 0 || inner == 0) return;
  DeviceGuard guard(device_index_);
  const char* op = log ? "log_softmax_forward" : "softmax_forward";
  TensorDescriptor desc;  // in and out share it: both packed [outer, size, inner, 1]
  desc.set_nchw(cudnn_data_type(out.dtype(), op), outer, size, inner, 1, op);
  const CudnnScale scale(out.dtype());
  const AlignedData in_a(*this, in, AlignedData::Use::kIn);
  AlignedData out_a(*this, out, AlignedData::Use::kOut);
  CUDNN_CHECK(cudnnSoftmaxForward(cudnn_handle(), log ? CUDNN_SOFTMAX_LOG : CUDNN_SOFTMAX_ACCURATE,
                                  CUDNN_SOFTMAX_MODE_CHANNEL, scale.one(), desc.get(), in_a.get(),
                                  scale.zero(), desc.get(), out_a.get()));
  out_a.write_back();
}

// grad_in from grad_out and the forward's out, all [outer, size, inner].
void CudaBackend::softmax_backward(const Tensor& grad_in, const Tensor& grad_out,
                                   const Tensor& out, int64_t outer, int64_t size, int64_t inner,
                                   bool log) {
  if (detail::any_reduced_floating({&grad_in, &grad_out, &out})) {
    detail::Float32Staging stage;
    softmax_backward(stage.output(grad_in), stage.input(grad_out), stage.input(out), outer, size,
                     inner, log);
    return stage.finish();
  }
  if (outer == 0 || size == 0 || inner == 0) return;
  DeviceGuard guard(device_index_);
  const char* op = log ? "log_softmax_backward" : "softmax_backward";
  TensorDescriptor desc;  // out, grad_out and grad_in: packed [outer, size, inner, 1]
  desc.set_nchw(cudnn_data_type(out.dtype(), op), outer, size, inner, 1, op);
  const CudnnScale scale(out.dtype());
  using Use = AlignedData::Use;
  const AlignedData out_a(*this, out, Use::kIn), grad_out_a(*this, grad_out, Use::kIn);
  AlignedData grad_in_a(*this, grad_in, Use::kOut);
  CUDNN_CHECK(cudnnSoftmaxBackward(cudnn_handle(), log ? CUDNN_SOFTMAX_LOG : CUDNN_SOFTMAX_ACCURATE,
                                   CUDNN_SOFTMAX_MODE_CHANNEL, scale.one(), desc.get(),
                                   out_a.get(), desc.get(), grad_out_a.get(), scale.zero(),
                                   desc.get(), grad_in_a.get()));
  grad_in_a.write_back();
}

}  // namespace strata::cuda
