// batch_norm and layer_norm of nn::functional.
// - batch_norm in training runs the backend's batch_norm_forward on x seen as [N, C, S] (S the
//   product of the spatial dims, 1 for [N, C]), which also updates the running statistics in
//   place, and records a backward through batch_norm_backward. In evaluation it is composite
//   ((x - running_mean) / sqrt(running_var + eps) * weight + bias, broadcast over channel 1),
//   so the tape differentiates it.
// - layer_norm is composite: mean and biased variance over the trailing normalized_shape dims.
// Both validate every shape before a kernel runs and name the shapes in their messages.
#include <string>
#include <utility>

#include "internal.h"
#include "strata/amp/autocast.h"
#include "strata/nn/functional.h"

namespace strata::nn::functional {

namespace {

using autograd::needs_grad;
using autograd::record;
using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

// A per-channel tensor of batch_norm ([C], of `dtype` and x's device) when defined.
void check_channel_tensor(const Tensor& t, const char* what, const Tensor& x, DType dtype) {
  if (!t.defined()) return;
  const int64_t channels = x.size(1);
  STRATA_CHECK(t.dim() == 1 && t.size(0) == channels, "batch_norm: ", what, " must be [",
               channels, "] (one value per channel of input ", detail::describe(x), "), got ",
               detail::describe(t));
  STRATA_CHECK(t.dtype() == dtype, "batch_norm: ", what, " ", detail::describe(t),
               " must have the input's dtype, or f32 for all the per-channel tensors of an f16 "
               "or bf16 input (input ", detail::describe(x), ")");
  detail::check_same_device(x, t, "batch_norm");
}

// The dtype of batch_norm's per-channel tensors: x's, or float32 for a half-precision x whose
// parameters and statistics are float32 (mixed precision keeps them so, as cuDNN asks).
DType channel_dtype(const Tensor& x, std::initializer_list<const Tensor*> channel_tensors) {
  if (!is_reduced_floating(x.dtype())) return x.dtype();
  for (const Tensor* t : channel_tensors) {
    if (t->defined()) return t->dtype() == DType::Float32 ? DType::Float32 : x.dtype();
  }
  return x.dtype();
}

// The shape [1, C, 1, ...] that broadcasts a [C] tensor over channel 1 of x.
Shape channel_shape(const Tensor& x) {
  Shape shape(static_cast<size_t>(x.dim()), 1);
  shape[1] = x.size(1);
  return shape;
}

// Evaluation: the running statistics normalize, all through recorded ops.
Tensor batch_norm_eval(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                       const Tensor& weight, const Tensor& bias, double eps) {
  const Shape shape = channel_shape(x);
  Tensor out = div(sub(x, running_mean.reshape(shape)), sqrt(add(running_var.reshape(shape), eps)));
  if (weight.defined()) out = mul(out, weight.reshape(shape));
  if (bias.defined()) out = add(out, bias.reshape(shape));
  return out;
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum,
                  double eps) {
  // ---- validate
  detail::check_defined(x, "batch_norm", "input");
  STRATA_CHECK(is_floating(x.dtype()), "batch_norm: expected a floating input, got ",
               detail::describe(x));
  STRATA_CHECK(x.dim() >= 2, "batch_norm: expected an input [N, C] or [N, C, *] of rank >= 2, got ",
               detail::describe(x));
  STRATA_CHECK(running_mean.defined() == running_var.defined(),
               "batch_norm: running_mean and running_var must be given together (running_mean ",
               running_mean.defined() ? detail::describe(running_mean) : "undefined",
               ", running_var ",
               running_var.defined() ? detail::describe(running_var) : "undefined", ")");
  STRATA_CHECK(training || running_mean.defined(),
               "batch_norm: evaluation mode (training=false) needs running_mean and running_var "
               "(input ", detail::describe(x), ")");
  const DType stats = channel_dtype(x, {&weight, &bias, &running_mean, &running_var});
  check_channel_tensor(running_mean, "running_mean", x, stats);
  check_channel_tensor(running_var, "running_var", x, stats);
  check_channel_tensor(weight, "weight", x, stats);
  check_channel_tensor(bias, "bias", x, stats);
  STRATA_CHECK(eps >= 0.0, "batch_norm: eps must be non-negative, got ", eps);

  if (!training) {
    // Float32 statistics promote the result: back to x's dtype, as the kernel path gives.
    return batch_norm_eval(x, running_mean, running_var, weight, bias, eps).to(x.dtype());
  }

  const int64_t n = x.size(0), channels = x.size(1);
  const int64_t spatial = channels > 0 && n > 0 ? x.numel() / (n * channels) : 0;
  STRATA_CHECK(n * spatial > 1,
               "batch_norm: Expected more than 1 value per channel when training, got input ",
               detail::describe(x));

  // ---- dispatch: x [N, C, S]; running statistics updated in place by the kernel
  const Shape nc_s = {n, channels, spatial};
  const Tensor x3 = x.detach().contiguous().view(nc_s);
  const TensorOptions stat_options = x.options().dtype(stats);
  const Tensor w = weight.defined() ? weight.detach().contiguous() : ones({channels}, stat_options);
  const Tensor b = bias.defined() ? bias.detach().contiguous() : zeros({channels}, stat_options);
  // NOTE: the kernel writes the running statistics through their storage; a strided view
  // (a slice of a bigger buffer) gets a contiguous copy that is written back afterwards.
  Tensor rm, rv;
  if (running_mean.defined()) {
    rm = running_mean.detach().contiguous();
    rv = running_var.detach().contiguous();
  }
  Tensor out3 = Tensor::empty(nc_s, x.options());
  Tensor save_mean = Tensor::empty({channels}, stat_options);
  Tensor save_invstd = Tensor::empty({channels}, stat_options);
  detail::backend_of(x).batch_norm_forward(out3, save_mean, save_invstd, rm, rv, x3, w, b,
                                           momentum, eps);
  if (rm.defined()) {
    // Written in place by the kernel (Tensor::version); a strided one by copy_ as well.
    running_mean.bump_version();
    running_var.bump_version();
    if (!running_mean.is_contiguous()) running_mean.detach().copy_(rm);
    if (!running_var.is_contiguous()) running_var.detach().copy_(rv);
  }
  Tensor out = out3.view(x.shape());

  // ---- record: one node for x, weight and bias (undefined ones get no edge)
  if (needs_grad({&x, &weight, &bias})) {
    record("batch_norm", {x, weight, bias}, out,
           [x3, w, save_mean, save_invstd, eps, shape = x.shape()](const Tensor& g,
                                                                   const Needs& need) {
             Tensor grad_x = Tensor::empty(x3.shape(), x3.options());
             Tensor grad_w = Tensor::empty(w.shape(), w.options());
             Tensor grad_b = Tensor::empty(w.shape(), w.options());
             detail::backend_of(x3).batch_norm_backward(grad_x, grad_w, grad_b,
                                                        g.contiguous().view(x3.shape()), x3, w,
                                                        save_mean, save_invstd, eps);
             return Grads{need[0] ? grad_x.view(shape) : Tensor(), need[1] ? grad_w : Tensor(),
                          need[2] ? grad_b : Tensor()};
           });
    autograd::mark_once_differentiable(out);
  }
  return out;
}

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps) {
  if (amp::needs_float32({&x, &weight, &bias})) {
    return layer_norm(amp::cast_to_float32(x), normalized_shape, amp::cast_to_float32(weight),
                      amp::cast_to_float32(bias), eps);
  }
  detail::check_defined(x, "layer_norm", "input");
  STRATA_CHECK(is_floating(x.dtype()), "layer_norm: expected a floating input, got ",
               detail::describe(x));
  const auto k = static_cast<int64_t>(normalized_shape.size());
  STRATA_CHECK(k >= 1, "layer_norm: normalized_shape must name at least one dimension (input ",
               detail::describe(x), ")");
  bool trailing = k <= x.dim();
  for (int64_t i = 0; trailing && i < k; ++i) {
    trailing = x.shape()[static_cast<size_t>(x.dim() - k + i)] == normalized_shape[static_cast<size_t>(i)];
  }
  STRATA_CHECK(trailing, "layer_norm: normalized_shape ", shape_str(normalized_shape),
               " does not match the trailing dimensions of input ", detail::describe(x));
  for (const auto& [t, what] : {std::pair{&weight, "weight"}, std::pair{&bias, "bias"}}) {
    if (!t->defined()) continue;
    STRATA_CHECK(t->shape() == normalized_shape, "layer_norm: ", what, " must have shape ",
                 shape_str(normalized_shape), " (normalized_shape), got ", detail::describe(*t));
    STRATA_CHECK(t->dtype() == x.dtype(), "layer_norm: ", what, " ", detail::describe(*t),
                 " must have the input's dtype (input ", detail::describe(x), ")");
    detail::check_same_device(x, *t, "layer_norm");
  }
  STRATA_CHECK(eps >= 0.0, "layer_norm: eps must be non-negative, got ", eps);
  STRATA_CHECK(numel_of(normalized_shape) > 0,
               "layer_norm: cannot normalize over an empty normalized_shape ",
               shape_str(normalized_shape));

  std::vector<int64_t> dims;
  for (int64_t d = x.dim() - k; d < x.dim(); ++d) dims.push_back(d);
  const Tensor centered = sub(x, mean(x, dims, /*keepdim=*/true));
  const Tensor var = mean(mul(centered, centered), dims, /*keepdim=*/true);  // biased
  Tensor out = div(centered, sqrt(add(var, eps)));
  if (weight.defined()) out = mul(out, weight);
  if (bias.defined()) out = add(out, bias);
  return out;
}

Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight, const Tensor& bias,
                  double eps) {
  if (amp::needs_float32({&x, &weight, &bias})) {
    return group_norm(amp::cast_to_float32(x), num_groups, amp::cast_to_float32(weight),
                      amp::cast_to_float32(bias), eps);
  }
  detail::check_defined(x, "group_norm", "input");
  STRATA_CHECK(is_floating(x.dtype()) && x.dim() >= 2, "group_norm: expected a floating input ",
               "[N, C, *], got ", detail::describe(x));
  const int64_t n = x.size(0), channels = x.size(1);
  STRATA_CHECK(num_groups >= 1 && channels % num_groups == 0, "group_norm: ", channels,
               " channels cannot be split into ", num_groups, " groups (input ",
               detail::describe(x), ")");
  for (const auto& [t, what] : {std::pair{&weight, "weight"}, std::pair{&bias, "bias"}}) {
    if (!t->defined()) continue;
    STRATA_CHECK(t->shape() == Shape{channels} && t->dtype() == x.dtype(), "group_norm: ", what,
                 " must be [", channels, "] of the input's dtype, got ", detail::describe(*t),
                 " for input ", detail::describe(x));
    detail::check_same_device(x, *t, "group_norm");
  }
  STRATA_CHECK(eps >= 0.0, "group_norm: eps must be non-negative, got ", eps);
  STRATA_CHECK(x.numel() > 0, "group_norm: the input ", detail::describe(x), " is empty");
  // Each example's groups as rows: [N, G, rest].
  const Tensor grouped = x.reshape({n, num_groups, -1});
  const Tensor centered = sub(grouped, mean(grouped, {2}, /*keepdim=*/true));
  const Tensor var = mean(mul(centered, centered), {2}, /*keepdim=*/true);  // biased
  Tensor out = div(centered, sqrt(add(var, eps))).reshape(x.shape());
  // weight/bias [C] broadcast over [N, C, *].
  Shape per_channel = {1, channels};
  per_channel.resize(static_cast<size_t>(x.dim()), 1);
  if (weight.defined()) out = mul(out, weight.reshape(per_channel));
  if (bias.defined()) out = add(out, bias.reshape(per_channel));
  return out;
}

Tensor instance_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  detail::check_defined(x, "instance_norm", "input");
  STRATA_CHECK(x.dim() >= 3, "instance_norm: expected an input [N, C, L] or [N, C, H, W] (or ",
               "more positions), got ", detail::describe(x));
  return group_norm(x, x.size(1), weight, bias, eps);
}

}  // namespace strata::nn::functional
