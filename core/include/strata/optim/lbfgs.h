// L-BFGS (Nocedal & Wright, ch. 7): a quasi-Newton method that builds the product of an
// inverse-Hessian estimate with the gradient from the last `history_size` steps and gradient
// changes (the two-loop recursion), with an optional strong-Wolfe line search (ch. 3). It
// follows torch.optim.LBFGS step for step (first-step scaling, termination tests, the line
// search's cubic interpolation and zoom), so that trajectories agree with PyTorch's.
//
//   optim::LBFGS opt(model.parameters(), {.line_search = optim::LineSearch::StrongWolfe});
//   for (...) {
//     opt.step([&] {
//       opt.zero_grad();
//       Tensor loss = loss_fn(model(x), y);
//       loss.backward();
//       return loss;
//     });
//   }
//
// Rules: one parameter group; every parameter on one device with one dtype; step() needs a
// closure (it evaluates the loss several times per call). The parameters are treated as one
// flat vector (the concatenation of their elements in group order); the work is tensor ops on
// that vector, so it runs on any device, with a few host reads per iteration (the scalars the
// line search and the termination tests decide on).
#pragma once

#include <cstdint>
#include <vector>

#include "strata/optim/optimizer.h"

namespace strata::optim {

enum class LineSearch : uint8_t {
  None,         // step by t = lr (the first iteration scales it by min(1, 1/|g|_1))
  StrongWolfe,  // bracket and zoom until the strong Wolfe conditions hold (c1 1e-4, c2 0.9)
};

struct LBFGSOptions {
  double lr = 1.0;
  int64_t max_iter = 20;  // iterations per step()
  int64_t max_eval = 0;   // closure calls per step(); 0 means max_iter * 5 / 4, as PyTorch
  double tolerance_grad = 1e-7;    // stop when max |g| <= this
  double tolerance_change = 1e-9;  // stop when the loss or the step changes less than this
  int64_t history_size = 100;
  LineSearch line_search = LineSearch::None;
};

// Group options (numbers, as every optimizer's): "lr", "max_iter", "max_eval",
// "tolerance_grad", "tolerance_change", "history_size", "line_search" (0 None, 1 StrongWolfe).
//
// State, kept so that state_dict()/load_state_dict() resume a run exactly, all under the
// first parameter (as PyTorch keeps it): its step count is the number of iterations so far
// (PyTorch's n_iter); the buffers, flat vectors over all parameters, are "d" (the last
// direction), "prev_flat_grad", and "old_dirs.<j>" / "old_stps.<j>" (j = 0 oldest .. k-1: the
// history's gradient changes y and steps s); the scalars are "t" (the last step length),
// "H_diag" (the initial inverse-Hessian scale y·s / y·y), "prev_loss", "func_evals",
// "history" (k) and "ro.<j>" (1 / y·s).
class LBFGS : public Optimizer {
 public:
  LBFGS(std::vector<ParamGroup> groups, const LBFGSOptions& options = {});
  LBFGS(std::vector<Tensor> params, const LBFGSOptions& options = {})
      : LBFGS(std::vector<ParamGroup>{ParamGroup(std::move(params))}, options) {}

  // Runs up to max_iter iterations (fewer when a termination test fires), calling `closure`
  // for the loss and gradients; returns the loss of the first call (at the parameters as they
  // were), as PyTorch does. Throws strata::Error without a closure.
  Tensor step(const Closure& closure = nullptr) override;

  // Closure calls made so far, over every step().
  int64_t func_evals() const;
  // Iterations made so far, over every step().
  int64_t n_iter() const;

 protected:
  // Unused: step() does the work (L-BFGS is not a per-group update).
  void update(ParamGroup& group) override;
  void validate(const ParamGroup& group, size_t index) const override;
};

}  // namespace strata::optim
