// The optimizer base (groups, state, state dicts) and the first-order optimizers, each of
// which turns its group options into one OptimizerUpdate for the backend's fused kernel.
#include "strata/optim/optimizer.h"

#include <cmath>
#include <set>
#include <sstream>
#include <utility>

#include "strata/autograd.h"
#include "strata/error.h"
#include "strata/ops.h"

namespace strata::optim {

// ---- ParamGroup -------------------------------------------------------------------------------

double ParamGroup::get(const std::string& name) const {
  const auto it = options.find(name);
  STRATA_CHECK(it != options.end(), "ParamGroup: no option \"", name, "\" in this group");
  return it->second;
}

void ParamGroup::set(const std::string& name, double value) {
  const auto it = options.find(name);
  STRATA_CHECK(it != options.end(), "ParamGroup: no option \"", name, "\" in this group");
  it->second = value;
}

// ---- Optimizer --------------------------------------------------------------------------------

Optimizer::Optimizer(std::string name, GroupOptions defaults)
    : name_(std::move(name)), defaults_(std::move(defaults)) {}

void Optimizer::add_param_groups(std::vector<ParamGroup> groups) {
  STRATA_CHECK(!groups.empty(), name_, ": got no parameter groups (an empty parameter list)");
  for (ParamGroup& group : groups) add_param_group(std::move(group));
}

void Optimizer::add_param_group(ParamGroup group) {
  const size_t index = groups_.size();
  STRATA_CHECK(!group.params.empty(), name_, ": parameter group ", index,
               " has no parameters (an empty parameter list)");
  for (const auto& [option, value] : group.options) {
    // "initial_lr" belongs to the learning-rate schedulers (optim/scheduler.h).
    if (option == "initial_lr") continue;
    STRATA_CHECK(defaults_.count(option) != 0, name_, ": parameter group ", index,
                 " sets \"", option, "\", which ", name_, " does not have");
    (void)value;
  }
  for (const auto& [option, value] : defaults_) group.options.emplace(option, value);
  std::set<const void*> seen;
  for (const ParamGroup& other : groups_) {
    for (const Tensor& p : other.params) seen.insert(p.impl());
  }
  for (size_t i = 0; i < group.params.size(); ++i) {
    const Tensor& p = group.params[i];
    STRATA_CHECK(p.defined(), name_, ": parameter ", i, " of group ", index, " is undefined");
    STRATA_CHECK(is_floating(p.dtype()), name_, ": parameter ", i, " of group ", index,
                 " is ", dtype_name(p.dtype()), "; only floating tensors can be optimized");
    STRATA_CHECK(seen.insert(p.impl()).second, name_, ": parameter ", i, " of group ", index,
                 " (", shape_str(p.shape()), ") appears in more than one group (or twice)");
  }
  validate(group, index);
  groups_.push_back(std::move(group));
}

GroupOptions Overrides::to_options() const {
  GroupOptions options;
  const auto put = [&options](const char* name, const auto& value) {
    if (value) options[name] = static_cast<double>(*value);
  };
  put("lr", lr);
  put("momentum", momentum);
  put("dampening", dampening);
  put("weight_decay", weight_decay);
  put("l1", l1);
  put("eps", eps);
  put("alpha", alpha);
  put("rho", rho);
  put("lr_decay", lr_decay);
  put("initial_accumulator_value", initial_accumulator_value);
  put("beta1", beta1);
  put("beta2", beta2);
  put("momentum_decay", momentum_decay);
  put("nesterov", nesterov);
  put("centered", centered);
  put("amsgrad", amsgrad);
  put("maximize", maximize);
  return options;
}

void Optimizer::validate(const ParamGroup& group, size_t index) const {
  auto check_at_least_zero = [&](const char* option) {
    const auto it = group.options.find(option);
    if (it == group.options.end()) return;
    STRATA_CHECK(it->second >= 0.0, name_, ": ", option, " must be >= 0, got ", it->second,
                 " (parameter group ", index, ")");
  };
  for (const char* option : {"lr", "eps", "weight_decay", "l1", "momentum"}) {
    check_at_least_zero(option);
  }
  for (const char* option : {"beta1", "beta2"}) {
    const auto it = group.options.find(option);
    if (it == group.options.end()) continue;
    STRATA_CHECK(it->second >= 0.0 && it->second < 1.0, name_, ": ", option,
                 " must be in [0, 1), got ", it->second, " (parameter group ", index, ")");
  }
}

Tensor Optimizer::step(const Closure& closure) {
  Tensor loss;
  if (closure) {
    // The closure computes gradients even when step() is called under NoGradGuard.
    EnableGradGuard grad_enabled;
    loss = closure();
  }
  NoGradGuard no_grad;
  for (ParamGroup& group : groups_) update(group);
  return loss;
}

void Optimizer::zero_grad(bool set_to_none) {
  for (ParamGroup& group : groups_) {
    for (Tensor& p : group.params) {
      if (set_to_none) {
        p.zero_grad();
      } else if (p.grad().defined()) {
        p.mutable_grad().zero_();
      }
    }
  }
}

const ParamState& Optimizer::state(const Tensor& param) const {
  static const ParamState kEmpty;
  const auto it = state_.find(param.impl());
  return it == state_.end() ? kEmpty : it->second;
}

ParamState& Optimizer::state_of(const Tensor& param) { return state_[param.impl()]; }

void Optimizer::fused_update(ParamGroup& group, OptimizerUpdate u,
                             const std::vector<std::string>& buffers, double initial,
                             std::optional<double> lr) {
  u.lr = lr ? *lr : group.get("lr");
  // Parameters with a gradient, partitioned by (device, dtype): one kernel call each.
  struct Batch {
    Device device;
    DType dtype;
    std::vector<Tensor> params, grads;
    std::vector<std::vector<Tensor>> state;
    std::vector<int64_t> steps;
    std::vector<double> mu_products;
  };
  std::vector<Batch> batches;
  for (const Tensor& p : group.params) {
    const Tensor& g = p.grad();
    if (!g.defined()) continue;
    STRATA_CHECK(g.shape() == p.shape() && g.dtype() == p.dtype() && g.device() == p.device(),
                 name_, ": the gradient ", shape_str(g.shape()), " ", dtype_name(g.dtype()), " ",
                 g.device().str(), " does not match its parameter ", shape_str(p.shape()), " ",
                 dtype_name(p.dtype()), " ", p.device().str());
    ParamState& s = state_of(p);
    // A buffer is made on first use, not at step 0: a loaded state whose step count is 0 (as
    // PyTorch saves Adagrad's before any step) keeps the buffers it was loaded with.
    for (const std::string& name : buffers) {
      if (name.empty() || s.buffers.contains(name)) continue;
      Tensor buffer = zeros_like(p);
      if (initial != 0.0) buffer.fill_(initial);
      s.buffers[name] = buffer;
    }
    ++s.step;
    Batch* batch = nullptr;
    for (Batch& b : batches) {
      if (b.device == p.device() && b.dtype == p.dtype()) batch = &b;
    }
    if (batch == nullptr) {
      batches.push_back(Batch{p.device(), p.dtype(), {}, {}, {}, {}, {}});
      batch = &batches.back();
      batch->state.resize(buffers.size());
    }
    STRATA_CHECK(p.is_contiguous(), name_, ": parameter ", shape_str(p.shape()),
                 " is not contiguous");
    batch->params.push_back(p);
    batch->grads.push_back(g.is_contiguous() ? g : g.contiguous());
    for (size_t k = 0; k < buffers.size(); ++k) {
      batch->state[k].push_back(buffers[k].empty() ? Tensor() : s.buffers.at(buffers[k]));
    }
    batch->steps.push_back(s.step);
    if (u.kind == OptimizerKind::NAdam) {
      // Π_t = μ_1 ... μ_t, kept in double on the host as PyTorch keeps it.
      const double mu = u.beta1 * (1.0 - 0.5 * std::pow(0.96, static_cast<double>(s.step) *
                                                                    u.momentum_decay));
      auto [it, inserted] = s.scalars.emplace("mu_product", 1.0);
      (void)inserted;
      it->second *= mu;
      batch->mu_products.push_back(it->second);
    }
  }
  for (Batch& b : batches) {
    u.steps = std::move(b.steps);
    u.mu_products = std::move(b.mu_products);
    backend_for(b.device).optimizer_update(u, b.params, b.grads, b.state);
    // The kernel wrote the parameters and their state in place (Tensor::version).
    for (const Tensor& p : b.params) p.bump_version();
    for (const std::vector<Tensor>& kind : b.state) {
      for (const Tensor& t : kind) {
        if (t.defined()) t.bump_version();
      }
    }
  }
}

// ---- state dicts ------------------------------------------------------------------------------

OptimizerStateDict Optimizer::state_dict() const {
  OptimizerStateDict out;
  int64_t index = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const ParamGroup& group = groups_[g];
    const std::string prefix = "param_groups." + std::to_string(g) + ".";
    for (const auto& [option, value] : group.options) {
      out[prefix + option] = full({}, value, kFloat64);
    }
    std::vector<int64_t> indices;
    for (const Tensor& p : group.params) {
      const int64_t i = index++;
      indices.push_back(i);
      const auto it = state_.find(p.impl());
      if (it == state_.end() || it->second.empty()) continue;
      const ParamState& s = it->second;
      const std::string key = "state." + std::to_string(i) + ".";
      out[key + "step"] = full({}, static_cast<double>(s.step), kInt64);
      for (const auto& [name, buffer] : s.buffers) out[key + name] = buffer.clone();
      for (const auto& [name, value] : s.scalars) {
        out[key + "scalar." + name] = full({}, value, kFloat64);
      }
    }
    out[prefix + "params"] = from_vector<int64_t>(indices, {static_cast<int64_t>(indices.size())});
  }
  return out;
}

void Optimizer::load_state_dict(const OptimizerStateDict& dict) {
  auto at = [&](const std::string& key) -> const Tensor& {
    const auto it = dict.find(key);
    STRATA_CHECK(it != dict.end(), name_, ".load_state_dict: the state dict has no \"", key,
                 "\"");
    return it->second;
  };
  // Check the structure first, so a mismatch leaves the optimizer as it was.
  for (size_t g = 0; g < groups_.size(); ++g) {
    const Tensor& params = at("param_groups." + std::to_string(g) + ".params");
    STRATA_CHECK(params.numel() == static_cast<int64_t>(groups_[g].params.size()), name_,
                 ".load_state_dict: group ", g, " has ", groups_[g].params.size(),
                 " parameters here and ", params.numel(), " in the state dict");
  }
  STRATA_CHECK(dict.count("param_groups." + std::to_string(groups_.size()) + ".params") == 0,
               name_, ".load_state_dict: the state dict has more than ", groups_.size(),
               " parameter groups");
  // An option this optimizer does not have means the dict is another kind's (Adam's betas
  // offered to SGD): refuse it rather than drop it. initial_lr belongs to a scheduler.
  for (size_t g = 0; g < groups_.size(); ++g) {
    const std::string prefix = "param_groups." + std::to_string(g) + ".";
    for (auto it = dict.lower_bound(prefix); it != dict.end() && it->first.rfind(prefix, 0) == 0;
         ++it) {
      const std::string option = it->first.substr(prefix.size());
      STRATA_CHECK(option == "params" || option == "initial_lr" ||
                       groups_[g].options.count(option) != 0,
                   name_, ".load_state_dict: group ", g, " of the state dict has the option \"",
                   option, "\", which ", name_, " does not have (a state dict of another optimizer?)");
    }
  }

  int64_t index = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    ParamGroup& group = groups_[g];
    const std::string prefix = "param_groups." + std::to_string(g) + ".";
    for (auto& [option, value] : group.options) {
      const auto it = dict.find(prefix + option);
      if (it != dict.end()) value = it->second.item<double>();
    }
    for (const Tensor& p : group.params) {
      const std::string key = "state." + std::to_string(index++) + ".";
      ParamState s;
      for (auto it = dict.lower_bound(key); it != dict.end() && it->first.rfind(key, 0) == 0;
           ++it) {
        const std::string name = it->first.substr(key.size());
        if (name == "step") {
          s.step = it->second.item<int64_t>();
        } else if (name.rfind("scalar.", 0) == 0) {
          s.scalars[name.substr(7)] = it->second.item<double>();
        } else {
          // NOTE: buffers keep their own shape (L-BFGS's history is not shaped like a
          // parameter); they move to the parameter's device and dtype.
          s.buffers[name] = it->second.to(p.device()).to(p.dtype()).clone();
        }
      }
      if (s.empty()) {
        state_.erase(p.impl());
      } else {
        state_[p.impl()] = std::move(s);
      }
    }
  }
}

// ---- the first-order optimizers ---------------------------------------------------------------

namespace {

double flag(bool value) { return value ? 1.0 : 0.0; }

// The options every first-order optimizer accepts besides its own.
GroupOptions with_common(GroupOptions own, double l1, bool maximize) {
  own["l1"] = l1;
  own["maximize"] = flag(maximize);
  return own;
}

// The hyperparameters common to every kind, from a group.
OptimizerUpdate common_update(OptimizerKind kind, const ParamGroup& group) {
  OptimizerUpdate u;
  u.kind = kind;
  u.weight_decay = group.get("weight_decay");
  u.l1 = group.get("l1");
  u.maximize = group.get("maximize") != 0.0;
  return u;
}

}  // namespace

SGD::SGD(std::vector<ParamGroup> groups, const SGDOptions& o)
    : Optimizer("SGD",
                with_common({{"lr", o.lr},
                             {"momentum", o.momentum},
                             {"dampening", o.dampening},
                             {"weight_decay", o.weight_decay},
                             {"nesterov", flag(o.nesterov)}},
                            o.l1, o.maximize)) {
  add_param_groups(std::move(groups));
}

void SGD::validate(const ParamGroup& group, size_t index) const {
  Optimizer::validate(group, index);
  STRATA_CHECK(group.get("nesterov") == 0.0 ||
                   (group.get("momentum") > 0.0 && group.get("dampening") == 0.0),
               "SGD: nesterov needs momentum > 0 and dampening 0, got momentum ",
               group.get("momentum"), " and dampening ", group.get("dampening"),
               " (parameter group ", index, ")");
}

void SGD::update(ParamGroup& group) {
  OptimizerUpdate u = common_update(OptimizerKind::Sgd, group);
  u.momentum = group.get("momentum");
  u.dampening = group.get("dampening");
  u.nesterov = group.get("nesterov") != 0.0;
  fused_update(group, u, {u.momentum != 0.0 ? "momentum_buffer" : ""});
}

Adagrad::Adagrad(std::vector<ParamGroup> groups, const AdagradOptions& o)
    : Optimizer("Adagrad",
                with_common({{"lr", o.lr},
                             {"lr_decay", o.lr_decay},
                             {"weight_decay", o.weight_decay},
                             {"initial_accumulator_value", o.initial_accumulator_value},
                             {"eps", o.eps}},
                            o.l1, o.maximize)) {
  add_param_groups(std::move(groups));
}

void Adagrad::validate(const ParamGroup& group, size_t index) const {
  Optimizer::validate(group, index);
  for (const char* option : {"lr_decay", "initial_accumulator_value"}) {
    STRATA_CHECK(group.get(option) >= 0.0, "Adagrad: ", option, " must be >= 0, got ",
                 group.get(option), " (parameter group ", index, ")");
  }
}

void Adagrad::update(ParamGroup& group) {
  OptimizerUpdate u = common_update(OptimizerKind::Adagrad, group);
  u.lr_decay = group.get("lr_decay");
  u.eps = group.get("eps");
  fused_update(group, u, {"sum"}, group.get("initial_accumulator_value"));
}

Adadelta::Adadelta(std::vector<ParamGroup> groups, const AdadeltaOptions& o)
    : Optimizer("Adadelta",
                with_common({{"lr", o.lr},
                             {"rho", o.rho},
                             {"eps", o.eps},
                             {"weight_decay", o.weight_decay}},
                            o.l1, o.maximize)) {
  add_param_groups(std::move(groups));
}

void Adadelta::validate(const ParamGroup& group, size_t index) const {
  Optimizer::validate(group, index);
  STRATA_CHECK(group.get("rho") >= 0.0 && group.get("rho") <= 1.0,
               "Adadelta: rho must be in [0, 1], got ", group.get("rho"), " (parameter group ",
               index, ")");
}

void Adadelta::update(ParamGroup& group) {
  OptimizerUpdate u = common_update(OptimizerKind::Adadelta, group);
  u.rho = group.get("rho");
  u.eps = group.get("eps");
  fused_update(group, u, {"square_avg", "acc_delta"});
}

RMSprop::RMSprop(std::vector<ParamGroup> groups, const RMSpropOptions& o)
    : Optimizer("RMSprop",
                with_common({{"lr", o.lr},
                             {"alpha", o.alpha},
                             {"eps", o.eps},
                             {"weight_decay", o.weight_decay},
                             {"momentum", o.momentum},
                             {"centered", flag(o.centered)}},
                            o.l1, o.maximize)) {
  add_param_groups(std::move(groups));
}

void RMSprop::validate(const ParamGroup& group, size_t index) const {
  Optimizer::validate(group, index);
  STRATA_CHECK(group.get("alpha") >= 0.0 && group.get("alpha") <= 1.0,
               "RMSprop: alpha must be in [0, 1], got ", group.get("alpha"),
               " (parameter group ", index, ")");
}

void RMSprop::update(ParamGroup& group) {
  OptimizerUpdate u = common_update(OptimizerKind::RmsProp, group);
  u.alpha = group.get("alpha");
  u.eps = group.get("eps");
  u.momentum = group.get("momentum");
  u.centered = group.get("centered") != 0.0;
  fused_update(group, u,
               {"square_avg", u.momentum != 0.0 ? "momentum_buffer" : "",
                u.centered ? "grad_avg" : ""});
}

namespace {

// Adam's options with betas split into "beta1" and "beta2".
GroupOptions adam_options(const AdamOptions& o) {
  return with_common({{"lr", o.lr},
                      {"beta1", o.betas[0]},
                      {"beta2", o.betas[1]},
                      {"eps", o.eps},
                      {"weight_decay", o.weight_decay},
                      {"amsgrad", flag(o.amsgrad)}},
                     o.l1, o.maximize);
}

}  // namespace

Adam::Adam(std::vector<ParamGroup> groups, const AdamOptions& o)
    : Adam("Adam", std::move(groups), o, /*decoupled=*/false) {}

Adam::Adam(std::string name, std::vector<ParamGroup> groups, const AdamOptions& o,
           bool decoupled)
    : Optimizer(std::move(name), adam_options(o)), decoupled_(decoupled) {
  add_param_groups(std::move(groups));
}

void Adam::update(ParamGroup& group) {
  OptimizerUpdate u = common_update(OptimizerKind::Adam, group);
  if (decoupled_) std::swap(u.weight_decay, u.decoupled_weight_decay);
  u.beta1 = group.get("beta1");
  u.beta2 = group.get("beta2");
  u.eps = group.get("eps");
  u.amsgrad = group.get("amsgrad") != 0.0;
  fused_update(group, u, {"exp_avg", "exp_avg_sq", u.amsgrad ? "max_exp_avg_sq" : ""});
}

AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& o)
    : Adam("AdamW", std::move(groups),
           AdamOptions{.lr = o.lr,
                       .betas = o.betas,
                       .eps = o.eps,
                       .weight_decay = o.weight_decay,
                       .amsgrad = o.amsgrad,
                       .l1 = o.l1,
                       .maximize = o.maximize},
           /*decoupled=*/true) {}

Adamax::Adamax(std::vector<ParamGroup> groups, const AdamaxOptions& o)
    : Optimizer("Adamax", with_common({{"lr", o.lr},
                                       {"beta1", o.betas[0]},
                                       {"beta2", o.betas[1]},
                                       {"eps", o.eps},
                                       {"weight_decay", o.weight_decay}},
                                      o.l1, o.maximize)) {
  add_param_groups(std::move(groups));
}

void Adamax::update(ParamGroup& group) {
  OptimizerUpdate u = common_update(OptimizerKind::Adamax, group);
  u.beta1 = group.get("beta1");
  u.beta2 = group.get("beta2");
  u.eps = group.get("eps");
  fused_update(group, u, {"exp_avg", "exp_inf"});
}

NAdam::NAdam(std::vector<ParamGroup> groups, const NAdamOptions& o)
    : Optimizer("NAdam", with_common({{"lr", o.lr},
                                      {"beta1", o.betas[0]},
                                      {"beta2", o.betas[1]},
                                      {"eps", o.eps},
                                      {"weight_decay", o.weight_decay},
                                      {"momentum_decay", o.momentum_decay}},
                                     o.l1, o.maximize)) {
  add_param_groups(std::move(groups));
}

void NAdam::validate(const ParamGroup& group, size_t index) const {
  Optimizer::validate(group, index);
  STRATA_CHECK(group.get("momentum_decay") >= 0.0, "NAdam: momentum_decay must be >= 0, got ",
               group.get("momentum_decay"), " (parameter group ", index, ")");
}

void NAdam::update(ParamGroup& group) {
  OptimizerUpdate u = common_update(OptimizerKind::NAdam, group);
  u.beta1 = group.get("beta1");
  u.beta2 = group.get("beta2");
  u.eps = group.get("eps");
  u.momentum_decay = group.get("momentum_decay");
  fused_update(group, u, {"exp_avg", "exp_avg_sq"});
}

}  // namespace strata::optim
