// 2-D pooling of the CUDA backend through cuDNN (NCHW, float32 and float64): max pooling
// (CUDNN_POOLING_MAX_DETERMINISTIC under strata::deterministic(), CUDNN_POOLING_MAX otherwise)
// and average pooling with the zero padding counted in the divisor or not
// (CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING / _EXCLUDE_PADDING). cuDNN's output size is
// ours, 1 + (H + 2 pad - kernel) / stride, and max pooling never picks a padded element, as
// the contract's -inf padding; NaN propagates (CUDNN_PROPAGATE_NAN), as the CPU's max does.
// NOTE: cuDNN's max-pooling backward finds each window's maximum again by comparing x with the
// forward's out, and sends the gradient to one position per window (the first maximum, as the
// contract asks; test_cuda_nn.cpp checks it on windows full of ties); out must therefore be
// exactly the forward's output.
#include <cstdint>

#include "common.h"
#include "cuda_backend.h"
#include "cudnn_utils.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cuda {
namespace {

cudnnPoolingMode_t cudnn_pool_mode(PoolMode mode) {
  switch (mode) {
    case PoolMode::Max:
      return deterministic() ? CUDNN_POOLING_MAX_DETERMINISTIC : CUDNN_POOLING_MAX;
    case PoolMode::AvgIncludePad: return CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING;
    case PoolMode::AvgExcludePad: return CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING;
  }
  STRATA_ASSERT(false, "pool2d: unknown PoolMode ", static_cast<int>(mode));
  return CUDNN_POOLING_MAX;
}

// The descriptors of one pooling: x [N, C, H, W], y [N, C, P, Q], and the window.
struct PoolDescriptors {
  TensorDescriptor x, y;
  PoolingDescriptor pool;

  PoolDescriptors(PoolMode mode, const Tensor& x_t, const Tensor& y_t, const Pool2dParams& p,
                  const char* op) {
    const cudnnDataType_t type = cudnn_data_type(x_t.dtype(), op);
    x.set_nchw(type, x_t.size(0), x_t.size(1), x_t.size(2), x_t.size(3), op);
    y.set_nchw(type, y_t.size(0), y_t.size(1), y_t.size(2), y_t.size(3), op);
    CUDNN_CHECK(cudnnSetPooling2dDescriptor(
        pool.get(), cudnn_pool_mode(mode), CUDNN_PROPAGATE_NAN,
        cudnn_int(p.kernel_h, op, "kernel_h"), cudnn_int(p.kernel_w, op, "kernel_w"),
        cudnn_int(p.pad_h, op, "pad_h"), cudnn_int(p.pad_w, op, "pad_w"),
        cudnn_int(p.stride_h, op, "stride_h"), cudnn_int(p.stride_w, op, "stride_w")));
  }
};

}  // namespace

// out [N, C, P, Q] = pool(x [N, C, H, W]).
void CudaBackend::pool2d_forward(PoolMode mode, const Tensor& out, const Tensor& x,
                                 const Pool2dParams& params) {
  if (out.numel() == 0) return;
  DeviceGuard guard(device_index_);
  PoolDescriptors d(mode, x, out, params, "pool2d_forward");
  const CudnnScale scale(out.dtype());
  CUDNN_CHECK(cudnnPoolingForward(cudnn_handle(), d.pool.get(), scale.one(), d.x.get(),
                                  x.raw_data(), scale.zero(), d.y.get(), out.raw_data()));
}

// grad_x [N, C, H, W] from grad_out [N, C, P, Q]; x and out are the forward's.
void CudaBackend::pool2d_backward(PoolMode mode, const Tensor& grad_x, const Tensor& grad_out,
                                  const Tensor& x, const Tensor& out, const Pool2dParams& params) {
  if (grad_x.numel() == 0) return;
  DeviceGuard guard(device_index_);
  PoolDescriptors d(mode, x, out, params, "pool2d_backward");
  const CudnnScale scale(grad_x.dtype());
  // y and dy share a descriptor, as x and dx do: all four are packed NCHW of one dtype.
  CUDNN_CHECK(cudnnPoolingBackward(cudnn_handle(), d.pool.get(), scale.one(), d.y.get(),
                                   out.raw_data(), d.y.get(), grad_out.raw_data(), d.x.get(),
                                   x.raw_data(), scale.zero(), d.x.get(), grad_x.raw_data()));
}

}  // namespace strata::cuda
