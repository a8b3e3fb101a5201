// The learning-rate schedulers. Each formula is written in the order PyTorch 1.13 evaluates
// it (same operations, same rounding), so that the lrs match its to the last bit or so: the
// chainable ones read the group's current lr, the others the base lrs.
#include "strata/optim/scheduler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <utility>

#include "strata/error.h"

namespace strata::optim {

namespace {

constexpr double kPi = std::numbers::pi;

// ---- state dict entries -------------------------------------------------------------------
// Counters are int64 scalars (as the optimizer's "step"), real values float64 scalars, and
// per-group values float64 [groups].

Tensor int_entry(int64_t value) { return scalar_tensor(static_cast<double>(value), kInt64); }
Tensor real_entry(double value) { return scalar_tensor(value, kFloat64); }
Tensor per_group_entry(const std::vector<double>& values) {
  return from_vector<double>(values, {static_cast<int64_t>(values.size())});
}

const Tensor& entry(const std::string& owner, const SchedulerStateDict& dict,
                    const std::string& key) {
  const auto it = dict.find(key);
  STRATA_CHECK(it != dict.end(), owner, ".load_state_dict: the state dict has no \"", key, "\"");
  STRATA_CHECK(it->second.defined(), owner, ".load_state_dict: \"", key, "\" is undefined");
  return it->second;
}

void check_scalar(const std::string& owner, const SchedulerStateDict& dict,
                  const std::string& key) {
  const Tensor& t = entry(owner, dict, key);
  STRATA_CHECK(t.numel() == 1, owner, ".load_state_dict: \"", key, "\" should hold one value, got ",
               shape_str(t.shape()));
}

void check_per_group(const std::string& owner, const SchedulerStateDict& dict,
                     const std::string& key, size_t groups) {
  const Tensor& t = entry(owner, dict, key);
  STRATA_CHECK(t.dim() == 1 && t.numel() == static_cast<int64_t>(groups), owner,
               ".load_state_dict: \"", key, "\" should hold one value per parameter group (",
               groups, "), got ", shape_str(t.shape()));
}

double scalar(const SchedulerStateDict& dict, const std::string& key) {
  return dict.at(key).item<double>();
}
int64_t integer(const SchedulerStateDict& dict, const std::string& key) {
  return dict.at(key).item<int64_t>();
}
std::vector<double> per_group(const SchedulerStateDict& dict, const std::string& key) {
  return dict.at(key).to_vector<double>();
}

std::vector<double> current_lrs(const Optimizer& optimizer) {
  std::vector<double> lrs;
  for (const ParamGroup& group : optimizer.param_groups()) lrs.push_back(group.get("lr"));
  return lrs;
}

void set_lrs(Optimizer& optimizer, const std::vector<double>& lrs) {
  std::vector<ParamGroup>& groups = optimizer.param_groups();
  for (size_t g = 0; g < groups.size(); ++g) groups[g].set("lr", lrs[g]);
}

}  // namespace

// ---- LRScheduler ------------------------------------------------------------------------------

LRScheduler::LRScheduler(std::string name, Optimizer& optimizer)
    : name_(std::move(name)), optimizer_(optimizer) {
  for (ParamGroup& group : optimizer_.param_groups()) {
    // NOTE: "initial_lr" is the schedulers' option, not the optimizer's (PyTorch keeps it in
    // the param group too): ParamGroup::set only changes declared options, so it goes into
    // the map directly. A second scheduler on the same optimizer finds it and starts from the
    // same base lr, not from the lr the first one has already changed.
    const auto [it, inserted] = group.options.emplace("initial_lr", group.get("lr"));
    (void)inserted;
    base_lrs_.push_back(it->second);
  }
}

void LRScheduler::initial_step() { step(); }

void LRScheduler::step() {
  const int64_t epoch = last_epoch_ + 1;
  apply(epoch, lrs_at(epoch));
}

void LRScheduler::apply(int64_t epoch, const std::vector<double>& lrs) {
  STRATA_CHECK(group_count() == base_lrs_.size(), name_, ": the optimizer has ", group_count(),
               " parameter groups but had ", base_lrs_.size(),
               " when the scheduler was made; make the scheduler after adding groups");
  set_lrs(optimizer_, lrs);
  last_epoch_ = epoch;
  last_lr_ = lrs;
}

double LRScheduler::group_lr(size_t group) const {
  return optimizer_.param_groups()[group].get("lr");
}

SchedulerStateDict LRScheduler::state_dict() const {
  SchedulerStateDict dict;
  dict["last_epoch"] = int_entry(last_epoch_);
  dict["base_lrs"] = per_group_entry(base_lrs_);
  dict["last_lr"] = per_group_entry(last_lr_);
  save_extra(dict);
  return dict;
}

void LRScheduler::load_state_dict(const SchedulerStateDict& dict) {
  // Every check first, so that a bad dict leaves the scheduler as it was.
  check_scalar(name_, dict, "last_epoch");
  check_per_group(name_, dict, "base_lrs", group_count());
  check_per_group(name_, dict, "last_lr", group_count());
  check_extra(dict);

  last_epoch_ = integer(dict, "last_epoch");
  base_lrs_ = per_group(dict, "base_lrs");
  last_lr_ = per_group(dict, "last_lr");
  load_extra(dict);
  std::vector<ParamGroup>& groups = optimizer_.param_groups();
  for (size_t g = 0; g < groups.size(); ++g) groups[g].options["initial_lr"] = base_lrs_[g];
  // The chainable schedulers go on from the groups' lrs: make them the ones saved, whether
  // or not the optimizer's own state was loaded (before or after this).
  set_lrs(optimizer_, last_lr_);
}

// ---- StepLR -----------------------------------------------------------------------------------

StepLR::StepLR(Optimizer& optimizer, int64_t step_size, double gamma)
    : LRScheduler("StepLR", optimizer), step_size_(step_size), gamma_(gamma) {
  STRATA_CHECK(step_size > 0, "StepLR: step_size must be > 0, got ", step_size);
  STRATA_CHECK(gamma > 0.0, "StepLR: gamma must be > 0, got ", gamma);
  initial_step();
}

std::vector<double> StepLR::lrs_at(int64_t epoch) {
  std::vector<double> lrs;
  for (size_t g = 0; g < group_count(); ++g) {
    const bool decays = epoch != 0 && epoch % step_size_ == 0;
    lrs.push_back(decays ? group_lr(g) * gamma_ : group_lr(g));
  }
  return lrs;
}

void StepLR::save_extra(SchedulerStateDict& dict) const {
  dict["step_size"] = int_entry(step_size_);
  dict["gamma"] = real_entry(gamma_);
}
void StepLR::check_extra(const SchedulerStateDict& dict) const {
  check_scalar(name_, dict, "step_size");
  check_scalar(name_, dict, "gamma");
  STRATA_CHECK(integer(dict, "step_size") > 0, name_, ".load_state_dict: step_size must be > 0, got ",
               integer(dict, "step_size"));
}
void StepLR::load_extra(const SchedulerStateDict& dict) {
  step_size_ = integer(dict, "step_size");
  gamma_ = scalar(dict, "gamma");
}

// ---- MultiStepLR ------------------------------------------------------------------------------

MultiStepLR::MultiStepLR(Optimizer& optimizer, std::vector<int64_t> milestones, double gamma)
    : LRScheduler("MultiStepLR", optimizer), milestones_(std::move(milestones)), gamma_(gamma) {
  for (int64_t milestone : milestones_) {
    STRATA_CHECK(milestone >= 0, "MultiStepLR: milestones must be >= 0, got ", milestone);
  }
  STRATA_CHECK(gamma > 0.0, "MultiStepLR: gamma must be > 0, got ", gamma);
  initial_step();
}

std::vector<double> MultiStepLR::lrs_at(int64_t epoch) {
  const auto hits = std::count(milestones_.begin(), milestones_.end(), epoch);
  std::vector<double> lrs;
  for (size_t g = 0; g < group_count(); ++g) {
    lrs.push_back(hits == 0 ? group_lr(g) : group_lr(g) * std::pow(gamma_, static_cast<double>(hits)));
  }
  return lrs;
}

void MultiStepLR::save_extra(SchedulerStateDict& dict) const {
  dict["milestones"] = from_vector<int64_t>(milestones_, {static_cast<int64_t>(milestones_.size())});
  dict["gamma"] = real_entry(gamma_);
}
void MultiStepLR::check_extra(const SchedulerStateDict& dict) const {
  const Tensor& milestones = entry(name_, dict, "milestones");
  STRATA_CHECK(milestones.dim() == 1, name_, ".load_state_dict: \"milestones\" should be 1-D, got ",
               shape_str(milestones.shape()));
  check_scalar(name_, dict, "gamma");
}
void MultiStepLR::load_extra(const SchedulerStateDict& dict) {
  milestones_ = dict.at("milestones").to_vector<int64_t>();
  gamma_ = scalar(dict, "gamma");
}

// ---- ExponentialLR ----------------------------------------------------------------------------

ExponentialLR::ExponentialLR(Optimizer& optimizer, double gamma)
    : LRScheduler("ExponentialLR", optimizer), gamma_(gamma) {
  STRATA_CHECK(gamma > 0.0, "ExponentialLR: gamma must be > 0, got ", gamma);
  initial_step();
}

std::vector<double> ExponentialLR::lrs_at(int64_t epoch) {
  std::vector<double> lrs;
  for (size_t g = 0; g < group_count(); ++g) {
    lrs.push_back(epoch == 0 ? group_lr(g) : group_lr(g) * gamma_);
  }
  return lrs;
}

void ExponentialLR::save_extra(SchedulerStateDict& dict) const { dict["gamma"] = real_entry(gamma_); }
void ExponentialLR::check_extra(const SchedulerStateDict& dict) const {
  check_scalar(name_, dict, "gamma");
}
void ExponentialLR::load_extra(const SchedulerStateDict& dict) { gamma_ = scalar(dict, "gamma"); }

// ---- CosineAnnealingLR ------------------------------------------------------------------------

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, int64_t t_max, double eta_min)
    : LRScheduler("CosineAnnealingLR", optimizer), t_max_(t_max), eta_min_(eta_min) {
  STRATA_CHECK(t_max > 0, "CosineAnnealingLR: T_max must be > 0, got ", t_max);
  STRATA_CHECK(eta_min >= 0.0, "CosineAnnealingLR: eta_min must be >= 0, got ", eta_min);
  initial_step();
}

std::vector<double> CosineAnnealingLR::lrs_at(int64_t epoch) {
  const auto t_max = static_cast<double>(t_max_);
  const auto e = static_cast<double>(epoch);
  std::vector<double> lrs;
  for (size_t g = 0; g < group_count(); ++g) {
    const double lr = group_lr(g);
    if (epoch == 0) {
      lrs.push_back(lr);
    } else if ((epoch - 1 - t_max_) % (2 * t_max_) == 0) {
      // NOTE: the step after a minimum, where the ratio below would divide by
      // 1 + cos(pi) = 0: add the rise from the minimum instead.
      lrs.push_back(lr + (base_lrs_[g] - eta_min_) * (1 - std::cos(kPi / t_max)) / 2);
    } else {
      // The closed form's ratio from one step to the next, applied to the current lr.
      lrs.push_back((1 + std::cos(kPi * e / t_max)) / (1 + std::cos(kPi * (e - 1) / t_max)) *
                        (lr - eta_min_) +
                    eta_min_);
    }
  }
  return lrs;
}

void CosineAnnealingLR::save_extra(SchedulerStateDict& dict) const {
  dict["T_max"] = int_entry(t_max_);
  dict["eta_min"] = real_entry(eta_min_);
}
void CosineAnnealingLR::check_extra(const SchedulerStateDict& dict) const {
  check_scalar(name_, dict, "T_max");
  check_scalar(name_, dict, "eta_min");
  STRATA_CHECK(integer(dict, "T_max") > 0, name_, ".load_state_dict: T_max must be > 0, got ",
               integer(dict, "T_max"));
}
void CosineAnnealingLR::load_extra(const SchedulerStateDict& dict) {
  t_max_ = integer(dict, "T_max");
  eta_min_ = scalar(dict, "eta_min");
}

// ---- CosineAnnealingWarmRestarts --------------------------------------------------------------

CosineAnnealingWarmRestarts::CosineAnnealingWarmRestarts(Optimizer& optimizer, int64_t t_0,
                                                         int64_t t_mult, double eta_min)
    : LRScheduler("CosineAnnealingWarmRestarts", optimizer),
      t_0_(t_0),
      t_mult_(t_mult),
      eta_min_(eta_min),
      t_i_(t_0) {
  STRATA_CHECK(t_0 > 0, "CosineAnnealingWarmRestarts: T_0 must be > 0, got ", t_0);
  STRATA_CHECK(t_mult >= 1, "CosineAnnealingWarmRestarts: T_mult must be >= 1, got ", t_mult);
  STRATA_CHECK(eta_min >= 0.0, "CosineAnnealingWarmRestarts: eta_min must be >= 0, got ",
               eta_min);
  initial_step();
}

void CosineAnnealingWarmRestarts::step() {
  if (last_epoch_ < 0) {
    step(0.0);
    return;
  }
  t_cur_ += 1;
  if (t_cur_ >= static_cast<double>(t_i_)) {
    t_cur_ -= static_cast<double>(t_i_);
    t_i_ *= t_mult_;
  }
  const int64_t epoch = last_epoch_ + 1;
  apply(epoch, lrs_at(epoch));
}

void CosineAnnealingWarmRestarts::step(double epoch) {
  STRATA_CHECK(epoch >= 0.0, "CosineAnnealingWarmRestarts: expected a non-negative epoch, got ",
               epoch);
  const auto t_0 = static_cast<double>(t_0_);
  if (epoch >= t_0) {
    if (t_mult_ == 1) {
      t_cur_ = std::fmod(epoch, t_0);
    } else {
      // The number of whole periods before `epoch`: the periods' lengths sum to
      // t_0 * (t_mult^n - 1) / (t_mult - 1).
      const auto t_mult = static_cast<double>(t_mult_);
      const auto n = static_cast<int64_t>(std::log(epoch / t_0 * (t_mult - 1) + 1) /
                                          std::log(t_mult));
      int64_t power = 1;
      for (int64_t k = 0; k < n; ++k) power *= t_mult_;
      t_cur_ = epoch - static_cast<double>(t_0_ * (power - 1)) / (t_mult - 1);
      t_i_ = t_0_ * power;
    }
  } else {
    t_i_ = t_0_;
    t_cur_ = epoch;
  }
  const auto whole = static_cast<int64_t>(std::floor(epoch));
  apply(whole, lrs_at(whole));
}

std::vector<double> CosineAnnealingWarmRestarts::lrs_at(int64_t epoch) {
  (void)epoch;  // the position within the period is t_cur_
  std::vector<double> lrs;
  for (size_t g = 0; g < group_count(); ++g) {
    lrs.push_back(eta_min_ + (base_lrs_[g] - eta_min_) *
                                 (1 + std::cos(kPi * t_cur_ / static_cast<double>(t_i_))) / 2);
  }
  return lrs;
}

void CosineAnnealingWarmRestarts::save_extra(SchedulerStateDict& dict) const {
  dict["T_0"] = int_entry(t_0_);
  dict["T_mult"] = int_entry(t_mult_);
  dict["eta_min"] = real_entry(eta_min_);
  dict["T_i"] = int_entry(t_i_);
  dict["T_cur"] = real_entry(t_cur_);
}
void CosineAnnealingWarmRestarts::check_extra(const SchedulerStateDict& dict) const {
  for (const char* key : {"T_0", "T_mult", "eta_min", "T_i", "T_cur"}) check_scalar(name_, dict, key);
  STRATA_CHECK(integer(dict, "T_0") > 0 && integer(dict, "T_mult") >= 1 && integer(dict, "T_i") > 0,
               name_, ".load_state_dict: needs T_0 > 0, T_mult >= 1 and T_i > 0, got ",
               integer(dict, "T_0"), ", ", integer(dict, "T_mult"), " and ", integer(dict, "T_i"));
}
void CosineAnnealingWarmRestarts::load_extra(const SchedulerStateDict& dict) {
  t_0_ = integer(dict, "T_0");
  t_mult_ = integer(dict, "T_mult");
  eta_min_ = scalar(dict, "eta_min");
  t_i_ = integer(dict, "T_i");
  t_cur_ = scalar(dict, "T_cur");
}

// ---- LinearLR ---------------------------------------------------------------------------------

LinearLR::LinearLR(Optimizer& optimizer, const LinearLROptions& options)
    : LRScheduler("LinearLR", optimizer), options_(options) {
  // start_factor 0 would divide by zero in the chainable form at step 1.
  STRATA_CHECK(options.start_factor > 0.0 && options.start_factor <= 1.0,
               "LinearLR: start_factor must be in (0, 1], got ", options.start_factor);
  STRATA_CHECK(options.end_factor >= 0.0 && options.end_factor <= 1.0,
               "LinearLR: end_factor must be in [0, 1], got ", options.end_factor);
  STRATA_CHECK(options.total_iters > 0, "LinearLR: total_iters must be > 0, got ",
               options.total_iters);
  initial_step();
}

std::vector<double> LinearLR::lrs_at(int64_t epoch) {
  const double start = options_.start_factor, end = options_.end_factor;
  const auto total = static_cast<double>(options_.total_iters);
  std::vector<double> lrs;
  for (size_t g = 0; g < group_count(); ++g) {
    const double lr = group_lr(g);
    if (epoch == 0) {
      lrs.push_back(lr * start);
    } else if (epoch > options_.total_iters) {
      lrs.push_back(lr);
    } else {
      // factor(e) / factor(e - 1), with factor(e) = start + (end - start) * e / total.
      lrs.push_back(lr * (1. + (end - start) /
                                   (total * start + static_cast<double>(epoch - 1) * (end - start))));
    }
  }
  return lrs;
}

void LinearLR::save_extra(SchedulerStateDict& dict) const {
  dict["start_factor"] = real_entry(options_.start_factor);
  dict["end_factor"] = real_entry(options_.end_factor);
  dict["total_iters"] = int_entry(options_.total_iters);
}
void LinearLR::check_extra(const SchedulerStateDict& dict) const {
  for (const char* key : {"start_factor", "end_factor", "total_iters"}) {
    check_scalar(name_, dict, key);
  }
  STRATA_CHECK(scalar(dict, "start_factor") > 0.0 && integer(dict, "total_iters") > 0, name_,
               ".load_state_dict: needs start_factor > 0 and total_iters > 0, got ",
               scalar(dict, "start_factor"), " and ", integer(dict, "total_iters"));
}
void LinearLR::load_extra(const SchedulerStateDict& dict) {
  options_.start_factor = scalar(dict, "start_factor");
  options_.end_factor = scalar(dict, "end_factor");
  options_.total_iters = integer(dict, "total_iters");
}

// ---- OneCycleLR -------------------------------------------------------------------------------

OneCycleLR::OneCycleLR(Optimizer& optimizer, double max_lr, int64_t total_steps,
                       const OneCycleLROptions& options)
    : OneCycleLR(optimizer, std::vector<double>(optimizer.param_groups().size(), max_lr),
                 total_steps, options) {}

OneCycleLR::OneCycleLR(Optimizer& optimizer, std::vector<double> max_lrs, int64_t total_steps,
                       const OneCycleLROptions& options)
    : LRScheduler("OneCycleLR", optimizer),
      total_steps_(total_steps),
      options_(options),
      max_lrs_(std::move(max_lrs)) {
  STRATA_CHECK(max_lrs_.size() == group_count(), "OneCycleLR: expected ", group_count(),
               " max_lr values (one per parameter group), got ", max_lrs_.size());
  for (double max_lr : max_lrs_) {
    STRATA_CHECK(max_lr > 0.0, "OneCycleLR: max_lr must be > 0, got ", max_lr);
  }
  STRATA_CHECK(total_steps > 0, "OneCycleLR: total_steps must be > 0, got ", total_steps);
  STRATA_CHECK(options.pct_start >= 0.0 && options.pct_start <= 1.0,
               "OneCycleLR: pct_start must be in [0, 1], got ", options.pct_start);
  STRATA_CHECK(options.div_factor > 0.0, "OneCycleLR: div_factor must be > 0, got ",
               options.div_factor);
  STRATA_CHECK(options.final_div_factor > 0.0, "OneCycleLR: final_div_factor must be > 0, got ",
               options.final_div_factor);
  if (options.cycle_momentum) {
    // Which option is the momentum: the Adam family's beta1, else SGD's and RMSprop's momentum.
    const GroupOptions& first = optimizer.param_groups().front().options;
    momentum_option_ = first.count("beta1") != 0 ? "beta1" : "momentum";
    STRATA_CHECK(first.count(momentum_option_) != 0, "OneCycleLR: cycle_momentum needs an "
                 "optimizer with a \"momentum\" or \"beta1\" option, and ", optimizer.name(),
                 " has neither (set cycle_momentum = false)");
    const double upper = momentum_option_ == "beta1" ? 1.0 : std::numeric_limits<double>::infinity();
    for (double m : {options.base_momentum, options.max_momentum}) {
      STRATA_CHECK(m >= 0.0 && m < upper, "OneCycleLR: base_momentum and max_momentum must be ",
                   momentum_option_ == "beta1" ? "in [0, 1) for beta1" : ">= 0", ", got ", m);
    }
  }
  std::vector<ParamGroup>& groups = optimizer.param_groups();
  for (size_t g = 0; g < groups.size(); ++g) {
    // OneCycleLR sets the base lr (PyTorch overwrites "initial_lr" too).
    base_lrs_[g] = max_lrs_[g] / options.div_factor;
    groups[g].options["initial_lr"] = base_lrs_[g];
    min_lrs_.push_back(base_lrs_[g] / options.final_div_factor);
    if (options.cycle_momentum) {
      groups[g].set(momentum_option_, options.max_momentum);
      max_momentums_.push_back(options.max_momentum);
      base_momentums_.push_back(options.base_momentum);
    }
  }
  make_phases();
  initial_step();
}

void OneCycleLR::make_phases() {
  const double pct_start = options_.pct_start;
  const auto total = static_cast<double>(total_steps_);
  if (options_.three_phase) {
    phases_ = {
        {pct_start * total - 1, LrLevel::Initial, LrLevel::Max, MomentumLevel::Max,
         MomentumLevel::Base},
        {2 * pct_start * total - 2, LrLevel::Max, LrLevel::Initial, MomentumLevel::Base,
         MomentumLevel::Max},
        {total - 1, LrLevel::Initial, LrLevel::Min, MomentumLevel::Max, MomentumLevel::Max},
    };
  } else {
    phases_ = {
        {pct_start * total - 1, LrLevel::Initial, LrLevel::Max, MomentumLevel::Max,
         MomentumLevel::Base},
        {total - 1, LrLevel::Max, LrLevel::Min, MomentumLevel::Base, MomentumLevel::Max},
    };
  }
}

double OneCycleLR::anneal(double start, double end, double pct) const {
  if (options_.anneal_strategy == AnnealStrategy::Cos) {
    const double cos_out = std::cos(kPi * pct) + 1;
    return end + (start - end) / 2.0 * cos_out;
  }
  return (end - start) * pct + start;
}

double OneCycleLR::lr_level(LrLevel level, size_t group) const {
  switch (level) {
    case LrLevel::Initial: return base_lrs_[group];
    case LrLevel::Max: return max_lrs_[group];
    case LrLevel::Min: return min_lrs_[group];
  }
  STRATA_ASSERT(false, "OneCycleLR: unknown lr level");
}

double OneCycleLR::momentum_level(MomentumLevel level, size_t group) const {
  return level == MomentumLevel::Max ? max_momentums_[group] : base_momentums_[group];
}

std::vector<double> OneCycleLR::lrs_at(int64_t epoch) {
  // Step total_steps itself is allowed (PyTorch's off-by-one: it extrapolates past min_lr).
  STRATA_CHECK(epoch <= total_steps_, "OneCycleLR: tried to step ", epoch + 1,
               " times; total_steps is ", total_steps_);
  const auto step = static_cast<double>(epoch);
  std::vector<ParamGroup>& groups = optimizer_.param_groups();
  std::vector<double> lrs;
  for (size_t g = 0; g < groups.size(); ++g) {
    double start_step = 0.0;
    for (size_t i = 0; i < phases_.size(); ++i) {
      const Phase& phase = phases_[i];
      if (step <= phase.end_step || i == phases_.size() - 1) {
        STRATA_CHECK(phase.end_step != start_step, "OneCycleLR: phase ", i + 1,
                     " has no steps (pct_start ", options_.pct_start, ", total_steps ",
                     total_steps_, ")");
        const double pct = (step - start_step) / (phase.end_step - start_step);
        lrs.push_back(anneal(lr_level(phase.start_lr, g), lr_level(phase.end_lr, g), pct));
        if (!momentum_option_.empty()) {
          groups[g].set(momentum_option_, anneal(momentum_level(phase.start_momentum, g),
                                                 momentum_level(phase.end_momentum, g), pct));
        }
        break;
      }
      start_step = phase.end_step;
    }
  }
  return lrs;
}

void OneCycleLR::save_extra(SchedulerStateDict& dict) const {
  dict["total_steps"] = int_entry(total_steps_);
  dict["pct_start"] = real_entry(options_.pct_start);
  dict["anneal_strategy"] = int_entry(options_.anneal_strategy == AnnealStrategy::Cos ? 0 : 1);
  dict["three_phase"] = int_entry(options_.three_phase ? 1 : 0);
  dict["div_factor"] = real_entry(options_.div_factor);
  dict["final_div_factor"] = real_entry(options_.final_div_factor);
  dict["max_lrs"] = per_group_entry(max_lrs_);
  dict["min_lrs"] = per_group_entry(min_lrs_);
  dict["cycle_momentum"] = int_entry(momentum_option_.empty() ? 0 : 1);
  if (!momentum_option_.empty()) {
    dict["max_momentums"] = per_group_entry(max_momentums_);
    dict["base_momentums"] = per_group_entry(base_momentums_);
  }
}

void OneCycleLR::check_extra(const SchedulerStateDict& dict) const {
  for (const char* key : {"total_steps", "pct_start", "anneal_strategy", "three_phase",
                          "div_factor", "final_div_factor", "cycle_momentum"}) {
    check_scalar(name_, dict, key);
  }
  check_per_group(name_, dict, "max_lrs", group_count());
  check_per_group(name_, dict, "min_lrs", group_count());
  STRATA_CHECK(integer(dict, "total_steps") > 0, name_,
               ".load_state_dict: total_steps must be > 0, got ", integer(dict, "total_steps"));
  // The momentum option was chosen from this optimizer when the scheduler was made.
  const bool cycles = integer(dict, "cycle_momentum") != 0;
  STRATA_CHECK(cycles == !momentum_option_.empty(), name_, ".load_state_dict: the state dict ",
               cycles ? "cycles" : "does not cycle", " the momentum and this scheduler ",
               cycles ? "does not" : "does");
  if (cycles) {
    check_per_group(name_, dict, "max_momentums", group_count());
    check_per_group(name_, dict, "base_momentums", group_count());
  }
}

void OneCycleLR::load_extra(const SchedulerStateDict& dict) {
  total_steps_ = integer(dict, "total_steps");
  options_.pct_start = scalar(dict, "pct_start");
  options_.anneal_strategy =
      integer(dict, "anneal_strategy") == 0 ? AnnealStrategy::Cos : AnnealStrategy::Linear;
  options_.three_phase = integer(dict, "three_phase") != 0;
  options_.div_factor = scalar(dict, "div_factor");
  options_.final_div_factor = scalar(dict, "final_div_factor");
  max_lrs_ = per_group(dict, "max_lrs");
  min_lrs_ = per_group(dict, "min_lrs");
  if (!momentum_option_.empty()) {
    max_momentums_ = per_group(dict, "max_momentums");
    base_momentums_ = per_group(dict, "base_momentums");
  }
  make_phases();
}

// ---- ReduceLROnPlateau ------------------------------------------------------------------------

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& optimizer, const ReduceLROnPlateauOptions& options)
    : optimizer_(optimizer), options_(options) {
  const size_t groups = optimizer.param_groups().size();
  STRATA_CHECK(options.factor >= 0.0 && options.factor < 1.0,
               "ReduceLROnPlateau: factor must be in [0, 1), got ", options.factor);
  STRATA_CHECK(options.patience >= 0, "ReduceLROnPlateau: patience must be >= 0, got ",
               options.patience);
  STRATA_CHECK(options.threshold >= 0.0, "ReduceLROnPlateau: threshold must be >= 0, got ",
               options.threshold);
  STRATA_CHECK(options.cooldown >= 0, "ReduceLROnPlateau: cooldown must be >= 0, got ",
               options.cooldown);
  STRATA_CHECK(options.eps >= 0.0, "ReduceLROnPlateau: eps must be >= 0, got ", options.eps);
  if (options_.min_lrs.empty()) {
    options_.min_lrs.assign(groups, options.min_lr);
  } else {
    STRATA_CHECK(options_.min_lrs.size() == groups, "ReduceLROnPlateau: expected ", groups,
                 " min_lrs (one per parameter group), got ", options_.min_lrs.size());
  }
  for (double min_lr : options_.min_lrs) {
    STRATA_CHECK(min_lr >= 0.0, "ReduceLROnPlateau: min_lr must be >= 0, got ", min_lr);
  }
  best_ = options.mode == PlateauMode::Min ? std::numeric_limits<double>::infinity()
                                           : -std::numeric_limits<double>::infinity();
  last_lr_ = current_lrs(optimizer_);
}

bool ReduceLROnPlateau::is_better(double metric) const {
  const bool relative = options_.threshold_mode == ThresholdMode::Rel;
  if (options_.mode == PlateauMode::Min) {
    return relative ? metric < best_ * (1. - options_.threshold) : metric < best_ - options_.threshold;
  }
  return relative ? metric > best_ * (options_.threshold + 1.) : metric > best_ + options_.threshold;
}

void ReduceLROnPlateau::step(double metric) {
  std::vector<ParamGroup>& groups = optimizer_.param_groups();
  STRATA_CHECK(groups.size() == options_.min_lrs.size(), "ReduceLROnPlateau: the optimizer has ",
               groups.size(), " parameter groups but had ", options_.min_lrs.size(),
               " when the scheduler was made");
  ++last_epoch_;
  // NOTE: a NaN metric is never better, so it counts as a bad step (as in PyTorch).
  if (is_better(metric)) {
    best_ = metric;
    num_bad_epochs_ = 0;
  } else {
    ++num_bad_epochs_;
  }
  if (cooldown_counter_ > 0) {
    --cooldown_counter_;
    num_bad_epochs_ = 0;  // bad steps during the cooldown do not count
  }
  if (num_bad_epochs_ > options_.patience) {
    for (size_t g = 0; g < groups.size(); ++g) {
      const double old_lr = groups[g].get("lr");
      const double new_lr = std::max(old_lr * options_.factor, options_.min_lrs[g]);
      if (old_lr - new_lr > options_.eps) groups[g].set("lr", new_lr);
    }
    cooldown_counter_ = options_.cooldown;
    num_bad_epochs_ = 0;
  }
  last_lr_ = current_lrs(optimizer_);
}

SchedulerStateDict ReduceLROnPlateau::state_dict() const {
  SchedulerStateDict dict;
  dict["last_epoch"] = int_entry(last_epoch_);
  dict["best"] = real_entry(best_);
  dict["num_bad_epochs"] = int_entry(num_bad_epochs_);
  dict["cooldown_counter"] = int_entry(cooldown_counter_);
  dict["last_lr"] = per_group_entry(last_lr_);
  dict["mode"] = int_entry(options_.mode == PlateauMode::Min ? 0 : 1);
  dict["factor"] = real_entry(options_.factor);
  dict["patience"] = int_entry(options_.patience);
  dict["threshold"] = real_entry(options_.threshold);
  dict["threshold_mode"] = int_entry(options_.threshold_mode == ThresholdMode::Rel ? 0 : 1);
  dict["cooldown"] = int_entry(options_.cooldown);
  dict["min_lrs"] = per_group_entry(options_.min_lrs);
  dict["eps"] = real_entry(options_.eps);
  return dict;
}

void ReduceLROnPlateau::load_state_dict(const SchedulerStateDict& dict) {
  const std::string name = "ReduceLROnPlateau";
  const size_t groups = optimizer_.param_groups().size();
  for (const char* key : {"last_epoch", "best", "num_bad_epochs", "cooldown_counter", "mode",
                          "factor", "patience", "threshold", "threshold_mode", "cooldown", "eps"}) {
    check_scalar(name, dict, key);
  }
  check_per_group(name, dict, "last_lr", groups);
  check_per_group(name, dict, "min_lrs", groups);

  last_epoch_ = integer(dict, "last_epoch");
  best_ = scalar(dict, "best");
  num_bad_epochs_ = integer(dict, "num_bad_epochs");
  cooldown_counter_ = integer(dict, "cooldown_counter");
  last_lr_ = per_group(dict, "last_lr");
  options_.mode = integer(dict, "mode") == 0 ? PlateauMode::Min : PlateauMode::Max;
  options_.factor = scalar(dict, "factor");
  options_.patience = integer(dict, "patience");
  options_.threshold = scalar(dict, "threshold");
  options_.threshold_mode =
      integer(dict, "threshold_mode") == 0 ? ThresholdMode::Rel : ThresholdMode::Abs;
  options_.cooldown = integer(dict, "cooldown");
  options_.min_lrs = per_group(dict, "min_lrs");
  options_.eps = scalar(dict, "eps");
  set_lrs(optimizer_, last_lr_);
}

}  // namespace strata::optim
