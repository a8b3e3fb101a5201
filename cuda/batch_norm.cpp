// Batch normalization (training mode) of the CUDA backend through cuDNN, float32 and float64:
// x, contiguous [N, C, *], is described as the packed NCHW tensor [N, C, S, 1] (S the product of
// the trailing sizes, 1 for [N, C]) and normalized per channel in CUDNN_BATCHNORM_SPATIAL mode;
// weight, bias, the running and the saved statistics use the [1, C, 1, 1] descriptor that
// cudnnDeriveBNTensorDescriptor derives (float for float32 x, double for float64).
// cuDNN keeps backend.h's contract: resultSaveMean is the batch mean, resultSaveInvVariance is
// 1 / sqrt(biased var + eps) (the contract's save_invstd, despite the name), and the running
// update is running = (1 - factor) * running + factor * batch with factor = momentum and the
// unbiased variance (N*S / (N*S - 1) times the biased one) for running_var — the same update
// PyTorch relies on when it hands its batch norm to cuDNN.
#include <algorithm>
#include <cstdint>

#include "common.h"
#include "cuda_backend.h"
#include "cudnn_utils.h"
#include "strata/error.h"
#include "strata/tensor.h"

namespace strata::cuda {
namespace {

// x [N, C, *] as [N, C, S, 1], and the derived per-channel descriptor.
struct BatchNormDescriptors {
  TensorDescriptor x, channel;

  BatchNormDescriptors(const Tensor& x_t, const char* op) {
    const int64_t n = x_t.size(0), c = x_t.size(1);
    const int64_t s = x_t.numel() / (n * c);
    x.set_nchw(cudnn_data_type(x_t.dtype(), op), n, c, s, 1, op);
    CUDNN_CHECK(cudnnDeriveBNTensorDescriptor(channel.get(), x.get(), CUDNN_BATCHNORM_SPATIAL));
  }
};

// NOTE: cuDNN rejects eps below CUDNN_BN_MIN_EPSILON (0 in cuDNN 9, 1e-5 in cuDNN 7): an eps
// under it is raised to it, so the result is that of a slightly larger eps.
double cudnn_epsilon(double eps) {
  return std::max(eps, static_cast<double>(CUDNN_BN_MIN_EPSILON));
}

}  // namespace

// out [N, C, *]; save_mean, save_invstd [C]; running_mean/var [C] or undefined; weight, bias [C].
void CudaBackend::batch_norm_forward(const Tensor& out, const Tensor& save_mean,
                                     const Tensor& save_invstd, const Tensor& running_mean,
                                     const Tensor& running_var, const Tensor& x,
                                     const Tensor& weight, const Tensor& bias, double momentum,
                                     double eps) {
  if (x.size(0) == 0 || x.size(1) == 0 || x.numel() == 0) return;
  DeviceGuard guard(device_index_);
  BatchNormDescriptors d(x, "batch_norm_forward");
  const CudnnScale scale(x.dtype());
  // Running statistics only when given (cuDNN takes both pointers null or neither).
  const bool track = running_mean.defined() && running_var.defined();
  CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(
      cudnn_handle(), CUDNN_BATCHNORM_SPATIAL, scale.one(), scale.zero(), d.x.get(), x.raw_data(),
      d.x.get(), out.raw_data(), d.channel.get(), weight.raw_data(), bias.raw_data(), momentum,
      track ? running_mean.raw_data() : nullptr, track ? running_var.raw_data() : nullptr,
      cudnn_epsilon(eps), save_mean.raw_data(), save_invstd.raw_data()));
}

// grad_x [N, C, *], grad_weight and grad_bias [C], from grad_out and the saved statistics.
void CudaBackend::batch_norm_backward(const Tensor& grad_x, const Tensor& grad_weight,
                                      const Tensor& grad_bias, const Tensor& grad_out,
                                      const Tensor& x, const Tensor& weight,
                                      const Tensor& save_mean, const Tensor& save_invstd) {
  if (x.size(0) == 0 || x.size(1) == 0 || x.numel() == 0) return;
  DeviceGuard guard(device_index_);
  BatchNormDescriptors d(x, "batch_norm_backward");
  const CudnnScale scale(x.dtype());
  // NOTE: backend.h's backward takes no eps. cuDNN uses eps only to recompute the inverse
  // standard deviation when no saved statistics are passed; we always pass the forward's
  // save_mean/save_invstd, so this value (any >= CUDNN_BN_MIN_EPSILON) is not used.
  const double unused_eps = cudnn_epsilon(1e-5);
  CUDNN_CHECK(cudnnBatchNormalizationBackward(
      cudnn_handle(), CUDNN_BATCHNORM_SPATIAL, scale.one(), scale.zero(), scale.one(), scale.zero(),
      d.x.get(), x.raw_data(), d.x.get(), grad_out.raw_data(), d.x.get(), grad_x.raw_data(),
      d.channel.get(), weight.raw_data(), grad_weight.raw_data(), grad_bias.raw_data(), unused_eps,
      save_mean.raw_data(), save_invstd.raw_data()));
}

}  // namespace strata::cuda
