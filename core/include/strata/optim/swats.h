// SWATS (Keskar & Socher 2017, "Improving generalization performance by switching from Adam
// to SGD"): Adam until a criterion says that SGD with momentum, at a learning rate estimated
// from Adam's own steps, would take steps of the same size; then that SGD for good. Each
// parameter group decides and switches on its own.
//
//   optim::SWATS opt(model.parameters(), {.lr = 1e-3});
//   ... opt.step() as any optimizer; opt.switched(), opt.sgd_lr() tell where it stands.
//
// The criterion, as implemented, per group. After Adam step k of the group (k = 1, 2, ...),
// with p_k the change it made to the group's parameters (all of them, as one vector) and g_k
// the gradient it used (after maximize, weight_decay and l1, as Adam saw it):
//   if p_k·g_k != 0:
//     gamma_k  = (p_k·p_k) / (-p_k·g_k)          the step size along -g_k that p_k projects to
//     lambda_k = beta2 lambda_{k-1} + (1 - beta2) gamma_k          (lambda_0 = 0)
//     switch when k > 1 and |lambda_k / (1 - beta2^k) - gamma_k| < eps_switch
//                 and lambda_k / (1 - beta2^k) > 0
// (when p_k·g_k == 0, lambda is left as it was; the last test is ours, not the paper's: it
// keeps a negative estimate from turning SGD into ascent). On the switch the group's SGD learning rate
// is Λ = lambda_k / (1 - beta2^k), and from the next step on the group updates as the paper's
// SGD phase:  v = beta1 v + g (v starts at 0),  p -= (1 - beta1) Λ v  -- torch.optim.SGD with
// momentum beta1, no dampening, lr (1 - beta1) Λ; weight_decay, l1 and maximize apply as
// before. Parameters without a gradient are skipped and do not count towards p_k.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "strata/optim/optimizer.h"

namespace strata::optim {

struct SWATSOptions {
  double lr = 1e-3;
  std::array<double, 2> betas = {0.9, 0.999};
  double eps = 1e-8;          // Adam's
  double weight_decay = 0.0;  // coupled L2, in both phases
  double eps_switch = 1e-9;   // the switch criterion's tolerance
  double l1 = 0.0;
  bool maximize = false;
};

// Group options: "lr", "beta1", "beta2", "eps", "weight_decay", "eps_switch", "l1",
// "maximize". The Adam phase keeps Adam's state buffers ("exp_avg", "exp_avg_sq"); the SGD
// phase adds "momentum_buffer". The group's switch state is kept as scalars of its first
// parameter, so that state_dict() carries it: "swats_adam_steps" (k), "swats_lambda",
// "swats_switched" (0 or 1), "swats_switch_step" (the k it switched at) and "swats_sgd_lr" (Λ).
class SWATS : public Optimizer {
 public:
  SWATS(std::vector<ParamGroup> groups, const SWATSOptions& options = {});
  SWATS(std::vector<Tensor> params, const SWATSOptions& options = {})
      : SWATS(std::vector<ParamGroup>{ParamGroup(std::move(params))}, options) {}

  // Whether group `group` runs SGD now.
  bool switched(size_t group = 0) const;
  // The Adam step (k) at which it switched; 0 while it runs Adam.
  int64_t switch_step(size_t group = 0) const;
  // Λ, the SGD learning rate estimated at the switch (the update scales it by 1 - beta1);
  // 0 while it runs Adam.
  double sgd_lr(size_t group = 0) const;
  // The bias-corrected estimate lambda_k / (1 - beta2^k) so far (0 before the first step).
  double lr_estimate(size_t group = 0) const;

 protected:
  void update(ParamGroup& group) override;
  void validate(const ParamGroup& group, size_t index) const override;

 private:
  double group_scalar(size_t group, const char* name) const;
};

}  // namespace strata::optim
