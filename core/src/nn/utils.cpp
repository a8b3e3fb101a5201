// Gradient clipping (nn/utils.h). The norm is reduced on the gradients' device: one partial
// per gradient (sum of |g|^p, or max |g|), then one reduction over the partials and a single
// host read of the total, which decides whether to scale.
#include "strata/nn/utils.h"

#include <cmath>
#include <limits>
#include <sstream>
#include <string>

#include "internal.h"

namespace strata::nn::utils {

namespace {

// "2-norm", "inf-norm", "1.5-norm": how the messages name the norm.
std::string norm_name(double norm_type) {
  std::ostringstream out;
  if (std::isinf(norm_type)) {
    out << "inf";
  } else {
    out << norm_type;
  }
  out << "-norm";
  return out.str();
}

// The gradients of `parameters` that exist and hold elements.
std::vector<Tensor> gradients_of(const std::vector<Tensor>& parameters) {
  std::vector<Tensor> grads;
  for (const Tensor& p : parameters) {
    if (p.defined() && p.grad().defined() && p.grad().numel() > 0) grads.push_back(p.grad());
  }
  return grads;
}

}  // namespace

double clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm, double norm_type,
                       bool error_if_nonfinite) {
  const bool inf_norm = std::isinf(norm_type) && norm_type > 0;
  STRATA_CHECK(inf_norm || (std::isfinite(norm_type) && norm_type > 0),
               "clip_grad_norm_: norm_type must be positive or infinity, got ", norm_type);
  STRATA_CHECK(max_norm >= 0, "clip_grad_norm_: max_norm must be non-negative, got ", max_norm);
  NoGradGuard no_grad;
  const std::vector<Tensor> grads = gradients_of(parameters);
  if (grads.empty()) return 0.0;

  // One 0-d partial per gradient, all in the first gradient's dtype and on its device.
  const Tensor& first = grads.front();
  std::vector<Tensor> partials;
  partials.reserve(grads.size());
  for (const Tensor& g : grads) {
    Tensor partial;
    if (inf_norm) {
      partial = max(abs(g));
    } else if (norm_type == 1.0) {
      partial = sum(abs(g));
    } else if (norm_type == 2.0) {
      partial = sum(mul(g, g));
    } else {
      partial = sum(pow(abs(g), norm_type));
    }
    partials.push_back(partial.to(first.dtype()).to(first.device()));
  }
  const Tensor all = stack(partials, 0);
  Tensor total_t;
  if (inf_norm) {
    total_t = max(all);
  } else if (norm_type == 1.0) {
    total_t = sum(all);
  } else if (norm_type == 2.0) {
    total_t = sqrt(sum(all));
  } else {
    total_t = pow(sum(all), 1.0 / norm_type);
  }
  const double total = total_t.item<double>();  // the one host read (a sync on CUDA)

  STRATA_CHECK(!error_if_nonfinite || std::isfinite(total), "clip_grad_norm_: the total ",
               norm_name(norm_type), " of the gradients of ", grads.size(), " parameters is ",
               total, ", so it cannot be clipped (pass error_if_nonfinite = false to scale the "
               "gradients by it anyway)");
  const double coef = max_norm / (total + 1e-6);
  // NOTE: a NaN coefficient (NaN norm) is applied too, as PyTorch does: the gradients become
  // NaN instead of passing on unclipped, so the problem shows.
  if (coef < 1.0 || std::isnan(coef)) {
    for (Tensor g : grads) g.mul_(coef);
  }
  return total;
}

void clip_grad_value_(const std::vector<Tensor>& parameters, double clip_value) {
  STRATA_CHECK(clip_value >= 0, "clip_grad_value_: clip_value must be non-negative, got ",
               clip_value);
  NoGradGuard no_grad;
  for (Tensor g : gradients_of(parameters)) g.copy_(clamp(g, -clip_value, clip_value));
}

}  // namespace strata::nn::utils
