// Optimizers over parameter groups, as torch.optim has them. An optimizer holds groups of
// parameters, each with its own hyperparameters (a name -> number map, filled from the
// optimizer's defaults), and per-parameter state (step count, moment buffers).
//
//   optim::Adam opt(model.parameters(), {.lr = 1e-3, .weight_decay = 1e-4});
//   for (...) {
//     opt.zero_grad();
//     loss(model(x), y).backward();
//     opt.step();
//   }
//
// Groups with their own settings: the group's map overrides the defaults by name.
//
//   optim::SGD opt({{backbone.parameters(), {{"lr", 1e-3}}},
//                   {head.parameters()}},
//                  {.lr = 1e-2, .momentum = 0.9});
//
// Every group accepts the regularization options "weight_decay" (L2 added to the gradient;
// AdamW decays the weights directly instead) and "l1" (l1 * sign(p) added to the gradient),
// and "maximize" (ascend instead of descend). step() updates the parameters that have a
// gradient and skips the rest (their step count does not advance). The first-order updates
// run as one fused backend kernel per (group, device, dtype): Backend::optimizer_update.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "strata/backend.h"
#include "strata/tensor.h"

namespace strata::optim {

// Hyperparameters by name ("lr", "momentum", "beta1", ...). Booleans are 0 or 1.
using GroupOptions = std::map<std::string, double>;

// A group's overrides as named fields, so that a misspelled name does not compile:
//   groups.emplace_back(head.parameters(), optim::Overrides{.lr = 1e-3, .weight_decay = 0.0});
// Each field set becomes the option of that name in GroupOptions (betas as beta1 and beta2;
// flags as 0 or 1); one the optimizer does not have is still an error naming it (momentum
// for Adam), as with the map.
struct Overrides {
  std::optional<double> lr = std::nullopt;
  std::optional<double> momentum = std::nullopt;
  std::optional<double> dampening = std::nullopt;
  std::optional<double> weight_decay = std::nullopt;
  std::optional<double> l1 = std::nullopt;
  std::optional<double> eps = std::nullopt;
  std::optional<double> alpha = std::nullopt;
  std::optional<double> rho = std::nullopt;
  std::optional<double> lr_decay = std::nullopt;
  std::optional<double> initial_accumulator_value = std::nullopt;
  std::optional<double> beta1 = std::nullopt;
  std::optional<double> beta2 = std::nullopt;
  std::optional<double> momentum_decay = std::nullopt;
  std::optional<bool> nesterov = std::nullopt;
  std::optional<bool> centered = std::nullopt;
  std::optional<bool> amsgrad = std::nullopt;
  std::optional<bool> maximize = std::nullopt;

  GroupOptions to_options() const;
};

struct ParamGroup {
  std::vector<Tensor> params;
  // This group's overrides; after construction, every option of the optimizer (and
  // "initial_lr" once a learning-rate scheduler has taken the group's base lr).
  GroupOptions options;

  ParamGroup() = default;
  ParamGroup(std::vector<Tensor> params_, GroupOptions options_ = {})  // NOLINT(google-explicit-constructor)
      : params(std::move(params_)), options(std::move(options_)) {}
  ParamGroup(std::vector<Tensor> params_, const Overrides& overrides)
      : params(std::move(params_)), options(overrides.to_options()) {}

  // An option by name; throws strata::Error naming the option when the group has none.
  double get(const std::string& name) const;
  // Sets an option the group has (schedulers set "lr"); throws for an unknown name.
  void set(const std::string& name, double value);
  double lr() const { return get("lr"); }
};

// What an optimizer keeps for one parameter.
struct ParamState {
  int64_t step = 0;                        // updates made so far
  std::map<std::string, Tensor> buffers;   // "exp_avg", "momentum_buffer", ...
  std::map<std::string, double> scalars;   // NAdam's "mu_product"

  // Nothing recorded yet. A state loaded with step 0 but with buffers is not empty: its
  // buffers are used as loaded (Adagrad's accumulator, as PyTorch saves it before any step).
  bool empty() const { return step == 0 && buffers.empty() && scalars.empty(); }
};

// An optimizer's state as one flat name -> tensor map (so that a checkpoint stores it next to
// the model's), numbered by parameter position across the groups as PyTorch numbers them:
//   "state.<i>.step" (int64 scalar), "state.<i>.<buffer>", "state.<i>.scalar.<name>" (float64),
//   "param_groups.<g>.<option>" (float64 scalar), "param_groups.<g>.params" (int64 [n]).
using OptimizerStateDict = std::map<std::string, Tensor>;

class Optimizer {
 public:
  // Returns the loss (a scalar tensor) for optimizers that re-evaluate it; the closure
  // zeroes the gradients, computes the loss, calls backward and returns the loss.
  using Closure = std::function<Tensor()>;

  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update. With a closure, calls it once first (with gradients on) and returns its loss;
  // without one returns an undefined tensor. L-BFGS calls it as often as it needs.
  virtual Tensor step(const Closure& closure = nullptr);

  // Resets every parameter's gradient: to undefined (set_to_none, the default, as PyTorch 2)
  // or to zeros.
  void zero_grad(bool set_to_none = true);

  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  // Adds a group (its options filled from the defaults and validated). A parameter may be in
  // one group only.
  void add_param_group(ParamGroup group);
  const GroupOptions& defaults() const { return defaults_; }
  const std::string& name() const { return name_; }

  // The state of one parameter (empty before its first update).
  const ParamState& state(const Tensor& param) const;

  // Copies of the state and of the groups' options; load_state_dict restores them into an
  // optimizer built over the same parameters in the same groups, so that training resumes
  // exactly (bit-identical on the CPU).
  OptimizerStateDict state_dict() const;
  void load_state_dict(const OptimizerStateDict& dict);

 protected:
  // `name` names the optimizer in errors; `defaults` lists every option it accepts, with its
  // default value (the common ones included: "lr", and where accepted "weight_decay", "l1",
  // "maximize"). The derived constructor then calls add_param_groups (from there, not from
  // here, so that its validate() is the one called).
  Optimizer(std::string name, GroupOptions defaults);
  // add_param_group for each; throws when `groups` is empty.
  void add_param_groups(std::vector<ParamGroup> groups);

  // Updates one group's parameters that have gradients; called by step() under NoGradGuard.
  virtual void update(ParamGroup& group) = 0;
  // Checks one group's options (after defaults are filled); throws strata::Error naming the
  // optimizer, the group and the option. The base checks lr >= 0, eps >= 0, weight_decay >= 0,
  // l1 >= 0 and betas in [0, 1) where present.
  virtual void validate(const ParamGroup& group, size_t index) const;

  ParamState& state_of(const Tensor& param);
  // For the fused optimizers: updates `group`'s parameters that have gradients with one
  // backend kernel per (device, dtype). `buffers` names the kernel's state slots in order; a
  // slot named "" is one the options leave unused (passed undefined). Buffers are created on
  // each parameter's first step: zeros, or `initial` when given. `u` carries the
  // hyperparameters but lr (the group's, unless `lr` is given), steps and mu_products, which
  // are filled here.
  void fused_update(ParamGroup& group, OptimizerUpdate u, const std::vector<std::string>& buffers,
                    double initial = 0.0, std::optional<double> lr = std::nullopt);

 private:
  std::string name_;
  GroupOptions defaults_;
  std::vector<ParamGroup> groups_;
  std::unordered_map<const void*, ParamState> state_;  // by TensorImpl
};

// ---- first-order optimizers -------------------------------------------------------------
// Each takes its options as a struct (designated initializers, defaults as PyTorch's); the
// same names, as strings, override them per group. `l1` and `maximize` are accepted by all.

struct SGDOptions {
  double lr = 1e-3, momentum = 0.0, dampening = 0.0, weight_decay = 0.0;
  bool nesterov = false;
  double l1 = 0.0;
  bool maximize = false;
};
// Stochastic gradient descent with optional momentum (heavy ball) and Nesterov momentum.
class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, const SGDOptions& options = {});
  SGD(std::vector<Tensor> params, const SGDOptions& options = {})
      : SGD(std::vector<ParamGroup>{ParamGroup(std::move(params))}, options) {}

 protected:
  void update(ParamGroup& group) override;
  void validate(const ParamGroup& group, size_t index) const override;
};

struct AdagradOptions {
  double lr = 1e-2, lr_decay = 0.0, weight_decay = 0.0, initial_accumulator_value = 0.0,
         eps = 1e-10, l1 = 0.0;
  bool maximize = false;
};
// Per-coordinate steps scaled by the root of the summed squared gradients (Duchi et al.).
class Adagrad : public Optimizer {
 public:
  Adagrad(std::vector<ParamGroup> groups, const AdagradOptions& options = {});
  Adagrad(std::vector<Tensor> params, const AdagradOptions& options = {})
      : Adagrad(std::vector<ParamGroup>{ParamGroup(std::move(params))}, options) {}

 protected:
  void update(ParamGroup& group) override;
  void validate(const ParamGroup& group, size_t index) const override;
};

struct AdadeltaOptions {
  double lr = 1.0, rho = 0.9, eps = 1e-6, weight_decay = 0.0, l1 = 0.0;
  bool maximize = false;
};
// Adagrad's scaling with decaying averages, and steps in the units of the parameters (Zeiler).
class Adadelta : public Optimizer {
 public:
  Adadelta(std::vector<ParamGroup> groups, const AdadeltaOptions& options = {});
  Adadelta(std::vector<Tensor> params, const AdadeltaOptions& options = {})
      : Adadelta(std::vector<ParamGroup>{ParamGroup(std::move(params))}, options) {}

 protected:
  void update(ParamGroup& group) override;
  void validate(const ParamGroup& group, size_t index) const override;
};

struct RMSpropOptions {
  double lr = 1e-2, alpha = 0.99, eps = 1e-8, weight_decay = 0.0, momentum = 0.0;
  bool centered = false;
  double l1 = 0.0;
  bool maximize = false;
};
// Steps scaled by a running root-mean-square of the gradient (Hinton), optionally centered
// (by the running mean) and with momentum.
class RMSprop : public Optimizer {
 public:
  RMSprop(std::vector<ParamGroup> groups, const RMSpropOptions& options = {});
  RMSprop(std::vector<Tensor> params, const RMSpropOptions& options = {})
      : RMSprop(std::vector<ParamGroup>{ParamGroup(std::move(params))}, options) {}

 protected:
  void update(ParamGroup& group) override;
  void validate(const ParamGroup& group, size_t index) const override;
};

struct AdamOptions {
  double lr = 1e-3;
  std::array<double, 2> betas = {0.9, 0.999};
  double eps = 1e-8, weight_decay = 0.0;
  bool amsgrad = false;
  double l1 = 0.0;
  bool maximize = false;
};
// Adam (Kingma & Ba): bias-corrected first and second moment estimates; amsgrad keeps the
// running maximum of the second moment (Reddi et al.). Options "beta1" and "beta2" per group.
class Adam : public Optimizer {
 public:
  Adam(std::vector<ParamGroup> groups, const AdamOptions& options = {});
  Adam(std::vector<Tensor> params, const AdamOptions& options = {})
      : Adam(std::vector<ParamGroup>{ParamGroup(std::move(params))}, options) {}

 protected:
  // AdamW's: `decoupled` makes "weight_decay" decay the weights directly.
  Adam(std::string name, std::vector<ParamGroup> groups, const AdamOptions& options,
       bool decoupled);
  void update(ParamGroup& group) override;

 private:
  bool decoupled_ = false;
};

struct AdamWOptions {
  double lr = 1e-3;
  std::array<double, 2> betas = {0.9, 0.999};
  double eps = 1e-8, weight_decay = 1e-2;
  bool amsgrad = false;
  double l1 = 0.0;
  bool maximize = false;
};
// Adam with decoupled weight decay (Loshchilov & Hutter): p *= 1 - lr * weight_decay each
// step, outside the moment estimates.
class AdamW : public Adam {
 public:
  AdamW(std::vector<ParamGroup> groups, const AdamWOptions& options = {});
  AdamW(std::vector<Tensor> params, const AdamWOptions& options = {})
      : AdamW(std::vector<ParamGroup>{ParamGroup(std::move(params))}, options) {}
};

struct AdamaxOptions {
  double lr = 2e-3;
  std::array<double, 2> betas = {0.9, 0.999};
  double eps = 1e-8, weight_decay = 0.0, l1 = 0.0;
  bool maximize = false;
};
// Adam with the infinity norm in place of the second moment (Kingma & Ba, section 7).
class Adamax : public Optimizer {
 public:
  Adamax(std::vector<ParamGroup> groups, const AdamaxOptions& options = {});
  Adamax(std::vector<Tensor> params, const AdamaxOptions& options = {})
      : Adamax(std::vector<ParamGroup>{ParamGroup(std::move(params))}, options) {}

 protected:
  void update(ParamGroup& group) override;
};

struct NAdamOptions {
  double lr = 2e-3;
  std::array<double, 2> betas = {0.9, 0.999};
  double eps = 1e-8, weight_decay = 0.0, momentum_decay = 4e-3, l1 = 0.0;
  bool maximize = false;
};
// Adam with Nesterov momentum (Dozat), with PyTorch's momentum schedule.
class NAdam : public Optimizer {
 public:
  NAdam(std::vector<ParamGroup> groups, const NAdamOptions& options = {});
  NAdam(std::vector<Tensor> params, const NAdamOptions& options = {})
      : NAdam(std::vector<ParamGroup>{ParamGroup(std::move(params))}, options) {}

 protected:
  void update(ParamGroup& group) override;
  void validate(const ParamGroup& group, size_t index) const override;
};

}  // namespace strata::optim
