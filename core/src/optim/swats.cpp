// SWATS: Adam through the fused Adam kernel until the group's switch criterion fires (see
// swats.h), then the fused SGD-with-momentum kernel at the estimated learning rate. The
// criterion needs the Adam step p_k, taken as the parameters' change over the update (a copy
// of the parameters before it), and two dot products over the group, read to the host once
// per step and device.
#include "strata/optim/swats.h"

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "strata/autograd.h"
#include "strata/error.h"
#include "strata/ops.h"

namespace strata::optim {

namespace {

double flag(bool value) { return value ? 1.0 : 0.0; }

// A scalar of the group's switch state (0 until set).
double& scalar(ParamState& state, const std::string& name) { return state.scalars[name]; }

double scalar_or_zero(const ParamState& state, const std::string& name) {
  const auto it = state.scalars.find(name);
  return it == state.scalars.end() ? 0.0 : it->second;
}

// p·p and p·g summed over the parameters of one device, as float64 0-d tensors there.
struct DotSums {
  Device device;
  Tensor step_squared, step_dot_grad;
};

}  // namespace

SWATS::SWATS(std::vector<ParamGroup> groups, const SWATSOptions& o)
    : Optimizer("SWATS", {{"lr", o.lr},
                          {"beta1", o.betas[0]},
                          {"beta2", o.betas[1]},
                          {"eps", o.eps},
                          {"weight_decay", o.weight_decay},
                          {"eps_switch", o.eps_switch},
                          {"l1", o.l1},
                          {"maximize", flag(o.maximize)}}) {
  add_param_groups(std::move(groups));
}

void SWATS::validate(const ParamGroup& group, size_t index) const {
  Optimizer::validate(group, index);
  STRATA_CHECK(group.get("eps_switch") >= 0.0, "SWATS: eps_switch must be >= 0, got ",
               group.get("eps_switch"), " (parameter group ", index, ")");
}

double SWATS::group_scalar(size_t group, const char* name) const {
  STRATA_CHECK(group < param_groups().size(), "SWATS: no parameter group ", group, " (it has ",
               param_groups().size(), ")");
  return scalar_or_zero(state(param_groups()[group].params.front()), name);
}

bool SWATS::switched(size_t group) const { return group_scalar(group, "swats_switched") != 0.0; }

int64_t SWATS::switch_step(size_t group) const {
  return static_cast<int64_t>(group_scalar(group, "swats_switch_step"));
}

double SWATS::sgd_lr(size_t group) const { return group_scalar(group, "swats_sgd_lr"); }

double SWATS::lr_estimate(size_t group) const {
  const double k = group_scalar(group, "swats_adam_steps");
  if (k == 0.0) return 0.0;
  const double beta2 = param_groups()[group].get("beta2");
  return group_scalar(group, "swats_lambda") / (1.0 - std::pow(beta2, k));
}

void SWATS::update(ParamGroup& group) {
  ParamState& head = state_of(group.params.front());
  const double beta1 = group.get("beta1"), beta2 = group.get("beta2");
  OptimizerUpdate u;
  u.weight_decay = group.get("weight_decay");
  u.l1 = group.get("l1");
  u.maximize = group.get("maximize") != 0.0;

  if (scalar(head, "swats_switched") != 0.0) {
    // SGD phase: v = beta1 v + g, p -= (1 - beta1) Λ v. The momentum buffer starts at zero
    // here (fused_update makes it only for parameters that never stepped).
    for (const Tensor& p : group.params) {
      ParamState& s = state_of(p);
      if (p.grad().defined() && s.step > 0 && s.buffers.count("momentum_buffer") == 0) {
        s.buffers["momentum_buffer"] = zeros_like(p);
      }
    }
    u.kind = OptimizerKind::Sgd;
    u.momentum = beta1;
    u.dampening = 0.0;
    fused_update(group, u, {"momentum_buffer"}, 0.0,
                 /*lr=*/(1.0 - beta1) * scalar(head, "swats_sgd_lr"));
    return;
  }

  // Adam phase, exactly as optim::Adam (no amsgrad), keeping what p_k and g_k need.
  std::vector<Tensor> params, before, grads;
  for (const Tensor& p : group.params) {
    if (!p.grad().defined()) continue;
    params.push_back(p);
    before.push_back(p.clone());
    // The gradient the kernel uses: maximize flips it, weight_decay and l1 add to it.
    Tensor g = u.maximize ? p.grad().neg() : p.grad();
    if (u.weight_decay != 0.0) g = g + p * u.weight_decay;
    if (u.l1 != 0.0) g = g + sign(p) * u.l1;
    grads.push_back(g);
  }
  if (params.empty()) return;  // nothing to update: k does not advance
  u.kind = OptimizerKind::Adam;
  u.beta1 = beta1;
  u.beta2 = beta2;
  u.eps = group.get("eps");
  fused_update(group, u, {"exp_avg", "exp_avg_sq", ""});

  std::vector<DotSums> sums;
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor step = params[i] - before[i];
    const Tensor squared = (step * step).sum().to(kFloat64);
    const Tensor along = (step * grads[i]).sum().to(kFloat64);
    DotSums* target = nullptr;
    for (DotSums& d : sums) {
      if (d.device == params[i].device()) target = &d;
    }
    if (target == nullptr) {
      sums.push_back({params[i].device(), squared, along});
    } else {
      target->step_squared = target->step_squared + squared;
      target->step_dot_grad = target->step_dot_grad + along;
    }
  }
  double step_squared = 0.0, step_dot_grad = 0.0;
  for (const DotSums& d : sums) {
    const std::vector<double> values = stack({d.step_squared, d.step_dot_grad}).to_vector<double>();
    step_squared += values[0];
    step_dot_grad += values[1];
  }

  double& k = scalar(head, "swats_adam_steps");
  k += 1.0;
  if (step_dot_grad == 0.0) return;
  const double gamma = step_squared / -step_dot_grad;
  double& lambda = scalar(head, "swats_lambda");
  lambda = beta2 * lambda + (1.0 - beta2) * gamma;
  const double estimate = lambda / (1.0 - std::pow(beta2, k));
  // NOTE: estimate > 0 is ours, not the paper's: a negative Λ would make SGD ascend.
  if (k > 1.0 && std::abs(estimate - gamma) < group.get("eps_switch") && estimate > 0.0) {
    scalar(head, "swats_switched") = 1.0;
    scalar(head, "swats_switch_step") = k;
    scalar(head, "swats_sgd_lr") = estimate;
  }
}

}  // namespace strata::optim
