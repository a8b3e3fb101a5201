// Batch normalization (training mode) of the CUDA backend through cuDNN, float32 and float64:
// x, contiguous [N, C, *], is described as the packed NCHW tensor [N, C, S, 1] (S the product of
// the trailing sizes, 1 for [N, C]) and normalized per channel in CUDNN_BATCHNORM_SPATIAL mode;
// weight, bias, the running and the saved statistics use the [1, C, 1, 1] descriptor that
// cudnnDeriveBNTensorDescriptor derives (float for float32 x, double for float64).
// cuDNN keeps backend.h's contract: resultSaveMean is the batch mean, resultSaveInvVariance is
// 1 / sqrt(biased var + eps) (the contract's save_invstd, despite the name), and the running
// update is running = (1 - factor) * running + factor * batch with factor = momentum and the
// unbiased variance (N*S / (N*S - 1) times the biased one) for running_var — the same update
// PyTorch relies on when it hands its batch norm to cuDNN. Backward gets the forward's eps, as
// cuDNN asks. Data pointers reach cuDNN 16-byte aligned (aligned.h).
#include <algorithm>
#include <cstdint>

#include "aligned.h"
#include "common.h"
#include "cuda_backend.h"
#include "cudnn_utils.h"
#include "strata/detail/float32_staging.h"
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
  if (detail::any_reduced_floating({&out, &save_mean, &save_invstd, &running_mean, &running_var,
                                    &x, &weight, &bias})) {
    detail::Float32Staging stage;
    batch_norm_forward(stage.output(out), stage.output(save_mean), stage.output(save_invstd),
                       stage.output(running_mean), stage.output(running_var), stage.input(x),
                       stage.input(weight), stage.input(bias), momentum, eps);
    return stage.finish();
  }
  if (x.size(0) == 0 || x.size(1) == 0 || x.numel() == 0) return;
  DeviceGuard guard(device_index_);
  BatchNormDescriptors d(x, "batch_norm_forward");
  const CudnnScale scale(x.dtype());
  // Running statistics only when given (cuDNN takes both pointers null or neither).
  const bool track = running_mean.defined() && running_var.defined();
  using Use = AlignedData::Use;
  const AlignedData x_a(*this, x, Use::kIn), weight_a(*this, weight, Use::kIn),
      bias_a(*this, bias, Use::kIn);
  AlignedData out_a(*this, out, Use::kOut), mean_a(*this, save_mean, Use::kOut),
      invstd_a(*this, save_invstd, Use::kOut);
  AlignedData running_mean_a(*this, track ? running_mean : Tensor(), Use::kInOut),
      running_var_a(*this, track ? running_var : Tensor(), Use::kInOut);
  CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(
      cudnn_handle(), CUDNN_BATCHNORM_SPATIAL, scale.one(), scale.zero(), d.x.get(), x_a.get(),
      d.x.get(), out_a.get(), d.channel.get(), weight_a.get(), bias_a.get(), momentum,
      running_mean_a.get(), running_var_a.get(), cudnn_epsilon(eps), mean_a.get(),
      invstd_a.get()));
  for (AlignedData* written : {&out_a, &mean_a, &invstd_a, &running_mean_a, &running_var_a}) {
    written->write_back();
  }
}

// grad_x [N, C, *], grad_weight and grad_bias [C], from grad_out and the saved statistics.
void CudaBackend::batch_norm_backward(const Tensor& grad_x, const Tensor& grad_weight,
                                      const Tensor& grad_bias, const Tensor& grad_out,
                                      const Tensor& x, const Tensor& weight,
                                      const Tensor& save_mean, const Tensor& save_invstd,
                                      double eps) {
  if (detail::any_reduced_floating({&grad_x, &grad_weight, &grad_bias, &grad_out, &x, &weight,
                                    &save_mean, &save_invstd})) {
    detail::Float32Staging stage;
    batch_norm_backward(stage.output(grad_x), stage.output(grad_weight), stage.output(grad_bias),
                        stage.input(grad_out), stage.input(x), stage.input(weight),
                        stage.input(save_mean), stage.input(save_invstd), eps);
    return stage.finish();
  }
  if (x.size(0) == 0 || x.size(1) == 0 || x.numel() == 0) return;
  DeviceGuard guard(device_index_);
  BatchNormDescriptors d(x, "batch_norm_backward");
  const CudnnScale scale(x.dtype());
  using Use = AlignedData::Use;
  const AlignedData x_a(*this, x, Use::kIn), grad_out_a(*this, grad_out, Use::kIn),
      weight_a(*this, weight, Use::kIn), mean_a(*this, save_mean, Use::kIn),
      invstd_a(*this, save_invstd, Use::kIn);
  AlignedData grad_x_a(*this, grad_x, Use::kOut), grad_weight_a(*this, grad_weight, Use::kOut),
      grad_bias_a(*this, grad_bias, Use::kOut);
  // NOTE: cuDNN asks for the forward's epsilon here ("the same epsilon value should be used in
  // forward and backward"), even though the saved statistics already hold it.
  CUDNN_CHECK(cudnnBatchNormalizationBackward(
      cudnn_handle(), CUDNN_BATCHNORM_SPATIAL, scale.one(), scale.zero(), scale.one(), scale.zero(),
      d.x.get(), x_a.get(), d.x.get(), grad_out_a.get(), d.x.get(), grad_x_a.get(),
      d.channel.get(), weight_a.get(), grad_weight_a.get(), grad_bias_a.get(), cudnn_epsilon(eps),
      mean_a.get(), invstd_a.get()));
  for (AlignedData* written : {&grad_x_a, &grad_weight_a, &grad_bias_a}) written->write_back();
}

}  // namespace strata::cuda
